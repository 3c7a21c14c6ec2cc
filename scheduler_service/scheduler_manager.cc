// Scheduler: the manager loop of each RUNNING experiment, which talks to the tuner.
//
// One round: under the lock, take the observations queued since the last round and the
// number of trials wanted; without the lock, (re-)create the study if needed, report the
// observations and ask for suggestions; under the lock again, apply the assessor's
// decisions, add the new trials, and end the experiment when its limits say so. A tuner
// that is down (or slow) only delays rounds, with backoff; a study the tuner lost
// (NOT_FOUND) is re-created with the whole history and the round repeated.
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"
#include "glog/logging.h"
#include "scheduler_service/experiment_spec_validation.h"
#include "scheduler_service/scheduler.h"
#include "scheduler_service/scheduler_records.h"

namespace autocompress::scheduler {
namespace {

// How long a manager sleeps without a reason to wake (limits are re-checked then).
constexpr absl::Duration kIdleWait = absl::Seconds(1);

}  // namespace

void Scheduler::Observe(ExperimentRecord& experiment, v1::Observation observation) {
  // The baseline (parameter 0; the tuner's ids start at 1) is no suggestion.
  if (observation.parameter_id() == 0) return;
  experiment.outbox.push_back(std::move(observation));
  Wake(experiment);
}

int Scheduler::SuggestionsWanted(const ExperimentRecord& experiment) const {
  const v1::ExperimentLimits& limits = experiment.experiment.spec().limits();
  if (experiment.experiment.state() != v1::EXPERIMENT_STATE_RUNNING || experiment.exhausted ||
      experiment.AwaitingBaseline()) {
    return 0;
  }
  if (limits.has_max_experiment_duration() &&
      RunningTime(experiment) >= FromProtoDuration(limits.max_experiment_duration())) {
    return 0;
  }
  int wanted = std::max(1, limits.trial_concurrency()) - experiment.active;
  wanted = std::min<int>(wanted, MaxTrials(limits) - experiment.SuggestedTrials());
  return std::max(0, wanted);
}

v1::CreateStudyRequest Scheduler::StudyRequestOf(const ExperimentRecord& experiment) const {
  const v1::ExperimentSpec& spec = experiment.experiment.spec();
  v1::CreateStudyRequest request;
  request.set_study_id(experiment.experiment.id());
  v1::StudyConfig* config = request.mutable_config();
  config->set_search_space_json(spec.search_space_json());
  *config->mutable_tuner() = spec.tuner();
  *config->mutable_assessor() = spec.assessor();
  config->set_seed(spec.seed());
  *config->mutable_objective() = spec.objective();
  const std::string& metric = spec.objective().primary().metric();
  for (const TrialRecord* trial : experiment.trials) {
    const v1::Trial& t = trial->trial;
    if (t.baseline()) continue;
    v1::Suggestion* suggestion = request.add_past_suggestions();
    suggestion->set_parameter_id(t.parameter_id());
    suggestion->set_parameters_json(t.parameters_json());
    for (const v1::MetricReport& report : trial->intermediate) {
      for (const v1::Metric& m : report.metrics()) {
        // A non-finite report is stored, but the tuner refuses it (as Observe skips it).
        if (m.name() != metric || !std::isfinite(m.value())) continue;
        v1::Observation* observation = request.add_past_observations();
        observation->set_parameter_id(t.parameter_id());
        observation->set_kind(v1::OBSERVATION_KIND_INTERMEDIATE);
        observation->set_step(report.step());
        observation->set_value(m.value());
        observation->set_attempt(t.attempt());
      }
    }
    if (IsActive(t.state())) continue;
    v1::Observation* observation = request.add_past_observations();
    observation->set_parameter_id(t.parameter_id());
    observation->set_attempt(t.attempt());
    if (t.state() == v1::TRIAL_STATE_SUCCEEDED) {
      observation->set_kind(v1::OBSERVATION_KIND_FINAL);
      for (const v1::Metric& m : t.final_report().metrics()) {
        if (m.name() == metric) observation->set_value(m.value());
      }
      *observation->mutable_metrics() = t.final_report().metrics();
    } else {
      observation->set_kind(v1::OBSERVATION_KIND_ABANDONED);
    }
  }
  return request;
}

void Scheduler::AddTrials(ExperimentRecord& experiment, const v1::SuggestResponse& response,
                          Changes& changes) {
  for (const v1::Suggestion& suggestion : response.suggestions()) {
    if (experiment.by_parameter.contains(suggestion.parameter_id())) continue;  // a replay
    auto record = std::make_unique<TrialRecord>();
    TrialRecord& trial = *record;
    const int64_t sequence = static_cast<int64_t>(experiment.trials.size());
    trial.experiment = &experiment;
    trial.trial.set_id(absl::StrCat(experiment.experiment.id(), "-", sequence));
    trial.trial.set_experiment_id(experiment.experiment.id());
    trial.trial.set_sequence(sequence);
    trial.trial.set_parameter_id(suggestion.parameter_id());
    trial.trial.set_parameters_json(suggestion.parameters_json());
    trial.trial.set_attempt(1);
    trial.trial.add_attempts()->set_attempt(1);
    *trial.trial.mutable_create_time() = ToProtoTime(changes.now());
    trial.waiting_since = changes.now();
    experiment.trials.push_back(&trial);
    experiment.by_parameter[suggestion.parameter_id()] = &trial;
    trials_[trial.trial.id()] = std::move(record);
    SetTrialState(trial, v1::TRIAL_STATE_WAITING);
    changes.Trial(trial);
  }
  if (response.exhausted() && !experiment.exhausted) {
    experiment.exhausted = true;
    LOG(INFO) << "service=scheduler event=search_space_exhausted experiment="
              << experiment.experiment.id() << " trials=" << experiment.trials.size();
  }
}

void Scheduler::AddBaselineTrial(ExperimentRecord& experiment, Changes& changes) {
  auto record = std::make_unique<TrialRecord>();
  TrialRecord& trial = *record;
  trial.experiment = &experiment;
  trial.trial.set_id(absl::StrCat(experiment.experiment.id(), "-0"));
  trial.trial.set_experiment_id(experiment.experiment.id());
  trial.trial.set_sequence(0);
  trial.trial.set_parameter_id(0);
  trial.trial.set_parameters_json("{}");
  trial.trial.set_baseline(true);
  trial.trial.set_attempt(1);
  trial.trial.add_attempts()->set_attempt(1);
  *trial.trial.mutable_create_time() = ToProtoTime(changes.now());
  trial.waiting_since = changes.now();
  experiment.trials.push_back(&trial);
  experiment.baseline = &trial;
  experiment.experiment.set_baseline_trial_id(trial.trial.id());
  trials_[trial.trial.id()] = std::move(record);
  SetTrialState(trial, v1::TRIAL_STATE_WAITING);
  changes.Trial(trial);
}

void Scheduler::RequeueBaseline(ExperimentRecord& experiment, Changes& changes) {
  if (experiment.baseline == nullptr) return;
  TrialRecord& trial = *experiment.baseline;
  if (IsActive(trial.trial.state()) || trial.trial.state() == v1::TRIAL_STATE_SUCCEEDED) return;
  trial.trial.clear_end_time();
  trial.trial.clear_failure();
  StartNewAttempt(trial, changes);
}

void Scheduler::ApplyDecisions(ExperimentRecord& experiment, const v1::ReportResponse& response,
                               Changes& changes) {
  for (const v1::EarlyStopDecision& decision : response.decisions()) {
    if (!decision.stop()) continue;
    auto it = experiment.by_parameter.find(decision.parameter_id());
    if (it == experiment.by_parameter.end()) continue;
    TrialRecord& trial = *it->second;
    const int32_t attempt = decision.attempt() == 0 ? 1 : decision.attempt();
    if (!IsActive(trial.trial.state()) || attempt != trial.trial.attempt()) continue;
    const std::string reason = absl::StrCat("stopped by the assessor: ", decision.reason());
    if (trial.trial.state() != v1::TRIAL_STATE_WAITING) {
      SendCancel(trial.trial.id(), trial.trial.attempt(), trial.trial.worker_id(), reason);
    }
    v1::TrialFailure failure;
    failure.set_code(v1::FAILURE_CODE_STOPPED);
    failure.set_message(reason);
    EndTrial(trial, v1::TRIAL_STATE_EARLY_STOPPED, &failure, changes);
  }
}

void Scheduler::MaybeFinish(ExperimentRecord& experiment, Changes& changes) {
  if (experiment.experiment.state() != v1::EXPERIMENT_STATE_RUNNING) return;
  const v1::ExperimentLimits& limits = experiment.experiment.spec().limits();
  const bool out_of_time =
      limits.has_max_experiment_duration() &&
      RunningTime(experiment) >= FromProtoDuration(limits.max_experiment_duration());
  if (out_of_time && !experiment.waiting.empty()) {
    // No new trials start past the budget: the ones still waiting never will.
    std::vector<TrialRecord*> waiting;
    for (const auto& [sequence, trial] : experiment.waiting) waiting.push_back(trial);
    v1::TrialFailure failure;
    failure.set_code(v1::FAILURE_CODE_STOPPED);
    failure.set_message("max_experiment_duration reached before it started");
    for (TrialRecord* trial : waiting)
      EndTrial(*trial, v1::TRIAL_STATE_CANCELED, &failure, changes);
  }
  const bool out_of_trials = experiment.SuggestedTrials() >= MaxTrials(limits);
  if (experiment.baseline != nullptr && !IsActive(experiment.baseline->trial.state()) &&
      experiment.baseline->trial.state() != v1::TRIAL_STATE_SUCCEEDED) {
    // Without the baseline no trial gets its drops, and the constraints on them cannot
    // be judged: the experiment cannot go on.
    const v1::Trial& baseline = experiment.baseline->trial;
    SetExperimentState(
        experiment, v1::EXPERIMENT_STATE_FAILED,
        absl::StrCat("the baseline evaluation (trial ", baseline.id(), ") ended ",
                     v1::TrialState_Name(baseline.state()), ": ", baseline.failure().message()),
        changes);
    CancelActiveTrials(experiment, "experiment failed", changes);
    return;
  }
  if (experiment.active == 0 && (experiment.exhausted || out_of_trials || out_of_time)) {
    SetExperimentState(experiment, v1::EXPERIMENT_STATE_DONE, "", changes);
  }
}

void Scheduler::ManageExperiment(std::string experiment_id) {
  absl::Duration backoff = options_.tuner_min_backoff;
  for (;;) {
    bool need_study = false;
    v1::CreateStudyRequest create;
    v1::ReportRequest report;
    v1::SuggestRequest suggest;
    {
      absl::MutexLock lock(&mu_);
      ExperimentRecord& experiment = *experiments_[experiment_id];
      struct Args {
        Scheduler* self;
        ExperimentRecord* experiment;
      } args{this, &experiment};
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                 return a->self->shutdown_ || a->experiment->wake;
                               },
                               &args),
                           kIdleWait);
      experiment.wake = false;
      if (shutdown_) return;
      Changes changes(clock_);
      MaybeFinish(experiment, changes);
      Commit(changes);
      if (experiment.experiment.state() != v1::EXPERIMENT_STATE_RUNNING &&
          experiment.outbox.empty()) {
        experiment.manager_running = false;
        return;
      }
      need_study = !experiment.study_ready;
      if (need_study) create = StudyRequestOf(experiment);
      report.set_study_id(experiment_id);
      for (v1::Observation& observation : experiment.outbox) {
        *report.add_observations() = std::move(observation);
      }
      experiment.outbox.clear();
      const int wanted = SuggestionsWanted(experiment);
      if (wanted > 0) {
        suggest.set_study_id(experiment_id);
        suggest.set_count(wanted);
        suggest.set_request_id(absl::StrCat(experiment_id, "-", ++experiment.suggest_round, "-",
                                            reinterpret_cast<uintptr_t>(this)));
      }
    }

    absl::Status status;
    absl::StatusOr<v1::ReportResponse> reported = v1::ReportResponse();
    absl::StatusOr<v1::SuggestResponse> suggested = v1::SuggestResponse();
    const char* step = "";
    if (need_study) {
      step = "CreateStudy";
      status = tuner_->CreateStudy(create).status();
    }
    // A recreated study already holds the observations (they were replayed).
    if (status.ok() && report.observations_size() > 0 && !need_study) {
      step = "Report";
      reported = tuner_->Report(report);
      status = reported.status();
    }
    if (status.ok() && suggest.count() > 0) {
      step = "Suggest";
      suggested = tuner_->Suggest(suggest);
      status = suggested.status();
    }

    bool retry_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (shutdown_) return;
      ExperimentRecord& experiment = *experiments_[experiment_id];
      Changes changes(clock_);
      if (need_study && status.ok()) experiment.study_ready = true;
      if (reported.ok()) {
        ApplyDecisions(experiment, *reported, changes);
      } else if (!absl::IsInvalidArgument(reported.status())) {
        // Not delivered: send them again next round (the tuner ignores repeats).
        std::vector<v1::Observation> again(report.observations().begin(),
                                           report.observations().end());
        again.insert(again.end(), std::make_move_iterator(experiment.outbox.begin()),
                     std::make_move_iterator(experiment.outbox.end()));
        experiment.outbox = std::move(again);
      } else {
        LOG(ERROR) << "service=scheduler event=observations_rejected experiment=" << experiment_id
                   << " count=" << report.observations_size() << " error=\"" << reported.status()
                   << "\"";
      }
      if (suggested.ok() && experiment.experiment.state() == v1::EXPERIMENT_STATE_RUNNING) {
        AddTrials(experiment, *suggested, changes);
        retry_now = suggested->suggestions_size() > 0;
      }
      if (!status.ok()) {
        if (absl::IsNotFound(status) && !need_study) {
          LOG(WARNING) << "service=scheduler event=study_lost experiment=" << experiment_id
                       << " (the tuner restarted?); re-creating it from the store";
          experiment.study_ready = false;
          retry_now = true;
        } else if (need_study && absl::IsInvalidArgument(status)) {
          SetExperimentState(experiment, v1::EXPERIMENT_STATE_FAILED,
                             absl::StrCat("the tuner refused the study: ", status.message()),
                             changes);
          CancelActiveTrials(experiment, "experiment failed", changes);
        } else if (!absl::IsInvalidArgument(status)) {
          LOG(WARNING) << "service=scheduler event=tuner_unavailable experiment=" << experiment_id
                       << " call=" << step << " error=\"" << status << "\" retry_in=" << backoff;
        }
      }
      MaybeFinish(experiment, changes);
      Commit(changes);
      Dispatch();
      if (retry_now) experiment.wake = true;
    }
    if (status.ok() || retry_now) {
      backoff = options_.tuner_min_backoff;
      continue;
    }
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [](Scheduler* s)
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu_) { return s->shutdown_; };
      if (mu_.AwaitWithTimeout(absl::Condition(+stopping, this), backoff)) return;
    }
    backoff = std::min(backoff * 2, options_.tuner_max_backoff);
  }
}

}  // namespace autocompress::scheduler
