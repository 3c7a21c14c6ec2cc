// Random search: every suggestion is a fresh draw from the prior (NNI's Random tuner).
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_RANDOM_ALGORITHM_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_RANDOM_ALGORITHM_H_

#include <memory>

#include "tuner_service/algorithms/suggestion_algorithm.h"

namespace autocompress::tuner {

class RandomAlgorithm final : public SuggestionAlgorithm {
 public:
  explicit RandomAlgorithm(std::shared_ptr<const SearchSpace> space) : space_(std::move(space)) {}
  SuggestOutcome Suggest(const History& history, absl::BitGenRef gen) override {
    return {SuggestOutcome::Kind::kSuggestion, space_->SamplePrior(gen)};
  }

 private:
  std::shared_ptr<const SearchSpace> space_;
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_RANDOM_ALGORITHM_H_
