#include "scheduler_service/store/group_committer.h"

#include <algorithm>
#include <utility>

namespace autocompress::scheduler {

size_t ApproximateBytes(const WriteBatch& batch) {
  size_t bytes = 0;
  for (const StoredExperiment& e : batch.experiments) {
    bytes += e.experiment.ByteSizeLong() + e.request_id.size();
  }
  for (const StoredTrial& t : batch.trials) bytes += t.trial.ByteSizeLong() + sizeof(int64_t);
  for (const StoredMetric& m : batch.metrics) {
    bytes += m.report.ByteSizeLong() + m.trial_id.size() + sizeof(int32_t);
  }
  for (const StoredEvent& e : batch.events) {
    bytes += e.event.ByteSizeLong() + e.experiment_id.size();
  }
  return bytes;
}

GroupCommitter::GroupCommitter(CommitFn commit, Options options)
    : commit_(std::move(commit)), options_(options), thread_([this] { Run(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::shared_future<absl::Status> GroupCommitter::Submit(WriteBatch batch) {
  Pending pending;
  // Sized outside the lock: it walks every message of the batch.
  pending.bytes = batch.empty() ? 0 : ApproximateBytes(batch);
  pending.batch = std::move(batch);
  std::shared_future<absl::Status> future = pending.done.get_future().share();
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    // Only a Submit racing the destructor gets here; its batch would outlive the thread.
    pending.done.set_value(absl::FailedPreconditionError("group committer: shutting down"));
    return future;
  }
  queue_.push_back(std::move(pending));
  return future;
}

std::vector<GroupCommitter::Pending> GroupCommitter::TakeGroup() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](GroupCommitter* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return !self->writing_ && (self->stopping_ || !self->queue_.empty());
      },
      this));
  std::vector<Pending> group;
  size_t bytes = 0;
  const size_t max_batches = std::max<size_t>(1, options_.max_group_batches);
  while (!queue_.empty() && group.size() < max_batches) {
    const size_t next = queue_.front().bytes;
    if (!group.empty() && bytes + next > options_.max_group_bytes) break;
    bytes += next;
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  writing_ = !group.empty();
  return group;
}

absl::Status GroupCommitter::CommitNow(const WriteBatch& batch) {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](GroupCommitter* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->stopping_ || (!self->writing_ && self->queue_.empty());
        },
        this));
    if (stopping_) return absl::FailedPreconditionError("group committer: shutting down");
    writing_ = true;
  }
  const absl::Status status = batch.empty() ? absl::OkStatus() : commit_({&batch});
  absl::MutexLock lock(&mu_);
  writing_ = false;
  return status;
}

void GroupCommitter::Run() {
  for (;;) {
    std::vector<Pending> group = TakeGroup();
    if (group.empty()) return;  // stopping and drained
    std::vector<const WriteBatch*> batches;
    batches.reserve(group.size());
    for (const Pending& pending : group) {
      if (!pending.batch.empty()) batches.push_back(&pending.batch);
    }
    const absl::Status status = batches.empty() ? absl::OkStatus() : commit_(batches);
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
    }
    for (Pending& pending : group) pending.done.set_value(status);
  }
}

}  // namespace autocompress::scheduler
