// The scheduler in process, against fake workers that answer when the test says so and
// a real tuner: limits, concurrency, early stop, retries by failure code, fencing of
// stale attempts, re-attach on reconnect, draining, fair sharing, resume with raised
// limits, watch from the middle, restarts of the scheduler and of the tuner.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "tests/fakes/fake_worker.h"
#include "tests/fakes/scheduler_harness.h"

namespace autocompress {
namespace {

using testing::FakeWorker;
using ::testing::HasSubstr;
using testing::SchedulerHarness;

FakeWorker::Options Slots(const std::string& id, int slots) {
  FakeWorker::Options options;
  options.worker_id = id;
  options.cpu_slots = slots;
  return options;
}

std::vector<v1::Metric> Accuracy(double value) { return {FakeWorker::MetricOf("accuracy", value)}; }

// Runs one assigned attempt to success and waits for its final ack.
void Succeed(FakeWorker& worker, const v1::TrialSpec& trial, double accuracy) {
  worker.Started(trial);
  const int64_t last = worker.Succeeded(trial, Accuracy(accuracy));
  ASSERT_TRUE(worker.WaitForAck(trial, last));
}

// Advances the fake clock by `seconds` one second at a time, `worker` heartbeating
// before each step (a worker silent for a lease timeout loses its session).
void AdvanceHeartbeating(SchedulerHarness& harness, FakeWorker& worker, int seconds) {
  for (int s = 0; s < seconds; ++s) {
    worker.Heartbeat();
    absl::SleepFor(absl::Milliseconds(5));
    harness.clock().Advance(absl::Seconds(1));
  }
}

TEST(SchedulerTest, RunsUpToTheTrialLimitWithinConcurrencyAndEndsDone) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 8));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(/*concurrency=*/3, /*max_trials=*/7));
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  int done = 0;
  std::vector<v1::TrialSpec> in_flight;
  while (done < 7) {
    // Never more than `concurrency` attempts handed out at once.
    while (auto trial = worker->WaitForAssignment(absl::Milliseconds(300))) {
      in_flight.push_back(*trial);
      ASSERT_LE(in_flight.size(), 3u);
    }
    ASSERT_FALSE(in_flight.empty()) << "no assignment after " << done << " trials";
    Succeed(*worker, in_flight.front(), 0.5 + 0.01 * done);
    in_flight.erase(in_flight.begin());
    ++done;
  }
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.state(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().succeeded(), 7);
  EXPECT_EQ(worker->assignments_received(), 7);
  const std::vector<v1::Trial> trials = harness.Trials(experiment->id());
  ASSERT_EQ(trials.size(), 7u);
  // The best trial is the one with the highest accuracy (the last one).
  EXPECT_EQ(end.best_trial_id(), trials.back().id());
}

// autocompress_scheduler_experiment_best_metric{experiment, metric="accuracy"}, if exported.
std::optional<double> BestAccuracy(prometheus::Registry& registry, const std::string& experiment) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != "autocompress_scheduler_experiment_best_metric") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> labels;
      for (const prometheus::ClientMetric::Label& label : metric.label)
        labels[label.name] = label.value;
      if (labels["experiment"] == experiment && labels["metric"] == "accuracy")
        return metric.gauge.value;
    }
  }
  return std::nullopt;
}

TEST(SchedulerTest, BestMetricGaugeFollowsTheBestTrialAcrossARestart) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(/*concurrency=*/1, /*max_trials=*/3));
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  EXPECT_EQ(BestAccuracy(harness.scheduler_registry(), experiment->id()), std::nullopt);
  auto first = worker->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  Succeed(*worker, *first, 0.6);
  EXPECT_EQ(BestAccuracy(harness.scheduler_registry(), experiment->id()), 0.6);
  // A worse result (accuracy is maximized) leaves the best where it was.
  auto second = worker->WaitForAssignment();
  ASSERT_TRUE(second.has_value());
  Succeed(*worker, *second, 0.5);
  EXPECT_EQ(BestAccuracy(harness.scheduler_registry(), experiment->id()), 0.6);

  // A restarted scheduler exports the stored best before any new result.
  auto third = worker->WaitForAssignment();
  ASSERT_TRUE(third.has_value());
  ASSERT_TRUE(worker->WaitForAck(*third, worker->Started(*third)));
  harness.StopScheduler();
  harness.StartScheduler();
  EXPECT_EQ(BestAccuracy(harness.scheduler_registry(), experiment->id()), 0.6);
  ASSERT_TRUE(worker->Connect().ok());
  Succeed(*worker, *third, 0.8);
  EXPECT_EQ(BestAccuracy(harness.scheduler_registry(), experiment->id()), 0.8);
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
}

TEST(SchedulerTest, CreateListsEveryProblemAndIsIdempotentByRequestId) {
  SchedulerHarness harness;
  v1::ExperimentSpec bad = harness.Spec(1, 1);
  bad.mutable_limits()->set_trial_concurrency(0);
  bad.set_search_space_json(R"({"lr": {"_type": "uniform", "_value": [0.5, 0.1]}})");
  bad.mutable_model()->set_sha256(std::string(64, 'a'));
  auto refused = harness.Create(bad);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("spec.limits.trial_concurrency"));
  EXPECT_THAT(refused.status().message(), HasSubstr("spec.model"));
  EXPECT_THAT(refused.status().message(), HasSubstr("spec.search_space_json"));

  const v1::ExperimentSpec good = harness.Spec(1, 1);
  auto first = harness.Create(good, "request-1");
  auto again = harness.Create(good, "request-1");
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->id(), again->id());
  auto other = harness.Create(good, "request-2");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->id(), first->id());
}

