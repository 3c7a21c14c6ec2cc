#include "scheduler_service/store/group_committer.h"

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

WriteBatch Tagged(const std::string& tag) {
  WriteBatch batch;
  batch.trials.emplace_back().trial.set_id(tag);
  return batch;
}

// A database that records each group's tags, answers with scripted statuses (OK once
// the script is used up) and, when told to, holds its first commit until Release().
class FakeDatabase {
 public:
  explicit FakeDatabase(bool hold_first = false) : hold_first_(hold_first) {}

  GroupCommitter::CommitFn CommitFn() {
    return [this](const std::vector<const WriteBatch*>& group) { return Commit(group); };
  }

  void Script(absl::Status status) {
    absl::MutexLock lock(&mu_);
    script_.push_back(std::move(status));
  }

  // Waits until the held first commit has started.
  void AwaitHeld() { held_.WaitForNotification(); }
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
  }

  std::vector<std::vector<std::string>> groups() {
    absl::MutexLock lock(&mu_);
    return groups_;
  }
  std::vector<std::string> committed() {
    std::vector<std::string> all;
    for (const auto& group : groups()) all.insert(all.end(), group.begin(), group.end());
    return all;
  }

 private:
  absl::Status Commit(const std::vector<const WriteBatch*>& group) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string>& tags = groups_.emplace_back();
    for (const WriteBatch* batch : group) {
      tags.push_back(batch->empty() ? "<empty>" : batch->trials[0].trial.id());
    }
    if (hold_first_ && groups_.size() == 1) {
      held_.Notify();
      mu_.Await(absl::Condition(&released_));
    }
    if (script_.empty()) return absl::OkStatus();
    absl::Status status = script_.front();
    script_.pop_front();
    return status;
  }

  const bool hold_first_;
  absl::Notification held_;
  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<absl::Status> script_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> groups_ ABSL_GUARDED_BY(mu_);
};

TEST(GroupCommitterTest, CommitsInSubmitOrderAcrossThreads) {
  FakeDatabase db;
  GroupCommitter committer(db.CommitFn());
  absl::Mutex order_mu;  // makes "the order Submit returned in" observable
  std::vector<std::string> submitted;
  std::vector<std::shared_future<absl::Status>> futures;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        absl::MutexLock lock(&order_mu);
        submitted.push_back(absl::StrCat(t, "-", i));
        futures.push_back(committer.Submit(Tagged(submitted.back())));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& future : futures) EXPECT_TRUE(future.get().ok());
  EXPECT_EQ(db.committed(), submitted);
}

TEST(GroupCommitterTest, CommitNowWritesOnTheCallerBehindEverythingSubmittedBefore) {
  FakeDatabase db(/*hold_first=*/true);
  GroupCommitter committer(db.CommitFn());
  std::shared_future<absl::Status> first = committer.Submit(Tagged("first"));
  db.AwaitHeld();
  std::shared_future<absl::Status> queued = committer.Submit(Tagged("queued"));
  // CommitNow waits for the held group and the queued batch, then writes its own.
  absl::Status now_status = absl::UnknownError("not run");
  std::thread now([&] { now_status = committer.CommitNow(Tagged("now")); });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(db.committed(), std::vector<std::string>({"first"}));  // still held
  db.Release();
  now.join();
  EXPECT_TRUE(now_status.ok()) << now_status;
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(queued.get().ok());
  EXPECT_EQ(db.committed(), std::vector<std::string>({"first", "queued", "now"}));
  // A batch submitted after it is written after it; an empty CommitNow writes nothing.
  EXPECT_TRUE(committer.Submit(Tagged("after")).get().ok());
  EXPECT_TRUE(committer.CommitNow(WriteBatch{}).ok());
  EXPECT_EQ(db.groups().back(), std::vector<std::string>({"after"}));
  EXPECT_THAT(db.groups(), SizeIs(4));
}

TEST(GroupCommitterTest, GroupsBatchesQueuedDuringACommit) {
  FakeDatabase db(/*hold_first=*/true);
  GroupCommitter committer(db.CommitFn());
  std::shared_future<absl::Status> first = committer.Submit(Tagged("first"));
  db.AwaitHeld();
  // While the first commit runs, 4 threads queue 100 batches.
  std::vector<std::vector<std::shared_future<absl::Status>>> futures(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) futures[t].push_back(committer.Submit(Tagged("x")));
    });
  }
  for (std::thread& thread : threads) thread.join();
  db.Release();
  EXPECT_TRUE(first.get().ok());
  for (const auto& per_thread : futures) {
    for (const auto& future : per_thread) EXPECT_TRUE(future.get().ok());
  }
  // 101 batches, 2 transactions.
  EXPECT_THAT(db.groups(), ElementsAre(SizeIs(1), SizeIs(100)));
}

TEST(GroupCommitterTest, CapsTheBatchesOfAGroup) {
  FakeDatabase db(/*hold_first=*/true);
  GroupCommitter::Options options;
  options.max_group_batches = 10;
  GroupCommitter committer(db.CommitFn(), options);
  std::vector<std::shared_future<absl::Status>> futures = {committer.Submit(Tagged("first"))};
  db.AwaitHeld();
  for (int i = 0; i < 95; ++i) futures.push_back(committer.Submit(Tagged(absl::StrCat(i))));
  db.Release();
  for (const auto& future : futures) EXPECT_TRUE(future.get().ok());
  std::vector<std::vector<std::string>> groups = db.groups();
  ASSERT_THAT(groups, SizeIs(11));
  EXPECT_THAT(groups[0], SizeIs(1));
  for (int i = 1; i < 10; ++i) EXPECT_THAT(groups[i], SizeIs(10)) << i;
  EXPECT_THAT(groups[10], SizeIs(5));
}

