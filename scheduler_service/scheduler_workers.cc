// Scheduler: worker sessions, trial events, leases, retries and placement.
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "glog/logging.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "scheduler_service/retry_policy.h"
#include "scheduler_service/scheduler.h"
#include "scheduler_service/scheduler_records.h"
#include "scheduler_service/trial_ranking.h"

namespace autocompress::scheduler {
namespace {

constexpr int kMaxDevicesPerWorker = 256;

absl::Status ValidateDeviceName(const std::string& name) {
  if (name == "cpu") return absl::OkStatus();
  int index = 0;
  if (absl::StartsWith(name, "cuda:") && absl::SimpleAtoi(name.substr(5), &index) && index >= 0) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("\"", name, "\" is not a device name (expected \"cpu\" or \"cuda:N\")"));
}

absl::Status ValidateHello(const v1::WorkerHello& hello) {
  if (hello.worker_id().empty() || hello.worker_id().size() > 253) {
    return absl::InvalidArgumentError("hello.worker_id: must be 1..253 characters");
  }
  if (hello.devices().empty() || hello.devices_size() > kMaxDevicesPerWorker) {
    return absl::InvalidArgumentError(absl::StrCat("hello.devices: must list 1..",
                                                   kMaxDevicesPerWorker, " devices, got ",
                                                   hello.devices_size()));
  }
  for (int i = 0; i < hello.devices_size(); ++i) {
    const v1::Device& device = hello.devices(i);
    if (absl::Status s = ValidateDeviceName(device.name()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("hello.devices[", i, "].name: ", s.message()));
    }
    for (int j = 0; j < i; ++j) {
      if (hello.devices(j).name() == device.name()) {
        return absl::InvalidArgumentError(
            absl::StrCat("hello.devices[", i, "].name: \"", device.name(), "\" listed twice"));
      }
    }
    if (device.slots() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hello.devices[", i, "].slots: must be >= 0, got ", device.slots()));
    }
  }
  if (hello.cpu_threads() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hello.cpu_threads: must be >= 0, got ", hello.cpu_threads()));
  }
  return absl::OkStatus();
}

v1::TrialFailure Failure(v1::FailureCode code, std::string message) {
  v1::TrialFailure failure;
  failure.set_code(code);
  failure.set_message(std::move(message));
  return failure;
}

const char* MessageKind(const v1::WorkerMessage& message) {
  switch (message.message_case()) {
    case v1::WorkerMessage::kHello:
      return "hello";
    case v1::WorkerMessage::kHeartbeat:
      return "heartbeat";
    case v1::WorkerMessage::kTrialEvent:
      return "trial_event";
    case v1::WorkerMessage::kDraining:
      return "draining";
    default:
      return "unknown";
  }
}

}  // namespace