TEST(SchedulerTest, AssessorStopsAWeakTrialAndItsWorkerIsCanceled) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 3);
  spec.mutable_assessor()->set_name("medianstop");
  spec.mutable_assessor()->set_args_json(R"({"start_step": 1})");
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();

  auto strong = worker->WaitForAssignment();
  ASSERT_TRUE(strong.has_value());
  worker->Started(*strong);
  worker->Intermediate(*strong, 0, Accuracy(0.9));
  worker->Intermediate(*strong, 1, Accuracy(0.9));
  Succeed(*worker, *strong, 0.9);

  auto weak = worker->WaitForAssignment();
  ASSERT_TRUE(weak.has_value());
  worker->Started(*weak);
  worker->Intermediate(*weak, 0, Accuracy(0.1));
  worker->Intermediate(*weak, 1, Accuracy(0.1));
  auto cancel = worker->WaitForCancel();
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->trial_id(), weak->trial_id());
  EXPECT_THAT(cancel->reason(), HasSubstr("assessor"));
  worker->Finished(*weak, v1::TRIAL_STATE_CANCELED, v1::FAILURE_CODE_STOPPED, "canceled");

  ASSERT_TRUE(harness.WaitUntil(experiment->id(), [](const v1::Experiment& e) {
    return e.trial_counts().early_stopped() == 1;
  }));
  grpc::ClientContext context;
  v1::GetTrialRequest request;
  request.set_trial_id(weak->trial_id());
  v1::GetTrialResponse response;
  ASSERT_TRUE(harness.experiments().GetTrial(&context, request, &response).ok());
  EXPECT_EQ(response.trial().state(), v1::TRIAL_STATE_EARLY_STOPPED);
  EXPECT_EQ(response.trial().failure().code(), v1::FAILURE_CODE_STOPPED);
  // The reports that arrived before the stop are kept (a later one may come too late).
  EXPECT_GE(response.trial().intermediate_size(), 1);
}

TEST(SchedulerTest, RetriesFollowTheFailureCode) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 2));  // max_retries 2
  ASSERT_TRUE(experiment.ok()) << experiment.status();

  // A crash is retried up to max_retries, then the trial FAILS with every attempt.
  auto first = worker->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto trial = attempt == 1 ? first : worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << "attempt " << attempt;
    EXPECT_EQ(trial->trial_id(), first->trial_id());
    EXPECT_EQ(trial->attempt(), attempt);
    worker->Started(*trial);
    ASSERT_TRUE(worker->WaitForAck(
        *trial, worker->Finished(*trial, v1::TRIAL_STATE_FAILED, v1::FAILURE_CODE_CRASH,
                                 absl::StrCat("killed by signal 11 in attempt ", attempt))));
  }
  // Invalid input is never retried.
  auto second = worker->WaitForAssignment();
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->trial_id(), first->trial_id());
  EXPECT_EQ(second->attempt(), 1);
  worker->Started(*second);
  ASSERT_TRUE(worker->WaitForAck(
      *second, worker->Finished(*second, v1::TRIAL_STATE_FAILED, v1::FAILURE_CODE_INVALID_INPUT,
                                "config_list[0].sparsity: 1.5 outside (0, 1)")));
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().failed(), 2);
  EXPECT_FALSE(worker->WaitForAssignment(absl::Milliseconds(200)).has_value());

  const std::vector<v1::Trial> trials = harness.Trials(experiment->id());
  ASSERT_EQ(trials.size(), 2u);
  ASSERT_EQ(trials[0].attempts_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(trials[0].attempts(i).failure().code(), v1::FAILURE_CODE_CRASH);
    EXPECT_THAT(trials[0].attempts(i).failure().message(),
                HasSubstr(absl::StrCat("attempt ", i + 1)));
  }
  EXPECT_THAT(trials[0].failure().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(trials[1].attempts_size(), 1);
  EXPECT_EQ(trials[1].failure().code(), v1::FAILURE_CODE_INVALID_INPUT);
}

TEST(SchedulerTest, LostWorkerLeaseRequeuesAndStaleAttemptEventsAreFenced) {
  SchedulerHarness harness;
  auto lost = harness.Worker(Slots("lost", 1));
  ASSERT_TRUE(lost->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 1));
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  auto first = lost->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(lost->WaitForAck(*first, lost->Started(*first)));
  lost->Disconnect();

  auto healthy = harness.Worker(Slots("healthy", 1));
  ASSERT_TRUE(healthy->Connect().ok());
  // Within the lease timeout nothing moves; past it the trial goes to attempt 2.
  EXPECT_FALSE(healthy->WaitForAssignment(absl::Milliseconds(200)).has_value());
  // The healthy worker heartbeats meanwhile (one silent for a lease timeout gets no work).
  AdvanceHeartbeating(harness, *healthy, 11);
  auto second = healthy->WaitForAssignment();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->trial_id(), first->trial_id());
  EXPECT_EQ(second->attempt(), 2);

  // The lost worker comes back still running attempt 1: it is told to stop, and its
  // result is acknowledged but not counted.
  ASSERT_TRUE(lost->Connect().ok());
  EXPECT_TRUE(lost->accepted().reattached().empty());
  auto cancel = lost->WaitForCancel();
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->attempt(), 1);
  ASSERT_TRUE(lost->WaitForAck(*first, lost->Succeeded(*first, Accuracy(0.99))));
  ASSERT_TRUE(harness.Get(experiment->id()).ok());
  EXPECT_EQ(harness.Get(experiment->id())->trial_counts().succeeded(), 0);

  Succeed(*healthy, *second, 0.7);
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  const std::vector<v1::Trial> trials = harness.Trials(experiment->id());
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].attempt(), 2);
  EXPECT_DOUBLE_EQ(trials[0].final_report().metrics(0).value(), 0.7);
  EXPECT_EQ(trials[0].attempts(0).failure().code(), v1::FAILURE_CODE_INFRASTRUCTURE);
  EXPECT_TRUE(trials[0].attempts(0).counted_as_retry());
}

