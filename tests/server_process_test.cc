// Each server binary, started as a real process on port 0 the way Kubernetes starts it:
// it announces its ports, answers grpc.health.v1 Check with SERVING, serves /metrics
// over HTTP with its RPC metrics, and exits 0 soon after SIGTERM or SIGINT.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/testing/health_check.h"
#include "common/testing/http_get.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using ::testing::HasSubstr;
using testing::HttpGet;
using testing::RunfilePath;
using testing::Subprocess;

struct Binary {
  std::string service;       // metric prefix and READY name
  std::string path;          // runfile path
  std::string grpc_service;  // a service it hosts, "" for none
};

std::vector<std::string> Argv(const Binary& binary, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {RunfilePath(binary.path), "--host=127.0.0.1", "--port=0",
                                   "--metrics_port=0"};
  if (binary.service == "scheduler") {
    argv.push_back("--data_dir=" + testing::TempPath("scheduler-data"));
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

class ServerProcessTest : public ::testing::TestWithParam<Binary> {};

TEST_P(ServerProcessTest, ServesHealthAndMetricsThenStopsOnSigterm) {
  const Binary& binary = GetParam();
  auto process = testing::StartReadyServer(Argv(binary, {}));
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_THAT(process->ready_line, HasSubstr("service=" + binary.service));
  const testing::ReadyPorts* ports = &process->ports;

  EXPECT_EQ(testing::CheckHealth(ports->grpc, "").status,
            grpc::health::v1::HealthCheckResponse::SERVING);
  if (!binary.grpc_service.empty()) {
    EXPECT_EQ(testing::CheckHealth(ports->grpc, binary.grpc_service).status,
              grpc::health::v1::HealthCheckResponse::SERVING);
  }

  auto metrics = HttpGet("127.0.0.1", ports->metrics, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status_code, 200);
  EXPECT_THAT(metrics->body,
              HasSubstr(absl::StrCat("autocompress_", binary.service, "_rpc_requests_total{")));
  EXPECT_THAT(metrics->body, HasSubstr("method=\"Health/Check\""));
  EXPECT_THAT(metrics->body,
              HasSubstr(absl::StrCat("autocompress_", binary.service, "_rpc_duration_seconds")));

  const absl::Time signalled = absl::Now();
  process->process->Signal(SIGTERM);
  auto exit_code = process->process->Wait(absl::Seconds(5));
  ASSERT_TRUE(exit_code.ok()) << "still running 5 s after SIGTERM";
  EXPECT_EQ(*exit_code, 0);
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5));
}

TEST_P(ServerProcessTest, StopsCleanlyOnSigint) {
  auto process = testing::StartReadyServer(Argv(GetParam(), {}));
  ASSERT_TRUE(process.ok()) << process.status();
  process->process->Signal(SIGINT);
  auto exit_code = process->process->Wait(absl::Seconds(5));
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 0);
}

TEST_P(ServerProcessTest, TakenPortIsAnErrorNotACrash) {
  auto first = testing::StartReadyServer(Argv(GetParam(), {}));
  ASSERT_TRUE(first.ok()) << first.status();

  std::vector<std::string> argv = Argv(GetParam(), {});
  argv[2] = absl::StrCat("--port=", first->ports.grpc);
  auto second = Subprocess::Start(argv);
  ASSERT_TRUE(second.ok());
  auto exit_code = (*second)->Wait(absl::Seconds(30));
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Binaries, ServerProcessTest,
    ::testing::Values(Binary{"tuner", "tuner_service/tuner_server", "autocompress.v1.TunerService"},
                      Binary{"scheduler", "scheduler_service/scheduler_server",
                             "autocompress.v1.ExperimentService"},
                      Binary{"worker", "worker/worker_server", ""}),
    [](const ::testing::TestParamInfo<Binary>& info) { return info.param.service; });

TEST(TunerProcessTest, HealthGraceAnswersNotServingBeforeTheListenerCloses) {
  Binary tuner{"tuner", "tuner_service/tuner_server", "autocompress.v1.TunerService"};
  auto process = testing::StartReadyServer(Argv(tuner, {"--health_grace=3s"}));
  ASSERT_TRUE(process.ok()) << process.status();
  const testing::ReadyPorts* ports = &process->ports;
  ASSERT_EQ(testing::CheckHealth(ports->grpc, tuner.grpc_service).status,
            grpc::health::v1::HealthCheckResponse::SERVING);

  process->process->Signal(SIGTERM);
  auto status = grpc::health::v1::HealthCheckResponse::SERVING;
  for (int i = 0; i < 200 && status == grpc::health::v1::HealthCheckResponse::SERVING; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    status = testing::CheckHealth(ports->grpc, tuner.grpc_service).status;
  }
  EXPECT_EQ(status, grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  auto exit_code = process->process->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 0);
}

TEST(TunerProcessTest, MaxStudiesFlagLimitsStudies) {
  Binary tuner{"tuner", "tuner_service/tuner_server", "autocompress.v1.TunerService"};
  auto process = testing::StartReadyServer(Argv(tuner, {"--max_studies=1"}));
  ASSERT_TRUE(process.ok()) << process.status();
  const testing::ReadyPorts* ports = &process->ports;
  auto stub = autocompress::v1::TunerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", ports->grpc), grpc::InsecureChannelCredentials()));
  auto create = [&](const std::string& id) {
    grpc::ClientContext context;
    autocompress::v1::CreateStudyRequest request;
    request.set_study_id(id);
    request.mutable_config()->set_search_space_json(
        R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
    autocompress::v1::Objective* primary =
        request.mutable_config()->mutable_objective()->mutable_primary();
    primary->set_metric("accuracy");
    primary->set_mode(autocompress::v1::OPTIMIZE_MODE_MAXIMIZE);
    autocompress::v1::CreateStudyResponse response;
    return stub->CreateStudy(&context, request, &response);
  };
  grpc::Status first = create("a");
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_EQ(create("b").error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST(SchedulerProcessTest, RpcsAreCountedByCode) {
  Binary scheduler{"scheduler", "scheduler_service/scheduler_server", ""};
  auto process = testing::StartReadyServer(Argv(scheduler, {}));
  ASSERT_TRUE(process.ok()) << process.status();
  const testing::ReadyPorts* ports = &process->ports;

  auto stub = autocompress::v1::ExperimentService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", ports->grpc), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  autocompress::v1::GetExperimentResponse response;
  autocompress::v1::GetExperimentRequest request;
  request.set_experiment_id("nope");
  EXPECT_EQ(stub->GetExperiment(&context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  auto metrics = HttpGet("127.0.0.1", ports->metrics, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("method=\"ExperimentService/GetExperiment\""));
  EXPECT_THAT(metrics->body, HasSubstr("code=\"NOT_FOUND\""));
}

TEST(SchedulerProcessTest, UnusableDataDirIsAClearStartupError) {
  Binary scheduler{"scheduler", "scheduler_service/scheduler_server", ""};
  auto process = Subprocess::Start(Argv(scheduler, {"--data_dir=/proc/autocompress-data"}));
  ASSERT_TRUE(process.ok());
  auto exit_code = (*process)->Wait(absl::Seconds(30));
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 1);
}

}  // namespace
}  // namespace autocompress
