// The multi-host fault suite (issue 16): tuner_server, scheduler_server and three
// worker_servers running real trials (Fashion-MNIST, LibTorch, child processes), each in
// its own network namespace with real TCP between them (tests/faults/test_network.h;
// loopback when namespaces are not permitted). Each scenario injects one fault into a
// running auto-compression experiment and asserts that it still ends DONE with every
// trial accounted for exactly once and every result committed before the fault
// unchanged.
//
// Each scenario prints one line "FAULT-RESULT|scenario|trials|attempts|retries|
// handed back|lost|recovery s|wall s|what happened"; `./dev test-faults` makes the table
// of docs/reliability.md from them.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "client/experiment.h"
#include "client/experiment_file.h"
#include "common/testing/command_output.h"
#include "common/testing/http_get.h"
#include "common/testing/processes.h"
#include "common/testing/runfiles.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "scheduler_service/store/postgres_test_server.h"
#include "tests/fakes/experiment_fixtures.h"
#include "tests/faults/fault_cluster.h"

namespace autocompress {
namespace {

using testing::FaultCluster;
using testing::RunfilePath;
using testing::TempPath;

// ---- Experiments -------------------------------------------------------------------

struct ExperimentOptions {
  int trials = 9;
  int concurrency = 3;
  int epochs = 3;
  bool checkpoint = false;  // training.checkpoint_epochs
  std::string extra;        // more YAML lines
};

ExperimentOptions Sized(int trials, int epochs = 3, std::string extra = "") {
  ExperimentOptions options;
  options.trials = trials;
  options.epochs = epochs;
  options.extra = std::move(extra);
  return options;
}

// Level and l1 pruning of the Fashion-MNIST model, random tuner; `trials` suggested
// trials plus the baseline.
absl::StatusOr<std::string> Submit(Client& client, const std::string& name,
                                   const ExperimentOptions& o) {
  const std::string path = TempPath(name + ".yaml");
  std::ofstream(path) << absl::StrCat(
      "experiment_name: ", name, R"(
search_space:
  - algorithm: level
    config_list:
      - {sparsity: {_type: uniform, _value: [0.3, 0.8]}, op_types: [default]}
  - algorithm: l1
    config_list:
      - {sparsity: {_type: uniform, _value: [0.2, 0.5]}, op_types: [Conv2d]}
tuner: {name: random}
trial_concurrency: )",
      o.concurrency, "\nmax_trial_number: ", o.trials,
      "\nmodel: ", RunfilePath("worker/testdata/fashion_model.pt"), R"(
data:
  format: idx
  train: )",
      RunfilePath("worker/testdata/fashion_train.tar"),
      "\n  eval: ", RunfilePath("worker/testdata/fashion_test.tar"), R"(
  mean: [0.286]
  std: [0.353]
  batch_size: 32
training: {optimizer: {name: sgd, learning_rate: 0.02}, finetune_epochs: )",
      o.epochs, o.checkpoint ? ", checkpoint_epochs: true" : "", "}\nseed: 7\n", o.extra);
  absl::StatusOr<ExperimentFile> file = LoadExperimentFile(path);
  if (!file.ok()) return file.status();
  Experiment experiment(std::move(*file));
  absl::StatusOr<v1::Experiment> created = experiment.Start(client, name);
  if (!created.ok()) return created.status();
  return created->id();
}

std::vector<v1::Trial> Trials(Client& client, const std::string& id) {
  v1::ListTrialsRequest request;
  request.set_experiment_id(id);
  request.set_include_intermediate(true);
  absl::StatusOr<std::vector<v1::Trial>> trials = client.ListAllTrials(request);
  return trials.ok() ? *trials : std::vector<v1::Trial>{};
}

// Polls `done` every 100 ms until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return done();
}

// A trial RUNNING on `worker` that has reported at least once (the zero-shot evaluation
// after compression, step 0): mid-trial, not starting.
std::optional<v1::Trial> RunningOn(Client& client, const std::string& id,
                                   const std::string& worker) {
  for (const v1::Trial& trial : Trials(client, id)) {
    if (trial.state() == v1::TRIAL_STATE_RUNNING && trial.worker_id() == worker &&
        !trial.intermediate().empty()) {
      return trial;
    }
  }
  return std::nullopt;
}

std::optional<v1::Trial> WaitRunningOn(Client& client, const std::string& id,
                                       const std::string& worker) {
  std::optional<v1::Trial> found;
  WaitUntil([&] { return (found = RunningOn(client, id, worker)).has_value(); }, absl::Seconds(90));
  return found;
}

// When the trial's next attempt after `trial`'s was leased to a worker; nullopt if not
// within a minute.
std::optional<absl::Time> WaitForNextAttempt(Client& client, const v1::Trial& trial) {
  std::optional<absl::Time> leased;
  WaitUntil(
      [&] {
        absl::StatusOr<v1::Trial> now = client.GetTrial(trial.id());
        if (now.ok() && now->attempt() > trial.attempt() && !now->worker_id().empty()) {
          leased = absl::Now();
        }
        return leased.has_value();
      },
      absl::Seconds(60));
  return leased;
}

std::map<std::string, v1::Trial> Succeeded(const std::vector<v1::Trial>& trials) {
  std::map<std::string, v1::Trial> succeeded;
  for (const v1::Trial& trial : trials) {
    if (trial.state() == v1::TRIAL_STATE_SUCCEEDED) succeeded[trial.id()] = trial;
  }
  return succeeded;
}