// A worker silent for a lease timeout (a cut link, a hung agent) has its session closed:
// it gets no new work, and it learns so from the stream's end (a live one reconnects).
TEST(SchedulerTest, SilentWorkerSessionIsClosedAndGetsNoNewWork) {
  SchedulerHarness harness;
  auto silent = harness.Worker(Slots("silent", 1));
  auto alive = harness.Worker(Slots("alive", 1));
  ASSERT_TRUE(silent->Connect().ok());
  ASSERT_TRUE(alive->Connect().ok());
  AdvanceHeartbeating(harness, *alive, 11);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (silent->connected() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_FALSE(silent->connected());
  // (The stream ends CANCELLED: closing a session cancels its call on the server side.)
  EXPECT_EQ(silent->stream_status().code(), absl::StatusCode::kCancelled);
  auto experiment = harness.Create(harness.Spec(2, 2));
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  EXPECT_TRUE(alive->WaitForAssignment().has_value());
  EXPECT_EQ(silent->assignments_received(), 0);
}

// Non-finite metrics from a worker (a diverged fine-tuning, a broken evaluator): an
// intermediate NaN is stored but not sent to the tuner (which refuses the whole batch of
// observations holding one: a valid final result beside it was lost), a final NaN or
// infinite objective fails the trial naming the metric, a NaN extra is kept; the tuner
// rejects nothing and the experiment ends.
TEST(SchedulerTest, NanAndInfiniteMetricsFailOnlyTheirTrial) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 3));
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  const double nan = std::nan("");
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::string> ids;
  for (double final_accuracy : {inf, nan, 0.8}) {
    auto trial = worker->WaitForAssignment(absl::Seconds(20));
    ASSERT_TRUE(trial.has_value());
    ids.push_back(trial->trial_id());
    worker->Started(*trial);
    worker->Intermediate(*trial, 0, Accuracy(nan));
    std::vector<v1::Metric> metrics = Accuracy(final_accuracy);
    metrics.push_back(FakeWorker::MetricOf("latency_ms", nan));
    ASSERT_TRUE(worker->WaitForAck(*trial, worker->Succeeded(*trial, metrics)));
  }
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().succeeded(), 1);
  EXPECT_EQ(end.trial_counts().failed(), 2);
  std::map<std::string, v1::Trial> by_id;
  for (const v1::Trial& t : harness.Trials(experiment->id())) by_id[t.id()] = t;
  EXPECT_EQ(by_id[ids[0]].failure().code(), v1::FAILURE_CODE_INVALID_INPUT);
  EXPECT_THAT(by_id[ids[0]].failure().message(), HasSubstr("'accuracy' (the objective) is inf"));
  EXPECT_THAT(by_id[ids[1]].failure().message(), HasSubstr("'accuracy' (the objective) is nan"));
  EXPECT_EQ(by_id[ids[2]].state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(end.best_trial_id(), ids[2]);
  // The tuner was told only finite values: it refused no Report.
  int refused_reports = 0;
  for (const prometheus::MetricFamily& family : harness.tuner_registry().Collect()) {
    if (family.name != "autocompress_tuner_rpc_requests_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::map<std::string, std::string> labels;
      for (const prometheus::ClientMetric::Label& label : metric.label)
        labels[label.name] = label.value;
      if (absl::EndsWith(labels["method"], "/Report") && labels["code"] != "OK") {
        refused_reports += static_cast<int>(metric.counter.value);
      }
    }
  }
  EXPECT_EQ(refused_reports, 0);
}

// recipe.checkpoint_epochs: the last checkpoint an attempt uploaded, with the reports
// made before it, goes to the next attempt as resume_from; within an attempt an older
// one never replaces a newer one, a later attempt's always does, and without the option
// nothing is handed on.
TEST(SchedulerTest, ARerunAttemptResumesFromTheLastCheckpoint) {
  SchedulerHarness harness;
  auto first = harness.Worker(Slots("first", 1));
  ASSERT_TRUE(first->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 1);
  spec.mutable_recipe()->set_checkpoint_epochs(true);
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  auto attempt1 = first->WaitForAssignment();
  ASSERT_TRUE(attempt1.has_value());
  EXPECT_FALSE(attempt1->has_resume_from());
  const v1::ArtifactRef epoch1 =
      harness.Upload("checkpoint after epoch 1", v1::ARTIFACT_KIND_RESULT);
  const v1::ArtifactRef epoch2 =
      harness.Upload("checkpoint after epoch 2", v1::ARTIFACT_KIND_RESULT);
  first->Started(*attempt1);
  first->Intermediate(*attempt1, 0, Accuracy(0.3));
  first->Intermediate(*attempt1, 1, Accuracy(0.4));
  first->Checkpoint(*attempt1, 1, epoch1);
  first->Intermediate(*attempt1, 2, Accuracy(0.5));
  first->Checkpoint(*attempt1, 2, epoch2);
  ASSERT_TRUE(first->WaitForAck(*attempt1, first->Checkpoint(*attempt1, 1, epoch1)));
  first->Intermediate(*attempt1, 3, Accuracy(0.6));  // after the last checkpoint
  ASSERT_TRUE(first->WaitForAck(*attempt1, 8));
  first->Disconnect();

  auto second = harness.Worker(Slots("second", 1));
  ASSERT_TRUE(second->Connect().ok());
  AdvanceHeartbeating(harness, *second, 11);
  auto attempt2 = second->WaitForAssignment();
  ASSERT_TRUE(attempt2.has_value());
  EXPECT_EQ(attempt2->attempt(), 2);
  ASSERT_TRUE(attempt2->has_resume_from());
  const v1::TrialCheckpoint& from = attempt2->resume_from();
  EXPECT_EQ(from.epoch(), 2);
  EXPECT_EQ(from.attempt(), 1);
  EXPECT_EQ(from.artifact().sha256(), epoch2.sha256());
  std::vector<int64_t> steps;
  for (const v1::MetricReport& r : from.reports()) steps.push_back(r.step());
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 1, 2}));
  // Had the checkpoint not fitted, attempt 2 starts afresh: its first checkpoint (epoch 1)
  // replaces the unusable one of attempt 1.
  second->Started(*attempt2);
  ASSERT_TRUE(second->WaitForAck(*attempt2, second->Checkpoint(*attempt2, 1, epoch1)));
  Succeed(*second, *attempt2, 0.7);
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  const v1::Trial done = harness.Trials(experiment->id())[0];
  EXPECT_EQ(done.checkpoint().epoch(), 1);
  EXPECT_EQ(done.checkpoint().attempt(), 2);
  EXPECT_TRUE(done.checkpoint().reports().empty()) << "attempt 2 reported nothing before it";

  // Without the option, a checkpoint is kept but not handed on.
  v1::ExperimentSpec plain = harness.Spec(1, 1);
  auto other = harness.Create(plain);
  ASSERT_TRUE(other.ok());
  auto plain1 = second->WaitForAssignment();
  ASSERT_TRUE(plain1.has_value());
  second->Started(*plain1);
  ASSERT_TRUE(second->WaitForAck(*plain1, second->Checkpoint(*plain1, 1, epoch1)));
  ASSERT_TRUE(second->WaitForAck(*plain1, second->Finished(*plain1, v1::TRIAL_STATE_FAILED,
                                                           v1::FAILURE_CODE_CRASH, "segfault")));
  auto plain2 = second->WaitForAssignment();
  ASSERT_TRUE(plain2.has_value());
  EXPECT_EQ(plain2->attempt(), 2);
  EXPECT_FALSE(plain2->has_resume_from());
}

