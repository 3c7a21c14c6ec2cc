#include "tuner_service/study.h"

#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace autocompress::tuner {
namespace {

constexpr int kMaxSuggestPerCall = 1000;
// Re-draws from the prior before a duplicate is accepted (tiny discrete spaces).
constexpr int kDuplicateRetries = 20;

absl::Status Prefixed(absl::string_view prefix, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Study>> Study::Create(const v1::CreateStudyRequest& request) {
  const v1::StudyConfig& config = request.config();
  RETURN_IF_ERROR(ValidateObjective(config.objective(), "config.objective"));
  std::unique_ptr<Study> study(new Study());
  study->objective_ = config.objective();
  study->maximize_ = config.objective().primary().mode() == v1::OPTIMIZE_MODE_MAXIMIZE;
  auto space = SearchSpace::Parse(config.search_space_json());
  if (!space.ok()) return Prefixed("config.search_space_json: ", space.status());
  study->space_ = *space;

  const std::string name = config.tuner().name().empty() ? "tpe" : config.tuner().name();
  auto algorithm = CreateAlgorithm(name, config.tuner().args_json(), study->space_);
  if (!algorithm.ok()) return Prefixed("config.tuner: ", algorithm.status());
  study->algorithm_ = std::move(*algorithm);
  study->algorithm_name_ = CanonicalAlgorithmName(name);

  auto assessor = CreateAssessor(config.assessor().name(), config.assessor().args_json(),
                                 study->maximize_, config.seed() ^ 0x9e3779b97f4a7c15ULL);
  if (!assessor.ok()) return Prefixed("config.assessor: ", assessor.status());
  study->assessor_ = std::move(*assessor);

  absl::MutexLock lock(&study->mu_);
  study->gen_.seed(config.seed());
  for (int i = 0; i < request.past_suggestions_size(); ++i) {
    const v1::Suggestion& past = request.past_suggestions(i);
    const std::string where = absl::StrCat("past_suggestions[", i, "]: ");
    auto x = study->space_->Decode(past.parameters_json());
    if (!x.ok()) return Prefixed(where, x.status());
    std::string rendered = study->space_->Render(*x);
    if (absl::Status s =
            study->AddSuggestion(past.parameter_id(), std::move(*x), std::move(rendered));
        !s.ok()) {
      return Prefixed(where, s);
    }
  }
  auto verdicts = study->ValidateAll(request.past_observations(), "past_observations");
  if (!verdicts.ok()) return verdicts.status();
  for (int i = 0; i < request.past_observations_size(); ++i) {
    // The algorithm learns the replayed history once, through Restore below.
    if (study->Apply(request.past_observations(i), (*verdicts)[i], /*tell_algorithm=*/false)) {
      ++study->replayed_;
    }
  }
  study->algorithm_->Restore(study->history_, study->gen_);
  return study;
}

absl::Status Study::AddSuggestion(int64_t id, Assignment x, std::string rendered) {
  if (id <= 0 || id == std::numeric_limits<int64_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter_id ", id, " must be > 0 and below 2^63 - 1"));
  }
  if (trials_.contains(id)) {
    return absl::InvalidArgumentError(absl::StrCat("parameter_id ", id, " appears twice"));
  }
  rendered_.insert(std::move(rendered));
  TrialState state;
  state.index = history_.trials.size();
  trials_.emplace(id, std::move(state));
  history_.trials.push_back({id, std::move(x), TrialStatus::kPending, 0});
  ++history_.pending;
  next_id_ = std::max(next_id_, id + 1);
  return absl::OkStatus();
}

absl::StatusOr<v1::SuggestResponse> Study::Suggest(int count, absl::string_view request_id) {
  if (count < 1 || count > kMaxSuggestPerCall) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: ", count, " is outside [1, ", kMaxSuggestPerCall, "]"));
  }
  if (request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id: ", request_id.size(), " bytes exceed the limit of ", kMaxRequestIdBytes));
  }
  absl::MutexLock lock(&mu_);
  if (request_id.empty()) return SuggestNew(count);
  if (auto it = requests_.find(request_id); it != requests_.end()) {
    if (it->second.count != count) {
      return absl::InvalidArgumentError(
          absl::StrCat("count: ", count, " differs from the ", it->second.count,
                       " of the earlier call with request_id '", request_id, "'"));
    }
    return it->second.response;
  }
  ASSIGN_OR_RETURN(v1::SuggestResponse response, SuggestNew(count));
  // An answer that minted nothing (deferred until results arrive, or exhausted) is not
  // remembered: a retry may then get what became available since, and poisons nothing.
  if (response.suggestions_size() > 0) Remember(std::string(request_id), count, response);
  return response;
}

void Study::Remember(std::string request_id, int count, const v1::SuggestResponse& response) {
  if (static_cast<int>(request_order_.size()) >= kRememberedRequests) {
    requests_.erase(request_order_.front());
    request_order_.pop_front();
  }
  requests_[request_id] = {count, response};
  request_order_.push_back(std::move(request_id));
}

absl::StatusOr<v1::SuggestResponse> Study::SuggestNew(int count) {
  v1::SuggestResponse response;
  for (int i = 0; i < count && !exhausted_; ++i) {
    SuggestOutcome outcome = algorithm_->Suggest(history_, gen_);
    if (outcome.kind == SuggestOutcome::Kind::kExhausted) {
      exhausted_ = true;
      break;
    }
    if (outcome.kind == SuggestOutcome::Kind::kDeferred) break;
    std::string rendered = space_->Render(outcome.x);
    for (int retry = 0; retry < kDuplicateRetries && rendered_.contains(rendered); ++retry) {
      outcome.x = space_->SamplePrior(gen_);
      rendered = space_->Render(outcome.x);
    }
    const int64_t id = next_id_;
    v1::Suggestion* suggestion = response.add_suggestions();
    suggestion->set_parameter_id(id);
    suggestion->set_parameters_json(rendered);
    RETURN_IF_ERROR(AddSuggestion(id, std::move(outcome.x), std::move(rendered)));
  }
  response.set_exhausted(exhausted_);
  return response;
}

absl::StatusOr<Study::FinalVerdict> Study::Validate(const v1::Observation& observation) const {
  if (!trials_.contains(observation.parameter_id())) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter_id ", observation.parameter_id(), " was never suggested"));
  }
  if (observation.attempt() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("parameter_id ", observation.parameter_id(),
                                                   ": attempt ", observation.attempt(),
                                                   " must be >= 1 (or 0 for 1)"));
  }
  switch (observation.kind()) {
    case v1::OBSERVATION_KIND_FINAL:
    case v1::OBSERVATION_KIND_INTERMEDIATE:
      if (!std::isfinite(observation.value())) {
        return absl::InvalidArgumentError(absl::StrCat("parameter_id ", observation.parameter_id(),
                                                       ": value ", observation.value(),
                                                       " is not a finite number"));
      }
      if (observation.kind() == v1::OBSERVATION_KIND_INTERMEDIATE) {
        if (observation.step() < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("parameter_id ", observation.parameter_id(), ": step must be >= 0"));
        }
        return FinalVerdict{};
      }
      return JudgeFinal(observation);
    case v1::OBSERVATION_KIND_ABANDONED:
      return FinalVerdict{};
    default:
      return absl::InvalidArgumentError(absl::StrCat("parameter_id ", observation.parameter_id(),
                                                     ": kind must be FINAL, INTERMEDIATE or "
                                                     "ABANDONED"));
  }
}

