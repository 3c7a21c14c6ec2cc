#include "scheduler_service/commit_pipeline.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler_service/event_hub.h"

namespace autocompress::scheduler {
namespace {

using ::testing::ElementsAre;

// A store that records committed trial ids in order and fails while told to.
class FakeStore final : public TrialStore {
 public:
  std::shared_future<absl::Status> Submit(WriteBatch batch) override {
    std::promise<absl::Status> done;
    absl::MutexLock lock(&mu_);
    ++commits_;
    if (failures_left_ > 0) {
      --failures_left_;
      done.set_value(absl::ResourceExhaustedError("disk full"));
    } else {
      for (const StoredTrial& t : batch.trials) ids_.push_back(t.trial.id());
      done.set_value(absl::OkStatus());
    }
    return done.get_future().share();
  }
  absl::StatusOr<StoredState> LoadAll() override { return StoredState(); }
  absl::StatusOr<std::vector<v1::ExperimentEvent>> ReadEvents(const std::string&, int64_t,
                                                              int) override {
    return std::vector<v1::ExperimentEvent>();
  }
  void FailNext(int n) {
    absl::MutexLock lock(&mu_);
    failures_left_ = n;
  }
  std::vector<std::string> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  int commits() {
    absl::MutexLock lock(&mu_);
    return commits_;
  }

 private:
  absl::Mutex mu_;
  int failures_left_ = 0;
  int commits_ = 0;
  std::vector<std::string> ids_;
};

WriteBatch Trial(const std::string& id, const std::string& experiment = "", int64_t sequence = 0) {
  WriteBatch batch;
  batch.trials.push_back({});
  batch.trials.back().trial.set_id(id);
  if (!experiment.empty()) {
    batch.events.push_back({experiment, {}});
    batch.events.back().event.set_sequence(sequence);
  }
  return batch;
}

CommitPipeline::Options Fast() {
  CommitPipeline::Options options;
  options.min_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(5);
  options.shutdown_timeout = absl::Milliseconds(50);
  return options;
}

TEST(CommitPipelineTest, CommitsInSubmissionOrderAcrossThreads) {
  FakeStore store;
  std::vector<std::string> expected;
  {
    CommitPipeline pipeline(&store, Fast(), nullptr);
    absl::Mutex order_mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 200; ++i) {
          const std::string id = std::to_string(t) + "-" + std::to_string(i);
          absl::MutexLock lock(&order_mu);  // the order of Submit calls is the order wanted
          expected.push_back(id);
          pipeline.Submit(Trial(id));
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_TRUE(pipeline.Barrier().get().ok());
  }
  EXPECT_EQ(store.ids(), expected);
  EXPECT_LT(store.commits(), 800);  // merged into fewer commits than batches
}

TEST(CommitPipelineTest, AFailingStoreIsRetriedInOrderAndReportedUnhealthy) {
  FakeStore store;
  store.FailNext(5);
  EventHub hub;
  CommitPipeline pipeline(&store, Fast(),
                          [&](const std::vector<StoredEvent>& events) { hub.Publish(events); });
  auto first = pipeline.Submit(Trial("a", "e", 1));
  auto second = pipeline.Submit(Trial("b", "e", 2));
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
  EXPECT_THAT(store.ids(), ElementsAre("a", "b"));
  EXPECT_TRUE(pipeline.health().ok());
  // Events are published only once durable, in order.
  EXPECT_EQ(hub.LastSequence("e"), 2);
  EXPECT_EQ(hub.EventsAfter("e", 0, 10).events.size(), 2u);
}

TEST(CommitPipelineTest, ShutdownGivesUpOnAStoreThatNeverRecovers) {
  FakeStore store;
  store.FailNext(1 << 30);
  std::shared_future<absl::Status> pending;
  {
    CommitPipeline pipeline(&store, Fast(), nullptr);
    pending = pipeline.Submit(Trial("a"));
    absl::SleepFor(absl::Milliseconds(20));
    EXPECT_EQ(pipeline.health().code(), absl::StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(pending.get().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(store.ids().empty());
}

TEST(EventHubTest, OlderEventsThanItHoldsAreReportedIncomplete) {
  EventHub hub(/*capacity_per_experiment=*/3);
  std::vector<StoredEvent> events;
  for (int s = 1; s <= 5; ++s) {
    events.push_back({"e", {}});
    events.back().event.set_sequence(s);
  }
  hub.Publish(events);
  EXPECT_FALSE(hub.EventsAfter("e", 0, 10).complete);
  EventHub::Read read = hub.EventsAfter("e", 2, 10);
  ASSERT_TRUE(read.complete);
  ASSERT_EQ(read.events.size(), 3u);
  EXPECT_EQ(read.events[0].sequence(), 3);
  EXPECT_FALSE(hub.WaitForEvent("e", 5, absl::Milliseconds(10)));
  EXPECT_TRUE(hub.WaitForEvent("e", 4, absl::Milliseconds(10)));
  // After a restart the hub starts at the stored head.
  hub.SetLastSequence("f", 40);
  EXPECT_FALSE(hub.EventsAfter("f", 10, 10).complete);
  EXPECT_TRUE(hub.EventsAfter("f", 40, 10).events.empty());
}

}  // namespace
}  // namespace autocompress::scheduler
