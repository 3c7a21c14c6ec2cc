#include "tuner_service/algorithms/anneal_algorithm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/random/distributions.h"

namespace autocompress::tuner {

SuggestOutcome AnnealAlgorithm::Suggest(const History& history, absl::BitGenRef gen) {
  const auto& dims = space_->dimensions();
  std::vector<const TrialRecord*> completed;
  for (const TrialRecord& t : history.trials) {
    if (t.status == TrialStatus::kCompleted) completed.push_back(&t);
  }
  std::stable_sort(completed.begin(), completed.end(),
                   [](const TrialRecord* a, const TrialRecord* b) { return RanksBefore(*a, *b); });
  auto pick = [&](const std::vector<const TrialRecord*>& sorted) {
    // Geometric(p) - 1 with p = 1 / avg_best_idx, clipped to the list.
    const double p = 1.0 / options_.avg_best_idx;
    int index = 0;
    while (index + 1 < static_cast<int>(sorted.size()) && !absl::Bernoulli(gen, p)) ++index;
    return sorted[index];
  };
  const TrialRecord* reference = completed.empty() ? nullptr : pick(completed);

  Assignment x(dims.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<int> stack(space_->Roots().rbegin(), space_->Roots().rend());
  while (!stack.empty()) {
    const int dim = stack.back();
    stack.pop_back();
    const Dimension& d = dims[dim];
    std::vector<const TrialRecord*> observed;
    for (const TrialRecord* t : completed) {
      if (!std::isnan(t->x[dim])) observed.push_back(t);
    }
    if (observed.empty()) {
      x[dim] = space_->SampleDimension(dim, gen);
    } else {
      const TrialRecord* ref =
          reference != nullptr && !std::isnan(reference->x[dim]) ? reference : pick(observed);
      const double f = 1.0 / (1.0 + observed.size() * options_.shrink_coef);
      const double center = ref->x[dim];
      if (d.categorical()) {
        x[dim] = absl::Bernoulli(gen, 1.0 - f) ? center : space_->SampleDimension(dim, gen);
      } else if (d.normal_family()) {
        double v = absl::Gaussian<double>(gen, d.ToModel(center), d.high * f);
        v = d.FromModel(v);
        x[dim] = d.quantized() ? QRound(v, d.q) : v;
      } else {
        const double lo = d.ToModel(d.low), hi = d.ToModel(d.high);
        const double width = (hi - lo) * f;
        double start = std::clamp(d.ToModel(center) - width / 2, lo, hi - width);
        double v = d.FromModel(absl::Uniform<double>(gen, start, start + width));
        if (d.quantized()) v = QRound(v, d.q);
        x[dim] = std::clamp(v, d.low, d.high);
      }
    }
    if (d.type == ParamType::kChoice) {
      const auto& kids = space_->Children(dim, static_cast<int>(x[dim]));
      stack.insert(stack.end(), kids.rbegin(), kids.rend());
    }
  }
  return {SuggestOutcome::Kind::kSuggestion, std::move(x)};
}

}  // namespace autocompress::tuner