// Waits until at least `n` trials succeeded and returns them.
std::map<std::string, v1::Trial> WaitSucceeded(Client& client, const std::string& id, size_t n) {
  std::map<std::string, v1::Trial> succeeded;
  WaitUntil([&] { return (succeeded = Succeeded(Trials(client, id))).size() >= n; },
            absl::Seconds(120));
  return succeeded;
}

v1::Experiment WaitEnded(Client& client, const std::string& id,
                         absl::Duration timeout = absl::Minutes(3)) {
  v1::Experiment experiment;
  WaitUntil(
      [&] {
        absl::StatusOr<v1::Experiment> got = client.GetExperiment(id);
        if (got.ok()) experiment = *got;
        return got.ok() && got->state() != v1::EXPERIMENT_STATE_RUNNING;
      },
      timeout);
  return experiment;
}

// ---- The invariant every scenario ends with ------------------------------------------

struct Outcome {
  int trials = 0;
  int attempts = 0;
  int retries = 0;      // attempts that counted against max_retries
  int handed_back = 0;  // attempts ended without counting (drain, lost lease of a stop)
  int lost = 0;         // results committed before the fault, missing or changed after
  std::vector<v1::Trial> all;
};

bool IsFinal(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SUCCEEDED || state == v1::TRIAL_STATE_FAILED ||
         state == v1::TRIAL_STATE_EARLY_STOPPED || state == v1::TRIAL_STATE_CANCELED;
}

// The experiment ends DONE with `expected` trials (the baseline included), sequences 0..n-1,
// distinct parameter ids, every trial in a final state and counted once in the
// experiment's counts, the attempt history consistent, and each result in `before`
// unchanged (same metrics, same attempt: not re-run).
Outcome ExpectEveryTrialOnce(Client& client, const std::string& id, int expected,
                             const std::map<std::string, v1::Trial>& before) {
  Outcome outcome;
  const v1::Experiment experiment = WaitEnded(client, id);
  EXPECT_EQ(experiment.state(), v1::EXPERIMENT_STATE_DONE) << experiment.DebugString();
  outcome.all = Trials(client, id);
  const std::vector<v1::Trial>& trials = outcome.all;
  outcome.trials = static_cast<int>(trials.size());
  EXPECT_EQ(trials.size(), static_cast<size_t>(expected));
  std::set<int64_t> parameter_ids;
  std::map<v1::TrialState, int> states;
  for (size_t i = 0; i < trials.size(); ++i) {
    const v1::Trial& trial = trials[i];
    EXPECT_EQ(trial.sequence(), static_cast<int64_t>(i)) << trial.id();
    EXPECT_TRUE(IsFinal(trial.state())) << trial.DebugString();
    ++states[trial.state()];
    if (!trial.baseline()) {
      EXPECT_TRUE(parameter_ids.insert(trial.parameter_id()).second)
          << "parameter id " << trial.parameter_id() << " used twice";
    }
    EXPECT_EQ(trial.attempts_size(), trial.attempt()) << trial.DebugString();
    for (int a = 0; a < trial.attempts_size(); ++a) {
      const v1::TrialAttempt& attempt = trial.attempts(a);
      EXPECT_EQ(attempt.attempt(), a + 1) << trial.id();
      ++outcome.attempts;
      if (a + 1 < trial.attempts_size()) {
        EXPECT_TRUE(attempt.has_failure())
            << "an earlier attempt without its end: " << trial.DebugString();
        (attempt.counted_as_retry() ? outcome.retries : outcome.handed_back) += 1;
      }
    }
    if (trial.state() == v1::TRIAL_STATE_SUCCEEDED) {
      EXPECT_FALSE(trial.final_report().metrics().empty()) << trial.DebugString();
    }
  }
  const v1::TrialCounts& counts = experiment.trial_counts();
  EXPECT_EQ(counts.succeeded(), states[v1::TRIAL_STATE_SUCCEEDED]);
  EXPECT_EQ(counts.failed(), states[v1::TRIAL_STATE_FAILED]);
  EXPECT_EQ(counts.early_stopped(), states[v1::TRIAL_STATE_EARLY_STOPPED]);
  EXPECT_EQ(counts.canceled(), states[v1::TRIAL_STATE_CANCELED]);
  std::map<std::string, const v1::Trial*> by_id;
  for (const v1::Trial& trial : trials) by_id[trial.id()] = &trial;
  for (const auto& [trial_id, was] : before) {
    auto now = by_id.find(trial_id);
    const bool kept = now != by_id.end() && now->second->state() == v1::TRIAL_STATE_SUCCEEDED &&
                      now->second->attempt() == was.attempt() &&
                      google::protobuf::util::MessageDifferencer::Equals(
                          now->second->final_report(), was.final_report());
    if (!kept) ++outcome.lost;
    EXPECT_TRUE(kept) << "committed result lost or changed: " << was.DebugString();
  }
  return outcome;
}

// One line of the report.
void Report(const std::string& scenario, const Outcome& outcome, double recovery_seconds,
            absl::Time started, const std::string& what) {
  std::printf("FAULT-RESULT|%s|%d|%d|%d|%d|%d|%.1f|%.0f|%s\n", scenario.c_str(), outcome.trials,
              outcome.attempts, outcome.retries, outcome.handed_back, outcome.lost,
              recovery_seconds, absl::ToDoubleSeconds(absl::Now() - started), what.c_str());
  std::fflush(stdout);
}

