// Scheduler: the experiment manager. It holds every experiment, trial, worker and lease
// in memory, writes each change through the CommitPipeline to its TrialStore before any
// acknowledgement, and runs:
// - one manager thread per RUNNING experiment, which keeps up to trial_concurrency
//   trials in flight by asking the tuner (incremental protocol; a study the tuner lost
//   is re-created from the store and replayed), forwards results and intermediate
//   metrics, applies the assessor's early stops, and ends the experiment at its limits;
// - placement of waiting trials on worker slots through a PlacementPolicy, fair across
//   experiments;
// - a maintenance tick (leases that missed the lease timeout, trials past
//   max_trial_duration).
// At construction it loads the store: RUNNING experiments continue, trials that were
// assigned or running keep their lease for one lease timeout so their worker can
// reconnect and re-attach them, and tuner studies are rebuilt.
//
// The gRPC adapters (experiment_service_impl, worker_gateway_impl) only convert
// messages and call the methods here. Thread-safety: every public method may be called
// from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "autocompress/v1/scheduler.pb.h"
#include "autocompress/v1/tuner.pb.h"
#include "autocompress/v1/worker.pb.h"
#include "common/clock.h"
#include "scheduler_service/commit_pipeline.h"
#include "scheduler_service/event_hub.h"
#include "scheduler_service/placement_policy.h"
#include "scheduler_service/store/trial_store.h"
#include "scheduler_service/tuner_client.h"
#include "scheduler_service/worker_session.h"

namespace prometheus {
class Registry;
}

namespace autocompress::scheduler {

struct SchedulerMetrics;

class Scheduler {
 public:
  struct Options {
    // Workers send heartbeats this often (told in WorkerAccepted).
    absl::Duration heartbeat_interval = absl::Seconds(2);
    // A lease not refreshed (heartbeat listing it, or an event of it) for this long is
    // lost and its trial re-queued; also how long a restarted scheduler waits for
    // workers to re-attach their trials.
    absl::Duration lease_timeout = absl::Seconds(10);
    // How often the maintenance tick runs.
    absl::Duration tick_interval = absl::Milliseconds(200);
    // Extra time past max_trial_duration before the scheduler stops a trial itself (the
    // worker normally reports the timeout first).
    absl::Duration trial_duration_grace = absl::Seconds(5);
    // Tuner retry backoff while it is down.
    absl::Duration tuner_min_backoff = absl::Milliseconds(100);
    absl::Duration tuner_max_backoff = absl::Seconds(5);
    // Placement policy by name (placement_policy.h).
    std::string placement_policy = "fair_least_loaded";
    // Time source for leases, limits and timestamps; null = the real clock.
    Clock* clock = nullptr;
    // Commit pipeline tuning.
    CommitPipeline::Options commit;
  };

  // Loads `store` and starts the manager threads. `tuner` and `store` must outlive the
  // scheduler; `artifact_present` tells whether an artifact is stored (validation).
  static absl::StatusOr<std::unique_ptr<Scheduler>> Open(
      Options options, TrialStore* store, TunerClient* tuner,
      std::function<bool(const v1::ArtifactRef&)> artifact_present, prometheus::Registry& registry);
  ~Scheduler();

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Stops the threads and closes every worker session; pending commits finish. After it
  // the public methods answer UNAVAILABLE. Idempotent.
  void Shutdown();

  // --- ExperimentService -------------------------------------------------------------
  absl::StatusOr<v1::Experiment> CreateExperiment(const v1::CreateExperimentRequest& request);
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& experiment_id);
  absl::StatusOr<v1::ListExperimentsResponse> ListExperiments(
      const v1::ListExperimentsRequest& request);
  absl::StatusOr<v1::Experiment> StopExperiment(const std::string& experiment_id);
  absl::StatusOr<v1::Experiment> ResumeExperiment(const v1::ResumeExperimentRequest& request);
  absl::StatusOr<v1::Experiment> UpdateExperiment(const v1::UpdateExperimentRequest& request);
  absl::StatusOr<v1::ListTrialsResponse> ListTrials(const v1::ListTrialsRequest& request);
  absl::StatusOr<v1::Trial> GetTrial(const std::string& trial_id);
  absl::StatusOr<v1::ListParetoTrialsResponse> ListParetoTrials(const std::string& experiment_id);
  // Streams the experiment's events to `write` (false = the client went away) until
  // the experiment ends (unless follow_resumes), `cancelled()` turns true, or shutdown.
  absl::Status WatchExperiment(const v1::WatchExperimentRequest& request,
                               const std::function<bool(const v1::ExperimentEvent&)>& write,
                               const std::function<bool()>& cancelled);