// ---- Sessions -----------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<WorkerSession>> Scheduler::ConnectWorker(
    const v1::WorkerHello& hello) {
  if (absl::Status s = ValidateHello(hello); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("scheduler shutting down");
  std::unique_ptr<WorkerRecord>& slot = workers_[hello.worker_id()];
  if (slot == nullptr) slot = std::make_unique<WorkerRecord>();
  WorkerRecord& worker = *slot;
  if (worker.session != nullptr) {
    worker.session->Close(absl::AbortedError("replaced by a newer session of the same worker"));
  }
  worker.hello = hello;
  worker.draining = false;
  worker.free_memory.clear();
  for (const v1::Device& device : hello.devices()) {
    worker.free_memory[device.name()] = device.free_memory_bytes();
  }
  worker.session = std::make_shared<WorkerSession>(hello.worker_id(), next_session_id_++);
  worker.last_message = clock_->Now();

  v1::SchedulerMessage accepted_message;
  v1::WorkerAccepted* accepted = accepted_message.mutable_accepted();
  *accepted->mutable_heartbeat_interval() = ToProtoDuration(options_.heartbeat_interval);
  *accepted->mutable_lease_timeout() = ToProtoDuration(options_.lease_timeout);
  std::vector<v1::RunningTrial> stale;
  const absl::Time now = clock_->Now();
  for (const v1::RunningTrial& running : hello.running()) {
    auto lease = leases_.find(LeaseKey(running.trial_id(), running.attempt()));
    auto trial = trials_.find(running.trial_id());
    const bool current = lease != leases_.end() && lease->second.worker_id == hello.worker_id() &&
                         trial != trials_.end() && IsActive(trial->second->trial.state()) &&
                         trial->second->trial.attempt() == running.attempt();
    if (current) {
      lease->second.last_seen = now;
      *accepted->add_reattached() = running;
    } else {
      stale.push_back(running);
    }
  }
  worker.session->Send(std::move(accepted_message));
  for (const v1::RunningTrial& running : stale) {
    SendCancel(running.trial_id(), running.attempt(), hello.worker_id(),
               "not the current attempt of its trial any more");
  }
  SettleUnlistedLeases(worker, hello);
  LOG(INFO) << "service=scheduler event=worker_connected worker=" << hello.worker_id()
            << " devices=" << hello.devices_size() << " reattached=" << accepted->reattached_size()
            << " canceled=" << stale.size();
  int connected = 0;
  for (const auto& [id, record] : workers_) connected += record->session != nullptr ? 1 : 0;
  metrics_->workers_connected.Set(connected);
  dispatch_needed_ = true;
  Dispatch();
  // Dispatch returns early when nothing waits; the new worker's slots still count.
  UpdateSlotGauges();
  return worker.session;
}

void Scheduler::SettleUnlistedLeases(WorkerRecord& worker, const v1::WorkerHello& hello) {
  absl::flat_hash_map<std::string, bool> listed;
  for (const v1::RunningTrial& running : hello.running()) {
    listed[LeaseKey(running.trial_id(), running.attempt())] = true;
  }
  std::vector<Lease> unlisted;
  for (const auto& [key, lease] : leases_) {
    if (lease.worker_id == hello.worker_id() && !listed.contains(key)) unlisted.push_back(lease);
  }
  if (unlisted.empty()) return;
  Changes changes(clock_);
  for (const Lease& lease : unlisted) {
    auto trial = trials_.find(lease.trial_id);
    const bool current = trial != trials_.end() &&
                         trial->second->trial.attempt() == lease.attempt &&
                         IsActive(trial->second->trial.state());
    if (current && trial->second->trial.state() == v1::TRIAL_STATE_ASSIGNED) {
      // The assignment may have been lost with the old stream (or a scheduler restart):
      // send it again; a worker already holding the attempt ignores the repeat.
      Lease& resent = leases_[LeaseKey(lease.trial_id, lease.attempt)];
      resent.last_seen = changes.now();
      resent.assigned = pipeline_->Barrier();  // its clock waits for the send again
      v1::SchedulerMessage message;
      *message.mutable_assign()->mutable_trial() = TrialSpecOf(*trial->second);
      worker.session->Send(std::move(message), resent.assigned);
      continue;
    }
    ReleaseLease(lease.trial_id, lease.attempt);
    if (current) {
      FailAttempt(
          *trial->second,
          Failure(v1::FAILURE_CODE_INFRASTRUCTURE,
                  absl::StrCat("worker ", hello.worker_id(), " reconnected without attempt ",
                               lease.attempt, " (its agent restarted?)")),
          /*counts=*/true, changes);
    }
  }
  Commit(changes);
}

void Scheduler::DisconnectWorker(WorkerSession& session) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(session.worker_id());
  if (it == workers_.end() || it->second->session.get() != &session) return;
  DropSession(*it->second);
  LOG(INFO) << "service=scheduler event=worker_disconnected worker=" << session.worker_id()
            << " (its leases run out in " << options_.lease_timeout << " unless it reconnects)";
}

void Scheduler::DropSession(WorkerRecord& worker) {
  worker.session = nullptr;
  int connected = 0;
  for (const auto& [id, record] : workers_) connected += record->session != nullptr ? 1 : 0;
  metrics_->workers_connected.Set(connected);
  UpdateSlotGauges();
}

void Scheduler::CloseSilentSessions(absl::Time now) {
  for (auto& [id, worker] : workers_) {
    if (worker->session == nullptr || now - worker->last_message <= options_.lease_timeout) {
      continue;
    }
    const std::string why = absl::StrCat(
        "no message from worker ", id, " for ", absl::FormatDuration(now - worker->last_message),
        " (heartbeats are due every ", absl::FormatDuration(options_.heartbeat_interval), ")");
    LOG(WARNING) << "service=scheduler event=worker_silent worker=" << id << " error=\"" << why
                 << "\" (session closed: no new work; its leases run out)";
    worker->session->Close(absl::UnavailableError(why));
    DropSession(*worker);
  }
}

absl::Status Scheduler::HandleWorkerMessage(WorkerSession& session,
                                            const v1::WorkerMessage& message) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("scheduler shutting down");
  auto it = workers_.find(session.worker_id());
  if (it == workers_.end() || it->second->session.get() != &session) {
    return absl::AbortedError("this session was replaced by a newer one of the same worker");
  }
  WorkerRecord& worker = *it->second;
  worker.last_message = clock_->Now();
  metrics_->worker_messages.Add({{"kind", MessageKind(message)}}).Increment();
  switch (message.message_case()) {
    case v1::WorkerMessage::kHeartbeat:
      HandleHeartbeat(worker, message.heartbeat());
      break;
    case v1::WorkerMessage::kTrialEvent:
      HandleTrialEvent(worker, session, message.trial_event());
      break;
    case v1::WorkerMessage::kDraining:
      HandleDraining(worker, session, message.draining());
      break;
    case v1::WorkerMessage::kHello:
      return absl::InvalidArgumentError("hello: sent twice in one session");
    default:
      return absl::InvalidArgumentError("worker message: empty or of an unknown kind");
  }
  Dispatch();
  if (slots_dirty_) UpdateSlotGauges();
  return absl::OkStatus();
}

