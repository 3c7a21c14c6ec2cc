#include "scheduler_service/store/trial_store_contract.h"

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"

namespace autocompress::scheduler {

void PrintTo(const TrialStoreContractParam& param, std::ostream* os) { *os << param.name; }

std::string TrialStoreContractParamName(
    const ::testing::TestParamInfo<TrialStoreContractParam>& info) {
  return info.param.name;
}

void TrialStoreContractTest::SetUp() {
  std::string pattern = ::testing::TempDir() + "trial_store_XXXXXX";
  ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
  dir_ = pattern;
  absl::StatusOr<std::unique_ptr<TrialStore>> store = GetParam().open(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
}

void TrialStoreContractTest::TearDown() {
  store_.reset();
  if (!dir_.empty()) std::filesystem::remove_all(dir_);
}

void TrialStoreContractTest::Reopen() {
  store_.reset();
  absl::StatusOr<std::unique_ptr<TrialStore>> store = GetParam().open(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
}

namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

MATCHER_P(EqualsProto, expected, "equals " + expected.ShortDebugString()) {
  *result_listener << arg.ShortDebugString();
  return MessageDifferencer::Equals(arg, expected);
}

v1::Experiment MakeExperiment(const std::string& id, int64_t version) {
  v1::Experiment experiment;
  experiment.set_id(id);
  experiment.set_version(version);
  experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
  experiment.mutable_create_time()->set_seconds(1700000000);
  experiment.mutable_spec()->set_name("experiment " + id);
  (*experiment.mutable_spec()->mutable_labels())["team"] = "vision";
  return experiment;
}

v1::Trial MakeTrial(const std::string& id, const std::string& experiment_id, int64_t sequence) {
  v1::Trial trial;
  trial.set_id(id);
  trial.set_experiment_id(experiment_id);
  trial.set_sequence(sequence);
  trial.set_parameter_id(sequence + 100);
  trial.set_parameters_json(R"({"sparsity": 0.5})");
  trial.set_state(v1::TRIAL_STATE_WAITING);
  trial.set_attempt(1);
  return trial;
}

StoredMetric MakeMetric(const std::string& trial_id, int32_t attempt, int64_t step, double value) {
  StoredMetric metric;
  metric.trial_id = trial_id;
  metric.attempt = attempt;
  metric.report.set_step(step);
  v1::Metric* accuracy = metric.report.add_metrics();
  accuracy->set_name("accuracy");
  accuracy->set_value(value);
  return metric;
}

StoredEvent MakeEvent(const std::string& experiment_id, int64_t sequence) {
  StoredEvent event;
  event.experiment_id = experiment_id;
  event.event.set_sequence(sequence);
  event.event.mutable_time()->set_seconds(1700000000 + sequence);
  *event.event.mutable_trial() = MakeTrial(absl::StrCat("t-", sequence), experiment_id, sequence);
  return event;
}

StoredState Load(TrialStore& store) {
  absl::StatusOr<StoredState> state = store.LoadAll();
  EXPECT_TRUE(state.ok()) << state.status();
  return state.ok() ? *std::move(state) : StoredState();
}

std::vector<v1::ExperimentEvent> Events(TrialStore& store, const std::string& experiment_id,
                                        int64_t after_sequence, int limit) {
  absl::StatusOr<std::vector<v1::ExperimentEvent>> events =
      store.ReadEvents(experiment_id, after_sequence, limit);
  EXPECT_TRUE(events.ok()) << events.status();
  return events.ok() ? *std::move(events) : std::vector<v1::ExperimentEvent>();
}

std::vector<int64_t> Sequences(const std::vector<v1::ExperimentEvent>& events) {
  std::vector<int64_t> sequences;
  for (const v1::ExperimentEvent& event : events) sequences.push_back(event.sequence());
  return sequences;
}

void ExpectSameState(const StoredState& actual, const StoredState& expected) {
  ASSERT_EQ(actual.experiments.size(), expected.experiments.size());
  for (size_t i = 0; i < expected.experiments.size(); ++i) {
    EXPECT_THAT(actual.experiments[i].experiment, EqualsProto(expected.experiments[i].experiment));
    EXPECT_EQ(actual.experiments[i].request_id, expected.experiments[i].request_id);
  }
  ASSERT_EQ(actual.trials.size(), expected.trials.size());
  for (size_t i = 0; i < expected.trials.size(); ++i) {
    EXPECT_THAT(actual.trials[i].trial, EqualsProto(expected.trials[i].trial));
    EXPECT_EQ(actual.trials[i].acked_event_sequence, expected.trials[i].acked_event_sequence);
  }
  ASSERT_EQ(actual.metrics.size(), expected.metrics.size());
  for (size_t i = 0; i < expected.metrics.size(); ++i) {
    EXPECT_EQ(actual.metrics[i].trial_id, expected.metrics[i].trial_id);
    EXPECT_EQ(actual.metrics[i].attempt, expected.metrics[i].attempt);
    EXPECT_THAT(actual.metrics[i].report, EqualsProto(expected.metrics[i].report));
  }
  EXPECT_EQ(actual.last_event_sequence, expected.last_event_sequence);
}

const StoredTrial* FindTrial(const StoredState& state, const std::string& id) {
  for (const StoredTrial& trial : state.trials) {
    if (trial.trial.id() == id) return &trial;
  }
  return nullptr;
}

#define EXPECT_OK(expr)                         \
  do {                                          \
    const absl::Status ac_status_ = (expr);     \
    EXPECT_TRUE(ac_status_.ok()) << ac_status_; \
  } while (false)

#define ASSERT_OK(expr)                         \
  do {                                          \
    const absl::Status ac_status_ = (expr);     \
    ASSERT_TRUE(ac_status_.ok()) << ac_status_; \
  } while (false)

TEST_P(TrialStoreContractTest, NewStoreIsEmpty) {
  StoredState state = Load(store());
  EXPECT_THAT(state.experiments, IsEmpty());
  EXPECT_THAT(state.trials, IsEmpty());
  EXPECT_THAT(state.metrics, IsEmpty());
  EXPECT_THAT(state.last_event_sequence, IsEmpty());
  EXPECT_THAT(Events(store(), "e1", 0, 10), IsEmpty());
}

TEST_P(TrialStoreContractTest, UpsertReplacesExperimentAndTrial) {
  WriteBatch first;
  first.experiments.push_back({MakeExperiment("e1", 1), "request-1"});
  first.trials.push_back({MakeTrial("t1", "e1", 0), 0});
  ASSERT_OK(store().Commit(first));

  WriteBatch second;
  v1::Experiment stopped = MakeExperiment("e1", 2);
  stopped.set_state(v1::EXPERIMENT_STATE_STOPPED);
  second.experiments.push_back({stopped, "request-1"});
  v1::Trial running = MakeTrial("t1", "e1", 0);
  running.set_state(v1::TRIAL_STATE_RUNNING);
  running.set_worker_id("w1");
  second.trials.push_back({running, 5});
  ASSERT_OK(store().Commit(second));

  StoredState state = Load(store());
  ASSERT_EQ(state.experiments.size(), 1u);
  EXPECT_THAT(state.experiments[0].experiment, EqualsProto(stopped));
  EXPECT_EQ(state.experiments[0].request_id, "request-1");
  ASSERT_EQ(state.trials.size(), 1u);
  EXPECT_THAT(state.trials[0].trial, EqualsProto(running));
  EXPECT_EQ(state.trials[0].acked_event_sequence, 5);
}

TEST_P(TrialStoreContractTest, TrialIsStoredWithoutIntermediateReports) {
  v1::Trial trial = MakeTrial("t1", "e1", 0);
  trial.add_intermediate()->set_step(0);
  trial.add_intermediate()->set_step(1);
  trial.mutable_final_report()->add_metrics()->set_name("accuracy");
  WriteBatch batch;
  batch.trials.push_back({trial, 0});
  ASSERT_OK(store().Commit(batch));

  trial.clear_intermediate();
  StoredState state = Load(store());
  ASSERT_EQ(state.trials.size(), 1u);
  EXPECT_THAT(state.trials[0].trial, EqualsProto(trial));
}

TEST_P(TrialStoreContractTest, MetricWithRepeatedKeyReplaces) {
  WriteBatch first;
  first.metrics = {MakeMetric("t1", 1, 0, 0.1), MakeMetric("t1", 1, 1, 0.2)};
  ASSERT_OK(store().Commit(first));
  WriteBatch second;
  second.metrics = {MakeMetric("t1", 1, 0, 0.9), MakeMetric("t1", 2, 0, 0.5)};
  ASSERT_OK(store().Commit(second));

  StoredState state = Load(store());
  ASSERT_EQ(state.metrics.size(), 3u);
  const StoredMetric expected[] = {MakeMetric("t1", 1, 0, 0.9), MakeMetric("t1", 1, 1, 0.2),
                                   MakeMetric("t1", 2, 0, 0.5)};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(state.metrics[i].trial_id, expected[i].trial_id) << i;
    EXPECT_EQ(state.metrics[i].attempt, expected[i].attempt) << i;
    EXPECT_THAT(state.metrics[i].report, EqualsProto(expected[i].report)) << i;
  }
}

TEST_P(TrialStoreContractTest, EventWithRepeatedKeyReplaces) {
  WriteBatch first;
  first.events = {MakeEvent("e1", 1), MakeEvent("e1", 2)};
  ASSERT_OK(store().Commit(first));
  StoredEvent replacement = MakeEvent("e1", 1);
  replacement.event.mutable_trial()->set_state(v1::TRIAL_STATE_RUNNING);
  WriteBatch second;
  second.events = {replacement};
  ASSERT_OK(store().Commit(second));

  std::vector<v1::ExperimentEvent> events = Events(store(), "e1", 0, 10);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_THAT(events[0], EqualsProto(replacement.event));
  EXPECT_THAT(events[1], EqualsProto(first.events[1].event));
  EXPECT_THAT(Load(store()).last_event_sequence, ElementsAre(Pair("e1", 2)));
}

TEST_P(TrialStoreContractTest, LaterRowOfOneBatchWins) {
  WriteBatch batch;
  batch.experiments.push_back({MakeExperiment("e1", 1), ""});
  batch.experiments.push_back({MakeExperiment("e1", 2), ""});
  v1::Trial running = MakeTrial("t1", "e1", 0);
  running.set_state(v1::TRIAL_STATE_RUNNING);
  batch.trials.push_back({MakeTrial("t1", "e1", 0), 1});
  batch.trials.push_back({running, 2});
  batch.metrics = {MakeMetric("t1", 1, 0, 0.1), MakeMetric("t1", 1, 0, 0.7)};
  ASSERT_OK(store().Commit(batch));

  StoredState state = Load(store());
  ASSERT_EQ(state.experiments.size(), 1u);
  EXPECT_EQ(state.experiments[0].experiment.version(), 2);
  ASSERT_EQ(state.trials.size(), 1u);
  EXPECT_THAT(state.trials[0].trial, EqualsProto(running));
  EXPECT_EQ(state.trials[0].acked_event_sequence, 2);
  ASSERT_EQ(state.metrics.size(), 1u);
  EXPECT_THAT(state.metrics[0].report, EqualsProto(MakeMetric("t1", 1, 0, 0.7).report));
}

TEST_P(TrialStoreContractTest, LoadAllOrdersTrialsAndMetrics) {
  std::vector<StoredTrial> trials;
  std::vector<StoredMetric> metrics;
  for (const std::string experiment : {"eb", "ea", "ec"}) {
    // Ids sort against the sequence, and sequences past 9 catch a text ordering.
    for (int64_t sequence = 0; sequence < 12; ++sequence) {
      trials.push_back(
          {MakeTrial(absl::StrCat(experiment, "-", 99 - sequence), experiment, sequence), 0});
    }
  }
  for (const std::string trial : {"m2", "m1"}) {
    for (int32_t attempt : {1, 2, 10}) {
      for (int64_t step = 0; step < 12; ++step) {
        metrics.push_back(MakeMetric(trial, attempt, step, step * 0.01));
      }
    }
  }
  std::mt19937 random(7);
  std::shuffle(trials.begin(), trials.end(), random);
  std::shuffle(metrics.begin(), metrics.end(), random);
  // Spread over several batches in the shuffled order.
  auto slice = [](const auto& all, size_t begin, size_t size) {
    return std::decay_t<decltype(all)>(all.begin() + std::min(begin, all.size()),
                                       all.begin() + std::min(begin + size, all.size()));
  };
  for (size_t i = 0; i < std::max(trials.size(), metrics.size()); i += 10) {
    WriteBatch batch;
    batch.trials = slice(trials, i, 10);
    batch.metrics = slice(metrics, i, 10);
    ASSERT_OK(store().Commit(batch));
  }

  StoredState state = Load(store());
  std::vector<std::pair<std::string, int64_t>> trial_order, expected_trial_order;
  for (const StoredTrial& t : state.trials) {
    trial_order.emplace_back(t.trial.experiment_id(), t.trial.sequence());
  }
  for (const StoredTrial& t : trials) {
    expected_trial_order.emplace_back(t.trial.experiment_id(), t.trial.sequence());
  }
  std::sort(expected_trial_order.begin(), expected_trial_order.end());
  EXPECT_EQ(trial_order, expected_trial_order);

  std::vector<std::tuple<std::string, int32_t, int64_t>> metric_order, expected_metric_order;
  for (const StoredMetric& m : state.metrics) {
    metric_order.emplace_back(m.trial_id, m.attempt, m.report.step());
  }
  for (const StoredMetric& m : metrics) {
    expected_metric_order.emplace_back(m.trial_id, m.attempt, m.report.step());
  }
  std::sort(expected_metric_order.begin(), expected_metric_order.end());
  EXPECT_EQ(metric_order, expected_metric_order);
}

TEST_P(TrialStoreContractTest, LastEventSequenceIsPerExperiment) {
  WriteBatch batch;
  batch.experiments = {{MakeExperiment("e1", 1), ""}, {MakeExperiment("e3", 1), ""}};
  batch.events = {MakeEvent("e1", 3), MakeEvent("e1", 5), MakeEvent("e2", 12), MakeEvent("e1", 1),
                  MakeEvent("e2", 9)};
  ASSERT_OK(store().Commit(batch));

  EXPECT_THAT(Load(store()).last_event_sequence,
              UnorderedElementsAre(Pair("e1", 5), Pair("e2", 12)));
}

TEST_P(TrialStoreContractTest, ReadEventsHonoursRangeAndLimit) {
  WriteBatch batch;
  for (int64_t sequence : {3, 1, 2, 10, 4, 5, 9, 6, 7, 8, 20}) {
    batch.events.push_back(MakeEvent("e1", sequence));
  }
  batch.events.push_back(MakeEvent("e2", 1));
  batch.events.push_back(MakeEvent("e2", 2));
  ASSERT_OK(store().Commit(batch));

  EXPECT_THAT(Sequences(Events(store(), "e1", 0, 100)),
              ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20));
  EXPECT_THAT(Sequences(Events(store(), "e1", 4, 100)), ElementsAre(5, 6, 7, 8, 9, 10, 20));
  EXPECT_THAT(Sequences(Events(store(), "e1", 4, 3)), ElementsAre(5, 6, 7));
  EXPECT_THAT(Sequences(Events(store(), "e1", 10, 5)), ElementsAre(20));
  EXPECT_THAT(Sequences(Events(store(), "e1", 20, 5)), IsEmpty());
  EXPECT_THAT(Sequences(Events(store(), "e1", 0, 0)), IsEmpty());
  EXPECT_THAT(Sequences(Events(store(), "e2", 0, 100)), ElementsAre(1, 2));
  EXPECT_THAT(Sequences(Events(store(), "unknown", 0, 100)), IsEmpty());
  std::vector<v1::ExperimentEvent> one = Events(store(), "e1", 8, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_THAT(one[0], EqualsProto(MakeEvent("e1", 9).event));
}

TEST_P(TrialStoreContractTest, NegativeEventLimitIsInvalidArgument) {
  EXPECT_EQ(store().ReadEvents("e1", 0, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(TrialStoreContractTest, DuplicateRequestIdIsAlreadyExistsAndNamesTheExperiment) {
  WriteBatch batch;
  batch.experiments.resize(2);
  batch.experiments[0].experiment.set_id("e1");
  batch.experiments[0].request_id = "r";
  batch.experiments[1].experiment.set_id("e2");
  batch.experiments[1].request_id = "r";
  const absl::Status status = store().Commit(batch);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_THAT(status.message(), HasSubstr("upsert experiment e2"));
  // Experiments without a request id do not collide.
  batch.experiments[0].request_id.clear();
  batch.experiments[1].request_id.clear();
  EXPECT_OK(store().Commit(batch));
}

TEST_P(TrialStoreContractTest, EmptyBatchIsReadyAfterEarlierBatches) {
  ASSERT_OK(store().Commit(WriteBatch()));

  WriteBatch batch;
  batch.trials.push_back({MakeTrial("t1", "e1", 0), 0});
  std::shared_future<absl::Status> earlier = store().Submit(batch);
  std::shared_future<absl::Status> empty = store().Submit(WriteBatch());
  EXPECT_OK(empty.get());
  ASSERT_EQ(earlier.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_OK(earlier.get());
  EXPECT_EQ(Load(store()).trials.size(), 1u);
}

TEST_P(TrialStoreContractTest, BatchesCommitInSubmitOrderAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kBatchesPerThread = 50;
  constexpr int kSharedKeys = 5;
  std::mutex order_mu;  // makes "the order Submit returned in" observable
  int next = 0;
  std::vector<std::vector<std::shared_future<absl::Status>>> futures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatchesPerThread; ++i) {
        // A key of the thread's own: its program order must hold.
        WriteBatch own;
        v1::Trial trial = MakeTrial(absl::StrCat("own-", t), "e-own", t);
        trial.set_parameter_id(i);
        own.trials.push_back({trial, 0});
        futures[t].push_back(store().Submit(std::move(own)));
        // Keys every thread writes: the total order of Submit must hold.
        std::lock_guard<std::mutex> lock(order_mu);
        const int n = next++;
        WriteBatch shared;
        shared.experiments.push_back({MakeExperiment("shared", n), ""});
        shared.trials.push_back(
            {MakeTrial(absl::StrCat("shared-", n % kSharedKeys), "e-shared", n % kSharedKeys), n});
        shared.metrics.push_back(MakeMetric("shared", 1, n % 3, n));
        futures[t].push_back(store().Submit(std::move(shared)));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& per_thread : futures) {
    for (const auto& future : per_thread) EXPECT_OK(future.get());
  }

  const int total = kThreads * kBatchesPerThread;
  StoredState state = Load(store());
  ASSERT_EQ(state.experiments.size(), 1u);
  EXPECT_EQ(state.experiments[0].experiment.version(), total - 1);
  for (int t = 0; t < kThreads; ++t) {
    const StoredTrial* own = FindTrial(state, absl::StrCat("own-", t));
    ASSERT_NE(own, nullptr) << t;
    EXPECT_EQ(own->trial.parameter_id(), kBatchesPerThread - 1) << t;
  }
  for (int k = 0; k < kSharedKeys; ++k) {
    const StoredTrial* shared = FindTrial(state, absl::StrCat("shared-", k));
    ASSERT_NE(shared, nullptr) << k;
    // The last n with n % kSharedKeys == k.
    EXPECT_EQ(shared->acked_event_sequence, (total - 1 - k) / kSharedKeys * kSharedKeys + k);
  }
  ASSERT_EQ(state.metrics.size(), 3u);
  for (const StoredMetric& metric : state.metrics) {
    const int64_t step = metric.report.step();
    EXPECT_EQ(metric.report.metrics(0).value(), (total - 1 - step) / 3 * 3 + step) << step;
  }
}

TEST_P(TrialStoreContractTest, ReopenKeepsEverything) {
  WriteBatch batch;
  batch.experiments = {{MakeExperiment("e1", 3), "request-1"}, {MakeExperiment("e2", 1), ""}};
  batch.trials = {
      {MakeTrial("t1", "e1", 0), 4}, {MakeTrial("t2", "e1", 1), 0}, {MakeTrial("t3", "e2", 0), 0}};
  batch.metrics = {MakeMetric("t1", 1, 0, 0.5), MakeMetric("t1", 1, 1, 0.6),
                   MakeMetric("t3", 2, 0, 0.7)};
  batch.events = {MakeEvent("e1", 1), MakeEvent("e1", 2), MakeEvent("e2", 1)};
  ASSERT_OK(store().Commit(batch));
  const StoredState before = Load(store());
  const std::vector<v1::ExperimentEvent> events_before = Events(store(), "e1", 0, 10);

  ASSERT_NO_FATAL_FAILURE(Reopen());

  ExpectSameState(Load(store()), before);
  std::vector<v1::ExperimentEvent> events_after = Events(store(), "e1", 0, 10);
  ASSERT_EQ(events_after.size(), events_before.size());
  for (size_t i = 0; i < events_before.size(); ++i) {
    EXPECT_THAT(events_after[i], EqualsProto(events_before[i]));
  }
  // Still writable after the reopen.
  WriteBatch later;
  later.events = {MakeEvent("e1", 3)};
  EXPECT_OK(store().Commit(later));
  EXPECT_THAT(Sequences(Events(store(), "e1", 0, 10)), ElementsAre(1, 2, 3));
}

TEST_P(TrialStoreContractTest, LargeBlobsRoundTrip) {
  std::mt19937 random(11);
  auto text = [&](size_t size) {
    std::string s(size, ' ');
    for (char& c : s) c = static_cast<char>('!' + random() % 90);
    return s;
  };
  v1::Experiment experiment = MakeExperiment("e1", 1);
  experiment.mutable_spec()->set_search_space_json(text(3 << 20));
  v1::Trial trial = MakeTrial("t1", "e1", 0);
  trial.set_parameters_json(text(6 << 20));
  StoredMetric metric = MakeMetric("t1", 1, 0, 0.0);
  for (int i = 0; i < 20000; ++i) {
    v1::Metric* m = metric.report.add_metrics();
    m->set_name(absl::StrCat("layer_", i, "_sparsity"));
    m->set_value(i * 1e-4);
  }
  StoredEvent event = MakeEvent("e1", 1);
  *event.event.mutable_trial() = trial;
  WriteBatch batch;
  batch.experiments = {{experiment, ""}};
  batch.trials = {{trial, 0}};
  batch.metrics = {metric};
  batch.events = {event};
  ASSERT_OK(store().Commit(batch));

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "open" : "reopened");
    StoredState state = Load(store());
    ASSERT_EQ(state.experiments.size(), 1u);
    EXPECT_TRUE(MessageDifferencer::Equals(state.experiments[0].experiment, experiment));
    ASSERT_EQ(state.trials.size(), 1u);
    EXPECT_TRUE(MessageDifferencer::Equals(state.trials[0].trial, trial));
    ASSERT_EQ(state.metrics.size(), 1u);
    EXPECT_TRUE(MessageDifferencer::Equals(state.metrics[0].report, metric.report));
    std::vector<v1::ExperimentEvent> events = Events(store(), "e1", 0, 10);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_TRUE(MessageDifferencer::Equals(events[0], event.event));
    if (round == 0) {
      ASSERT_NO_FATAL_FAILURE(Reopen());
    }
  }
}

// A batch whose last row fails: everything it wrote before is rolled back.
TEST_P(TrialStoreContractTest, FailedBatchLeavesNothing) {
  if (!GetParam().poison_events) GTEST_SKIP() << "the store cannot inject a failure";
  WriteBatch base;
  base.experiments.push_back({MakeExperiment("e1", 1), ""});
  base.trials.push_back({MakeTrial("t1", "e1", 0), 0});
  ASSERT_OK(store().Commit(base));
  const StoredState before = Load(store());
  ASSERT_OK(GetParam().poison_events(dir_));

  WriteBatch failing;
  failing.experiments.push_back({MakeExperiment("e1", 2), ""});
  v1::Trial running = MakeTrial("t1", "e1", 0);
  running.set_state(v1::TRIAL_STATE_RUNNING);
  failing.trials = {{running, 3}, {MakeTrial("t2", "e1", 1), 0}};
  failing.metrics = {MakeMetric("t1", 1, 0, 0.5)};
  failing.events = {MakeEvent("e1", 1), MakeEvent("e1", kPoisonEventSequence)};
  EXPECT_FALSE(store().Commit(failing).ok());

  ExpectSameState(Load(store()), before);
  EXPECT_THAT(Events(store(), "e1", 0, 10), IsEmpty());

  // The store stays usable: the same batch without the poisoned event commits.
  failing.events.pop_back();
  EXPECT_OK(store().Commit(failing));
  StoredState after = Load(store());
  EXPECT_EQ(after.trials.size(), 2u);
  EXPECT_EQ(after.metrics.size(), 1u);
  EXPECT_THAT(after.last_event_sequence, ElementsAre(Pair("e1", 1)));
}

// Under concurrency failed batches may take others of their transaction with them, but a
// batch reported OK is visible and a failed one is not.
TEST_P(TrialStoreContractTest, ReportedStatusMatchesWhatIsStored) {
  if (!GetParam().poison_events) GTEST_SKIP() << "the store cannot inject a failure";
  ASSERT_OK(GetParam().poison_events(dir_));
  constexpr int kThreads = 4;
  constexpr int kBatchesPerThread = 40;
  std::vector<std::vector<std::shared_future<absl::Status>>> futures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatchesPerThread; ++i) {
        WriteBatch batch;
        const std::string id = absl::StrCat("c-", t, "-", i);
        batch.trials.push_back({MakeTrial(id, "e1", t * kBatchesPerThread + i), 0});
        batch.metrics.push_back(MakeMetric(id, 1, 0, i));
        if (i % 7 == 3) batch.events.push_back(MakeEvent(id, kPoisonEventSequence));
        futures[t].push_back(store().Submit(std::move(batch)));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& per_thread : futures) {
    for (const auto& future : per_thread) future.wait();
  }

  StoredState state = Load(store());
  int committed = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kBatchesPerThread; ++i) {
      const std::string id = absl::StrCat("c-", t, "-", i);
      const bool ok = futures[t][i].get().ok();
      committed += ok;
      if (i % 7 == 3) {
        EXPECT_FALSE(ok) << id;
      }
      EXPECT_EQ(FindTrial(state, id) != nullptr, ok) << id;
    }
  }
  EXPECT_EQ(static_cast<int>(state.trials.size()), committed);
  EXPECT_EQ(static_cast<int>(state.metrics.size()), committed);
  EXPECT_THAT(state.last_event_sequence, IsEmpty());

  WriteBatch later;
  later.trials.push_back({MakeTrial("later", "e1", 1000), 0});
  EXPECT_OK(store().Commit(later));
}

}  // namespace
}  // namespace autocompress::scheduler
