// Grid search: enumerates the Cartesian product of every finite dimension, through
// nested choices (each option contributes the grid of its own sub-space, which fixes
// NNI 2.5's #4189, where `_name` strings were expanded character by character).
// choice -> its options; randint -> every integer in [lower, upper); quniform and
// qloguniform -> clip(arange(round(low/q), round(high/q) + 1) * q, low, high), without
// duplicates. Continuous types cannot be enumerated and are rejected with their path.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_GRID_SEARCH_ALGORITHM_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_GRID_SEARCH_ALGORITHM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "tuner_service/algorithms/suggestion_algorithm.h"

namespace autocompress::tuner {

class GridSearchAlgorithm final : public SuggestionAlgorithm {
 public:
  // InvalidArgument for continuous dimensions or a grid above `max_points`.
  static absl::StatusOr<std::unique_ptr<GridSearchAlgorithm>> Create(
      std::shared_ptr<const SearchSpace> space, int64_t max_points);

  SuggestOutcome Suggest(const History& history, absl::BitGenRef gen) override;
  void Restore(const History& history, absl::BitGenRef gen) override;

 private:
  GridSearchAlgorithm(std::shared_ptr<const SearchSpace> space, std::vector<Assignment> points)
      : space_(std::move(space)), points_(std::move(points)) {}
  std::shared_ptr<const SearchSpace> space_;
  std::vector<Assignment> points_;
  size_t next_ = 0;
  absl::flat_hash_set<std::string> handed_out_;
};

// The values a finite dimension can take, in increasing order (option indices for
// choice). InvalidArgument for continuous types.
absl::StatusOr<std::vector<double>> GridValues(const Dimension& dim, int64_t max_points);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_GRID_SEARCH_ALGORITHM_H_
