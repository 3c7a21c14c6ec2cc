// The Scheduler's in-memory records and its change collector; shared by scheduler*.cc
// only (an implementation header, not an interface).
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_RECORDS_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_RECORDS_H_

#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "scheduler_service/scheduler.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace autocompress::scheduler {

// Prometheus metrics of the scheduler (names in scheduler_metrics.cc).
struct SchedulerMetrics {
  explicit SchedulerMetrics(prometheus::Registry& registry);

  prometheus::Family<prometheus::Gauge>& experiments;  // {state}
  prometheus::Family<prometheus::Gauge>& trials;       // {state}
  prometheus::Gauge& workers_connected;
  // 1 while the store commits, 0 while its commits fail (disk full, database gone).
  prometheus::Gauge& store_healthy;
  prometheus::Family<prometheus::Gauge>& slots;  // {kind=cpu|gpu, use=busy|free}
  prometheus::Histogram& dispatch_latency;
  prometheus::Histogram& commit_latency;
  prometheus::Histogram& store_write;
  prometheus::Counter& metric_messages;
  // Trial events of an attempt that is no longer current (a worker cut off past its
  // lease sending them when it comes back): acknowledged and ignored.
  prometheus::Counter& fenced_events;
  prometheus::Family<prometheus::Counter>& retries;          // {code}
  prometheus::Family<prometheus::Counter>& worker_messages;  // {kind}
  // {experiment, metric}: one series per experiment (there is no deletion), so the
  // label set grows with the store, never with trials.
  prometheus::Family<prometheus::Gauge>& experiment_best;

  void TrialStateChanged(v1::TrialState from, v1::TrialState to);
  void ExperimentStateChanged(v1::ExperimentState from, v1::ExperimentState to);
  // The primary objective value of the experiment's best trial.
  void BestTrialChanged(const v1::Experiment& experiment, double value);
};

struct Scheduler::TrialRecord {
  // The stored trial, without intermediate reports.
  v1::Trial trial;
  // Intermediate reports of the current attempt, in step order.
  std::vector<v1::MetricReport> intermediate;
  int64_t acked_event_sequence = 0;
  // When it last entered WAITING (dispatch latency).
  absl::Time waiting_since;
  ExperimentRecord* experiment = nullptr;
};

struct Scheduler::ExperimentRecord {
  // The stored experiment; trial_counts and running_time are filled by SnapshotOf.
  v1::Experiment experiment;
  std::string request_id;
  // The commit of its creation: a retried CreateExperiment answers only once it is ready.
  std::shared_future<absl::Status> created;
  // Trials by sequence (the baseline first, when there is one), and by the tuner's
  // parameter id (the baseline, parameter 0, is not there).
  std::vector<TrialRecord*> trials;
  TrialRecord* baseline = nullptr;
  absl::flat_hash_map<int64_t, TrialRecord*> by_parameter;
  // WAITING trials by sequence, and counts by state (kept by SetTrialState).
  std::map<int64_t, TrialRecord*> waiting;
  v1::TrialCounts counts;
  // Trials WAITING, ASSIGNED or RUNNING.
  int active = 0;
  // Sequence of the last event made (committed or not).
  int64_t last_sequence = 0;
  // While RUNNING: when this process started counting its running time.
  absl::Time running_since;
  // Tuner side, owned by the manager thread's rounds.
  bool study_ready = false;
  bool exhausted = false;
  bool wake = false;
  bool manager_running = false;
  std::vector<v1::Observation> outbox;
  int64_t suggest_round = 0;

  // Trials the tuner suggested (max_trial_number counts these).
  int SuggestedTrials() const {
    return static_cast<int>(trials.size()) - (baseline != nullptr ? 1 : 0);
  }
  // True until the baseline succeeded (false without one): no other trial starts before.
  bool AwaitingBaseline() const {
    return baseline != nullptr && baseline->trial.state() != v1::TRIAL_STATE_SUCCEEDED;
  }
};

struct Scheduler::WorkerRecord {
  v1::WorkerHello hello;
  // The open session; null while disconnected.
  std::shared_ptr<WorkerSession> session;
  // When the open session last brought a message (hello, heartbeat, event).
  absl::Time last_message;
  bool draining = false;
  // Latest free memory per device name.
  absl::flat_hash_map<std::string, int64_t> free_memory;
};

struct Scheduler::Lease {
  std::string trial_id;
  int32_t attempt = 0;
  std::string worker_id;
  std::vector<std::string> devices;
  int32_t cpu_threads = 1;
  // Last sign of life of this attempt (assignment, heartbeat listing it, an event).
  absl::Time last_seen;
  // The commit of the assignment; the worker hears of it only once that is ready, so
  // the lease's clock does not run before (a failing store would otherwise expire
  // leases that no worker could know of). Invalid for leases loaded from the store.
  std::shared_future<absl::Status> assigned;
};

inline bool IsActive(v1::TrialState state) {
  return state == v1::TRIAL_STATE_WAITING || state == v1::TRIAL_STATE_ASSIGNED ||
         state == v1::TRIAL_STATE_RUNNING;
}

inline std::string LeaseKey(const std::string& trial_id, int32_t attempt) {
  return absl::StrCat(trial_id, "/", attempt);
}

// Collects the rows and events of one change while the scheduler mutates its records
// (under its lock); Scheduler::Commit queues them.
class Scheduler::Changes {
 public:
  explicit Changes(Clock* clock) : now_(clock->Now()) {}

  // The trial's snapshot as a row, and a Trial event.
  void Trial(TrialRecord& trial);
  // The trial's row only (its acked event sequence moved).
  void TrialRow(TrialRecord& trial);
  // The experiment's row and an Experiment event with `snapshot`.
  void Experiment(ExperimentRecord& experiment, const v1::Experiment& snapshot);
  // A metric report row (intermediate) and a metric event.
  void Metric(TrialRecord& trial, const v1::MetricReport& report, bool final_report);

  absl::Time now() const { return now_; }
  WriteBatch& batch() { return batch_; }

 private:
  v1::ExperimentEvent& NewEvent(ExperimentRecord& experiment);

  const absl::Time now_;
  WriteBatch batch_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_RECORDS_H_
