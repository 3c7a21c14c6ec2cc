// Scheduler: construction, recovery from the store, and the ExperimentService side.
// Trials, workers and leases are in scheduler_workers.cc; the manager loop and the tuner
// in scheduler_manager.cc.
#include "scheduler_service/scheduler.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "prometheus/histogram.h"
#include "scheduler_service/experiment_spec_validation.h"
#include "scheduler_service/scheduler_records.h"
#include "scheduler_service/trial_ranking.h"

namespace autocompress::scheduler {
namespace {

constexpr int kDefaultExperimentPage = 50;
constexpr int kDefaultTrialPage = 100;
constexpr int kMaxPage = 1000;
constexpr int kWatchBatch = 256;

// A short, URL-safe, random id: 12 characters of [a-z0-9] (62 bits).
std::string NewExperimentId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  thread_local absl::BitGen bitgen;
  std::string id(12, 'a');
  id[0] = kAlphabet[absl::Uniform(bitgen, 0, 26)];  // starts with a letter
  for (size_t i = 1; i < id.size(); ++i) id[i] = kAlphabet[absl::Uniform(bitgen, 0, 36)];
  return id;
}

uint64_t NewSeed() {
  thread_local absl::BitGen bitgen;
  return absl::Uniform<uint64_t>(bitgen, 1, std::numeric_limits<uint64_t>::max());
}

bool IsFinal(v1::ExperimentState state) { return state != v1::EXPERIMENT_STATE_RUNNING; }

absl::StatusOr<int> PageSize(int requested, int fallback) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be >= 0, got ", requested));
  }
  return requested == 0 ? fallback : std::min(requested, kMaxPage);
}

absl::StatusOr<int64_t> ParseToken(const std::string& token) {
  int64_t value = 0;
  if (token.empty()) return -1;
  if (!absl::SimpleAtoi(token, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: \"", token, "\" is not a token this server issued"));
  }
  return value;
}

bool HasLabels(const v1::ExperimentSpec& spec,
               const google::protobuf::Map<std::string, std::string>& wanted) {
  for (const auto& [key, value] : wanted) {
    auto it = spec.labels().find(key);
    if (it == spec.labels().end() || it->second != value) return false;
  }
  return true;
}

}  // namespace

// ---- Changes ------------------------------------------------------------------------

v1::ExperimentEvent& Scheduler::Changes::NewEvent(ExperimentRecord& experiment) {
  StoredEvent& stored = batch_.events.emplace_back();
  stored.experiment_id = experiment.experiment.id();
  stored.event.set_sequence(++experiment.last_sequence);
  *stored.event.mutable_time() = ToProtoTime(now_);
  return stored.event;
}

void Scheduler::Changes::TrialRow(TrialRecord& trial) {
  batch_.trials.push_back({trial.trial, trial.acked_event_sequence});
}

void Scheduler::Changes::Trial(TrialRecord& trial) {
  TrialRow(trial);
  *NewEvent(*trial.experiment).mutable_trial() = trial.trial;
}

void Scheduler::Changes::Experiment(ExperimentRecord& experiment, const v1::Experiment& snapshot) {
  batch_.experiments.push_back({experiment.experiment, experiment.request_id});
  *NewEvent(experiment).mutable_experiment() = snapshot;
}

void Scheduler::Changes::Metric(TrialRecord& trial, const v1::MetricReport& report,
                                bool final_report) {
  if (!final_report) batch_.metrics.push_back({trial.trial.id(), trial.trial.attempt(), report});
  v1::TrialMetricEvent* metric = NewEvent(*trial.experiment).mutable_metric();
  metric->set_trial_id(trial.trial.id());
  *(final_report ? metric->mutable_final_report() : metric->mutable_intermediate()) = report;
}

// ---- Lifecycle ----------------------------------------------------------------------