void Scheduler::HandleHeartbeat(WorkerRecord& worker, const v1::Heartbeat& heartbeat) {
  const absl::Time now = clock_->Now();
  for (const v1::DeviceStatus& device : heartbeat.devices()) {
    auto it = worker.free_memory.find(device.name());
    if (it != worker.free_memory.end()) it->second = device.free_memory_bytes();
  }
  for (const v1::RunningTrial& running : heartbeat.running()) {
    auto lease = leases_.find(LeaseKey(running.trial_id(), running.attempt()));
    auto trial = trials_.find(running.trial_id());
    const bool leased =
        lease != leases_.end() && lease->second.worker_id == worker.hello.worker_id();
    if (leased) lease->second.last_seen = now;
    const bool current = leased && trial != trials_.end() &&
                         IsActive(trial->second->trial.state()) &&
                         trial->second->trial.attempt() == running.attempt();
    // Cancels repeat while the worker still lists the attempt (one may have been lost
    // with a broken stream).
    if (!current) {
      SendCancel(running.trial_id(), running.attempt(), worker.hello.worker_id(),
                 "not the current attempt of its trial any more");
    }
  }
  dispatch_needed_ = true;  // free memory may have changed
}

void Scheduler::HandleTrialEvent(WorkerRecord& worker, WorkerSession& session,
                                 const v1::TrialEvent& event) {
  v1::SchedulerMessage ack_message;
  v1::EventAck* ack = ack_message.mutable_ack();
  ack->set_trial_id(event.trial_id());
  ack->set_attempt(event.attempt());
  ack->set_event_sequence(event.event_sequence());
  const std::string& worker_id = worker.hello.worker_id();
  if (event.has_intermediate()) metrics_->metric_messages.Increment();

  auto found = trials_.find(event.trial_id());
  auto lease = leases_.find(LeaseKey(event.trial_id(), event.attempt()));
  const bool leased = lease != leases_.end() && lease->second.worker_id == worker_id;
  if (found == trials_.end() || found->second->trial.attempt() != event.attempt() || !leased) {
    // Fenced: an unknown trial, an older attempt, or one no longer leased to this
    // worker. Acknowledged so the worker stops re-sending it; stopped if it still runs.
    metrics_->fenced_events.Increment();
    if (!event.has_finished()) {
      SendCancel(event.trial_id(), event.attempt(), worker_id,
                 "not the current attempt of its trial any more");
    } else if (leased) {
      ReleaseLease(event.trial_id(), event.attempt());
    }
    session.Send(std::move(ack_message), pipeline_->Barrier());
    return;
  }
  TrialRecord& trial = *found->second;
  if (event.event_sequence() <= trial.acked_event_sequence) {
    // A re-sent event already committed: acknowledge again, change nothing.
    session.Send(std::move(ack_message), pipeline_->Barrier());
    return;
  }
  lease->second.last_seen = clock_->Now();
  Changes changes(clock_);
  trial.acked_event_sequence = event.event_sequence();
  const bool active = IsActive(trial.trial.state());
  if (!active) {
    // The scheduler already ended it (stop, assessor, timeout); only the slot is left.
    if (event.has_finished()) ReleaseLease(trial.trial.id(), trial.trial.attempt());
    changes.TrialRow(trial);
  } else if (event.has_started()) {
    if (trial.trial.state() == v1::TRIAL_STATE_ASSIGNED) {
      SetTrialState(trial, v1::TRIAL_STATE_RUNNING);
      *trial.trial.mutable_start_time() = ToProtoTime(changes.now());
    }
    if (!event.started().devices().empty())
      *trial.trial.mutable_devices() = event.started().devices();
    changes.Trial(trial);
  } else if (event.has_intermediate()) {
    if (trial.trial.state() == v1::TRIAL_STATE_ASSIGNED) {
      SetTrialState(trial, v1::TRIAL_STATE_RUNNING);
      *trial.trial.mutable_start_time() = ToProtoTime(changes.now());
      changes.Trial(trial);
    }
    // No trial row for a plain report: its metric row is keyed by (trial, attempt, step),
    // so if a crash loses the acked sequence, the re-sent report replaces itself.
    const v1::MetricReport& report = event.intermediate();
    auto same_step =
        std::find_if(trial.intermediate.begin(), trial.intermediate.end(),
                     [&](const v1::MetricReport& r) { return r.step() == report.step(); });
    if (same_step != trial.intermediate.end()) {
      *same_step = report;
    } else {
      trial.intermediate.push_back(report);
    }
    changes.Metric(trial, report, /*final_report=*/false);
    const v1::ObjectiveSpec& objective = trial.experiment->experiment.spec().objective();
    // A NaN or infinite epoch (diverged fine-tuning) is stored and shown, but not told
    // to the tuner: it refuses the whole batch of observations holding one.
    std::optional<double> value = MetricValue(report, objective.primary().metric());
    if (value.has_value() && std::isfinite(*value)) {
      v1::Observation observation;
      observation.set_parameter_id(trial.trial.parameter_id());
      observation.set_kind(v1::OBSERVATION_KIND_INTERMEDIATE);
      observation.set_step(report.step());
      observation.set_value(*value);
      observation.set_attempt(trial.trial.attempt());
      Observe(*trial.experiment, std::move(observation));
    }
  } else if (event.has_checkpoint()) {
    KeepCheckpoint(trial, event.checkpoint());
    changes.TrialRow(trial);
  } else if (event.has_finished()) {
    ReleaseLease(trial.trial.id(), trial.trial.attempt());
    FinishTrial(trial, event.finished(), changes);
  } else {
    changes.TrialRow(trial);
  }
  session.Send(std::move(ack_message), Commit(changes));
}

