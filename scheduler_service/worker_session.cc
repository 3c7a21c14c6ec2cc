#include "scheduler_service/worker_session.h"

#include <utility>

namespace autocompress::scheduler {

void WorkerSession::Send(v1::SchedulerMessage message, std::shared_future<absl::Status> gate) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  queue_.push_back({std::move(message), std::move(gate)});
}

std::optional<v1::SchedulerMessage> WorkerSession::Next() {
  Item item;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](WorkerSession* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->closed_ || !self->queue_.empty();
        },
        this));
    if (closed_) return std::nullopt;
    item = std::move(queue_.front());
    queue_.pop_front();
  }
  // Gates resolve in commit order, so waiting for this one never delays a later one.
  if (item.gate.valid()) {
    absl::Status status = item.gate.get();
    if (!status.ok()) {
      Close(status);
      return std::nullopt;
    }
  }
  if (closed()) return std::nullopt;
  return std::move(item.message);
}

void WorkerSession::Close(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  closed_ = true;
  close_status_ = std::move(status);
  queue_.clear();
}

bool WorkerSession::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

absl::Status WorkerSession::close_status() const {
  absl::MutexLock lock(&mu_);
  return close_status_;
}

}  // namespace autocompress::scheduler