Scheduler::Scheduler(Options options, TrialStore* store, TunerClient* tuner,
                     std::function<bool(const v1::ArtifactRef&)> artifact_present,
                     prometheus::Registry& registry)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      store_(store),
      tuner_(tuner),
      artifact_present_(std::move(artifact_present)),
      metrics_(std::make_unique<SchedulerMetrics>(registry)) {}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Open(
    Options options, TrialStore* store, TunerClient* tuner,
    std::function<bool(const v1::ArtifactRef&)> artifact_present, prometheus::Registry& registry) {
  ASSIGN_OR_RETURN(std::unique_ptr<PlacementPolicy> placement,
                   CreatePlacementPolicy(options.placement_policy));
  std::unique_ptr<Scheduler> scheduler(
      new Scheduler(std::move(options), store, tuner, std::move(artifact_present), registry));
  scheduler->placement_ = std::move(placement);
  RETURN_IF_ERROR(scheduler->Load());
  Scheduler* self = scheduler.get();
  scheduler->pipeline_ = std::make_unique<CommitPipeline>(
      store, scheduler->options_.commit,
      [self](const std::vector<StoredEvent>& events) { self->hub_.Publish(events); },
      [self](absl::Duration latency) {
        self->metrics_->commit_latency.Observe(absl::ToDoubleSeconds(latency));
      },
      [self](absl::Duration write) {
        self->metrics_->store_write.Observe(absl::ToDoubleSeconds(write));
      });
  {
    absl::MutexLock lock(&scheduler->mu_);
    for (const std::string& id : scheduler->experiment_order_) {
      ExperimentRecord& experiment = *scheduler->experiments_[id];
      if (experiment.experiment.state() == v1::EXPERIMENT_STATE_RUNNING) {
        scheduler->StartManager(experiment);
      }
    }
  }
  scheduler->ticker_ = std::thread([self] {
    for (;;) {
      {
        absl::MutexLock lock(&self->mu_);
        auto stopping = [](Scheduler* s)
                            ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->shutdown_; };
        if (self->mu_.AwaitWithTimeout(absl::Condition(+stopping, self),
                                       self->options_.tick_interval)) {
          return;
        }
      }
      self->Tick();
    }
  });
  return scheduler;
}

Scheduler::~Scheduler() { Shutdown(); }

void Scheduler::Shutdown() {
  absl::flat_hash_map<std::string, std::thread> managers;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    shutdown_ = true;
    managers.swap(managers_);
    for (auto& [id, worker] : workers_) {
      if (worker->session != nullptr) {
        worker->session->Close(absl::UnavailableError("scheduler shutting down"));
      }
    }
  }
  if (ticker_.joinable()) ticker_.join();
  for (auto& [id, thread] : managers) thread.join();
  // What is queued still commits; the pipeline itself goes with the scheduler, once the
  // server that calls it has stopped.
  if (pipeline_ != nullptr) {
    // Bounded: a store that keeps failing must not hold the process (what is
    // unacknowledged is re-sent by workers and clients after the restart).
    pipeline_->Barrier().wait_for(absl::ToChronoSeconds(options_.commit.shutdown_timeout));
  }
}

absl::Status Scheduler::Flush() { return pipeline_->Barrier().get(); }