TEST(SchedulerTest, ReconnectingWorkerReattachesAndDuplicateEventsCountOnce) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 1));
  ASSERT_TRUE(experiment.ok());
  auto trial = worker->WaitForAssignment();
  ASSERT_TRUE(trial.has_value());
  worker->Started(*trial);
  worker->Intermediate(*trial, 0, Accuracy(0.3));
  ASSERT_TRUE(worker->WaitForAck(*trial, 2));
  worker->Disconnect();
  // Sent while cut off: re-sent after the reconnect.
  worker->Intermediate(*trial, 1, Accuracy(0.4));
  ASSERT_TRUE(worker->Connect().ok());
  ASSERT_EQ(worker->accepted().reattached_size(), 1);
  EXPECT_EQ(worker->accepted().reattached(0).trial_id(), trial->trial_id());
  ASSERT_TRUE(worker->WaitForAck(*trial, 3));
  Succeed(*worker, *trial, 0.5);
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  const std::vector<v1::Trial> trials = harness.Trials(experiment->id());
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].attempt(), 1);
  ASSERT_EQ(trials[0].intermediate_size(), 2);
  EXPECT_EQ(trials[0].intermediate(1).step(), 1);
}

TEST(SchedulerTest, DrainingWorkerHandsBackWithoutBurningRetries) {
  SchedulerHarness harness;
  auto draining = harness.Worker(Slots("draining", 1));
  ASSERT_TRUE(draining->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 1);
  spec.mutable_limits()->set_max_retries(1);
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok());
  auto first = draining->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  draining->Started(*first);
  draining->Drain({*first}, "SIGTERM");
  auto other = harness.Worker(Slots("other", 1));
  ASSERT_TRUE(other->Connect().ok());
  auto second = other->WaitForAssignment();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->attempt(), 2);
  EXPECT_FALSE(draining->WaitForAssignment(absl::Milliseconds(100)).has_value());
  // The retry budget is intact: one crash is still retried.
  other->Started(*second);
  other->Finished(*second, v1::TRIAL_STATE_FAILED, v1::FAILURE_CODE_CRASH, "segfault");
  auto third = other->WaitForAssignment();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->attempt(), 3);
  Succeed(*other, *third, 0.8);
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  const v1::Trial trial = harness.Trials(experiment->id())[0];
  ASSERT_EQ(trial.attempts_size(), 3);
  EXPECT_FALSE(trial.attempts(0).counted_as_retry());
  EXPECT_THAT(trial.attempts(0).failure().message(), HasSubstr("draining"));
  EXPECT_TRUE(trial.attempts(1).counted_as_retry());
  EXPECT_EQ(trial.state(), v1::TRIAL_STATE_SUCCEEDED);
}

TEST(SchedulerTest, TwoExperimentsShareSlotsInTurn) {
  SchedulerHarness harness;
  auto big = harness.Create(harness.Spec(/*concurrency=*/20, /*max_trials=*/1000));
  ASSERT_TRUE(big.ok());
  // The first experiment's trials wait (no worker yet); a second arrives later.
  ASSERT_TRUE(harness.WaitUntil(
      big->id(), [](const v1::Experiment& e) { return e.trial_counts().waiting() == 20; }));
  auto small = harness.Create(harness.Spec(/*concurrency=*/2, /*max_trials=*/4));
  ASSERT_TRUE(small.ok());
  ASSERT_TRUE(harness.WaitUntil(
      small->id(), [](const v1::Experiment& e) { return e.trial_counts().waiting() == 2; }));
  auto worker = harness.Worker(Slots("w1", 2));
  ASSERT_TRUE(worker->Connect().ok());
  std::map<std::string, int> by_experiment;
  for (int i = 0; i < 6; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << i;
    ++by_experiment[trial->experiment_id()];
    Succeed(*worker, *trial, 0.5);
    // Each manager refills asynchronously: wait until the experiment whose trial ended
    // has its next trials queued again, so a freed slot never races the refill.
    const int concurrency = trial->experiment_id() == small->id() ? 2 : 20;
    const int max_trials = trial->experiment_id() == small->id() ? 4 : 1000;
    ASSERT_TRUE(harness.WaitUntil(trial->experiment_id(), [&](const v1::Experiment& e) {
      const v1::TrialCounts& c = e.trial_counts();
      return c.waiting() + c.running() >= std::min(concurrency, max_trials - c.succeeded());
    }));
  }
  // Slots alternate: the later experiment got its share instead of waiting for 1000.
  EXPECT_EQ(by_experiment[small->id()], 3);
  EXPECT_EQ(by_experiment[big->id()], 3);
}