void Scheduler::KeepCheckpoint(TrialRecord& trial, const v1::TrialCheckpoint& checkpoint) {
  if (checkpoint.epoch() < 1 || checkpoint.artifact().sha256().empty()) return;
  // Within an attempt epochs only grow, so an older or repeated one is ignored. A newer
  // attempt's replaces it even with a lower epoch: that attempt started afresh because
  // the kept one could not be used (a resumed attempt's epochs start after it anyway).
  if (trial.trial.has_checkpoint() && trial.trial.checkpoint().attempt() == trial.trial.attempt() &&
      trial.trial.checkpoint().epoch() >= checkpoint.epoch()) {
    return;
  }
  v1::TrialCheckpoint* kept = trial.trial.mutable_checkpoint();
  kept->set_epoch(checkpoint.epoch());
  *kept->mutable_artifact() = checkpoint.artifact();
  kept->set_attempt(trial.trial.attempt());
  // Events of an attempt arrive in order: what it reported so far came before this.
  *kept->mutable_reports() = {trial.intermediate.begin(), trial.intermediate.end()};
}

void Scheduler::HandleDraining(WorkerRecord& worker, WorkerSession& session,
                               const v1::WorkerDraining& draining) {
  worker.draining = true;
  Changes changes(clock_);
  for (const v1::RunningTrial& running : draining.handed_back()) {
    auto lease = leases_.find(LeaseKey(running.trial_id(), running.attempt()));
    if (lease == leases_.end() || lease->second.worker_id != worker.hello.worker_id()) continue;
    ReleaseLease(running.trial_id(), running.attempt());
    auto trial = trials_.find(running.trial_id());
    if (trial == trials_.end() || trial->second->trial.attempt() != running.attempt() ||
        !IsActive(trial->second->trial.state())) {
      continue;
    }
    FailAttempt(*trial->second,
                Failure(v1::FAILURE_CODE_INFRASTRUCTURE,
                        absl::StrCat("handed back by draining worker ", worker.hello.worker_id(),
                                     " (", draining.reason(), ")")),
                /*counts=*/false, changes);
  }
  LOG(INFO) << "service=scheduler event=worker_draining worker=" << worker.hello.worker_id()
            << " reason=\"" << draining.reason() << "\" handed_back=" << draining.handed_back_size()
            << " finishing=" << draining.finishing_size();
  Commit(changes);
  UpdateSlotGauges();
}

// ---- Trial transitions --------------------------------------------------------------

void Scheduler::SetTrialState(TrialRecord& trial, v1::TrialState state) {
  ExperimentRecord& experiment = *trial.experiment;
  const v1::TrialState from = trial.trial.state();
  if (from == state) return;
  auto count = [&](v1::TrialState s, int delta) {
    v1::TrialCounts& c = experiment.counts;
    switch (s) {
      case v1::TRIAL_STATE_WAITING:
        c.set_waiting(c.waiting() + delta);
        break;
      case v1::TRIAL_STATE_ASSIGNED:
      case v1::TRIAL_STATE_RUNNING:
        c.set_running(c.running() + delta);
        break;
      case v1::TRIAL_STATE_SUCCEEDED:
        c.set_succeeded(c.succeeded() + delta);
        break;
      case v1::TRIAL_STATE_FAILED:
        c.set_failed(c.failed() + delta);
        break;
      case v1::TRIAL_STATE_EARLY_STOPPED:
        c.set_early_stopped(c.early_stopped() + delta);
        break;
      case v1::TRIAL_STATE_CANCELED:
        c.set_canceled(c.canceled() + delta);
        break;
      default:
        break;
    }
  };
  count(from, -1);
  count(state, +1);
  experiment.active += (IsActive(state) ? 1 : 0) - (IsActive(from) ? 1 : 0);
  if (from == v1::TRIAL_STATE_WAITING) experiment.waiting.erase(trial.trial.sequence());
  if (state == v1::TRIAL_STATE_WAITING) {
    experiment.waiting[trial.trial.sequence()] = &trial;
    dispatch_needed_ = true;
  }
  trial.trial.set_state(state);
  metrics_->TrialStateChanged(from, state);
}