absl::Status Scheduler::Load() {
  ASSIGN_OR_RETURN(StoredState state, store_->LoadAll());
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  for (StoredExperiment& stored : state.experiments) {
    auto record = std::make_unique<ExperimentRecord>();
    record->experiment = std::move(stored.experiment);
    record->request_id = std::move(stored.request_id);
    record->running_since = now;
    const std::string id = record->experiment.id();
    if (!record->request_id.empty()) experiment_by_request_[record->request_id] = id;
    auto last = state.last_event_sequence.find(id);
    record->last_sequence = last == state.last_event_sequence.end() ? 0 : last->second;
    hub_.SetLastSequence(id, record->last_sequence);
    metrics_->ExperimentStateChanged(v1::EXPERIMENT_STATE_UNSPECIFIED, record->experiment.state());
    experiments_[id] = std::move(record);
    experiment_order_.push_back(id);
  }
  std::sort(experiment_order_.begin(), experiment_order_.end(),
            [this](const std::string& a, const std::string& b) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              const v1::Experiment& x = experiments_[a]->experiment;
              const v1::Experiment& y = experiments_[b]->experiment;
              const absl::Time tx = FromProtoTime(x.create_time());
              const absl::Time ty = FromProtoTime(y.create_time());
              return tx != ty ? tx < ty : x.id() < y.id();
            });
  for (StoredTrial& stored : state.trials) {
    ExperimentRecord* experiment = FindExperiment(stored.trial.experiment_id());
    if (experiment == nullptr) {
      return absl::DataLossError(absl::StrCat("store: trial ", stored.trial.id(),
                                              " belongs to unknown experiment ",
                                              stored.trial.experiment_id()));
    }
    auto record = std::make_unique<TrialRecord>();
    record->trial = std::move(stored.trial);
    record->acked_event_sequence = stored.acked_event_sequence;
    record->experiment = experiment;
    record->waiting_since = now;
    const v1::Trial& trial = record->trial;
    if ((trial.state() == v1::TRIAL_STATE_ASSIGNED || trial.state() == v1::TRIAL_STATE_RUNNING) &&
        trial.attempts_size() > 0) {
      // Its worker gets one lease timeout to reconnect and re-attach it.
      const v1::TrialAttempt& attempt = trial.attempts(trial.attempts_size() - 1);
      Lease lease;
      lease.trial_id = trial.id();
      lease.attempt = trial.attempt();
      lease.worker_id = attempt.worker_id();
      lease.devices.assign(attempt.devices().begin(), attempt.devices().end());
      lease.cpu_threads = std::max(1, attempt.cpu_threads());
      lease.last_seen = now;
      leases_[LeaseKey(trial.id(), trial.attempt())] = std::move(lease);
    }
    if (trial.baseline()) {
      experiment->baseline = record.get();
    } else {
      experiment->by_parameter[trial.parameter_id()] = record.get();
    }
    experiment->trials.push_back(record.get());
    TrialRecord& added = *record;
    trials_[trial.id()] = std::move(record);
    const v1::TrialState state = added.trial.state();
    added.trial.set_state(v1::TRIAL_STATE_UNSPECIFIED);
    SetTrialState(added, state);
  }
  for (StoredMetric& metric : state.metrics) {
    auto it = trials_.find(metric.trial_id);
    if (it == trials_.end() || metric.attempt != it->second->trial.attempt()) continue;
    it->second->intermediate.push_back(std::move(metric.report));
  }
  for (auto& [id, experiment] : experiments_) {
    std::sort(experiment->trials.begin(), experiment->trials.end(),
              [](const TrialRecord* a, const TrialRecord* b) {
                return a->trial.sequence() < b->trial.sequence();
              });
    auto best = trials_.find(experiment->experiment.best_trial_id());
    if (best == trials_.end()) continue;
    const std::optional<TrialScore> score =
        ScoreOf(experiment->experiment.spec().objective(), best->second->trial);
    if (score.has_value()) metrics_->BestTrialChanged(experiment->experiment, score->value);
  }
  LOG(INFO) << "service=scheduler event=store_loaded experiments=" << experiments_.size()
            << " trials=" << trials_.size() << " leases_awaiting_workers=" << leases_.size();
  dispatch_needed_ = true;
  return absl::OkStatus();
}

// ---- Helpers ------------------------------------------------------------------------

Scheduler::ExperimentRecord* Scheduler::FindExperiment(const std::string& id) {
  auto it = experiments_.find(id);
  return it == experiments_.end() ? nullptr : it->second.get();
}

absl::StatusOr<Scheduler::ExperimentRecord*> Scheduler::LookUpExperiment(const std::string& id) {
  ExperimentRecord* experiment = FindExperiment(id);
  if (experiment == nullptr)
    return absl::NotFoundError(absl::StrCat("experiment ", id, " not found"));
  return experiment;
}

std::shared_future<absl::Status> Scheduler::Commit(Changes& changes) {
  return pipeline_->Submit(std::move(changes.batch()));
}

void Scheduler::Wake(ExperimentRecord& experiment) { experiment.wake = true; }

absl::Duration Scheduler::RunningTime(const ExperimentRecord& experiment) const {
  absl::Duration total = FromProtoDuration(experiment.experiment.running_time());
  if (experiment.experiment.state() == v1::EXPERIMENT_STATE_RUNNING) {
    total += std::max(absl::ZeroDuration(), clock_->Now() - experiment.running_since);
  }
  return total;
}

v1::Experiment Scheduler::SnapshotOf(const ExperimentRecord& experiment) const {
  v1::Experiment snapshot = experiment.experiment;
  *snapshot.mutable_trial_counts() = experiment.counts;
  *snapshot.mutable_running_time() = ToProtoDuration(RunningTime(experiment));
  return snapshot;
}