  // --- WorkerGateway -----------------------------------------------------------------
  // Opens a session for a worker's hello: queues WorkerAccepted (with the re-attached
  // trials) and cancellations of the trials it may no longer run. A session of the
  // same worker that is still open is closed. InvalidArgument for a bad hello.
  absl::StatusOr<std::shared_ptr<WorkerSession>> ConnectWorker(const v1::WorkerHello& hello);
  // Handles one message of an open session; an error ends the session with it.
  absl::Status HandleWorkerMessage(WorkerSession& session, const v1::WorkerMessage& message);
  // The session's stream ended; the worker's leases run out after the lease timeout
  // unless it reconnects.
  void DisconnectWorker(WorkerSession& session);

  // Runs the maintenance tick now (tests with a fake clock call it).
  void Tick();
  // Waits until everything changed so far is durable.
  absl::Status Flush();

 private:
  struct TrialRecord;
  struct ExperimentRecord;
  struct WorkerRecord;
  struct Lease;
  class Changes;

  Scheduler(Options options, TrialStore* store, TunerClient* tuner,
            std::function<bool(const v1::ArtifactRef&)> artifact_present,
            prometheus::Registry& registry);

  // Recovery (scheduler.cc).
  absl::Status Load() ABSL_LOCKS_EXCLUDED(mu_);

