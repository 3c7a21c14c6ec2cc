// TrialStore: the scheduler's durable state. The scheduler keeps its working state in
// memory and writes every change through a store before it acknowledges it (to a worker
// with EventAck, to a client with the RPC's answer); at start it reads everything back
// with LoadAll. A store therefore needs only batched upserts and inserts, one full read,
// and a ranged read of the event log for WatchExperiment.
//
// Contract (checked by trial_store_contract.h against every implementation):
// - Submit queues a batch and returns at once; the batch commits atomically (all of it
//   or none), and batches commit in the order they were submitted, also across threads
//   (the order Submit calls return in). Concurrent batches are grouped into one
//   transaction (group commit), so throughput scales with load, not with fsyncs.
// - The future is ready once the batch is durable (OK) or failed (the error; then none
//   of its writes is visible, and neither are those of batches submitted after it that
//   shared its transaction). After an error the store stays usable: a later batch may
//   succeed (e.g. once disk space returns).
// - Experiments and trials are upserted by id (the row holds the latest snapshot);
//   metrics by (trial_id, attempt, step) and events by (experiment_id, sequence): a
//   repeat replaces the earlier row, so replaying a batch is harmless.
// - Everything that Submit reported OK survives a crash of the process (SIGKILL) and,
//   where the implementation says so, of the machine.
//
// Thread-safety: every method may be called from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_TRIAL_STORE_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_TRIAL_STORE_H_

#include <cstdint>
#include <future>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "autocompress/v1/scheduler.pb.h"

namespace autocompress::scheduler {

// An experiment's latest snapshot.
struct StoredExperiment {
  v1::Experiment experiment;
  // CreateExperiment's idempotency key; empty when the client gave none.
  std::string request_id;
};

// A trial's latest snapshot, without its intermediate reports (those are StoredMetrics).
struct StoredTrial {
  v1::Trial trial;
  // Highest worker event_sequence committed for the trial's current attempt
  // (trial.attempt()); a re-sent event at or below it is acknowledged and ignored.
  int64_t acked_event_sequence = 0;
};

// One intermediate report of one trial attempt.
struct StoredMetric {
  std::string trial_id;
  int32_t attempt = 0;
  v1::MetricReport report;
};

// One entry of an experiment's event log (WatchExperiment replays it).
struct StoredEvent {
  std::string experiment_id;
  v1::ExperimentEvent event;
};

// Writes applied together, atomically.
struct WriteBatch {
  std::vector<StoredExperiment> experiments;
  std::vector<StoredTrial> trials;
  std::vector<StoredMetric> metrics;
  std::vector<StoredEvent> events;

  bool empty() const {
    return experiments.empty() && trials.empty() && metrics.empty() && events.empty();
  }
};

// Everything a store holds except the event log.
struct StoredState {
  std::vector<StoredExperiment> experiments;
  // Trials ordered by (experiment_id, sequence).
  std::vector<StoredTrial> trials;
  // Metrics ordered by (trial_id, attempt, step).
  std::vector<StoredMetric> metrics;
  // The highest event sequence stored per experiment (experiments without events are
  // absent), so a restarted scheduler numbers new events after it.
  std::map<std::string, int64_t> last_event_sequence;
};

class TrialStore {
 public:
  virtual ~TrialStore() = default;

  // Queues `batch` for commit; see the contract above. An empty batch is ready at once
  // (after the batches submitted before it).
  virtual std::shared_future<absl::Status> Submit(WriteBatch batch) = 0;

  // Submit and wait. Implementations may write on the calling thread instead (no queue
  // hop), ordered after every batch submitted before the call; the default submits a
  // copy.
  virtual absl::Status Commit(const WriteBatch& batch) { return Submit(batch).get(); }

  // Reads every committed experiment, trial and metric.
  virtual absl::StatusOr<StoredState> LoadAll() = 0;

  // Events of `experiment_id` with sequence > `after_sequence`, ascending, at most
  // `limit` of them.
  virtual absl::StatusOr<std::vector<v1::ExperimentEvent>> ReadEvents(
      const std::string& experiment_id, int64_t after_sequence, int limit) = 0;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_TRIAL_STORE_H_