void Scheduler::SetExperimentState(ExperimentRecord& experiment, v1::ExperimentState state,
                                   const std::string& error, Changes& changes) {
  v1::Experiment& stored = experiment.experiment;
  const v1::ExperimentState from = stored.state();
  if (from == v1::EXPERIMENT_STATE_RUNNING && state != from) {
    *stored.mutable_running_time() = ToProtoDuration(RunningTime(experiment));
  }
  if (state == v1::EXPERIMENT_STATE_RUNNING) {
    experiment.running_since = changes.now();
    stored.clear_end_time();
    stored.clear_error();
  } else {
    *stored.mutable_end_time() = ToProtoTime(changes.now());
    stored.set_error(error);
  }
  stored.set_state(state);
  stored.set_version(stored.version() + 1);
  metrics_->ExperimentStateChanged(from, state);
  changes.Experiment(experiment, SnapshotOf(experiment));
  LOG(INFO) << "service=scheduler event=experiment_state experiment=" << stored.id()
            << " from=" << v1::ExperimentState_Name(from)
            << " to=" << v1::ExperimentState_Name(state)
            << (error.empty() ? "" : absl::StrCat(" error=\"", error, "\""));
}

void Scheduler::CancelActiveTrials(ExperimentRecord& experiment, const std::string& why,
                                   Changes& changes) {
  v1::TrialFailure failure;
  failure.set_code(v1::FAILURE_CODE_STOPPED);
  failure.set_message(why);
  for (TrialRecord* trial : experiment.trials) {
    if (!IsActive(trial->trial.state())) continue;
    if (trial->trial.state() != v1::TRIAL_STATE_WAITING) {
      SendCancel(trial->trial.id(), trial->trial.attempt(), trial->trial.worker_id(), why);
    }
    EndTrial(*trial, v1::TRIAL_STATE_CANCELED, &failure, changes);
  }
}

void Scheduler::StartManager(ExperimentRecord& experiment) {
  experiment.wake = true;
  if (experiment.manager_running || shutdown_) return;
  const std::string id = experiment.experiment.id();
  auto old = managers_.find(id);
  if (old != managers_.end()) {
    // The previous loop has ended (manager_running is false); reap its thread outside
    // the lock.
    std::thread finished = std::move(old->second);
    managers_.erase(old);
    mu_.Unlock();
    finished.join();
    mu_.Lock();
    if (experiment.manager_running || shutdown_) return;
  }
  experiment.manager_running = true;
  managers_[id] = std::thread([this, id] { ManageExperiment(id); });
}

absl::Status Scheduler::ApplyLimits(ExperimentRecord& experiment,
                                    const v1::ExperimentLimits& limits,
                                    const google::protobuf::FieldMask& mask) {
  struct Field {
    const char* path;
    void (*copy)(const v1::ExperimentLimits& from, v1::ExperimentLimits& to);
  };
  static constexpr Field kFields[] = {
      {"trial_concurrency",
       [](const v1::ExperimentLimits& f, v1::ExperimentLimits& t) {
         t.set_trial_concurrency(f.trial_concurrency());
       }},
      {"max_trial_number",
       [](const v1::ExperimentLimits& f, v1::ExperimentLimits& t) {
         t.set_max_trial_number(f.max_trial_number());
       }},
      {"max_experiment_duration",
       [](const v1::ExperimentLimits& f, v1::ExperimentLimits& t) {
         *t.mutable_max_experiment_duration() = f.max_experiment_duration();
       }},
      {"max_trial_duration",
       [](const v1::ExperimentLimits& f, v1::ExperimentLimits& t) {
         *t.mutable_max_trial_duration() = f.max_trial_duration();
       }},
      {"max_retries", [](const v1::ExperimentLimits& f,
                         v1::ExperimentLimits& t) { t.set_max_retries(f.max_retries()); }},
  };
  v1::ExperimentSpec spec = experiment.experiment.spec();
  for (const std::string& path : mask.paths()) {
    const Field* field = nullptr;
    for (const Field& candidate : kFields) {
      if (path == candidate.path) field = &candidate;
    }
    if (field == nullptr) {
      std::vector<std::string> known;
      for (const Field& candidate : kFields) known.push_back(candidate.path);
      return absl::InvalidArgumentError(absl::StrCat("update_mask: unknown path \"", path,
                                                     "\"; known: ", absl::StrJoin(known, ", ")));
    }
    field->copy(limits, *spec.mutable_limits());
  }
  std::vector<SpecIssue> issues;
  for (SpecIssue& issue :
       ValidateExperimentSpec(spec, [](const v1::ArtifactRef&) { return true; })) {
    if (issue.path.rfind("spec.limits", 0) == 0) issues.push_back(std::move(issue));
  }
  if (!issues.empty()) return absl::InvalidArgumentError(FormatIssues(issues));
  *experiment.experiment.mutable_spec()->mutable_limits() = spec.limits();
  return absl::OkStatus();
}