void Scheduler::EndTrial(TrialRecord& trial, v1::TrialState state, const v1::TrialFailure* failure,
                         Changes& changes) {
  SetTrialState(trial, state);
  *trial.trial.mutable_end_time() = ToProtoTime(changes.now());
  if (failure != nullptr) {
    *trial.trial.mutable_failure() = *failure;
  } else {
    trial.trial.clear_failure();
  }
  if (trial.trial.attempts_size() > 0) {
    v1::TrialAttempt& attempt = *trial.trial.mutable_attempts(trial.trial.attempts_size() - 1);
    if (!attempt.has_end_time()) *attempt.mutable_end_time() = ToProtoTime(changes.now());
    if (failure != nullptr && !attempt.has_failure()) *attempt.mutable_failure() = *failure;
  }
  changes.Trial(trial);
  if (state != v1::TRIAL_STATE_SUCCEEDED) {
    v1::Observation observation;
    observation.set_parameter_id(trial.trial.parameter_id());
    observation.set_kind(v1::OBSERVATION_KIND_ABANDONED);
    observation.set_attempt(trial.trial.attempt());
    Observe(*trial.experiment, std::move(observation));
  }
  Wake(*trial.experiment);
  LOG(INFO) << "service=scheduler event=trial_ended trial=" << trial.trial.id()
            << " state=" << v1::TrialState_Name(state) << " attempt=" << trial.trial.attempt()
            << (failure != nullptr ? absl::StrCat(" code=", v1::FailureCode_Name(failure->code()),
                                                  " message=\"", failure->message(), "\"")
                                   : "");
}

void Scheduler::FinishTrial(TrialRecord& trial, const v1::TrialFinished& finished,
                            Changes& changes) {
  ExperimentRecord& experiment = *trial.experiment;
  const v1::ObjectiveSpec& objective = experiment.experiment.spec().objective();
  if (finished.state() == v1::TRIAL_STATE_SUCCEEDED) {
    v1::MetricReport report = finished.final_report();
    if (trial.trial.baseline()) {
      // The baseline only measures: it is neither scored nor told to the tuner.
      *trial.trial.mutable_final_report() = report;
      *trial.trial.mutable_results() = finished.results();
      changes.Metric(trial, report, /*final_report=*/true);
      EndTrial(trial, v1::TRIAL_STATE_SUCCEEDED, nullptr, changes);
      return;
    }
    if (experiment.baseline != nullptr && !experiment.AwaitingBaseline()) {
      AddRelativeMetrics(experiment.baseline->trial.final_report(), report);
    }
    if (absl::Status check = CheckFinalReport(objective, report); !check.ok()) {
      *trial.trial.mutable_final_report() = report;
      const v1::TrialFailure failure =
          Failure(v1::FAILURE_CODE_INVALID_INPUT, std::string(check.message()));
      EndTrial(trial, v1::TRIAL_STATE_FAILED, &failure, changes);
      return;
    }
    *trial.trial.mutable_final_report() = report;
    *trial.trial.mutable_results() = finished.results();
    changes.Metric(trial, report, /*final_report=*/true);
    EndTrial(trial, v1::TRIAL_STATE_SUCCEEDED, nullptr, changes);
    v1::Observation observation;
    observation.set_parameter_id(trial.trial.parameter_id());
    observation.set_kind(v1::OBSERVATION_KIND_FINAL);
    observation.set_value(*MetricValue(report, objective.primary().metric()));
    *observation.mutable_metrics() = report.metrics();
    observation.set_attempt(trial.trial.attempt());
    Observe(experiment, std::move(observation));
    // The best feasible trial so far.
    const std::optional<TrialScore> score = ScoreOf(objective, trial.trial);
    auto best = trials_.find(experiment.experiment.best_trial_id());
    const std::optional<TrialScore> best_score =
        best == trials_.end() ? std::nullopt : ScoreOf(objective, best->second->trial);
    if (score.has_value() && score->feasible &&
        (!best_score.has_value() || !best_score->feasible ||
         RanksBefore(objective, *score, *best_score))) {
      experiment.experiment.set_best_trial_id(trial.trial.id());
      experiment.experiment.set_version(experiment.experiment.version() + 1);
      metrics_->BestTrialChanged(experiment.experiment, score->value);
      changes.Experiment(experiment, SnapshotOf(experiment));
    }
    return;
  }
  v1::TrialFailure failure = finished.failure();
  if (failure.code() == v1::FAILURE_CODE_UNSPECIFIED) {
    failure.set_code(finished.state() == v1::TRIAL_STATE_EARLY_STOPPED ? v1::FAILURE_CODE_TIMEOUT
                                                                       : v1::FAILURE_CODE_CRASH);
  }
  if (failure.message().empty()) {
    failure.set_message(absl::StrCat("the worker reported ", v1::TrialState_Name(finished.state()),
                                     " without a message"));
  }
  FailAttempt(trial, failure, /*counts=*/true, changes);
}

void Scheduler::StartNewAttempt(TrialRecord& trial, Changes& changes) {
  trial.trial.set_attempt(trial.trial.attempt() + 1);
  trial.trial.add_attempts()->set_attempt(trial.trial.attempt());
  trial.trial.clear_worker_id();
  trial.trial.clear_devices();
  trial.trial.clear_start_time();
  trial.intermediate.clear();
  trial.acked_event_sequence = 0;
  trial.waiting_since = changes.now();
  SetTrialState(trial, v1::TRIAL_STATE_WAITING);
  changes.Trial(trial);
}

