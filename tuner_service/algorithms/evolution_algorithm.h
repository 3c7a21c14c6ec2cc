// Naive evolution (NNI's Evolution tuner): a population starts as `population_size`
// random individuals handed out first; afterwards two random members compete (by RankOf:
// feasible before infeasible), the loser leaves the population, and a copy of the winner with one
// active dimension re-sampled (a re-sampled choice brings a fresh branch) is proposed. Every result
// joins the population; an abandoned trial is replaced by a new random individual. With
// `population_size` trials running, further requests are deferred until results arrive.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_EVOLUTION_ALGORITHM_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_EVOLUTION_ALGORITHM_H_

#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "tuner_service/algorithms/suggestion_algorithm.h"

namespace autocompress::tuner {

struct EvolutionOptions {
  int population_size = 32;
};

class EvolutionAlgorithm final : public SuggestionAlgorithm {
 public:
  EvolutionAlgorithm(std::shared_ptr<const SearchSpace> space, EvolutionOptions options)
      : space_(std::move(space)), options_(options) {}
  SuggestOutcome Suggest(const History& history, absl::BitGenRef gen) override;
  void OnTrialEnd(const History& history, const TrialRecord& trial, absl::BitGenRef gen) override;
  void Restore(const History& history, absl::BitGenRef gen) override;

 private:
  struct Individual {
    Assignment x;
    std::optional<RankKey> rank;  // unset until evaluated
  };
  void Seed(absl::BitGenRef gen);

  std::shared_ptr<const SearchSpace> space_;
  EvolutionOptions options_;
  bool seeded_ = false;
  std::deque<Individual> fresh_;        // random individuals not yet handed out
  std::vector<Individual> population_;  // evaluated individuals
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_EVOLUTION_ALGORITHM_H_