// ---- ExperimentService --------------------------------------------------------------

absl::Status Scheduler::ValidateForCreate(const v1::ExperimentSpec& spec,
                                          const std::string& study_id, v1::StudyConfig* study) {
  std::vector<SpecIssue> issues = ValidateExperimentSpec(spec, artifact_present_);
  if (!spec.search_space_json().empty() && !spec.tuner().name().empty()) {
    v1::ValidateSearchSpaceRequest request;
    request.set_search_space_json(spec.search_space_json());
    request.set_algorithm(spec.tuner().name());
    absl::StatusOr<v1::ValidateSearchSpaceResponse> response = tuner_->ValidateSearchSpace(request);
    if (!response.ok()) {
      return absl::UnavailableError(absl::StrCat("the tuner could not validate the search space (",
                                                 response.status().message(),
                                                 "); retry with the same request_id"));
    }
    for (const v1::ValidationIssue& issue : response->issues()) {
      issues.push_back({issue.path().empty()
                            ? std::string("spec.search_space_json")
                            : absl::StrCat("spec.search_space_json.", issue.path()),
                        issue.message()});
    }
  }
  if (!issues.empty()) return absl::InvalidArgumentError(FormatIssues(issues));
  study->set_search_space_json(spec.search_space_json());
  *study->mutable_tuner() = spec.tuner();
  *study->mutable_assessor() = spec.assessor();
  study->set_seed(spec.seed());
  *study->mutable_objective() = spec.objective();
  // The study is created now so that the tuner's own checks (tuner and assessor
  // arguments) reach the user as an answer instead of a FAILED experiment.
  v1::CreateStudyRequest create;
  create.set_study_id(study_id);
  *create.mutable_config() = *study;
  absl::StatusOr<v1::CreateStudyResponse> created = tuner_->CreateStudy(create);
  if (created.ok()) return absl::OkStatus();
  if (absl::IsInvalidArgument(created.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: the tuner refused it: ", created.status().message()));
  }
  return absl::UnavailableError(absl::StrCat("the tuner could not create the study (",
                                             created.status().message(),
                                             "); retry with the same request_id"));
}

absl::StatusOr<v1::Experiment> Scheduler::CreateExperiment(
    const v1::CreateExperimentRequest& request) {
  // A retry of a creation answers once that creation is durable (its commit, `gate`;
  // invalid for an experiment loaded from the store).
  std::shared_future<absl::Status> gate;
  v1::Experiment snapshot;
  bool retried = false;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("scheduler shutting down");
    auto known = experiment_by_request_.find(request.request_id());
    if (!request.request_id().empty() && known != experiment_by_request_.end()) {
      retried = true;
      gate = experiments_[known->second]->created;
      snapshot = SnapshotOf(*experiments_[known->second]);
    }
  }
  if (retried) {
    if (gate.valid()) RETURN_IF_ERROR(gate.get());
    return snapshot;
  }
  if (absl::Status health = pipeline_->health(); !health.ok()) {
    return absl::UnavailableError(
        absl::StrCat("the scheduler's store is failing, no new work accepted: ", health.message()));
  }
  v1::ExperimentSpec spec = request.spec();
  if (spec.seed() == 0) spec.set_seed(NewSeed());
  const std::string id = NewExperimentId();
  v1::StudyConfig study;
  RETURN_IF_ERROR(ValidateForCreate(spec, id, &study));

  {
    absl::MutexLock lock(&mu_);
    auto known = experiment_by_request_.find(request.request_id());
    if (!request.request_id().empty() && known != experiment_by_request_.end()) {
      // A concurrent retry won; the study made for this call is dropped.
      v1::DeleteStudyRequest drop;
      drop.set_study_id(id);
      (void)tuner_->DeleteStudy(drop);
      retried = true;
      gate = experiments_[known->second]->created;
      snapshot = SnapshotOf(*experiments_[known->second]);
    } else {
      gate = AddExperiment(id, request.request_id(), std::move(spec), &snapshot);
    }
  }
  if (gate.valid()) RETURN_IF_ERROR(gate.get());
  if (!retried) {
    LOG(INFO) << "service=scheduler event=experiment_created experiment=" << id << " name=\""
              << snapshot.spec().name() << "\"";
  }
  return snapshot;
}

