#include "tuner_service/algorithms/evolution_algorithm.h"

#include <algorithm>
#include <cmath>

#include "absl/random/distributions.h"

namespace autocompress::tuner {

void EvolutionAlgorithm::Seed(absl::BitGenRef gen) {
  if (seeded_) return;
  seeded_ = true;
  for (int i = 0; i < options_.population_size; ++i) {
    fresh_.push_back({space_->SamplePrior(gen), std::nullopt});
  }
}

SuggestOutcome EvolutionAlgorithm::Suggest(const History& history, absl::BitGenRef gen) {
  Seed(gen);
  if (!fresh_.empty()) {
    Individual next = std::move(fresh_.front());
    fresh_.pop_front();
    return {SuggestOutcome::Kind::kSuggestion, std::move(next.x)};
  }
  if (history.pending >= options_.population_size) return {SuggestOutcome::Kind::kDeferred, {}};
  if (population_.size() < 2) {
    // Too few results to select from yet: explore.
    return {SuggestOutcome::Kind::kSuggestion, space_->SamplePrior(gen)};
  }
  // Tournament of two: the better stays (at position 0), the worse leaves.
  const size_t n = population_.size();
  const size_t a = absl::Uniform<size_t>(gen, 0, n);
  size_t b = absl::Uniform<size_t>(gen, 0, n - 1);
  if (b >= a) ++b;
  const size_t winner = !(*population_[b].rank < *population_[a].rank) ? a : b;
  const size_t loser = winner == a ? b : a;
  Assignment child = population_[winner].x;
  population_.erase(population_.begin() + loser);

  // Re-sample one active dimension; a choice brings a freshly sampled branch.
  std::vector<int> active;
  for (int d = 0; d < space_->size(); ++d) {
    if (!std::isnan(child[d])) active.push_back(d);
  }
  if (!active.empty()) {
    const int dim = active[absl::Uniform<size_t>(gen, 0, active.size())];
    child[dim] = space_->SampleDimension(dim, gen);
    // A changed choice activates a new branch (drawn from the prior) and clears the old.
    if (space_->dimensions()[dim].type == ParamType::kChoice) {
      // Clear everything below the choice so the chosen branch is drawn afresh, even
      // when the same option came up again.
      for (int d = 0; d < space_->size(); ++d) {
        for (int p = space_->dimensions()[d].parent; p >= 0; p = space_->dimensions()[p].parent) {
          if (p == dim) {
            child[d] = std::nan("");
            break;
          }
        }
      }
      space_->Repair(child, gen);
    }
  }
  return {SuggestOutcome::Kind::kSuggestion, std::move(child)};
}

void EvolutionAlgorithm::OnTrialEnd(const History& history, const TrialRecord& trial,
                                    absl::BitGenRef gen) {
  if (trial.status == TrialStatus::kCompleted) {
    population_.push_back({trial.x, RankOf(trial)});
  } else if (trial.status == TrialStatus::kAbandoned) {
    fresh_.push_back({space_->SamplePrior(gen), std::nullopt});
  }
}

void EvolutionAlgorithm::Restore(const History& history, absl::BitGenRef gen) {
  // The first population_size suggestions were the random seed population; any part of
  // it not yet handed out is drawn again.
  seeded_ = true;
  fresh_.clear();
  population_.clear();
  const int handed_out = static_cast<int>(history.trials.size());
  for (int i = handed_out; i < options_.population_size; ++i) {
    fresh_.push_back({space_->SamplePrior(gen), std::nullopt});
  }
  for (const TrialRecord& t : history.trials) {
    if (t.status == TrialStatus::kCompleted) population_.push_back({t.x, RankOf(t)});
  }
  // Keep the newest population_size results, as the steady state of the live algorithm.
  if (static_cast<int>(population_.size()) > options_.population_size) {
    population_.erase(population_.begin(), population_.end() - options_.population_size);
  }
}

}  // namespace autocompress::tuner
