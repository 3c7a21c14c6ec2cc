#include "tuner_service/algorithms/grid_search_algorithm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace autocompress::tuner {
namespace {

absl::Status TooBig(int64_t max_points) {
  return absl::InvalidArgumentError(
      absl::StrCat("grid_search: the grid has more than ", max_points, " points"));
}

// The grid of a list of sibling dimensions (all active together): the product of each
// one's grid. A choice's grid is the union over options of option x its children's grid.
absl::StatusOr<std::vector<Assignment>> Product(const SearchSpace& space,
                                                const std::vector<int>& dims, int64_t max_points);

absl::StatusOr<std::vector<Assignment>> DimensionGrid(const SearchSpace& space, int dim,
                                                      int64_t max_points) {
  const Dimension& d = space.dimensions()[dim];
  auto values = GridValues(d, max_points);
  if (!values.ok()) return values.status();
  std::vector<Assignment> out;
  const Assignment empty(space.size(), std::numeric_limits<double>::quiet_NaN());
  for (double v : *values) {
    std::vector<Assignment> below = {empty};
    if (d.type == ParamType::kChoice) {
      auto children = Product(space, space.Children(dim, static_cast<int>(v)), max_points);
      if (!children.ok()) return children.status();
      below = std::move(*children);
    }
    for (Assignment& x : below) {
      x[dim] = v;
      out.push_back(std::move(x));
      if (static_cast<int64_t>(out.size()) > max_points) return TooBig(max_points);
    }
  }
  return out;
}

absl::StatusOr<std::vector<Assignment>> Product(const SearchSpace& space,
                                                const std::vector<int>& dims, int64_t max_points) {
  std::vector<Assignment> acc = {
      Assignment(space.size(), std::numeric_limits<double>::quiet_NaN())};
  for (int dim : dims) {
    auto grid = DimensionGrid(space, dim, max_points);
    if (!grid.ok()) return grid.status();
    if (static_cast<double>(acc.size()) * grid->size() > static_cast<double>(max_points)) {
      return TooBig(max_points);
    }
    // Points are dense assignments: bound memory too (5e7 doubles = 400 MB).
    if (static_cast<double>(acc.size()) * grid->size() * space.size() > 5e7) {
      return absl::InvalidArgumentError(absl::StrCat("grid_search: ", acc.size() * grid->size(),
                                                     " points of ", space.size(),
                                                     " parameters would not fit in memory"));
    }
    std::vector<Assignment> next;
    next.reserve(acc.size() * grid->size());
    for (const Assignment& a : acc) {
      for (const Assignment& g : *grid) {
        Assignment merged = a;
        for (int i = 0; i < space.size(); ++i) {
          if (!std::isnan(g[i])) merged[i] = g[i];
        }
        next.push_back(std::move(merged));
      }
    }
    acc = std::move(next);
  }
  return acc;
}

}  // namespace

absl::StatusOr<std::vector<double>> GridValues(const Dimension& d, int64_t max_points) {
  std::vector<double> values;
  switch (d.type) {
    case ParamType::kChoice:
      for (int i = 0; i < d.num_categories; ++i) values.push_back(i);
      return values;
    case ParamType::kRandint:
      if (d.high - d.low > max_points) break;
      for (double v = d.low; v < d.high; v += 1) values.push_back(v);
      return values;
    case ParamType::kQuniform:
    case ParamType::kQloguniform: {
      const double first = std::nearbyint(d.low / d.q), last = std::nearbyint(d.high / d.q);
      if (last - first + 1 > max_points) break;
      for (double k = first; k <= last; k += 1) {
        const double v = std::clamp(k * d.q, d.low, d.high);
        if (values.empty() || v != values.back()) values.push_back(v);
      }
      return values;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("grid_search cannot enumerate ", ParamTypeName(d.type), " at ", d.json_path,
                       "; use choice, randint, quniform or qloguniform"));
  }
  return TooBig(max_points);
}

absl::StatusOr<std::unique_ptr<GridSearchAlgorithm>> GridSearchAlgorithm::Create(
    std::shared_ptr<const SearchSpace> space, int64_t max_points) {
  auto points = Product(*space, space->Roots(), max_points);
  if (!points.ok()) return points.status();
  return std::unique_ptr<GridSearchAlgorithm>(
      new GridSearchAlgorithm(std::move(space), std::move(*points)));
}

SuggestOutcome GridSearchAlgorithm::Suggest(const History& history, absl::BitGenRef gen) {
  while (next_ < points_.size()) {
    const Assignment& x = points_[next_++];
    if (handed_out_.insert(space_->Render(x)).second) {
      return {SuggestOutcome::Kind::kSuggestion, x};
    }
  }
  return {SuggestOutcome::Kind::kExhausted, {}};
}

void GridSearchAlgorithm::Restore(const History& history, absl::BitGenRef gen) {
  for (const TrialRecord& trial : history.trials) handed_out_.insert(space_->Render(trial.x));
}

}  // namespace autocompress::tuner