void Scheduler::FailAttempt(TrialRecord& trial, const v1::TrialFailure& failure, bool counts,
                            Changes& changes) {
  const AttemptOutcome outcome = OutcomeOf(failure.code());
  const v1::ExperimentLimits& limits = trial.experiment->experiment.spec().limits();
  int retries_used = 0;
  for (const v1::TrialAttempt& attempt : trial.trial.attempts()) {
    retries_used += attempt.counted_as_retry() ? 1 : 0;
  }
  v1::TrialAttempt* current = trial.trial.attempts_size() > 0
                                  ? trial.trial.mutable_attempts(trial.trial.attempts_size() - 1)
                                  : trial.trial.add_attempts();
  const bool retryable =
      outcome == AttemptOutcome::kRetry || outcome == AttemptOutcome::kRetryWithMoreMemory;
  const bool retries_left = retries_used < EffectiveMaxRetries(limits.max_retries());
  const bool memory_ok = outcome != AttemptOutcome::kRetryWithMoreMemory ||
                         SomeDeviceHasMore(trial, current->free_memory_bytes());
  const bool running_experiment =
      trial.experiment->experiment.state() == v1::EXPERIMENT_STATE_RUNNING;
  if (retryable && running_experiment && (!counts || (retries_left && memory_ok))) {
    *current->mutable_end_time() = ToProtoTime(changes.now());
    *current->mutable_failure() = failure;
    current->set_counted_as_retry(counts);
    if (counts) {
      metrics_->retries.Add({{"code", v1::FailureCode_Name(failure.code())}}).Increment();
    }
    StartNewAttempt(trial, changes);
    LOG(INFO) << "service=scheduler event=trial_requeued trial=" << trial.trial.id()
              << " attempt=" << trial.trial.attempt()
              << " code=" << v1::FailureCode_Name(failure.code()) << " counted=" << counts
              << " message=\"" << failure.message() << "\"";
    return;
  }
  v1::TrialFailure final_failure = failure;
  v1::TrialState state = v1::TRIAL_STATE_FAILED;
  if (outcome == AttemptOutcome::kEarlyStop) state = v1::TRIAL_STATE_EARLY_STOPPED;
  if (outcome == AttemptOutcome::kCancel) state = v1::TRIAL_STATE_CANCELED;
  if (retryable && running_experiment && !retries_left) {
    final_failure.set_message(absl::StrCat(failure.message(), " (gave up after ",
                                           trial.trial.attempt(), " attempts; max_retries ",
                                           EffectiveMaxRetries(limits.max_retries()), ")"));
  } else if (retryable && running_experiment && !memory_ok) {
    final_failure.set_message(absl::StrCat(failure.message(),
                                           " (no connected device has more free memory than "
                                           "this attempt had)"));
  } else if (retryable && !running_experiment) {
    state = v1::TRIAL_STATE_CANCELED;
  }
  *current->mutable_failure() = failure;
  EndTrial(trial, state, &final_failure, changes);
}

bool Scheduler::SomeDeviceHasMore(const TrialRecord& trial, int64_t free_memory) const {
  const v1::ResourceSpec& resources = trial.experiment->experiment.spec().trial_resources();
  if (resources.gpus() == 0) return false;  // a CPU attempt cannot get more memory elsewhere
  for (const auto& [id, worker] : workers_) {
    if (worker->session == nullptr || worker->draining) continue;
    for (const v1::Device& device : worker->hello.devices()) {
      auto it = worker->free_memory.find(device.name());
      if (IsGpuDevice(device.name()) && device.slots() > 0 && it != worker->free_memory.end() &&
          it->second > free_memory) {
        return true;
      }
    }
  }
  return false;
}

void Scheduler::SendCancel(const std::string& trial_id, int32_t attempt,
                           const std::string& worker_id, const std::string& reason) {
  auto worker = workers_.find(worker_id);
  if (worker == workers_.end() || worker->second->session == nullptr) return;
  v1::SchedulerMessage message;
  v1::CancelTrial* cancel = message.mutable_cancel();
  cancel->set_trial_id(trial_id);
  cancel->set_attempt(attempt);
  cancel->set_reason(reason);
  // Behind every gate already queued, so it never overtakes the attempt's assignment.
  worker->second->session->Send(std::move(message));
}

void Scheduler::ReleaseLease(const std::string& trial_id, int32_t attempt) {
  if (leases_.erase(LeaseKey(trial_id, attempt)) > 0) {
    dispatch_needed_ = true;
    slots_dirty_ = true;
  }
}

// ---- Placement ----------------------------------------------------------------------