  // Experiments (scheduler.cc).
  absl::Status ValidateForCreate(const v1::ExperimentSpec& spec, const std::string& study_id,
                                 v1::StudyConfig* study) ABSL_LOCKS_EXCLUDED(mu_);
  v1::Experiment SnapshotOf(const ExperimentRecord& experiment) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ExperimentRecord* FindExperiment(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The experiment, or NotFound naming the id.
  absl::StatusOr<ExperimentRecord*> LookUpExperiment(const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a checkpoint the trial's current attempt uploaded (unless this attempt
  // already sent a later one), with the intermediate reports made before it.
  void KeepCheckpoint(TrialRecord& trial, const v1::TrialCheckpoint& checkpoint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a worker's open session (the stream ended or was closed) and its slots.
  void DropSession(WorkerRecord& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the session of each worker silent for a lease timeout (a cut link, a hung
  // agent), as if its stream broke: it gets no new work; its leases run out as usual, and
  // a live worker sees the stream end and reconnects.
  void CloseSilentSessions(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartManager(ExperimentRecord& experiment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds a new RUNNING experiment (and its baseline trial), starts its manager and
  // returns the commit of its creation; `snapshot` is what CreateExperiment answers.
  std::shared_future<absl::Status> AddExperiment(const std::string& id,
                                                 const std::string& request_id,
                                                 v1::ExperimentSpec spec, v1::Experiment* snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetExperimentState(ExperimentRecord& experiment, v1::ExperimentState state,
                          const std::string& error, Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelActiveTrials(ExperimentRecord& experiment, const std::string& why, Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration RunningTime(const ExperimentRecord& experiment) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyLimits(ExperimentRecord& experiment, const v1::ExperimentLimits& limits,
                           const google::protobuf::FieldMask& mask)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Manager loop and tuner (scheduler_manager.cc).
  void ManageExperiment(std::string experiment_id) ABSL_LOCKS_EXCLUDED(mu_);
  v1::CreateStudyRequest StudyRequestOf(const ExperimentRecord& experiment) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int SuggestionsWanted(const ExperimentRecord& experiment) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddTrials(ExperimentRecord& experiment, const v1::SuggestResponse& response,
                 Changes& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The baseline trial of a new experiment (sequence 0, parameter 0), WAITING.
  void AddBaselineTrial(ExperimentRecord& experiment, Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A resumed experiment's baseline that ended without success runs again (new attempt).
  void RequeueBaseline(ExperimentRecord& experiment, Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyDecisions(ExperimentRecord& experiment, const v1::ReportResponse& response,
                      Changes& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinish(ExperimentRecord& experiment, Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Observe(ExperimentRecord& experiment, v1::Observation observation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Trials, workers, leases (scheduler_workers.cc).
  // Leases of a reconnecting worker that its hello does not list: a lost assignment is
  // sent again, a lost running attempt fails (INFRASTRUCTURE).
  void SettleUnlistedLeases(WorkerRecord& worker, const v1::WorkerHello& hello)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleHeartbeat(WorkerRecord& worker, const v1::Heartbeat& heartbeat)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleTrialEvent(WorkerRecord& worker, WorkerSession& session, const v1::TrialEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleDraining(WorkerRecord& worker, WorkerSession& session,
                      const v1::WorkerDraining& draining) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves a trial to `state`, keeping the experiment's counters, waiting set and gauges.
  void SetTrialState(TrialRecord& trial, v1::TrialState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishTrial(TrialRecord& trial, const v1::TrialFinished& finished, Changes& changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the trial again as its next attempt (WAITING, no worker, a fresh curve).
  void StartNewAttempt(TrialRecord& trial, Changes& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the current attempt with `failure` and applies the retry policy.
  void FailAttempt(TrialRecord& trial, const v1::TrialFailure& failure, bool counts,
                   Changes& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndTrial(TrialRecord& trial, v1::TrialState state, const v1::TrialFailure* failure,
                Changes& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops the attempt on its worker (the trial's state is set by the caller).
  void SendCancel(const std::string& trial_id, int32_t attempt, const std::string& worker_id,
                  const std::string& reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLease(const std::string& trial_id, int32_t attempt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Dispatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeases(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopOverdueTrials(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::TrialSpec TrialSpecOf(const TrialRecord& trial) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SomeDeviceHasMore(const TrialRecord& trial, int64_t free_memory) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Slots (per worker and device) and CPU threads (per worker) held by leases now.
  struct LeaseUsage {
    absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, int>> slots;
    absl::flat_hash_map<std::string, int> threads;
  };
  LeaseUsage UsageByLeases() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateSlotGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Queues `changes` for commit (in the order made) and returns its gate.
  std::shared_future<absl::Status> Commit(Changes& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes an experiment's manager thread.
  void Wake(ExperimentRecord& experiment) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  Clock* const clock_;
  TrialStore* const store_;
  TunerClient* const tuner_;
  const std::function<bool(const v1::ArtifactRef&)> artifact_present_;
  std::unique_ptr<SchedulerMetrics> metrics_;
  EventHub hub_;
  std::unique_ptr<PlacementPolicy> placement_;
  std::unique_ptr<CommitPipeline> pipeline_;

  mutable absl::Mutex mu_;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Experiments by id, and their ids oldest first.
  absl::flat_hash_map<std::string, std::unique_ptr<ExperimentRecord>> experiments_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::string> experiment_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> experiment_by_request_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<TrialRecord>> trials_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<WorkerRecord>> workers_ ABSL_GUARDED_BY(mu_);
  // Leases by "trial_id/attempt".
  absl::flat_hash_map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
  int64_t next_session_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool dispatch_needed_ ABSL_GUARDED_BY(mu_) = false;
  // A lease ended since the slot gauges were last computed.
  bool slots_dirty_ ABSL_GUARDED_BY(mu_) = false;
  // Manager threads by experiment id (joined at shutdown or before a restart).
  absl::flat_hash_map<std::string, std::thread> managers_ ABSL_GUARDED_BY(mu_);
  std::thread ticker_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_H_