TEST(SchedulerTest, StopCancelsAndResumeWithRaisedLimitsContinues) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 2));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(2, 2));
  ASSERT_TRUE(experiment.ok());
  auto a = worker->WaitForAssignment();
  auto b = worker->WaitForAssignment();
  ASSERT_TRUE(a.has_value() && b.has_value());
  Succeed(*worker, *a, 0.6);
  worker->Started(*b);

  grpc::ClientContext stop_context;
  v1::StopExperimentRequest stop;
  stop.set_experiment_id(experiment->id());
  v1::StopExperimentResponse stopped;
  ASSERT_TRUE(harness.experiments().StopExperiment(&stop_context, stop, &stopped).ok());
  EXPECT_EQ(stopped.experiment().state(), v1::EXPERIMENT_STATE_STOPPED);
  auto cancel = worker->WaitForCancel();
  ASSERT_TRUE(cancel.has_value());
  EXPECT_EQ(cancel->trial_id(), b->trial_id());
  worker->Finished(*b, v1::TRIAL_STATE_CANCELED, v1::FAILURE_CODE_STOPPED, "canceled");

  grpc::ClientContext resume_context;
  v1::ResumeExperimentRequest resume;
  resume.set_experiment_id(experiment->id());
  resume.mutable_limits()->set_max_trial_number(4);
  resume.mutable_update_mask()->add_paths("max_trial_number");
  v1::ResumeExperimentResponse resumed;
  ASSERT_TRUE(harness.experiments().ResumeExperiment(&resume_context, resume, &resumed).ok());
  EXPECT_EQ(resumed.experiment().state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_EQ(resumed.experiment().spec().limits().max_trial_number(), 4);
  for (int i = 0; i < 2; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << i;
    Succeed(*worker, *trial, 0.7);
  }
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().succeeded(), 3);
  EXPECT_EQ(end.trial_counts().canceled(), 1);
}

TEST(SchedulerTest, UpdateChecksTheVersionAndTheLimits) {
  SchedulerHarness harness;
  auto experiment = harness.Create(harness.Spec(1, 5));
  ASSERT_TRUE(experiment.ok());
  auto update = [&](int64_t version, int concurrency) {
    grpc::ClientContext context;
    v1::UpdateExperimentRequest request;
    request.set_experiment_id(experiment->id());
    request.set_expected_version(version);
    request.mutable_limits()->set_trial_concurrency(concurrency);
    request.mutable_update_mask()->add_paths("trial_concurrency");
    v1::UpdateExperimentResponse response;
    grpc::Status status = harness.experiments().UpdateExperiment(&context, request, &response);
    return std::make_pair(status, response.experiment());
  };
  const int64_t version = harness.Get(experiment->id())->version();
  EXPECT_EQ(update(version + 7, 2).first.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(update(version, 0).first.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto [status, updated] = update(version, 3);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(updated.spec().limits().trial_concurrency(), 3);
  EXPECT_GT(updated.version(), version);
}

// Reads a watch stream until `count` events arrived.
std::vector<v1::ExperimentEvent> Watch(SchedulerHarness& harness, const std::string& id,
                                       int64_t after, size_t count) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::WatchExperimentRequest request;
  request.set_experiment_id(id);
  request.set_after_sequence(after);
  request.set_follow_resumes(true);
  auto reader = harness.experiments().WatchExperiment(&context, request);
  std::vector<v1::ExperimentEvent> events;
  v1::ExperimentEvent event;
  while (events.size() < count && reader->Read(&event)) events.push_back(event);
  context.TryCancel();
  reader->Finish();
  return events;
}

TEST(SchedulerTest, WatchFromTheMiddleMissesNothingAcrossARestart) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 2));
  ASSERT_TRUE(experiment.ok());
  auto first = worker->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(worker->WaitForAck(*first, worker->Started(*first)));
  ASSERT_TRUE(harness.server().scheduler().Flush().ok());

  // From 0: the current state first (experiment, then its trial), one sequence.
  std::vector<v1::ExperimentEvent> opening = Watch(harness, experiment->id(), 0, 2);
  ASSERT_EQ(opening.size(), 2u);
  EXPECT_TRUE(opening[0].has_experiment());
  EXPECT_TRUE(opening[1].has_trial());
  EXPECT_EQ(opening[1].trial().state(), v1::TRIAL_STATE_RUNNING);
  const int64_t seen = opening[0].sequence();

  worker->Intermediate(*first, 0, Accuracy(0.4));
  Succeed(*worker, *first, 0.5);
  ASSERT_TRUE(harness.server().scheduler().Flush().ok());
  worker->Disconnect();
  harness.StopScheduler();
  harness.StartScheduler();

  // Everything after `seen`, in order, without gaps, though the scheduler restarted.
  std::vector<v1::ExperimentEvent> later = Watch(harness, experiment->id(), seen, 3);
  ASSERT_GE(later.size(), 3u);
  for (size_t i = 0; i < later.size(); ++i) EXPECT_EQ(later[i].sequence(), seen + 1 + i);
  EXPECT_TRUE(later[0].has_metric() && later[0].metric().has_intermediate());
  bool final_seen = false;
  for (const auto& e : later) final_seen |= e.has_metric() && e.metric().has_final_report();
  EXPECT_TRUE(final_seen);
}