// A metric of a report.
std::optional<double> MetricValue(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return m.value();
  }
  return std::nullopt;
}

// The value of an unlabelled series in a /metrics page; -1 when absent.
double MetricValue(const std::string& page, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    double value = 0;
    if (absl::ConsumePrefix(&line, name + " ") && absl::SimpleAtod(line, &value)) return value;
  }
  return -1;
}

const v1::Trial* Find(const Outcome& outcome, const std::string& id) {
  for (const v1::Trial& trial : outcome.all) {
    if (trial.id() == id) return &trial;
  }
  return nullptr;
}

class FaultSuiteTest : public ::testing::Test {
 protected:
  void StartCluster(FaultCluster::Options options = {}) {
    options.name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    absl::StatusOr<std::unique_ptr<FaultCluster>> cluster = FaultCluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster);
    if (!cluster_->network().namespaces()) {
      std::printf("FAULT-NOTE|%s\n", cluster_->network().fallback_reason().c_str());
    }
  }
  Client& client() { return cluster_->client(); }

  std::unique_ptr<FaultCluster> cluster_;
  const absl::Time started_ = absl::Now();
};

// ---- Scenarios -----------------------------------------------------------------------

TEST_F(FaultSuiteTest, WorkerSigkilledMidTrialIsRerunElsewhere) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  absl::StatusOr<std::string> id = Submit(client(), "worker-kill", {});
  ASSERT_TRUE(id.ok()) << id.status();
  std::optional<v1::Trial> victim = WaitRunningOn(client(), *id, "worker-2");
  ASSERT_TRUE(victim.has_value()) << "worker-2 never ran a trial";
  absl::StatusOr<pid_t> child = cluster_->TrialChildOf("worker-2");
  ASSERT_TRUE(child.ok()) << child.status();
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));

  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster_->Stop("worker-2", SIGKILL).ok());
  // Its trial is leased again, to another worker, after the lease timeout (4 s; a
  // broken stream may be a worker about to reconnect).
  const std::optional<absl::Time> rerun = WaitForNextAttempt(client(), *victim);
  ASSERT_TRUE(rerun.has_value()) << "the killed worker's trial was never re-leased";
  // The kernel killed the trial's child with its agent (PR_SET_PDEATHSIG).
  EXPECT_TRUE(WaitUntil([&] { return testing::ProcessGone(*child); }, absl::Seconds(10)));

  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 10, before);
  const v1::Trial* rerun_trial = Find(outcome, victim->id());
  ASSERT_NE(rerun_trial, nullptr);
  EXPECT_EQ(rerun_trial->state(), v1::TRIAL_STATE_SUCCEEDED) << rerun_trial->DebugString();
  EXPECT_EQ(rerun_trial->attempts(0).worker_id(), "worker-2");
  EXPECT_NE(rerun_trial->worker_id(), "worker-2");
  Report("SIGKILL a worker mid-trial", outcome, absl::ToDoubleSeconds(*rerun - killed), started_,
         absl::StrCat("trial ", victim->sequence(), " re-run on ", rerun_trial->worker_id(),
                      " as attempt ", rerun_trial->attempt(), "; its child died with the agent"));
}

// With training.checkpoint_epochs, a trial whose worker is SIGKILLed after a checkpoint
// resumes on another worker after the checkpoint's epoch instead of starting over.
TEST_F(FaultSuiteTest, WorkerSigkilledAfterACheckpointTheRerunResumesFromIt) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  ExperimentOptions options = Sized(6, 6);
  options.checkpoint = true;
  absl::StatusOr<std::string> id = Submit(client(), "checkpoint", options);
  ASSERT_TRUE(id.ok()) << id.status();
  // A trial on worker-2 that has uploaded its checkpoint after epoch 3 (of 6).
  std::optional<v1::Trial> victim;
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const v1::Trial& t : Trials(client(), *id)) {
          if (t.state() == v1::TRIAL_STATE_RUNNING && t.worker_id() == "worker-2" &&
              t.checkpoint().epoch() >= 3) {
            victim = t;
            return true;
          }
        }
        return false;
      },
      absl::Seconds(90)))
      << "no trial on worker-2 reached a checkpoint";
  const int kept_epoch = victim->checkpoint().epoch();
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(cluster_->Stop("worker-2", SIGKILL).ok());
  const std::optional<absl::Time> rerun = WaitForNextAttempt(client(), *victim);
  ASSERT_TRUE(rerun.has_value());
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 7, before);
  const v1::Trial* trial = Find(outcome, victim->id());
  ASSERT_NE(trial, nullptr);
  ASSERT_EQ(trial->state(), v1::TRIAL_STATE_SUCCEEDED) << trial->DebugString();
  // The epochs up to the checkpoint were not run again (the checkpoint may have moved on
  // between the look and the kill).
  const std::optional<double> resumed = MetricValue(trial->final_report(), "resumed_from_epoch");
  ASSERT_TRUE(resumed.has_value()) << trial->final_report().DebugString();
  EXPECT_GE(*resumed, kept_epoch);
  EXPECT_LT(*resumed, 6);
  // Its curve is whole: steps 0 (after compression) to 6, each once.
  std::vector<int64_t> steps;
  for (const v1::MetricReport& r : trial->intermediate()) steps.push_back(r.step());
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
  Report("SIGKILL a worker after a checkpoint (checkpoint_epochs)", outcome,
         absl::ToDoubleSeconds(*rerun - killed), started_,
         absl::StrCat("trial ", victim->sequence(), " re-run on ", trial->worker_id(),
                      " as attempt ", trial->attempt(), " resumed after epoch ", *resumed,
                      " of 6: epochs 1-", *resumed, " not redone; its curve has all 7 steps"));
}