std::shared_future<absl::Status> Scheduler::AddExperiment(const std::string& id,
                                                          const std::string& request_id,
                                                          v1::ExperimentSpec spec,
                                                          v1::Experiment* snapshot) {
  auto record = std::make_unique<ExperimentRecord>();
  ExperimentRecord& experiment = *record;
  Changes changes(clock_);
  experiment.experiment.set_id(id);
  *experiment.experiment.mutable_spec() = std::move(spec);
  *experiment.experiment.mutable_create_time() = ToProtoTime(changes.now());
  experiment.experiment.set_state(v1::EXPERIMENT_STATE_RUNNING);
  experiment.experiment.set_version(1);
  experiment.request_id = request_id;
  experiment.running_since = changes.now();
  experiment.study_ready = true;
  metrics_->ExperimentStateChanged(v1::EXPERIMENT_STATE_UNSPECIFIED, v1::EXPERIMENT_STATE_RUNNING);
  const bool baseline = !experiment.experiment.spec().skip_baseline();
  if (baseline) experiment.experiment.set_baseline_trial_id(absl::StrCat(id, "-0"));
  changes.Experiment(experiment, SnapshotOf(experiment));
  // After the experiment's row, which the trial's refers to.
  if (baseline) AddBaselineTrial(experiment, changes);
  *snapshot = SnapshotOf(experiment);
  experiment.created = Commit(changes);
  if (!experiment.request_id.empty()) experiment_by_request_[experiment.request_id] = id;
  experiments_[id] = std::move(record);
  experiment_order_.push_back(id);
  StartManager(*experiments_[id]);
  return experiments_[id]->created;
}

absl::StatusOr<v1::Experiment> Scheduler::GetExperiment(const std::string& experiment_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(experiment_id));
  return SnapshotOf(*experiment);
}

absl::StatusOr<v1::ListExperimentsResponse> Scheduler::ListExperiments(
    const v1::ListExperimentsRequest& request) {
  ASSIGN_OR_RETURN(const int page_size, PageSize(request.page_size(), kDefaultExperimentPage));
  ASSIGN_OR_RETURN(const int64_t token, ParseToken(request.page_token()));
  v1::ListExperimentsResponse response;
  absl::MutexLock lock(&mu_);
  // The token is the creation index of the next experiment to look at (newest first);
  // the order only ever grows at the end, so pages stay stable while experiments come.
  int64_t index = token < 0 ? static_cast<int64_t>(experiment_order_.size()) - 1
                            : std::min<int64_t>(token, experiment_order_.size() - 1);
  for (; index >= 0; --index) {
    const ExperimentRecord& experiment = *experiments_[experiment_order_[index]];
    const v1::Experiment& stored = experiment.experiment;
    const bool state_ok =
        request.states().empty() || std::find(request.states().begin(), request.states().end(),
                                              stored.state()) != request.states().end();
    if (!state_ok || !HasLabels(stored.spec(), request.labels())) continue;
    if (response.experiments_size() == page_size) {
      response.set_next_page_token(absl::StrCat(index));
      break;
    }
    *response.add_experiments() = SnapshotOf(experiment);
  }
  return response;
}

