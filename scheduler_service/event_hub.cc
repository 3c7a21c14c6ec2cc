#include "scheduler_service/event_hub.h"

#include <algorithm>

namespace autocompress::scheduler {

void EventHub::Publish(const std::vector<StoredEvent>& events) {
  absl::MutexLock lock(&mu_);
  for (const StoredEvent& stored : events) {
    Log& log = logs_[stored.experiment_id];
    // A replayed batch (the store's upserts make that harmless) must not repeat here.
    if (stored.event.sequence() <= log.last_sequence) continue;
    log.events.push_back(stored.event);
    log.last_sequence = stored.event.sequence();
    while (static_cast<int>(log.events.size()) > capacity_) log.events.pop_front();
  }
}

void EventHub::SetLastSequence(const std::string& experiment_id, int64_t sequence) {
  absl::MutexLock lock(&mu_);
  Log& log = logs_[experiment_id];
  if (sequence > log.last_sequence) {
    log.events.clear();
    log.last_sequence = sequence;
  }
}

EventHub::Read EventHub::EventsAfter(const std::string& experiment_id, int64_t after_sequence,
                                     int limit) const {
  Read read;
  absl::MutexLock lock(&mu_);
  auto it = logs_.find(experiment_id);
  if (it == logs_.end() || after_sequence >= it->second.last_sequence) return read;
  const Log& log = it->second;
  const int64_t first = log.events.empty() ? log.last_sequence + 1 : log.events.front().sequence();
  if (after_sequence + 1 < first) {
    read.complete = false;
    return read;
  }
  for (size_t i = static_cast<size_t>(after_sequence + 1 - first);
       i < log.events.size() && static_cast<int>(read.events.size()) < limit; ++i) {
    read.events.push_back(log.events[i]);
  }
  return read;
}

int64_t EventHub::LastSequence(const std::string& experiment_id) const {
  absl::MutexLock lock(&mu_);
  auto it = logs_.find(experiment_id);
  return it == logs_.end() ? 0 : it->second.last_sequence;
}

bool EventHub::WaitForEvent(const std::string& experiment_id, int64_t after_sequence,
                            absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto has_event = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = logs_.find(experiment_id);
    return it != logs_.end() && it->second.last_sequence > after_sequence;
  };
  struct Args {
    decltype(has_event)* fn;
  } args{&has_event};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Args* a) { return (*a->fn)(); }, &args),
                              timeout);
}

}  // namespace autocompress::scheduler
