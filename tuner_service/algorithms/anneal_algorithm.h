// Annealing (hyperopt 0.1.2's anneal.suggest, NNI's Anneal): each parameter is drawn near
// the value of a good past trial, in a window that shrinks as observations accumulate.
// A dimension without observations is drawn from its prior. The reference trial is
// picked among the trials that observed the dimension, sorted by RankOf (loss, infeasible
// trials last), at index Geometric(1 / avg_best_idx) - 1; the first reference of a
// suggestion is reused for later dimensions it has, which keeps parameters coherent.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_ANNEAL_ALGORITHM_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_ANNEAL_ALGORITHM_H_

#include <memory>

#include "tuner_service/algorithms/suggestion_algorithm.h"

namespace autocompress::tuner {

struct AnnealOptions {
  double avg_best_idx = 2.0;
  double shrink_coef = 0.1;
};

class AnnealAlgorithm final : public SuggestionAlgorithm {
 public:
  AnnealAlgorithm(std::shared_ptr<const SearchSpace> space, AnnealOptions options)
      : space_(std::move(space)), options_(options) {}
  SuggestOutcome Suggest(const History& history, absl::BitGenRef gen) override;

 private:
  std::shared_ptr<const SearchSpace> space_;
  AnnealOptions options_;
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_ANNEAL_ALGORITHM_H_
