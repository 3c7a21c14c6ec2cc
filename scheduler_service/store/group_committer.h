// GroupCommitter: the group-commit queue a TrialStore implementation puts in front of
// its database. Submit queues a WriteBatch and returns a future at once; one background
// thread takes every batch queued so far (up to a cap) and hands the group to a commit
// function that writes it in one transaction, so N concurrent writers cost one fsync,
// not N. Every future of a group receives that transaction's status.
//
// Order: groups are formed from the queue front, so batches reach the commit function
// in the order their Submit calls took the queue (the order those calls return in,
// also across threads), and a group is committed only after the one before it.
//
// Empty batches are never handed to the commit function; an empty batch's future is
// resolved with the status of the group it fell into (OK when that group held nothing
// else), so it is ready once everything submitted before it is.
//
// Thread-safety: Submit may be called from any thread. The commit function runs on the
// committer's thread (or a CommitNow caller's), one call at a time.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_GROUP_COMMITTER_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_GROUP_COMMITTER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "scheduler_service/store/trial_store.h"

namespace autocompress::scheduler {

class GroupCommitter {
 public:
  struct Options {
    // Most batches in one group (one transaction).
    size_t max_group_batches = 1024;
    // Most approximate serialized bytes in one group; a single larger batch still forms
    // a group of its own.
    size_t max_group_bytes = 64 << 20;
  };

  // Writes `group` (non-empty, no empty batch in it, in submission order) in one
  // transaction: all of it or none. The pointers are valid during the call only.
  using CommitFn = std::function<absl::Status(const std::vector<const WriteBatch*>& group)>;

  GroupCommitter(CommitFn commit, Options options);
  explicit GroupCommitter(CommitFn commit) : GroupCommitter(std::move(commit), Options()) {}
  // Commits everything queued, then stops the thread.
  ~GroupCommitter();

  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `batch`; the future is ready with the status of the transaction that wrote it.
  std::shared_future<absl::Status> Submit(WriteBatch batch);

  // Writes `batch` on the calling thread, as a group of its own, once everything
  // submitted before is written: no queue and no thread hop for a caller that batches
  // by itself (the scheduler's CommitPipeline). FailedPrecondition once stopping.
  absl::Status CommitNow(const WriteBatch& batch);

 private:
  struct Pending {
    WriteBatch batch;
    size_t bytes = 0;
    std::promise<absl::Status> done;
  };

  void Run();
  // Moves the next group off the queue front; empty once stopping and drained.
  std::vector<Pending> TakeGroup();

  const CommitFn commit_;
  const Options options_;

  absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // A group (the thread's or a CommitNow caller's) is being written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Approximate serialized size of `batch`, the measure of Options::max_group_bytes.
size_t ApproximateBytes(const WriteBatch& batch);

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_GROUP_COMMITTER_H_
