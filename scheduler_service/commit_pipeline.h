// CommitPipeline: the scheduler's one ordered path to its TrialStore. Every state change
// is queued here (under the scheduler's lock, so the commit order is the order in which
// the changes were made in memory); one thread merges everything queued into one batch,
// commits it, and resolves the callers' futures, which gate every acknowledgement.
//
// A failing store (disk full, database locked by another process) is retried with
// backoff, batches kept in order, so memory and disk never diverge: callers wait,
// `healthy()` turns false (the scheduler then refuses new work with the store's error),
// and everything continues when the store recovers. Only shutdown gives up, resolving
// the rest with the last error.
//
// After each successful commit, `on_committed` receives the events it made durable, in
// order (the watch hub publishes them), on the pipeline's thread.
//
// Thread-safety: all methods may be called from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_COMMIT_PIPELINE_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_COMMIT_PIPELINE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler_service/store/trial_store.h"

namespace autocompress::scheduler {

class CommitPipeline {
 public:
  struct Options {
    // Backoff between retries of a failed commit.
    absl::Duration min_backoff = absl::Milliseconds(10);
    absl::Duration max_backoff = absl::Seconds(2);
    // Most batches merged into one commit.
    int max_batches_per_commit = 4096;
    // On destruction, how long to keep retrying a failing store before giving up.
    absl::Duration shutdown_timeout = absl::Seconds(5);
  };
  using OnCommitted = std::function<void(const std::vector<StoredEvent>& events)>;
  // Called with each batch's latency from Submit to durable.
  using OnLatency = std::function<void(absl::Duration)>;
  // Called once per store commit with the time the store took (queueing excluded).
  using OnWrite = std::function<void(absl::Duration)>;

  CommitPipeline(TrialStore* store, Options options, OnCommitted on_committed,
                 OnLatency on_latency = nullptr, OnWrite on_write = nullptr);
  // Commits what is queued (retrying up to shutdown_timeout), then stops.
  ~CommitPipeline();

  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Queues `batch`; the future is ready once it is durable (OK), or with the store's
  // error only if the pipeline shut down before the store recovered.
  std::shared_future<absl::Status> Submit(WriteBatch batch);

  // OK while the last commit succeeded; else the store's last error.
  absl::Status health() const;

  // A future ready once everything submitted so far is durable.
  std::shared_future<absl::Status> Barrier() { return Submit(WriteBatch{}); }

 private:
  struct Pending {
    WriteBatch batch;
    std::promise<absl::Status> done;
    absl::Time submitted;
  };

  void Run();
  // Merges the first `count` queued batches into one.
  static WriteBatch Merge(std::vector<Pending>& group);

  TrialStore* const store_;
  const Options options_;
  const OnCommitted on_committed_;
  const OnLatency on_latency_;
  const OnWrite on_write_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status health_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_COMMIT_PIPELINE_H_