TEST(SchedulerTest, RestartKeepsEveryResultAndReattachesRunningTrials) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 2));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(2, 4));
  ASSERT_TRUE(experiment.ok());
  auto a = worker->WaitForAssignment();
  auto b = worker->WaitForAssignment();
  ASSERT_TRUE(a.has_value() && b.has_value());
  Succeed(*worker, *a, 0.6);
  ASSERT_TRUE(worker->WaitForAck(*b, worker->Started(*b)));

  harness.StopScheduler();
  harness.StartScheduler();
  ASSERT_TRUE(worker->Connect().ok());
  ASSERT_EQ(worker->accepted().reattached_size(), 1);
  EXPECT_EQ(worker->accepted().reattached(0).trial_id(), b->trial_id());
  Succeed(*worker, *b, 0.65);
  for (int i = 0; i < 2; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value());
    Succeed(*worker, *trial, 0.7);
  }
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().succeeded(), 4);
  std::set<int64_t> parameter_ids;
  for (const v1::Trial& trial : harness.Trials(experiment->id())) {
    EXPECT_EQ(trial.attempt(), 1) << trial.id();
    parameter_ids.insert(trial.parameter_id());
  }
  EXPECT_EQ(parameter_ids.size(), 4u);  // the rebuilt study did not hand out a repeat
}

TEST(SchedulerTest, TunerRestartAndOutageOnlyDelayTheExperiment) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 3));
  ASSERT_TRUE(experiment.ok());
  auto first = worker->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  harness.StopTuner();
  Succeed(*worker, *first, 0.6);
  // No tuner: nothing new, and the experiment keeps RUNNING.
  EXPECT_FALSE(worker->WaitForAssignment(absl::Milliseconds(500)).has_value());
  EXPECT_EQ(harness.Get(experiment->id())->state(), v1::EXPERIMENT_STATE_RUNNING);
  // A fresh tuner knows no study: the scheduler re-creates it and carries on.
  harness.StartTuner();
  for (int i = 0; i < 2; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << i;
    Succeed(*worker, *trial, 0.7);
  }
  EXPECT_EQ(harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE).state(),
            v1::EXPERIMENT_STATE_DONE);
}

TEST(SchedulerTest, TrialPastItsDurationIsStoppedAndExperimentPastItsBudgetEnds) {
  SchedulerHarness harness;
  // Leases outlive the clock jumps below.
  harness.scheduler_options().scheduler.lease_timeout = absl::Hours(1);
  harness.StopScheduler();
  harness.StartScheduler();
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 0);
  spec.mutable_limits()->mutable_max_trial_duration()->set_seconds(60);
  spec.mutable_limits()->mutable_max_experiment_duration()->set_seconds(600);
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  auto trial = worker->WaitForAssignment();
  ASSERT_TRUE(trial.has_value());
  EXPECT_EQ(trial->max_duration().seconds(), 60);
  ASSERT_TRUE(worker->WaitForAck(*trial, worker->Started(*trial)));
  harness.clock().Advance(absl::Seconds(66));
  // Keep the lease alive while the scheduler judges the duration.
  worker->Heartbeat();
  auto cancel = worker->WaitForCancel();
  ASSERT_TRUE(cancel.has_value());
  EXPECT_THAT(cancel->reason(), HasSubstr("max_trial_duration"));
  worker->Finished(*trial, v1::TRIAL_STATE_CANCELED, v1::FAILURE_CODE_STOPPED, "canceled");
  auto next = worker->WaitForAssignment();
  ASSERT_TRUE(next.has_value());
  harness.clock().Advance(absl::Seconds(600));
  worker->Heartbeat();
  Succeed(*worker, *next, 0.5);
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.state(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().early_stopped(), 1);
  EXPECT_EQ(end.trial_counts().succeeded(), 1);
  EXPECT_FALSE(worker->WaitForAssignment(absl::Milliseconds(200)).has_value());
}