v1::TrialSpec Scheduler::TrialSpecOf(const TrialRecord& trial) const {
  const v1::Experiment& experiment = trial.experiment->experiment;
  const v1::ExperimentSpec& spec = experiment.spec();
  v1::TrialSpec out;
  out.set_experiment_id(experiment.id());
  out.set_trial_id(trial.trial.id());
  out.set_attempt(trial.trial.attempt());
  out.set_parameter_id(trial.trial.parameter_id());
  out.set_parameters_json(trial.trial.parameters_json());
  out.set_baseline(trial.trial.baseline());
  *out.mutable_model() = spec.model();
  *out.mutable_recipe() = spec.recipe();
  *out.mutable_export_options() = spec.export_options();
  *out.mutable_devices() = trial.trial.devices();
  if (spec.limits().has_max_trial_duration()) {
    *out.mutable_max_duration() = spec.limits().max_trial_duration();
  }
  // Distinct per trial, the same for every attempt of it.
  out.set_seed(spec.seed() ^
               (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(trial.trial.sequence() + 1)));
  *out.mutable_objective() = spec.objective();
  const v1::TrialAttempt& attempt = trial.trial.attempts(trial.trial.attempts_size() - 1);
  out.set_cpu_threads(std::max(1, attempt.cpu_threads()));
  if (spec.recipe().checkpoint_epochs() && trial.trial.has_checkpoint()) {
    *out.mutable_resume_from() = trial.trial.checkpoint();
  }
  return out;
}

void Scheduler::Dispatch() {
  if (!dispatch_needed_ || shutdown_) return;
  dispatch_needed_ = false;
  std::vector<ExperimentQueue> queues;
  for (const std::string& id : experiment_order_) {
    ExperimentRecord& experiment = *experiments_[id];
    if (experiment.experiment.state() != v1::EXPERIMENT_STATE_RUNNING ||
        experiment.waiting.empty()) {
      continue;
    }
    ExperimentQueue& queue = queues.emplace_back();
    queue.experiment_id = id;
    for (const auto& [sequence, trial] : experiment.waiting) {
      WaitingAttempt& waiting = queue.waiting.emplace_back();
      waiting.trial_id = trial->trial.id();
      waiting.resources = experiment.experiment.spec().trial_resources();
      const int n = trial->trial.attempts_size();
      if (n >= 2 &&
          trial->trial.attempts(n - 2).failure().code() == v1::FAILURE_CODE_OUT_OF_MEMORY) {
        waiting.min_free_memory_exclusive = trial->trial.attempts(n - 2).free_memory_bytes();
      }
    }
  }
  if (queues.empty()) return;
  // Usage per worker and device from the leases.
  LeaseUsage usage = UsageByLeases();
  std::vector<WorkerView> views;
  for (const auto& [id, worker] : workers_) {
    if (worker->session == nullptr || worker->draining) continue;
    WorkerView& view = views.emplace_back();
    view.worker_id = id;
    view.labels.insert(worker->hello.labels().begin(), worker->hello.labels().end());
    view.cpu_threads = worker->hello.cpu_threads();
    view.used_cpu_threads = usage.threads[id];
    for (const v1::Device& device : worker->hello.devices()) {
      DeviceView& d = view.devices.emplace_back();
      d.name = device.name();
      d.slots = device.slots();
      d.used_slots = usage.slots[id][device.name()];
      d.free_memory_bytes = worker->free_memory[device.name()];
    }
  }
  if (views.empty()) return;
  std::vector<Placement> placements = placement_->Place(queues, views);
  if (placements.empty()) return;
  Changes changes(clock_);
  std::vector<std::pair<std::string, v1::SchedulerMessage>> messages;
  for (const Placement& placement : placements) {
    TrialRecord& trial = *trials_[placement.trial_id];
    v1::TrialAttempt& attempt = *trial.trial.mutable_attempts(trial.trial.attempts_size() - 1);
    attempt.set_worker_id(placement.worker_id);
    *attempt.mutable_devices() = {placement.devices.begin(), placement.devices.end()};
    *attempt.mutable_assign_time() = ToProtoTime(changes.now());
    attempt.set_free_memory_bytes(placement.free_memory_bytes);
    attempt.set_cpu_threads(placement.cpu_threads);
    trial.trial.set_worker_id(placement.worker_id);
    *trial.trial.mutable_devices() = {placement.devices.begin(), placement.devices.end()};
    SetTrialState(trial, v1::TRIAL_STATE_ASSIGNED);
    changes.Trial(trial);
    Lease& lease = leases_[LeaseKey(trial.trial.id(), trial.trial.attempt())];
    lease.trial_id = trial.trial.id();
    lease.attempt = trial.trial.attempt();
    lease.worker_id = placement.worker_id;
    lease.devices = placement.devices;
    lease.cpu_threads = placement.cpu_threads;
    lease.last_seen = changes.now();
    metrics_->dispatch_latency.Observe(absl::ToDoubleSeconds(changes.now() - trial.waiting_since));
    v1::SchedulerMessage message;
    *message.mutable_assign()->mutable_trial() = TrialSpecOf(trial);
    messages.emplace_back(placement.worker_id, std::move(message));
  }
  std::shared_future<absl::Status> gate = Commit(changes);
  for (auto& [worker_id, message] : messages) {
    const v1::TrialSpec& assigned = message.assign().trial();
    leases_[LeaseKey(assigned.trial_id(), assigned.attempt())].assigned = gate;
    workers_[worker_id]->session->Send(std::move(message), gate);
  }
  UpdateSlotGauges();
}

