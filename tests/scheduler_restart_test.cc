// The scheduler as a real process, SIGKILLed mid-experiment and restarted on the same
// data directory (or PostgreSQL database) and port, with a real tuner process and two
// fake-worker processes that reconnect by themselves. The experiment completes with every trial
// accounted for exactly once, and every result committed before the kill is still there, unchanged.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/testing/http_get.h"
#include "common/testing/runfiles.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"
#include "scheduler_service/store/postgres_test_server.h"
#include "tests/fakes/experiment_fixtures.h"

namespace autocompress {
namespace {

using testing::RunfilePath;
using testing::Subprocess;

constexpr int kTrials = 24;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return context;
}

std::vector<v1::Trial> ListTrials(v1::ExperimentService::Stub& stub, const std::string& id) {
  std::vector<v1::Trial> trials;
  std::string token;
  do {
    auto context = Context();
    v1::ListTrialsRequest request;
    request.set_experiment_id(id);
    request.set_page_token(token);
    v1::ListTrialsResponse response;
    grpc::Status status = stub.ListTrials(context.get(), request, &response);
    if (!status.ok()) return {};
    trials.insert(trials.end(), response.trials().begin(), response.trials().end());
    token = response.next_page_token();
  } while (!token.empty());
  return trials;
}

// `store_flags` select the trial store; the data directory holds the artifacts either way.
void SigkillMidExperimentLosesNothingAndCountsNothingTwice(
    const std::vector<std::string>& store_flags) {
  auto tuner = testing::StartReadyServer({RunfilePath("tuner_service/tuner_server"),
                                          "--host=127.0.0.1", "--port=0", "--metrics_port=0"});
  ASSERT_TRUE(tuner.ok()) << tuner.status();
  static int runs = 0;
  const std::string data_dir = testing::TempPath(absl::StrCat("scheduler-restart-data-", runs++));
  auto scheduler_argv = [&](int port) {
    std::vector<std::string> argv = {RunfilePath("scheduler_service/scheduler_server"),
                                     "--host=127.0.0.1",
                                     absl::StrCat("--port=", port),
                                     "--metrics_port=0",
                                     absl::StrCat("--data_dir=", data_dir),
                                     absl::StrCat("--tuner_address=127.0.0.1:", tuner->ports.grpc),
                                     "--lease_timeout=5s",
                                     "--heartbeat_interval=500ms"};
    argv.insert(argv.end(), store_flags.begin(), store_flags.end());
    return argv;
  };
  auto scheduler = testing::StartReadyServer(scheduler_argv(0));
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  const int port = scheduler->ports.grpc;
  const std::string address = absl::StrCat("127.0.0.1:", port);
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto experiments = v1::ExperimentService::NewStub(channel);
  auto artifacts = v1::ArtifactService::NewStub(channel);

  absl::StatusOr<v1::ExperimentSpec> spec =
      testing::NoOpExperimentSpec(*artifacts, /*concurrency=*/4, kTrials);
  ASSERT_TRUE(spec.ok()) << spec.status();
  spec->mutable_tuner()->set_name("tpe");
  v1::CreateExperimentRequest create;
  *create.mutable_spec() = *spec;
  create.set_request_id("restart-test");
  v1::CreateExperimentResponse created;
  {
    auto context = Context();
    grpc::Status status = experiments->CreateExperiment(context.get(), create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const std::string id = created.experiment().id();

  std::vector<std::unique_ptr<Subprocess>> workers;
  for (const char* name : {"worker-a", "worker-b"}) {
    auto worker = Subprocess::Start(
        {RunfilePath("tests/fakes/fake_worker_main"), absl::StrCat("--scheduler_address=", address),
         absl::StrCat("--worker_id=", name), "--slots=2", "--epochs=3", "--epoch_ms=100"});
    ASSERT_TRUE(worker.ok()) << worker.status();
    ASSERT_TRUE((*worker)->ReadLineStartingWith("READY", absl::Seconds(20)).ok());
    workers.push_back(std::move(*worker));
  }

  // Kill the scheduler once some trials have finished and others are running.
  std::map<std::string, double> before;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline) {
    before.clear();
    for (const v1::Trial& trial : ListTrials(*experiments, id)) {
      if (trial.state() == v1::TRIAL_STATE_SUCCEEDED) {
        before[trial.id()] = trial.final_report().metrics(0).value();
      }
    }
    if (before.size() >= 6) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_GE(before.size(), 6u);
  scheduler->process->Signal(SIGKILL);
  ASSERT_TRUE(scheduler->process->Wait(absl::Seconds(10)).ok());

  auto restarted = testing::StartReadyServer(scheduler_argv(port));
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  v1::Experiment end;
  const absl::Time end_deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < end_deadline) {
    auto context = Context();
    v1::GetExperimentRequest request;
    request.set_experiment_id(id);
    v1::GetExperimentResponse response;
    if (experiments->GetExperiment(context.get(), request, &response).ok()) {
      end = response.experiment();
      if (end.state() != v1::EXPERIMENT_STATE_RUNNING) break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(end.state(), v1::EXPERIMENT_STATE_DONE) << end.DebugString();

  const std::vector<v1::Trial> trials = ListTrials(*experiments, id);
  ASSERT_EQ(trials.size(), static_cast<size_t>(kTrials));
  std::set<int64_t> parameter_ids;
  for (size_t i = 0; i < trials.size(); ++i) {
    const v1::Trial& trial = trials[i];
    EXPECT_EQ(trial.sequence(), static_cast<int64_t>(i));
    EXPECT_EQ(trial.state(), v1::TRIAL_STATE_SUCCEEDED) << trial.DebugString();
    EXPECT_TRUE(parameter_ids.insert(trial.parameter_id()).second) << "repeated parameter id";
    auto was = before.find(trial.id());
    if (was != before.end()) {
      EXPECT_EQ(trial.final_report().metrics(0).value(), was->second) << trial.id();
      EXPECT_EQ(trial.attempt(), 1) << "a committed result was re-run: " << trial.id();
    }
  }
  EXPECT_EQ(end.trial_counts().succeeded(), kTrials);

  // The restarted scheduler's /metrics, as Prometheus scrapes it.
  auto metrics = testing::HttpGet("127.0.0.1", restarted->ports.metrics, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  for (const char* line : {"autocompress_scheduler_experiments{state=\"DONE\"} 1",
                           "autocompress_scheduler_workers_connected 2",
                           "autocompress_scheduler_slots{kind=\"cpu\",use=\"free\"} 4",
                           "autocompress_scheduler_store_commit_latency_seconds_count",
                           "autocompress_scheduler_dispatch_latency_seconds_count",
                           "autocompress_scheduler_metric_messages_total",
                           "autocompress_scheduler_worker_messages_total{kind=\"heartbeat\"}",
                           "autocompress_scheduler_rpc_requests_total"}) {
    EXPECT_NE(metrics->body.find(line), std::string::npos) << line << "\n" << metrics->body;
  }
  for (auto& worker : workers) worker->Signal(SIGTERM);
  restarted->process->Signal(SIGTERM);
  tuner->process->Signal(SIGTERM);
}

TEST(SchedulerRestartTest, SigkillMidExperimentLosesNothingAndCountsNothingTwiceOnSqlite) {
  SigkillMidExperimentLosesNothingAndCountsNothingTwice({"--store=sqlite"});
}

// The same on a real PostgreSQL server: the restarted scheduler also waits for the
// killed one's writer lock to go.
TEST(SchedulerRestartTest, SigkillMidExperimentLosesNothingAndCountsNothingTwiceOnPostgres) {
  auto postgres = scheduler::PostgresTestServer::Start();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  ASSERT_TRUE((*postgres)->CreateDatabase("restart").ok());
  SigkillMidExperimentLosesNothingAndCountsNothingTwice(
      {absl::StrCat("--store=", (*postgres)->Url("restart"))});
  // The scheduler's state is in the database, not in the data directory.
  absl::StatusOr<std::string> trials =
      (*postgres)->QueryText("restart", "SELECT COUNT(*) FROM trials");
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ(*trials, absl::StrCat(kTrials));
}

}  // namespace
}  // namespace autocompress