absl::StatusOr<v1::Experiment> Scheduler::StopExperiment(const std::string& experiment_id) {
  std::shared_future<absl::Status> gate;
  v1::Experiment snapshot;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("scheduler shutting down");
    ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(experiment_id));
    const v1::ExperimentState state = experiment->experiment.state();
    if (state == v1::EXPERIMENT_STATE_DONE || state == v1::EXPERIMENT_STATE_FAILED) {
      return absl::FailedPreconditionError(
          absl::StrCat("experiment ", experiment_id, " is ", v1::ExperimentState_Name(state),
                       "; only a RUNNING experiment can be stopped"));
    }
    if (state == v1::EXPERIMENT_STATE_RUNNING) {
      Changes changes(clock_);
      CancelActiveTrials(*experiment, "experiment stopped by the user", changes);
      SetExperimentState(*experiment, v1::EXPERIMENT_STATE_STOPPED, "", changes);
      Wake(*experiment);
      gate = Commit(changes);
    } else {
      gate = pipeline_->Barrier();
    }
    snapshot = SnapshotOf(*experiment);
  }
  RETURN_IF_ERROR(gate.get());
  return snapshot;
}

absl::StatusOr<v1::Experiment> Scheduler::ResumeExperiment(
    const v1::ResumeExperimentRequest& request) {
  std::shared_future<absl::Status> gate;
  v1::Experiment snapshot;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("scheduler shutting down");
    ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(request.experiment_id()));
    const v1::ExperimentState state = experiment->experiment.state();
    if (state == v1::EXPERIMENT_STATE_FAILED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "experiment ", request.experiment_id(), " FAILED (", experiment->experiment.error(),
          "); only a STOPPED or DONE experiment can be resumed"));
    }
    RETURN_IF_ERROR(ApplyLimits(*experiment, request.limits(), request.update_mask()));
    Changes changes(clock_);
    if (state == v1::EXPERIMENT_STATE_RUNNING) {
      experiment->experiment.set_version(experiment->experiment.version() + 1);
      changes.Experiment(*experiment, SnapshotOf(*experiment));
    } else {
      // The study is rebuilt from the stored history (the tuner may have dropped it).
      experiment->study_ready = false;
      experiment->exhausted = false;
      SetExperimentState(*experiment, v1::EXPERIMENT_STATE_RUNNING, "", changes);
      RequeueBaseline(*experiment, changes);
    }
    gate = Commit(changes);
    StartManager(*experiment);
    snapshot = SnapshotOf(*experiment);
  }
  RETURN_IF_ERROR(gate.get());
  return snapshot;
}

absl::StatusOr<v1::Experiment> Scheduler::UpdateExperiment(
    const v1::UpdateExperimentRequest& request) {
  if (request.update_mask().paths().empty()) {
    return absl::InvalidArgumentError("update_mask: must name at least one limit");
  }
  std::shared_future<absl::Status> gate;
  v1::Experiment snapshot;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return absl::UnavailableError("scheduler shutting down");
    ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(request.experiment_id()));
    const int64_t version = experiment->experiment.version();
    if (request.expected_version() != 0 && request.expected_version() != version) {
      return absl::AbortedError(absl::StrCat("experiment ", request.experiment_id(),
                                             " is at version ", version, ", not ",
                                             request.expected_version(), "; re-read and retry"));
    }
    RETURN_IF_ERROR(ApplyLimits(*experiment, request.limits(), request.update_mask()));
    experiment->experiment.set_version(version + 1);
    Changes changes(clock_);
    changes.Experiment(*experiment, SnapshotOf(*experiment));
    gate = Commit(changes);
    if (experiment->experiment.state() == v1::EXPERIMENT_STATE_RUNNING) Wake(*experiment);
    snapshot = SnapshotOf(*experiment);
  }
  RETURN_IF_ERROR(gate.get());
  return snapshot;
}

absl::StatusOr<v1::ListTrialsResponse> Scheduler::ListTrials(const v1::ListTrialsRequest& request) {
  ASSIGN_OR_RETURN(const int page_size, PageSize(request.page_size(), kDefaultTrialPage));
  ASSIGN_OR_RETURN(const int64_t token, ParseToken(request.page_token()));
  ASSIGN_OR_RETURN(const TrialOrder order, ParseTrialOrder(request.order_by()));
  v1::ListTrialsResponse response;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(request.experiment_id()));
  std::vector<const v1::Trial*> selected;
  absl::flat_hash_map<const v1::Trial*, const TrialRecord*> record_of;
  for (const TrialRecord* trial : experiment->trials) {
    const bool state_ok =
        request.states().empty() || std::find(request.states().begin(), request.states().end(),
                                              trial->trial.state()) != request.states().end();
    if (!state_ok) continue;
    selected.push_back(&trial->trial);
    record_of[&trial->trial] = trial;
  }
  SortTrials(experiment->experiment.spec().objective(), order, selected);
  // The token is an offset into this order (stable for "sequence", which only grows).
  const size_t begin = token < 0 ? 0 : static_cast<size_t>(token);
  for (size_t i = begin; i < selected.size(); ++i) {
    if (response.trials_size() == page_size) {
      response.set_next_page_token(absl::StrCat(i));
      break;
    }
    v1::Trial* out = response.add_trials();
    *out = *selected[i];
    if (request.include_intermediate()) {
      for (const v1::MetricReport& report : record_of[selected[i]]->intermediate) {
        *out->add_intermediate() = report;
      }
    } else if (out->has_checkpoint()) {
      out->mutable_checkpoint()->clear_reports();  // copies of intermediate reports
    }
  }
  return response;
}

