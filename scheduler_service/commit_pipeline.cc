#include "scheduler_service/commit_pipeline.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/time/clock.h"
#include "glog/logging.h"

namespace autocompress::scheduler {

CommitPipeline::CommitPipeline(TrialStore* store, Options options, OnCommitted on_committed,
                               OnLatency on_latency, OnWrite on_write)
    : store_(store),
      options_(options),
      on_committed_(std::move(on_committed)),
      on_latency_(std::move(on_latency)),
      on_write_(std::move(on_write)),
      thread_([this] { Run(); }) {}

CommitPipeline::~CommitPipeline() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::shared_future<absl::Status> CommitPipeline::Submit(WriteBatch batch) {
  Pending pending{std::move(batch), {}, absl::Now()};
  std::shared_future<absl::Status> future = pending.done.get_future().share();
  absl::MutexLock lock(&mu_);
  if (stopping_ && queue_.empty() && !health_.ok()) {
    pending.done.set_value(health_);
    return future;
  }
  queue_.push_back(std::move(pending));
  return future;
}

absl::Status CommitPipeline::health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

WriteBatch CommitPipeline::Merge(std::vector<Pending>& group) {
  if (group.size() == 1) return group[0].batch;
  WriteBatch merged;
  auto append = [](auto& to, auto& from) {
    to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
    from.clear();
  };
  // The batches are consumed: a failed commit is retried with the merged batch.
  for (Pending& pending : group) {
    append(merged.experiments, pending.batch.experiments);
    append(merged.trials, pending.batch.trials);
    append(merged.metrics, pending.batch.metrics);
    append(merged.events, pending.batch.events);
  }
  return merged;
}

void CommitPipeline::Run() {
  // Once shutting down with a store that keeps failing, the rest is resolved at once.
  absl::Time give_up = absl::InfiniteFuture();
  for (;;) {
    std::vector<Pending> group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](CommitPipeline* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      const size_t count =
          std::min(queue_.size(), static_cast<size_t>(options_.max_batches_per_commit));
      for (size_t i = 0; i < count; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    WriteBatch merged = Merge(group);
    absl::Status status;
    absl::Duration backoff = options_.min_backoff;
    for (;;) {
      const absl::Time write_start = absl::Now();
      status = merged.empty() ? absl::OkStatus() : store_->Commit(merged);
      if (on_write_ && status.ok() && !merged.empty()) on_write_(absl::Now() - write_start);
      absl::MutexLock lock(&mu_);
      if (status.ok() && !health_.ok()) LOG(INFO) << "service=scheduler event=store_recovered";
      if (!status.ok() && health_.ok()) {
        LOG(ERROR) << "service=scheduler event=store_failing error=\"" << status
                   << "\" (retrying; acknowledgements wait)";
      }
      health_ = status;
      if (status.ok()) break;
      if (stopping_ && give_up == absl::InfiniteFuture()) {
        give_up = absl::Now() + options_.shutdown_timeout;
      }
      if (absl::Now() >= give_up) break;
      mu_.Unlock();
      absl::SleepFor(backoff);
      mu_.Lock();
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    if (status.ok() && on_committed_ && !merged.events.empty()) on_committed_(merged.events);
    const absl::Time now = absl::Now();
    for (Pending& pending : group) {
      if (on_latency_ && status.ok()) on_latency_(now - pending.submitted);
      pending.done.set_value(status);
    }
  }
}

}  // namespace autocompress::scheduler