// The scheduler SIGKILLed with trials running and restarted on the same address and
// state; the workers reconnect by themselves and re-attach what still runs.
void SchedulerSigkillAndRestart(FaultCluster& cluster, const std::string& scenario,
                                absl::Time started) {
  Client& client = cluster.client();
  absl::StatusOr<std::string> id = Submit(client, "scheduler-kill", Sized(12));
  ASSERT_TRUE(id.ok()) << id.status();
  std::map<std::string, v1::Trial> before = WaitSucceeded(client, *id, 4);
  ASSERT_GE(before.size(), 4u);
  before = Succeeded(Trials(client, *id));
  ASSERT_TRUE(cluster.Stop("scheduler", SIGKILL).ok());
  const absl::Time killed = absl::Now();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_TRUE(cluster.StartHost("scheduler").ok());
  // Recovered: the restarted scheduler has committed a new result.
  std::optional<absl::Time> progressed;
  WaitUntil(
      [&] {
        if (Succeeded(Trials(client, *id)).size() > before.size()) progressed = absl::Now();
        return progressed.has_value();
      },
      absl::Seconds(90));
  ASSERT_TRUE(progressed.has_value()) << "no progress after the restart";
  Outcome outcome = ExpectEveryTrialOnce(client, *id, 13, before);
  Report(scenario, outcome, absl::ToDoubleSeconds(*progressed - killed), started,
         absl::StrCat(before.size(),
                      " results committed before the kill, all kept; first new "
                      "result after the restart counted as recovery"));
}

TEST_F(FaultSuiteTest, SchedulerSigkilledAndRestartedOnSqlite) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  SchedulerSigkillAndRestart(*cluster_, "SIGKILL the scheduler, restart (SQLite)", started_);
}

TEST_F(FaultSuiteTest, SchedulerSigkilledAndRestartedOnPostgres) {
  auto postgres = scheduler::PostgresTestServer::Start();
  ASSERT_TRUE(postgres.ok()) << postgres.status();
  ASSERT_TRUE((*postgres)->CreateDatabase("faults").ok());
  // Over the server's Unix socket: a file, so it reaches into the scheduler's namespace.
  FaultCluster::Options options;
  options.store_flags = {absl::StrCat("--store=", (*postgres)->SocketUrl("faults"))};
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  SchedulerSigkillAndRestart(*cluster_, "SIGKILL the scheduler, restart (PostgreSQL)", started_);
  absl::StatusOr<std::string> rows =
      (*postgres)->QueryText("faults", "SELECT COUNT(*) FROM trials");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, "13");
}

TEST_F(FaultSuiteTest, TunerSigkilledSuggestionsResumeAfterRestart) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  absl::StatusOr<std::string> id = Submit(client(), "tuner-kill", Sized(10));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_GE(WaitSucceeded(client(), *id, 3).size(), 3u);
  ASSERT_TRUE(cluster_->Stop("tuner", SIGKILL).ok());
  // Without a tuner no new trial is created; running ones go on and finish.
  absl::SleepFor(absl::Seconds(3));
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  const size_t created = Trials(client(), *id).size();
  const absl::Time restarted = absl::Now();
  ASSERT_TRUE(cluster_->StartHost("tuner").ok());
  std::optional<absl::Time> suggested;
  WaitUntil(
      [&] {
        if (Trials(client(), *id).size() > created) suggested = absl::Now();
        return suggested.has_value();
      },
      absl::Seconds(60));
  ASSERT_TRUE(suggested.has_value()) << "no suggestion after the tuner restarted";
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 11, before);
  Report("SIGKILL the tuner, restart", outcome, absl::ToDoubleSeconds(*suggested - restarted),
         started_,
         absl::StrCat(created,
                      " trials created before; the study was rebuilt from the store "
                      "(recovery: restart to next new trial)"));
}