TEST(SchedulerTest, ListExperimentsPagesNewestFirstAndFiltersByLabel) {
  SchedulerHarness harness;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    v1::ExperimentSpec spec = harness.Spec(1, 1);
    (*spec.mutable_labels())["team"] = i % 2 == 0 ? "vision" : "speech";
    auto experiment = harness.Create(spec);
    ASSERT_TRUE(experiment.ok());
    ids.push_back(experiment->id());
  }
  std::vector<std::string> listed;
  std::string token;
  do {
    grpc::ClientContext context;
    v1::ListExperimentsRequest request;
    request.set_page_size(2);
    request.set_page_token(token);
    (*request.mutable_labels())["team"] = "vision";
    v1::ListExperimentsResponse response;
    ASSERT_TRUE(harness.experiments().ListExperiments(&context, request, &response).ok());
    EXPECT_LE(response.experiments_size(), 2);
    for (const v1::Experiment& e : response.experiments()) listed.push_back(e.id());
    token = response.next_page_token();
  } while (!token.empty());
  EXPECT_EQ(listed, (std::vector<std::string>{ids[4], ids[2], ids[0]}));

  grpc::ClientContext context;
  v1::ListExperimentsRequest bad;
  bad.set_page_token("not-a-token");
  v1::ListExperimentsResponse response;
  EXPECT_EQ(harness.experiments().ListExperiments(&context, bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

double FinalMetric(const v1::Trial& trial, const std::string& name) {
  for (const v1::Metric& m : trial.final_report().metrics()) {
    if (m.name() == name) return m.value();
  }
  return NAN;
}

// The baseline runs alone first; every later trial gets accuracy_drop from it; a
// constraint on the drop makes trials infeasible (not failed), the best is the best
// feasible one, and the front over accuracy and effective_bytes holds exactly the
// feasible non-dominated trials.
TEST(SchedulerTest, BaselineDropsConstraintsAndTheParetoFront) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 2));
  ASSERT_TRUE(worker->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(/*concurrency=*/2, /*max_trials=*/5);
  spec.set_skip_baseline(false);
  v1::Objective* size = spec.mutable_objective()->add_secondary();
  size->set_metric("effective_bytes");
  size->set_mode(v1::OPTIMIZE_MODE_MINIMIZE);
  v1::MetricConstraint* drop = spec.mutable_objective()->add_constraints();
  drop->set_metric("accuracy_drop");
  drop->set_comparison(v1::COMPARISON_LESS_EQUAL);
  drop->set_bound(0.05);
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  EXPECT_EQ(experiment->baseline_trial_id(), experiment->id() + "-0");

  auto baseline = worker->WaitForAssignment();
  ASSERT_TRUE(baseline.has_value());
  EXPECT_TRUE(baseline->baseline());
  EXPECT_EQ(baseline->trial_id(), experiment->baseline_trial_id());
  // Nothing else starts while the baseline runs, though two slots are free.
  EXPECT_FALSE(worker->WaitForAssignment(absl::Milliseconds(300)).has_value());
  worker->Started(*baseline);
  ASSERT_TRUE(worker->WaitForAck(
      *baseline, worker->Succeeded(*baseline, {FakeWorker::MetricOf("accuracy", 0.9),
                                               FakeWorker::MetricOf("loss", 0.3),
                                               FakeWorker::MetricOf("effective_bytes", 1000)})));
  // accuracy, effective_bytes of the five suggested trials, in assignment order:
  // drop 0.02 / 0.10 (infeasible) / 0.04 / 0.01 / 0.30 (infeasible).
  const double accuracy[] = {0.88, 0.80, 0.86, 0.89, 0.60};
  const double bytes[] = {400, 100, 300, 900, 50};
  std::map<std::string, int> index;
  for (int i = 0; i < 5; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << i;
    EXPECT_FALSE(trial->baseline());
    index[trial->trial_id()] = i;
    worker->Started(*trial);
    ASSERT_TRUE(worker->WaitForAck(
        *trial, worker->Succeeded(*trial, {FakeWorker::MetricOf("accuracy", accuracy[i]),
                                           FakeWorker::MetricOf("loss", 0.5),
                                           FakeWorker::MetricOf("effective_bytes", bytes[i])})));
  }
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);

  grpc::ClientContext context;
  v1::ListTrialsRequest list;
  list.set_experiment_id(experiment->id());
  v1::ListTrialsResponse trials;
  ASSERT_TRUE(harness.experiments().ListTrials(&context, list, &trials).ok());
  ASSERT_EQ(trials.trials_size(), 6);  // max_trial_number counts the suggested ones
  std::string best_by_hand;
  for (const v1::Trial& t : trials.trials()) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.failure().message();
    if (t.baseline()) {
      EXPECT_TRUE(std::isnan(FinalMetric(t, "accuracy_drop")));
      continue;
    }
    const int i = index.at(t.id());
    EXPECT_NEAR(FinalMetric(t, "accuracy_drop"), 0.9 - accuracy[i], 1e-12);
    EXPECT_NEAR(FinalMetric(t, "loss_drop"), 0.3 - 0.5, 1e-12);
    EXPECT_TRUE(std::isnan(FinalMetric(t, "effective_bytes_drop")));  // a size, no drop
    if (i == 3) best_by_hand = t.id();  // the most accurate feasible one
  }
  auto got = harness.Get(experiment->id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->best_trial_id(), best_by_hand);

  grpc::ClientContext pareto_context;
  v1::ListParetoTrialsRequest pareto;
  pareto.set_experiment_id(experiment->id());
  v1::ListParetoTrialsResponse front;
  ASSERT_TRUE(harness.experiments().ListParetoTrials(&pareto_context, pareto, &front).ok());
  EXPECT_EQ(front.succeeded(), 5);
  EXPECT_EQ(front.infeasible(), 2);
  ASSERT_EQ(front.objectives_size(), 2);
  EXPECT_EQ(front.objectives(1).metric(), "effective_bytes");
  // Feasible: 0 (0.88, 400), 2 (0.86, 300), 3 (0.89, 900); none dominates another.
  // Best accuracy first.
  std::vector<int> on_front;
  for (const v1::Trial& t : front.trials()) on_front.push_back(index.at(t.id()));
  EXPECT_EQ(on_front, (std::vector<int>{3, 0, 2}));
}

TEST(SchedulerTest, AFailedBaselineFailsTheExperimentAndDropsNeedTheBaseline) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 3);
  spec.set_skip_baseline(false);
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  auto baseline = worker->WaitForAssignment();
  ASSERT_TRUE(baseline.has_value());
  worker->Started(*baseline);
  // Invalid input is not retried: the experiment cannot measure drops and fails.
  ASSERT_TRUE(worker->WaitForAck(
      *baseline, worker->Finished(*baseline, v1::TRIAL_STATE_FAILED, v1::FAILURE_CODE_INVALID_INPUT,
                                  "model does not load")));
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_FAILED);
  auto failed = harness.Get(experiment->id());
  ASSERT_TRUE(failed.ok());
  EXPECT_THAT(failed->error(), HasSubstr("the baseline evaluation"));
  EXPECT_THAT(failed->error(), HasSubstr("model does not load"));
  EXPECT_FALSE(worker->WaitForAssignment(absl::Milliseconds(300)).has_value());

  // A constraint on a drop without the baseline is refused at creation.
  v1::ExperimentSpec skipped = harness.Spec(1, 3);
  v1::MetricConstraint* drop = skipped.mutable_objective()->add_constraints();
  drop->set_metric("accuracy_drop");
  drop->set_comparison(v1::COMPARISON_LESS_EQUAL);
  drop->set_bound(0.01);
  auto refused = harness.Create(skipped);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("spec.objective.constraints[0].metric"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("skip_baseline"));
}

// Results reach the tuner: with TPE and accuracy = lr, the suggestions after the random
// start-up move to large lr (random search would average 0.5).
TEST(SchedulerTest, TheTunerLearnsFromTheResultsItIsSent) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 24);
  spec.set_search_space_json(R"({"lr": {"_type": "uniform", "_value": [0, 1]}})");
  spec.mutable_tuner()->set_name("tpe");
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  double late_sum = 0;
  for (int i = 0; i < 24; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << i;
    const double lr = nlohmann::json::parse(trial->parameters_json())["lr"].get<double>();
    if (i >= 16) late_sum += lr;
    worker->Started(*trial);
    ASSERT_TRUE(worker->WaitForAck(
        *trial, worker->Succeeded(*trial, {FakeWorker::MetricOf("accuracy", lr)})));
  }
  EXPECT_GT(late_sum / 8, 0.7);
}