TEST(GroupCommitterTest, CapsTheBytesOfAGroup) {
  FakeDatabase db(/*hold_first=*/true);
  GroupCommitter::Options options;
  options.max_group_bytes = ApproximateBytes(Tagged("0")) * 3;
  GroupCommitter committer(db.CommitFn(), options);
  std::vector<std::shared_future<absl::Status>> futures = {committer.Submit(Tagged("f"))};
  db.AwaitHeld();
  for (int i = 0; i < 7; ++i) futures.push_back(committer.Submit(Tagged(absl::StrCat(i))));
  // Larger than the budget: a group of its own.
  WriteBatch big = Tagged("big");
  big.trials[0].trial.set_parameters_json(std::string(1000, 'x'));
  futures.push_back(committer.Submit(std::move(big)));
  db.Release();
  for (const auto& future : futures) EXPECT_TRUE(future.get().ok());
  EXPECT_THAT(db.groups(),
              ElementsAre(ElementsAre("f"), ElementsAre("0", "1", "2"), ElementsAre("3", "4", "5"),
                          ElementsAre("6"), ElementsAre("big")));
}

TEST(GroupCommitterTest, FailureReachesEveryBatchOfTheGroupOnly) {
  FakeDatabase db(/*hold_first=*/true);
  db.Script(absl::OkStatus());
  db.Script(absl::ResourceExhaustedError("sqlite commit: database or disk is full"));
  GroupCommitter committer(db.CommitFn());
  std::shared_future<absl::Status> first = committer.Submit(Tagged("first"));
  db.AwaitHeld();
  std::vector<std::shared_future<absl::Status>> failing;
  for (int i = 0; i < 5; ++i) failing.push_back(committer.Submit(Tagged(absl::StrCat(i))));
  failing.push_back(committer.Submit(WriteBatch()));
  db.Release();

  EXPECT_TRUE(first.get().ok());
  for (const auto& future : failing) {
    EXPECT_EQ(future.get().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(future.get().message(), "sqlite commit: database or disk is full");
  }
  // The committer goes on after a failure.
  EXPECT_TRUE(committer.Submit(Tagged("later")).get().ok());
  EXPECT_THAT(db.groups(), SizeIs(3));
}

TEST(GroupCommitterTest, EmptyBatchIsReadyAfterEarlierBatchesOnly) {
  FakeDatabase db(/*hold_first=*/true);
  GroupCommitter committer(db.CommitFn());
  std::shared_future<absl::Status> first = committer.Submit(Tagged("first"));
  db.AwaitHeld();
  std::shared_future<absl::Status> empty = committer.Submit(WriteBatch());
  // Deterministic: the first batch's commit is held, and the empty one queues behind it.
  EXPECT_EQ(empty.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  db.Release();
  EXPECT_TRUE(empty.get().ok());
  EXPECT_TRUE(first.get().ok());
  // An empty batch alone costs no transaction.
  EXPECT_TRUE(committer.Submit(WriteBatch()).get().ok());
  EXPECT_THAT(db.groups(), ElementsAre(ElementsAre("first")));
}

TEST(GroupCommitterTest, EmptyBatchesAreNotHandedToTheCommitFunction) {
  FakeDatabase db(/*hold_first=*/true);
  GroupCommitter committer(db.CommitFn());
  std::vector<std::shared_future<absl::Status>> futures = {committer.Submit(Tagged("first"))};
  db.AwaitHeld();
  futures.push_back(committer.Submit(WriteBatch()));
  futures.push_back(committer.Submit(Tagged("a")));
  futures.push_back(committer.Submit(WriteBatch()));
  futures.push_back(committer.Submit(Tagged("b")));
  db.Release();
  for (const auto& future : futures) EXPECT_TRUE(future.get().ok());
  EXPECT_THAT(db.groups(), ElementsAre(ElementsAre("first"), ElementsAre("a", "b")));
}

TEST(GroupCommitterTest, DestructorCommitsWhatIsQueued) {
  FakeDatabase db(/*hold_first=*/true);
  auto committer = std::make_unique<GroupCommitter>(db.CommitFn());
  std::vector<std::shared_future<absl::Status>> futures = {committer->Submit(Tagged("first"))};
  db.AwaitHeld();
  std::vector<std::string> expected = {"first"};
  for (int i = 0; i < 50; ++i) {
    expected.push_back(absl::StrCat(i));
    futures.push_back(committer->Submit(Tagged(expected.back())));
  }
  // The destructor starts while the first commit is held and 50 batches wait (the pause
  // makes that likely; what is checked holds in any interleaving).
  std::thread destroyer([&] { committer.reset(); });
  absl::SleepFor(absl::Milliseconds(20));
  db.Release();
  destroyer.join();
  for (const auto& future : futures) {
    ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_TRUE(future.get().ok());
  }
  EXPECT_EQ(db.committed(), expected);
}

TEST(GroupCommitterTest, ApproximateBytesGrowsWithContent) {
  WriteBatch small = Tagged("t");
  WriteBatch large = Tagged("t");
  large.trials[0].trial.set_parameters_json(std::string(4096, 'x'));
  large.events.emplace_back().experiment_id = "e1";
  EXPECT_EQ(ApproximateBytes(WriteBatch()), 0u);
  EXPECT_GT(ApproximateBytes(large), ApproximateBytes(small) + 4096);
  EXPECT_GT(ApproximateBytes(small), 0u);
}

}  // namespace
}  // namespace autocompress::scheduler