TEST_F(FaultSuiteTest, WorkerLinkCutPastLeaseTimeoutIsFencedWhenRestored) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  if (!cluster_->network().namespaces()) GTEST_SKIP() << cluster_->network().fallback_reason();
  absl::StatusOr<std::string> id = Submit(client(), "link-cut", Sized(18));
  ASSERT_TRUE(id.ok()) << id.status();
  std::optional<v1::Trial> victim = WaitRunningOn(client(), *id, "worker-3");
  ASSERT_TRUE(victim.has_value()) << "worker-3 never ran a trial";
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  const absl::Time cut = absl::Now();
  ASSERT_TRUE(cluster_->network().namespaces());
  ASSERT_TRUE(cluster_->network().SetLinkUp("worker-3", false).ok());
  const std::optional<absl::Time> released = WaitForNextAttempt(client(), *victim);
  ASSERT_TRUE(released.has_value()) << "the lease of the cut-off worker never expired";
  // Long enough for the cut-off attempt to finish on its own, so its result is waiting
  // to be sent when the link comes back.
  absl::SleepFor(absl::Seconds(2));
  ASSERT_TRUE(cluster_->network().SetLinkUp("worker-3", true).ok());
  // worker-3 comes back and works again.
  const bool back = WaitUntil(
      [&] {
        for (const v1::Trial& t : Trials(client(), *id)) {
          if (t.worker_id() == "worker-3" && t.sequence() > victim->sequence() &&
              t.attempts(t.attempts_size() - 1).worker_id() == "worker-3") {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(60));
  EXPECT_TRUE(back) << "worker-3 ran nothing after its link came back";
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 19, before);
  const v1::Trial* trial = Find(outcome, victim->id());
  ASSERT_NE(trial, nullptr);
  EXPECT_EQ(trial->state(), v1::TRIAL_STATE_SUCCEEDED);
  // One retry: the cut-off worker's session was closed, so attempt 2 went elsewhere.
  EXPECT_EQ(trial->attempt(), victim->attempt() + 1) << trial->DebugString();
  EXPECT_NE(trial->worker_id(), "worker-3");
  // The result that counts is the new attempt's; the cut-off one's was fenced.
  EXPECT_EQ(trial->attempts(victim->attempt() - 1).worker_id(), "worker-3");
  EXPECT_TRUE(trial->attempts(victim->attempt() - 1).has_failure());
  auto metrics = testing::HttpGet(cluster_->network().Address("scheduler"),
                                  cluster_->metrics_port("scheduler"), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const double fenced = MetricValue(metrics->body, "autocompress_scheduler_fenced_events_total");
  EXPECT_GE(fenced, 1) << "the cut-off attempt's result was not fenced:\n" << metrics->body;
  Report("cut a worker's link past the lease timeout, restore", outcome,
         absl::ToDoubleSeconds(*released - cut), started_,
         absl::StrCat("trial ", victim->sequence(),
                      " re-leased after the lease timeout (4 s), "
                      "finished as attempt ",
                      trial->attempt(), " on ", trial->worker_id(), "; ", fenced,
                      " stale event(s) fenced; worker-3 ",
                      back ? "rejoined and ran later trials" : "rejoined"));
}

TEST_F(FaultSuiteTest, TrialChildSigkilledIsRetried) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  absl::StatusOr<std::string> id = Submit(client(), "child-kill", {});
  ASSERT_TRUE(id.ok()) << id.status();
  std::optional<v1::Trial> victim = WaitRunningOn(client(), *id, "worker-1");
  ASSERT_TRUE(victim.has_value());
  absl::StatusOr<pid_t> child = cluster_->TrialChildOf("worker-1");
  ASSERT_TRUE(child.ok()) << child.status();
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  const absl::Time killed = absl::Now();
  ASSERT_EQ(kill(*child, SIGKILL), 0);
  const std::optional<absl::Time> rerun = WaitForNextAttempt(client(), *victim);
  ASSERT_TRUE(rerun.has_value());
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 10, before);
  const v1::Trial* trial = Find(outcome, victim->id());
  ASSERT_NE(trial, nullptr);
  EXPECT_EQ(trial->state(), v1::TRIAL_STATE_SUCCEEDED);
  const v1::TrialFailure& failure = trial->attempts(victim->attempt() - 1).failure();
  EXPECT_TRUE(absl::StrContains(failure.message(), "SIGKILL")) << failure.DebugString();
  // The agent survived its child.
  EXPECT_NE(cluster_->process("worker-1"), nullptr);
  EXPECT_FALSE(testing::ProcessGone(cluster_->process("worker-1")->pid()));
  Report("SIGKILL a trial's child process", outcome, absl::ToDoubleSeconds(*rerun - killed),
         started_,
         absl::StrCat("attempt ", victim->attempt(), " failed \"",
                      failure.message().substr(0, failure.message().find(';')), "\" (",
                      v1::FailureCode_Name(failure.code()), "), retried as attempt ",
                      trial->attempt()));
}

TEST_F(FaultSuiteTest, HungTrialPastMaxTrialDurationIsStoppedAndTheSlotReused) {
  ASSERT_NO_FATAL_FAILURE(StartCluster());
  absl::StatusOr<std::string> id =
      Submit(client(), "hung-trial", Sized(24, 3, "max_trial_duration: 8s\n"));
  ASSERT_TRUE(id.ok()) << id.status();
  std::optional<v1::Trial> victim = WaitRunningOn(client(), *id, "worker-1");
  ASSERT_TRUE(victim.has_value());
  absl::StatusOr<pid_t> child = cluster_->TrialChildOf("worker-1");
  ASSERT_TRUE(child.ok()) << child.status();
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  // Stopped, the child hangs for real: it runs nothing and ignores SIGTERM until killed.
  ASSERT_EQ(kill(*child, SIGSTOP), 0);
  const absl::Time limit = absl::FromUnixSeconds(victim->start_time().seconds()) + absl::Seconds(8);
  ASSERT_TRUE(WaitUntil([&] { return testing::ProcessGone(*child); }, absl::Seconds(60)))
      << "the hung child was never killed";
  const absl::Time gone = absl::Now();
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 25, before);
  const v1::Trial* trial = Find(outcome, victim->id());
  ASSERT_NE(trial, nullptr);
  EXPECT_EQ(trial->state(), v1::TRIAL_STATE_EARLY_STOPPED) << trial->DebugString();
  EXPECT_EQ(trial->failure().code(), v1::FAILURE_CODE_TIMEOUT) << trial->DebugString();
  EXPECT_EQ(trial->attempt(), victim->attempt()) << "a timed-out trial is not retried";
  // worker-1's slot came back: a later trial ran there.
  bool reused = false;
  for (const v1::Trial& t : outcome.all) {
    reused |= t.sequence() > victim->sequence() && t.worker_id() == "worker-1";
  }
  EXPECT_TRUE(reused) << "worker-1 ran nothing after the hung trial";
  Report("a hung trial past max_trial_duration (8 s)", outcome, absl::ToDoubleSeconds(gone - limit),
         started_,
         absl::StrCat("trial ", victim->sequence(), " EARLY_STOPPED (TIMEOUT, \"",
                      trial->failure().message(),
                      "\"), child SIGKILLed; recovery: limit to "
                      "child gone"));
}

