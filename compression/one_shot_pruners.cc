#include "compression/one_shot_pruners.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "compression/kernels/prune_kernels.h"
#include "compression/pruning.h"

namespace autocompress::compression {
namespace {

class LevelPruner final : public Pruner {
 public:
  absl::Status Prune(const CompressionTarget& target, PruneResult& result) override {
    torch::NoGradGuard no_grad;
    for (const LayerAssignment& a : target.assignments) {
      const std::string& name = target.LayerName(a);
      torch::Tensor weight = target.Attribute(name);
      LayerState state;
      state.config_sparsity = *a.config.sparsity;
      result.masks.Add(weight, LevelMask(weight, state.config_sparsity));
      result.states[name] = std::move(state);
    }
    result.masks.Apply();
    return absl::OkStatus();
  }
};

// Filter pruners that score each filter from its weights alone.
class WeightScorePruner final : public Pruner {
 public:
  // p = 1, 2: norms; p = 0: FPGM distance sums.
  WeightScorePruner(int p, bool dependency_aware) : p_(p), dependency_aware_(dependency_aware) {}

  absl::Status Prune(const CompressionTarget& target, PruneResult& result) override {
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> scores;
    for (const LayerAssignment& a : target.assignments) {
      const std::string& name = target.LayerName(a);
      const torch::Tensor weight = target.Attribute(name);
      scores[name] = p_ == 0 ? kernels::FpgmDistanceSums(weight) : kernels::FilterNorms(weight, p_);
    }
    return SelectFilters(target, scores, /*threshold_style=*/p_ != 0, dependency_aware_, result);
  }

 private:
  int p_;
  bool dependency_aware_;
};

}  // namespace

std::unique_ptr<Pruner> NewLevelPruner() { return std::make_unique<LevelPruner>(); }

std::unique_ptr<Pruner> NewNormPruner(int p, bool dependency_aware) {
  return std::make_unique<WeightScorePruner>(p, dependency_aware);
}

std::unique_ptr<Pruner> NewFpgmPruner(bool dependency_aware) {
  return std::make_unique<WeightScorePruner>(0, dependency_aware);
}

}  // namespace autocompress::compression
