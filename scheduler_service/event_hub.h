// EventHub: the committed part of every experiment's event log, in memory, for
// WatchExperiment. The commit pipeline publishes events once they are durable, so a
// watcher never sees an event that a crash could take back. The hub keeps the newest
// `capacity` events per experiment; a watcher further behind reads the store instead.
//
// Thread-safety: all methods may be called from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_EVENT_HUB_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_EVENT_HUB_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler_service/store/trial_store.h"

namespace autocompress::scheduler {

class EventHub {
 public:
  explicit EventHub(int capacity_per_experiment = 4096) : capacity_(capacity_per_experiment) {}

  // Appends durable events (ascending sequence per experiment) and wakes watchers.
  void Publish(const std::vector<StoredEvent>& events);

  // Sets the last durable sequence of an experiment whose earlier events live only in
  // the store (after a restart).
  void SetLastSequence(const std::string& experiment_id, int64_t sequence);

  struct Read {
    std::vector<v1::ExperimentEvent> events;
    // False when the hub no longer holds the events right after `after_sequence`: the
    // caller reads them from the store.
    bool complete = true;
  };
  // Durable events of the experiment with sequence > `after_sequence`, at most `limit`.
  Read EventsAfter(const std::string& experiment_id, int64_t after_sequence, int limit) const;

  // The experiment's last durable sequence (0 when none).
  int64_t LastSequence(const std::string& experiment_id) const;

  // Waits until the experiment has a durable event after `after_sequence`, up to
  // `timeout`; true when one exists.
  bool WaitForEvent(const std::string& experiment_id, int64_t after_sequence,
                    absl::Duration timeout) const;

 private:
  struct Log {
    std::deque<v1::ExperimentEvent> events;
    int64_t last_sequence = 0;
  };

  const int capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Log> logs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_EVENT_HUB_H_