TEST_F(FaultSuiteTest, WorkerDrainedWithSigtermHandsBackWithoutBurningRetries) {
  FaultCluster::Options options;
  options.drain_grace = absl::Milliseconds(200);
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  absl::StatusOr<std::string> id = Submit(client(), "drain", Sized(9, 5));
  ASSERT_TRUE(id.ok()) << id.status();
  std::optional<v1::Trial> victim = WaitRunningOn(client(), *id, "worker-1");
  ASSERT_TRUE(victim.has_value());
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  const absl::Time term = absl::Now();
  absl::StatusOr<int> code = cluster_->Stop("worker-1", SIGTERM);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << "a drained worker exits 0";
  const absl::Time exited = absl::Now();
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 10, before);
  const v1::Trial* trial = Find(outcome, victim->id());
  ASSERT_NE(trial, nullptr);
  EXPECT_EQ(trial->state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_GT(trial->attempt(), victim->attempt());
  const v1::TrialAttempt& handed = trial->attempts(victim->attempt() - 1);
  EXPECT_EQ(handed.worker_id(), "worker-1");
  EXPECT_FALSE(handed.counted_as_retry()) << trial->DebugString();
  EXPECT_EQ(outcome.retries, 0);
  Report("SIGTERM (drain) a worker mid-trial", outcome, absl::ToDoubleSeconds(exited - term),
         started_,
         absl::StrCat("trial ", victim->sequence(), " handed back (\"", handed.failure().message(),
                      "\", not a retry), finished as attempt ", trial->attempt(),
                      "; recovery: SIGTERM to exit 0"));
}

// ---- The scheduler's disk fills up during commits --------------------------------------

// A tmpfs of `megabytes` at `path`, unmounted when it goes.
class SmallDisk {
 public:
  static absl::StatusOr<std::unique_ptr<SmallDisk>> Mount(const std::string& path, int megabytes) {
    // A run killed before its unmount left the tmpfs there (the path is the same).
    (void)testing::CommandOutput(absl::StrCat("umount -l ", path, " 2>/dev/null"));
    std::filesystem::create_directories(path);
    absl::StatusOr<std::string> mounted = testing::CommandOutput(
        absl::StrCat("mount -t tmpfs -o size=", megabytes, "m tmpfs ", path, " 2>&1"));
    if (!mounted.ok()) return mounted.status();
    return std::unique_ptr<SmallDisk>(new SmallDisk(path));
  }
  ~SmallDisk() { (void)testing::CommandOutput(absl::StrCat("umount -l ", path_, " 2>&1")); }

  // Writes a filler file until the disk is full; returns how many bytes it took.
  int64_t Fill(const std::string& name) {
    std::FILE* file = std::fopen((path_ + "/" + name).c_str(), "ab");
    if (file == nullptr) return 0;
    const std::string block(64 << 10, '\0');
    int64_t written = 0;
    for (;;) {
      const size_t n = std::fwrite(block.data(), 1, block.size(), file);
      written += static_cast<int64_t>(n);
      if (n < block.size() || std::fflush(file) != 0) break;
    }
    std::fclose(file);
    return written;
  }
  void Free(const std::string& name) { std::filesystem::remove(path_ + "/" + name); }
  int64_t available() const {
    struct statvfs s;
    return statvfs(path_.c_str(), &s) == 0 ? static_cast<int64_t>(s.f_bavail) * s.f_frsize : -1;
  }