TEST(SchedulerTest, ListTrialsOrdersByAnyFinalMetric) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 3));
  ASSERT_TRUE(experiment.ok());
  const double accuracy[] = {0.7, 0.9, 0.8};
  const double latency[] = {3, 1, 2};
  for (int i = 0; i < 3; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value());
    worker->Started(*trial);
    ASSERT_TRUE(worker->WaitForAck(
        *trial, worker->Succeeded(*trial, {FakeWorker::MetricOf("accuracy", accuracy[i]),
                                           FakeWorker::MetricOf("latency_ms", latency[i])})));
  }
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  auto order = [&](const std::string& order_by) {
    grpc::ClientContext context;
    v1::ListTrialsRequest request;
    request.set_experiment_id(experiment->id());
    request.set_order_by(order_by);
    v1::ListTrialsResponse response;
    grpc::Status status = harness.experiments().ListTrials(&context, request, &response);
    std::vector<int64_t> sequences;
    for (const v1::Trial& t : response.trials()) sequences.push_back(t.sequence());
    return std::make_pair(status.error_code(), sequences);
  };
  EXPECT_EQ(order("objective").second, (std::vector<int64_t>{1, 2, 0}));
  EXPECT_EQ(order("latency_ms asc").second, (std::vector<int64_t>{1, 2, 0}));
  EXPECT_EQ(order("latency_ms").second, (std::vector<int64_t>{0, 2, 1}));
  EXPECT_EQ(order("").second, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(order("latency_ms sideways").first, grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(SchedulerTest, OutOfMemoryIsRetriedOnlyOnAGpuWithMoreFreeMemory) {
  SchedulerHarness harness;
  auto gpu_worker = [&](const std::string& id, int64_t free_memory) {
    FakeWorker::Options options;
    options.worker_id = id;
    v1::Device device;
    device.set_name("cuda:0");
    device.set_slots(1);
    device.set_memory_bytes(80);
    device.set_free_memory_bytes(free_memory);
    options.devices.push_back(device);
    return harness.Worker(options);
  };
  auto small = gpu_worker("small", 40);
  ASSERT_TRUE(small->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(1, 2);
  spec.mutable_trial_resources()->set_gpus(1);
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  auto first = small->WaitForAssignment();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->devices(0), "cuda:0");
  // Nowhere with more memory: the OOM ends the trial.
  small->Started(*first);
  ASSERT_TRUE(small->WaitForAck(
      *first, small->Finished(*first, v1::TRIAL_STATE_FAILED, v1::FAILURE_CODE_OUT_OF_MEMORY,
                              "CUDA out of memory")));
  auto second = small->WaitForAssignment();
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->trial_id(), first->trial_id());
  // A bigger GPU arrives: the next OOM goes there, never back to the small one.
  auto big = gpu_worker("big", 70);
  ASSERT_TRUE(big->Connect().ok());
  small->Started(*second);
  small->Finished(*second, v1::TRIAL_STATE_FAILED, v1::FAILURE_CODE_OUT_OF_MEMORY,
                  "CUDA out of memory");
  auto retried = big->WaitForAssignment();
  ASSERT_TRUE(retried.has_value());
  EXPECT_EQ(retried->trial_id(), second->trial_id());
  EXPECT_EQ(retried->attempt(), 2);
  EXPECT_FALSE(small->WaitForAssignment(absl::Milliseconds(100)).has_value());
  Succeed(*big, *retried, 0.8);
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().failed(), 1);
  EXPECT_EQ(end.trial_counts().succeeded(), 1);
  const std::vector<v1::Trial> trials = harness.Trials(experiment->id());
  EXPECT_THAT(trials[0].failure().message(), HasSubstr("more free memory"));
}

TEST(SchedulerTest, ExhaustedSearchSpaceEndsTheExperiment) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 4));
  ASSERT_TRUE(worker->Connect().ok());
  v1::ExperimentSpec spec = harness.Spec(4, 0);
  spec.set_search_space_json(R"({"bits": {"_type": "choice", "_value": [2, 4, 8]}})");
  spec.mutable_tuner()->set_name("grid_search");
  auto experiment = harness.Create(spec);
  ASSERT_TRUE(experiment.ok()) << experiment.status();
  for (int i = 0; i < 3; ++i) {
    auto trial = worker->WaitForAssignment();
    ASSERT_TRUE(trial.has_value()) << i;
    Succeed(*worker, *trial, 0.5);
  }
  const v1::Experiment end = harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.state(), v1::EXPERIMENT_STATE_DONE);
  EXPECT_EQ(end.trial_counts().succeeded(), 3);
}

TEST(SchedulerTest, FinalReportWithoutTheObjectiveMetricFailsAsInvalidInput) {
  SchedulerHarness harness;
  auto worker = harness.Worker(Slots("w1", 1));
  ASSERT_TRUE(worker->Connect().ok());
  auto experiment = harness.Create(harness.Spec(1, 1));
  ASSERT_TRUE(experiment.ok());
  auto trial = worker->WaitForAssignment();
  ASSERT_TRUE(trial.has_value());
  worker->Started(*trial);
  ASSERT_TRUE(
      worker->WaitForAck(*trial, worker->Succeeded(*trial, {FakeWorker::MetricOf("loss", 0.3)})));
  harness.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
  const v1::Trial stored = harness.Trials(experiment->id())[0];
  EXPECT_EQ(stored.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(stored.failure().code(), v1::FAILURE_CODE_INVALID_INPUT);
  EXPECT_THAT(stored.failure().message(), HasSubstr("no metric 'accuracy'"));
  EXPECT_THAT(stored.failure().message(), HasSubstr("loss"));
}

}  // namespace
}  // namespace autocompress