absl::StatusOr<Study::FinalVerdict> Study::JudgeFinal(const v1::Observation& observation) const {
  const std::string where = absl::StrCat("parameter_id ", observation.parameter_id(), ": ");
  auto feasibility = JudgeFeasibility(objective_, observation);
  if (!feasibility.ok()) return Prefixed(where, feasibility.status());
  auto secondary = SecondaryLosses(objective_, observation);
  if (!secondary.ok()) return Prefixed(where, secondary.status());
  FinalVerdict verdict;
  static_cast<FeasibilityVerdict&>(verdict) = *feasibility;
  verdict.secondary_losses = *std::move(secondary);
  return verdict;
}

absl::StatusOr<std::vector<Study::FinalVerdict>> Study::ValidateAll(
    const google::protobuf::RepeatedPtrField<v1::Observation>& observations,
    absl::string_view field) const {
  std::vector<FinalVerdict> verdicts;
  verdicts.reserve(observations.size());
  for (int i = 0; i < observations.size(); ++i) {
    auto verdict = Validate(observations[i]);
    if (!verdict.ok()) return Prefixed(absl::StrCat(field, "[", i, "]: "), verdict.status());
    verdicts.push_back(*verdict);
  }
  return verdicts;
}

std::vector<double> Study::IntermediateValues(const TrialState& state) const {
  std::vector<double> values;
  values.reserve(state.intermediate.size());
  for (const auto& [step, value] : state.intermediate) values.push_back(value);
  return values;
}