absl::StatusOr<v1::Trial> Scheduler::GetTrial(const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  auto it = trials_.find(trial_id);
  if (it == trials_.end())
    return absl::NotFoundError(absl::StrCat("trial ", trial_id, " not found"));
  v1::Trial trial = it->second->trial;
  for (const v1::MetricReport& report : it->second->intermediate)
    *trial.add_intermediate() = report;
  return trial;
}

absl::StatusOr<v1::ListParetoTrialsResponse> Scheduler::ListParetoTrials(
    const std::string& experiment_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(experiment_id));
  const v1::ObjectiveSpec& objective = experiment->experiment.spec().objective();
  std::vector<const v1::Trial*> trials;
  for (const TrialRecord* trial : experiment->trials) trials.push_back(&trial->trial);
  v1::ListParetoTrialsResponse response;
  int succeeded = 0, infeasible = 0;
  for (const v1::Trial* trial : ParetoTrials(objective, trials, &succeeded, &infeasible)) {
    *response.add_trials() = *trial;
  }
  *response.add_objectives() = objective.primary();
  for (const v1::Objective& secondary : objective.secondary())
    *response.add_objectives() = secondary;
  response.set_succeeded(succeeded);
  response.set_infeasible(infeasible);
  return response;
}

absl::Status Scheduler::WatchExperiment(
    const v1::WatchExperimentRequest& request,
    const std::function<bool(const v1::ExperimentEvent&)>& write,
    const std::function<bool()>& cancelled) {
  const std::string& id = request.experiment_id();
  if (request.after_sequence() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("after_sequence: must be >= 0, got ", request.after_sequence()));
  }
  int64_t cursor = request.after_sequence();
  std::vector<v1::ExperimentEvent> opening;
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(ExperimentRecord * experiment, LookUpExperiment(id));
    if (cursor == 0) {
      // The current state, stamped with the sequence of the newest change in it.
      cursor = experiment->last_sequence;
      const google::protobuf::Timestamp now = ToProtoTime(clock_->Now());
      v1::ExperimentEvent& head = opening.emplace_back();
      head.set_sequence(cursor);
      *head.mutable_time() = now;
      *head.mutable_experiment() = SnapshotOf(*experiment);
      for (const TrialRecord* trial : experiment->trials) {
        v1::ExperimentEvent& event = opening.emplace_back();
        event.set_sequence(cursor);
        *event.mutable_time() = now;
        *event.mutable_trial() = trial->trial;
      }
    }
  }
  for (const v1::ExperimentEvent& event : opening) {
    if (!write(event)) return absl::OkStatus();
  }
  for (;;) {
    if (cancelled()) return absl::OkStatus();
    EventHub::Read read = hub_.EventsAfter(id, cursor, kWatchBatch);
    if (!read.complete) {
      ASSIGN_OR_RETURN(read.events, store_->ReadEvents(id, cursor, kWatchBatch));
    }
    for (const v1::ExperimentEvent& event : read.events) {
      if (!write(event)) return absl::OkStatus();
      cursor = event.sequence();
    }
    if (!read.events.empty()) continue;
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return absl::UnavailableError("scheduler shutting down; watch again");
      const ExperimentRecord& experiment = *experiments_[id];
      if (!request.follow_resumes() && IsFinal(experiment.experiment.state()) &&
          cursor >= experiment.last_sequence) {
        return absl::OkStatus();
      }
    }
    hub_.WaitForEvent(id, cursor, absl::Milliseconds(500));
  }
}

}  // namespace autocompress::scheduler