 private:
  explicit SmallDisk(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Moves the WAL's frames into the database and truncates it (a second connection, as
// the sqlite3 shell would), so the scheduler's next commit must grow the file again.
absl::Status CheckpointWal(const std::string& database) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(database.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  }
  const std::string error = db != nullptr ? sqlite3_errmsg(db) : "cannot open";
  sqlite3_close(db);
  if (rc != SQLITE_OK) return absl::InternalError(absl::StrCat(database, ": ", error));
  return absl::OkStatus();
}

TEST_F(FaultSuiteTest, SchedulerDiskFullRefusesNewWorkLosesNothingAndRecovers) {
  const std::string data_dir = TempPath("disk-full-data");
  absl::StatusOr<std::unique_ptr<SmallDisk>> disk = SmallDisk::Mount(data_dir, 48);
  if (!disk.ok()) GTEST_SKIP() << "cannot mount a small tmpfs: " << disk.status();
  FaultCluster::Options options;
  options.data_dir = data_dir;
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  absl::StatusOr<std::string> id = Submit(client(), "disk-full", Sized(12));
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_GE(WaitSucceeded(client(), *id, 3).size(), 3u);

  // Fill it; empty the WAL (its pages were free space for later commits); fill again.
  (*disk)->Fill("filler-1");
  const std::string database = data_dir + "/scheduler.db";
  ASSERT_TRUE(CheckpointWal(database).ok());
  (*disk)->Fill("filler-2");
  EXPECT_LT((*disk)->available(), 64 << 10);

  // The store fails on its next commit (running trials commit every epoch) and says so.
  const absl::Time full = absl::Now();
  auto store_healthy = [&] {
    auto page = testing::HttpGet(cluster_->network().Address("scheduler"),
                                 cluster_->metrics_port("scheduler"), "/metrics");
    return page.ok() ? MetricValue(page->body, "autocompress_scheduler_store_healthy") : -1;
  };
  ASSERT_TRUE(WaitUntil([&] { return store_healthy() == 0; }, absl::Seconds(30)))
      << "the store never failed on a full disk";
  // New work is refused with the store's error.
  const absl::Status refused = Submit(client(), "disk-full-refused", Sized(2)).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_TRUE(absl::StrContains(refused.message(), "full")) << refused;
  const std::map<std::string, v1::Trial> before = Succeeded(Trials(client(), *id));
  // While full, nothing committed goes away and the scheduler stays up.
  absl::SleepFor(absl::Seconds(3));
  ASSERT_NE(cluster_->process("scheduler"), nullptr);
  EXPECT_FALSE(testing::ProcessGone(cluster_->process("scheduler")->pid()));

  (*disk)->Free("filler-1");
  (*disk)->Free("filler-2");
  const absl::Time freed = absl::Now();
  absl::StatusOr<std::string> second;
  WaitUntil(
      [&] {
        second = Submit(client(), "disk-full-second", Sized(2));
        return second.ok();
      },
      absl::Seconds(60));
  ASSERT_TRUE(second.ok()) << "still refused after space came back: " << second.status();
  const absl::Time recovered = absl::Now();
  EXPECT_TRUE(WaitUntil([&] { return store_healthy() == 1; }, absl::Seconds(10)));
  Outcome outcome = ExpectEveryTrialOnce(client(), *id, 13, before);
  // The trials running while the disk was full waited; none burned a retry.
  EXPECT_EQ(outcome.retries, 0);
  Outcome second_outcome = ExpectEveryTrialOnce(client(), *second, 3, {});
  Report("the scheduler's disk full during commits", outcome,
         absl::ToDoubleSeconds(recovered - freed), started_,
         absl::StrCat("new work refused ",
                      absl::FormatDuration(absl::Trunc(freed - full, absl::Seconds(1))), " (",
                      absl::StatusCodeToString(refused.code()), ": \"", refused.message(),
                      "\"); a second experiment ran after (", second_outcome.trials, " trials)"));
}

// ---- Load ---------------------------------------------------------------------------------

// What one watcher saw of one experiment.
struct Watched {
  absl::Status status;
  int events = 0;
  int gaps = 0;     // a sequence after the opening snapshot that skipped some
  int repeats = 0;  // a sequence seen before
  std::map<std::string, v1::TrialState> final_state;  // from trial events
  std::map<std::string, int> finals;                  // terminal trial events per trial
  v1::ExperimentState last_state = v1::EXPERIMENT_STATE_UNSPECIFIED;
};

// 5 experiments x 200 no-op trials (TPE) at once through 20 fake workers, each in its own
// namespace, a client watching each experiment: every trial runs once, every watch sees
// every event in order, the scheduler answers no RPC with an unexpected error, and its
// memory is about the same at 1000 finished trials as at 200.
TEST_F(FaultSuiteTest, LoadFiveExperimentsTwentyWorkersWatchersLoseNothing) {
  constexpr int kExperiments = 5;
  constexpr int kTrials = 200;
  FaultCluster::Options options;
  options.workers = 0;
  options.fake_workers = 20;
  options.fake_epoch = absl::Milliseconds(100);
  ASSERT_NO_FATAL_FAILURE(StartCluster(options));
  auto channel =
      grpc::CreateChannel(cluster_->scheduler_address(), grpc::InsecureChannelCredentials());
  auto artifacts = v1::ArtifactService::NewStub(channel);
  std::vector<std::string> ids;
  for (int e = 0; e < kExperiments; ++e) {
    absl::StatusOr<v1::ExperimentSpec> spec =
        testing::NoOpExperimentSpec(*artifacts, /*concurrency=*/8, kTrials);
    ASSERT_TRUE(spec.ok()) << spec.status();
    spec->mutable_tuner()->set_name("tpe");
    spec->set_name(absl::StrCat("load-", e));
    absl::StatusOr<v1::Experiment> created =
        client().CreateExperiment(*spec, absl::StrCat("load-", e));
    ASSERT_TRUE(created.ok()) << created.status();
    ids.push_back(created->id());
  }
  std::vector<Watched> watched(kExperiments);
  std::vector<std::thread> watchers;
  for (int e = 0; e < kExperiments; ++e) {
    watchers.emplace_back([&, e] {
      Watched& w = watched[e];
      int64_t last = -1;
      bool in_snapshot = true;
      w.status = client().Watch(
          ids[e], /*after_sequence=*/0, /*follow_resumes=*/false,
          [&](const v1::ExperimentEvent& event) {
            ++w.events;
            // The opening snapshot's events share one sequence; after it, each is the
            // previous one plus one.
            if (last < 0) {
              last = event.sequence();
            } else if (!(in_snapshot && event.sequence() == last)) {
              in_snapshot = false;
              if (event.sequence() <= last) {
                ++w.repeats;
              } else if (event.sequence() != last + 1) {
                ++w.gaps;
              }
              last = std::max(last, event.sequence());
            }
            if (event.has_trial() && IsFinal(event.trial().state())) {
              ++w.finals[event.trial().id()];
              w.final_state[event.trial().id()] = event.trial().state();
            }
            if (event.has_experiment()) w.last_state = event.experiment().state();
            return true;
          },
          absl::Minutes(5));
    });
  }
  // However this test ends, no watcher outlives it.
  struct JoinWatchers {
    Client& client;
    std::vector<std::thread>& threads;
    ~JoinWatchers() {
      client.CancelWatches();
      for (std::thread& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_watchers{client(), watchers};
  const pid_t scheduler = cluster_->process("scheduler")->pid();
  auto finished = [&] {
    int n = 0;
    for (const std::string& id : ids) {
      absl::StatusOr<v1::Experiment> e = client().GetExperiment(id);
      if (e.ok()) n += e->trial_counts().succeeded() + e->trial_counts().failed();
    }
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return finished() >= kTrials; }, absl::Minutes(3)));
  const double rss_at_200 = testing::ProcessMemoryMiB(scheduler, "VmRSS");
  const double peak_at_200 = testing::ProcessMemoryMiB(scheduler, "VmHWM");
  const int at_200 = finished();
  for (std::thread& t : watchers) t.join();
  const double rss_at_1000 = testing::ProcessMemoryMiB(scheduler, "VmRSS");
  const double peak = testing::ProcessMemoryMiB(scheduler, "VmHWM");

  int trials = 0, attempts = 0, retries = 0;
  for (int e = 0; e < kExperiments; ++e) {
    Outcome outcome = ExpectEveryTrialOnce(client(), ids[e], kTrials, {});
    trials += outcome.trials;
    attempts += outcome.attempts;
    retries += outcome.retries;
    const Watched& w = watched[e];
    EXPECT_TRUE(w.status.ok()) << w.status;
    EXPECT_EQ(w.gaps, 0) << "experiment " << e;
    EXPECT_EQ(w.repeats, 0) << "experiment " << e;
    EXPECT_EQ(w.last_state, v1::EXPERIMENT_STATE_DONE) << "experiment " << e;
    // Every trial's end was seen once, in the state the store has.
    EXPECT_EQ(w.finals.size(), static_cast<size_t>(kTrials)) << "experiment " << e;
    for (const v1::Trial& trial : outcome.all) {
      auto seen = w.finals.find(trial.id());
      EXPECT_TRUE(seen != w.finals.end() && seen->second == 1) << trial.id();
      EXPECT_EQ(w.final_state.at(trial.id()), trial.state()) << trial.id();
    }
  }
  // RPCs the scheduler answered with an error, by code (a watch that ends is OK).
  auto page = testing::HttpGet(cluster_->network().Address("scheduler"),
                               cluster_->metrics_port("scheduler"), "/metrics");
  ASSERT_TRUE(page.ok()) << page.status();
  std::map<std::string, double> errors;
  for (absl::string_view line : absl::StrSplit(page->body, '\n')) {
    if (!absl::ConsumePrefix(&line, "autocompress_scheduler_rpc_requests_total{")) continue;
    const size_t code = line.find("code=\"");
    const size_t value = line.rfind(' ');
    if (code == absl::string_view::npos || value == absl::string_view::npos) continue;
    const std::string name(line.substr(code + 6, line.find('"', code + 6) - code - 6));
    double n = 0;
    if (name != "OK" && absl::SimpleAtod(line.substr(value + 1), &n)) errors[name] += n;
  }
  EXPECT_TRUE(errors.empty()) << "RPC errors: "
                              << absl::StrJoin(errors, ", ", absl::PairFormatter("="));
  // Flat: the trial records of 800 more trials are a few MiB, not a leak per event.
  EXPECT_LT(rss_at_1000 - rss_at_200, 64) << rss_at_200 << " MiB at " << at_200 << " trials";
  Outcome total;
  total.trials = trials;
  total.attempts = attempts;
  total.retries = retries;
  int events = 0;
  for (const Watched& w : watched) events += w.events;
  Report("load: 5 experiments x 200 trials, 20 fake workers, 5 watchers", total, 0, started_,
         absl::StrFormat(
             "scheduler RSS %.0f MiB (peak %.0f) at %d finished trials, %.0f MiB (peak "
             "%.0f) at 1000; %d events watched, 0 gaps, 0 repeats; RPC errors: %s",
             rss_at_200, peak_at_200, at_200, rss_at_1000, peak, events,
             errors.empty() ? "none" : absl::StrJoin(errors, ", ", absl::PairFormatter("="))));
}

}  // namespace
}  // namespace autocompress