bool Study::Apply(const v1::Observation& observation, const FinalVerdict& verdict,
                  bool tell_algorithm) {
  TrialState& state = trials_[observation.parameter_id()];
  TrialRecord& record = history_.trials[state.index];
  if (state.ended) return false;
  const int32_t attempt = std::max(1, observation.attempt());
  if (attempt < state.attempt) return false;  // a late event of a superseded attempt
  if (attempt > state.attempt) {
    // The trial was re-queued: the new attempt's curve replaces the old one, and the
    // verdict on the old curve no longer stands.
    state.attempt = attempt;
    state.intermediate.clear();
    state.stop = false;
    state.stop_reason.clear();
    if (assessor_ != nullptr) assessor_->OnCurveRestart(record.id);
  }
  if (observation.kind() == v1::OBSERVATION_KIND_INTERMEDIATE) {
    return state.intermediate.emplace(observation.step(), observation.value()).second;
  }
  state.ended = true;
  --history_.pending;
  const bool success = observation.kind() == v1::OBSERVATION_KIND_FINAL;
  if (success) {
    record.status = TrialStatus::kCompleted;
    record.loss = maximize_ ? -observation.value() : observation.value();
    record.feasible = verdict.feasible;
    record.violation = verdict.violation;
    if (!verdict.secondary_losses.empty()) {
      record.losses = {record.loss};
      record.losses.insert(record.losses.end(), verdict.secondary_losses.begin(),
                           verdict.secondary_losses.end());
    }
    state.final_value = observation.value();
    ++history_.completed;
  } else {
    record.status = TrialStatus::kAbandoned;
  }
  if (tell_algorithm) algorithm_->OnTrialEnd(history_, record, gen_);
  if (assessor_ != nullptr) {
    assessor_->OnTrialEnd(record.id, success, IntermediateValues(state), state.final_value);
  }
  return true;
}

absl::StatusOr<v1::ReportResponse> Study::Report(const v1::ReportRequest& request) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<FinalVerdict> verdicts,
                   ValidateAll(request.observations(), "observations"));
  // Every trial with intermediate observations in the request gets a decision; the
  // assessor is asked only when something new arrived (a retried report gets the
  // verdict given the first time, since assessors keep state).
  std::vector<int64_t> judged;
  std::set<int64_t> fresh;
  for (int i = 0; i < request.observations_size(); ++i) {
    const v1::Observation& observation = request.observations(i);
    const bool applied = Apply(observation, verdicts[i], /*tell_algorithm=*/true);
    if (observation.kind() != v1::OBSERVATION_KIND_INTERMEDIATE) continue;
    if (std::find(judged.begin(), judged.end(), observation.parameter_id()) == judged.end()) {
      judged.push_back(observation.parameter_id());
    }
    if (applied) fresh.insert(observation.parameter_id());
  }
  v1::ReportResponse response;
  for (int64_t id : judged) {
    TrialState& state = trials_[id];
    if (assessor_ != nullptr && !state.ended && fresh.count(id)) {
      AssessorDecision verdict = assessor_->Assess(id, IntermediateValues(state));
      state.stop = verdict.stop;
      state.stop_reason = std::move(verdict.reason);
    }
    v1::EarlyStopDecision* decision = response.add_decisions();
    decision->set_parameter_id(id);
    decision->set_stop(state.stop);
    decision->set_reason(state.stop_reason);
    decision->set_attempt(state.attempt);
  }
  return response;
}

int Study::completed() const {
  absl::MutexLock lock(&mu_);
  return history_.completed;
}

int Study::suggested() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(history_.trials.size());
}

}  // namespace autocompress::tuner
