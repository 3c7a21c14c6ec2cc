#include "tests/fakes/scheduler_harness.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/status.h"
#include "common/testing/runfiles.h"
#include "gtest/gtest.h"
#include "tests/fakes/experiment_fixtures.h"

namespace autocompress::testing {
namespace {

ServerOptions Loopback(int port) {
  ServerOptions options = ServerOptions::Loopback(port);
  options.shutdown_grace = absl::Milliseconds(200);
  return options;
}

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

}  // namespace

SchedulerHarness::SchedulerHarness(std::string data_dir) : data_dir_(std::move(data_dir)) {
  static int counter = 0;
  if (data_dir_.empty()) data_dir_ = TempPath(absl::StrCat("scheduler-harness-", ++counter));
  scheduler_options_.data_dir = data_dir_;
  scheduler_options_.scheduler.clock = &clock_;
  scheduler_options_.scheduler.tick_interval = absl::Milliseconds(20);
  scheduler_options_.scheduler.tuner_min_backoff = absl::Milliseconds(20);
  scheduler_options_.scheduler.tuner_max_backoff = absl::Milliseconds(200);
  scheduler_options_.tuner_timeout = absl::Seconds(5);
  // The tests' restarts are in-process: NORMAL is as durable as FULL against them.
  scheduler_options_.sqlite.synchronous = scheduler::SqliteTrialStore::Synchronous::kNormal;
  StartTuner();
  StartScheduler();
}

SchedulerHarness::~SchedulerHarness() {
  StopScheduler();
  StopTuner();
}

void SchedulerHarness::StartTuner() {
  tuner::TunerServer::Options options;
  options.server = Loopback(tuner_port_);
  registries_.push_back(std::make_unique<prometheus::Registry>());
  tuner_registry_ = registries_.back().get();
  auto server = tuner::TunerServer::BuildAndStart(options, *tuner_registry_);
  ASSERT_TRUE(server.ok()) << server.status();
  tuner_ = std::move(*server);
  tuner_port_ = tuner_->port();
}

void SchedulerHarness::StopTuner() {
  if (tuner_ == nullptr) return;
  tuner_->Shutdown();
  tuner_->Wait();
  tuner_.reset();
}

void SchedulerHarness::StartScheduler() {
  scheduler_options_.server = Loopback(scheduler_port_);
  scheduler_options_.tuner_address = absl::StrCat("127.0.0.1:", tuner_port_);
  // A fresh registry per start: metric families are registered once per server.
  registries_.push_back(std::make_unique<prometheus::Registry>());
  scheduler_registry_ = registries_.back().get();
  auto server = scheduler::SchedulerServer::BuildAndStart(scheduler_options_, *scheduler_registry_);
  ASSERT_TRUE(server.ok()) << server.status();
  scheduler_ = std::move(*server);
  scheduler_port_ = scheduler_->port();
  experiments_ = v1::ExperimentService::NewStub(Channel());
}

void SchedulerHarness::StopScheduler() {
  if (scheduler_ == nullptr) return;
  scheduler_->Shutdown();
  scheduler_->Wait();
  scheduler_.reset();
}

std::string SchedulerHarness::scheduler_address() const {
  return absl::StrCat("127.0.0.1:", scheduler_port_);
}

std::shared_ptr<grpc::Channel> SchedulerHarness::Channel() const {
  ChannelOptions options;
  options.min_reconnect_backoff = absl::Milliseconds(50);
  options.max_reconnect_backoff = absl::Milliseconds(200);
  return CreateChannel(scheduler_address(), options);
}

std::unique_ptr<FakeWorker> SchedulerHarness::Worker(FakeWorker::Options options) {
  return std::make_unique<FakeWorker>(Channel(), std::move(options));
}

v1::ArtifactRef SchedulerHarness::Upload(const std::string& content, v1::ArtifactKind kind) {
  auto stub = v1::ArtifactService::NewStub(Channel());
  absl::StatusOr<v1::ArtifactRef> ref = UploadBlob(*stub, content, kind);
  EXPECT_TRUE(ref.ok()) << ref.status();
  return ref.ok() ? *ref : v1::ArtifactRef();
}

v1::ExperimentSpec SchedulerHarness::Spec(int concurrency, int max_trials) {
  auto stub = v1::ArtifactService::NewStub(Channel());
  absl::StatusOr<v1::ExperimentSpec> spec = NoOpExperimentSpec(*stub, concurrency, max_trials);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return v1::ExperimentSpec();
  spec->set_name("harness");
  spec->mutable_limits()->set_max_retries(2);
  return *spec;
}

absl::StatusOr<v1::Experiment> SchedulerHarness::Create(const v1::ExperimentSpec& spec,
                                                        const std::string& request_id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::CreateExperimentRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(request_id);
  v1::CreateExperimentResponse response;
  grpc::Status status = experiments_->CreateExperiment(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.experiment();
}

absl::StatusOr<v1::Experiment> SchedulerHarness::Get(const std::string& id) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::GetExperimentRequest request;
  request.set_experiment_id(id);
  v1::GetExperimentResponse response;
  grpc::Status status = experiments_->GetExperiment(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.experiment();
}

std::vector<v1::Trial> SchedulerHarness::Trials(const std::string& id) {
  std::vector<v1::Trial> trials;
  std::string token;
  do {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::ListTrialsRequest request;
    request.set_experiment_id(id);
    request.set_page_token(token);
    request.set_include_intermediate(true);
    v1::ListTrialsResponse response;
    grpc::Status status = experiments_->ListTrials(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) break;
    trials.insert(trials.end(), response.trials().begin(), response.trials().end());
    token = response.next_page_token();
  } while (!token.empty());
  return trials;
}

bool SchedulerHarness::WaitUntil(const std::string& id,
                                 const std::function<bool(const v1::Experiment&)>& done,
                                 absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::Experiment> experiment = Get(id);
    if (experiment.ok() && done(*experiment)) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

v1::Experiment SchedulerHarness::WaitForState(const std::string& id, v1::ExperimentState state,
                                              absl::Duration timeout) {
  WaitUntil(
      id, [&](const v1::Experiment& e) { return e.state() == state; }, timeout);
  absl::StatusOr<v1::Experiment> last = Get(id);
  return last.ok() ? *last : v1::Experiment();
}

}  // namespace autocompress::testing