Scheduler::LeaseUsage Scheduler::UsageByLeases() const {
  LeaseUsage usage;
  for (const auto& [key, lease] : leases_) {
    for (const std::string& device : lease.devices) ++usage.slots[lease.worker_id][device];
    usage.threads[lease.worker_id] += lease.cpu_threads;
  }
  return usage;
}

void Scheduler::UpdateSlotGauges() {
  slots_dirty_ = false;
  int busy[2] = {0, 0}, total[2] = {0, 0};
  LeaseUsage usage = UsageByLeases();
  for (const auto& [id, worker] : workers_) {
    if (worker->session == nullptr) continue;
    for (const v1::Device& device : worker->hello.devices()) {
      const int kind = IsGpuDevice(device.name()) ? 1 : 0;
      total[kind] += device.slots();
      busy[kind] += std::min(device.slots(), usage.slots[id][device.name()]);
    }
  }
  const char* kinds[2] = {"cpu", "gpu"};
  for (int kind = 0; kind < 2; ++kind) {
    metrics_->slots.Add({{"kind", kinds[kind]}, {"use", "busy"}}).Set(busy[kind]);
    metrics_->slots.Add({{"kind", kinds[kind]}, {"use", "free"}}).Set(total[kind] - busy[kind]);
  }
}

// ---- Maintenance --------------------------------------------------------------------

void Scheduler::Tick() {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  const absl::Time now = clock_->Now();
  metrics_->store_healthy.Set(pipeline_->health().ok() ? 1 : 0);
  CloseSilentSessions(now);
  // Overdue first: an attempt past its duration ends as a timeout, not as a lost lease.
  StopOverdueTrials(now);
  ExpireLeases(now);
  for (auto& [id, experiment] : experiments_) {
    const v1::ExperimentLimits& limits = experiment->experiment.spec().limits();
    if (experiment->experiment.state() == v1::EXPERIMENT_STATE_RUNNING &&
        limits.has_max_experiment_duration() &&
        RunningTime(*experiment) >= FromProtoDuration(limits.max_experiment_duration())) {
      Wake(*experiment);
    }
  }
  Dispatch();
  if (slots_dirty_) UpdateSlotGauges();
}

void Scheduler::ExpireLeases(absl::Time now) {
  std::vector<Lease> expired;
  for (auto& [key, lease] : leases_) {
    if (lease.assigned.valid() &&
        lease.assigned.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      lease.last_seen = now;  // not sent yet: the store has not made it durable
      continue;
    }
    if (now - lease.last_seen > options_.lease_timeout) expired.push_back(lease);
  }
  if (expired.empty()) return;
  Changes changes(clock_);
  for (const Lease& lease : expired) {
    ReleaseLease(lease.trial_id, lease.attempt);
    SendCancel(lease.trial_id, lease.attempt, lease.worker_id, "lease expired");
    auto trial = trials_.find(lease.trial_id);
    if (trial == trials_.end() || trial->second->trial.attempt() != lease.attempt ||
        !IsActive(trial->second->trial.state())) {
      continue;
    }
    auto worker = workers_.find(lease.worker_id);
    const bool connected = worker != workers_.end() && worker->second->session != nullptr;
    FailAttempt(
        *trial->second,
        Failure(v1::FAILURE_CODE_INFRASTRUCTURE,
                absl::StrCat("worker ", lease.worker_id,
                             connected ? " stopped reporting the attempt" : " lost (disconnected)",
                             ": no sign of it for ", absl::FormatDuration(options_.lease_timeout),
                             " (lease timeout)")),
        /*counts=*/true, changes);
  }
  Commit(changes);
}

void Scheduler::StopOverdueTrials(absl::Time now) {
  std::vector<TrialRecord*> overdue;
  for (const auto& [key, lease] : leases_) {
    auto trial = trials_.find(lease.trial_id);
    if (trial == trials_.end() || trial->second->trial.attempt() != lease.attempt) continue;
    const v1::Trial& t = trial->second->trial;
    const v1::ExperimentLimits& limits = trial->second->experiment->experiment.spec().limits();
    if (t.state() != v1::TRIAL_STATE_RUNNING || !limits.has_max_trial_duration() ||
        !t.has_start_time()) {
      continue;
    }
    const absl::Duration limit = FromProtoDuration(limits.max_trial_duration());
    if (limit > absl::ZeroDuration() &&
        now - FromProtoTime(t.start_time()) > limit + options_.trial_duration_grace) {
      overdue.push_back(trial->second.get());
    }
  }
  if (overdue.empty()) return;
  Changes changes(clock_);
  for (TrialRecord* trial : overdue) {
    const absl::Duration limit =
        FromProtoDuration(trial->experiment->experiment.spec().limits().max_trial_duration());
    SendCancel(trial->trial.id(), trial->trial.attempt(), trial->trial.worker_id(),
               "ran past max_trial_duration");
    const v1::TrialFailure failure =
        Failure(v1::FAILURE_CODE_TIMEOUT,
                absl::StrCat("ran past max_trial_duration (", absl::FormatDuration(limit), ")"));
    EndTrial(*trial, v1::TRIAL_STATE_EARLY_STOPPED, &failure, changes);
  }
  Commit(changes);
}

}  // namespace autocompress::scheduler
