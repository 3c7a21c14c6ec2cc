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

grpc::health::v1::HealthCheckResponse::ServingStatus Check(int port, const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.status();
}

class ServerProcessTest : public ::testing::TestWithParam<Binary> {};

TEST_P(ServerProcessTest, ServesHealthAndMetricsThenStopsOnSigterm) {
  const Binary& binary = GetParam();
  auto process = Subprocess::Start(Argv(binary, {}));
  ASSERT_TRUE(process.ok()) << process.status();
  auto ready = (*process)->ReadLineStartingWith("READY ", absl::Seconds(30));
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_THAT(*ready, HasSubstr("service=" + binary.service));
  auto ports = testing::ParseReadyLine(*ready);
  ASSERT_TRUE(ports.ok()) << ports.status();

  EXPECT_EQ(Check(ports->grpc, ""), grpc::health::v1::HealthCheckResponse::SERVING);
  if (!binary.grpc_service.empty()) {
    EXPECT_EQ(Check(ports->grpc, binary.grpc_service),
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
  (*process)->Signal(SIGTERM);
  auto exit_code = (*process)->Wait(absl::Seconds(5));
  ASSERT_TRUE(exit_code.ok()) << "still running 5 s after SIGTERM";
  EXPECT_EQ(*exit_code, 0);
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5));
}

TEST_P(ServerProcessTest, StopsCleanlyOnSigint) {
  auto process = Subprocess::Start(Argv(GetParam(), {}));
  ASSERT_TRUE(process.ok());
  ASSERT_TRUE((*process)->ReadLineStartingWith("READY ", absl::Seconds(30)).ok());
  (*process)->Signal(SIGINT);
  auto exit_code = (*process)->Wait(absl::Seconds(5));
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 0);
}

TEST_P(ServerProcessTest, TakenPortIsAnErrorNotACrash) {
  auto first = Subprocess::Start(Argv(GetParam(), {}));
  ASSERT_TRUE(first.ok());
  auto ready = (*first)->ReadLineStartingWith("READY ", absl::Seconds(30));
  ASSERT_TRUE(ready.ok());
  auto ports = testing::ParseReadyLine(*ready);
  ASSERT_TRUE(ports.ok());

  std::vector<std::string> argv = Argv(GetParam(), {});
  argv[2] = absl::StrCat("--port=", ports->grpc);
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

TEST(SchedulerProcessTest, UnimplementedRpcsAreCountedByCode) {
  Binary scheduler{"scheduler", "scheduler_service/scheduler_server", ""};
  auto process = Subprocess::Start(Argv(scheduler, {}));
  ASSERT_TRUE(process.ok());
  auto ready = (*process)->ReadLineStartingWith("READY ", absl::Seconds(30));
  ASSERT_TRUE(ready.ok());
  auto ports = testing::ParseReadyLine(*ready);
  ASSERT_TRUE(ports.ok());

  auto stub = autocompress::v1::ExperimentService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", ports->grpc), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  autocompress::v1::GetExperimentResponse response;
  EXPECT_EQ(stub->GetExperiment(&context, {}, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  auto metrics = HttpGet("127.0.0.1", ports->metrics, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("method=\"ExperimentService/GetExperiment\""));
  EXPECT_THAT(metrics->body, HasSubstr("code=\"UNIMPLEMENTED\""));
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
