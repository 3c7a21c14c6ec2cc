// The three servers assembled in one process, as the embedded `autocompress run` holds
// them: each on its own loopback port, each answering health and its own services,
// counted under its own metric prefix in one registry, and shut down independently.
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/testing/health_check.h"
#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "scheduler_service/scheduler_server.h"
#include "tuner_service/tuner_server.h"
#include "worker/worker_server.h"

namespace autocompress {
namespace {

using grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

std::string Serialize(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(ServersInOneProcessTest, TunerSchedulerAndWorkerServeSideBySide) {
  prometheus::Registry registry;
  tuner::TunerServer::Options tuner_options;
  tuner_options.server = ServerOptions::Loopback();
  auto tuner = tuner::TunerServer::BuildAndStart(tuner_options, registry);
  ASSERT_TRUE(tuner.ok()) << tuner.status();

  scheduler::SchedulerServer::Options scheduler_options;
  scheduler_options.server = ServerOptions::Loopback();
  scheduler_options.data_dir = testing::TempPath("one-process-data");
  auto scheduler = scheduler::SchedulerServer::BuildAndStart(scheduler_options, registry);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();

  worker::WorkerServer::Options worker_options;
  worker_options.server = ServerOptions::Loopback();
  worker_options.scheduler_address = absl::StrCat("127.0.0.1:", (*scheduler)->port());
  auto worker = worker::WorkerServer::BuildAndStart(worker_options, registry);
  ASSERT_TRUE(worker.ok()) << worker.status();

  const int ports[] = {(*tuner)->port(), (*scheduler)->port(), (*worker)->port()};
  EXPECT_NE(ports[0], ports[1]);
  EXPECT_NE(ports[1], ports[2]);
  EXPECT_NE(ports[0], ports[2]);
  EXPECT_EQ(testing::CheckHealth(ports[0], "autocompress.v1.TunerService").status,
            HealthCheckResponse::SERVING);
  EXPECT_EQ(testing::CheckHealth(ports[1], "autocompress.v1.ExperimentService").status,
            HealthCheckResponse::SERVING);
  EXPECT_EQ(testing::CheckHealth(ports[1], "autocompress.v1.WorkerGateway").status,
            HealthCheckResponse::SERVING);
  EXPECT_EQ(testing::CheckHealth(ports[2], "").status, HealthCheckResponse::SERVING);

  // The tuner answers through the in-process channel the embedded mode uses.
  auto tuner_stub = v1::TunerService::NewStub((*tuner)->InProcessChannel());
  grpc::ClientContext validate_context;
  v1::ValidateSearchSpaceRequest validate;
  validate.set_search_space_json(R"({"lr": {"_type": "uniform", "_value": [0.1, 0.5]}})");
  v1::ValidateSearchSpaceResponse validated;
  ASSERT_TRUE(tuner_stub->ValidateSearchSpace(&validate_context, validate, &validated).ok());
  EXPECT_TRUE(validated.valid());

  auto experiments = v1::ExperimentService::NewStub((*scheduler)->InProcessChannel());
  grpc::ClientContext get_context;
  v1::GetExperimentResponse got;
  v1::GetExperimentRequest get;
  get.set_experiment_id("nope");
  EXPECT_EQ(experiments->GetExperiment(&get_context, get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // One registry, one prefix per server.
  const std::string metrics = Serialize(registry);
  EXPECT_THAT(metrics, HasSubstr("autocompress_tuner_rpc_requests_total{"));
  EXPECT_THAT(metrics, HasSubstr("autocompress_scheduler_rpc_requests_total{"));
  EXPECT_THAT(metrics, HasSubstr("autocompress_worker_rpc_requests_total{"));
  EXPECT_THAT(metrics, HasSubstr("method=\"TunerService/ValidateSearchSpace\""));

  // Stopping one leaves the others serving.
  (*tuner)->Shutdown();
  (*tuner)->Wait();
  EXPECT_EQ(testing::CheckHealth(ports[1], "").status, HealthCheckResponse::SERVING);
  EXPECT_EQ(testing::CheckHealth(ports[2], "").status, HealthCheckResponse::SERVING);
  (*worker)->Shutdown();
  (*scheduler)->Shutdown();
  (*worker)->Wait();
  (*scheduler)->Wait();
}

TEST(ServersInOneProcessTest, AssemblyErrorsAreStatusesNotCrashes) {
  prometheus::Registry registry;
  scheduler::SchedulerServer::Options scheduler_options;
  scheduler_options.server = ServerOptions::Loopback();
  scheduler_options.data_dir = "/proc/autocompress-data";
  EXPECT_EQ(scheduler::SchedulerServer::BuildAndStart(scheduler_options, registry).status().code(),
            absl::StatusCode::kFailedPrecondition);

  tuner::TunerServer::Options tuner_options;
  tuner_options.server = ServerOptions::Loopback();
  tuner_options.tuner.max_studies = 0;
  EXPECT_EQ(tuner::TunerServer::BuildAndStart(tuner_options, registry).status().code(),
            absl::StatusCode::kInvalidArgument);

  tuner_options.tuner.max_studies = 10;
  auto first = tuner::TunerServer::BuildAndStart(tuner_options, registry);
  ASSERT_TRUE(first.ok());
  tuner_options.server.port = (*first)->port();
  EXPECT_EQ(tuner::TunerServer::BuildAndStart(tuner_options, registry).status().code(),
            absl::StatusCode::kUnavailable);

  worker::WorkerServer::Options worker_options;
  worker_options.server = ServerOptions::Loopback();
  worker_options.scheduler_address = "";
  EXPECT_EQ(worker::WorkerServer::BuildAndStart(worker_options, registry).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace autocompress
