#include "compression/data_driven_pruners.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compression/graph_hooks.h"
#include "compression/kernels/prune_kernels.h"
#include "compression/pruning.h"

namespace autocompress::compression {
namespace {

// Slim: L1 sub-gradient on BN scales before every optimizer step for `epochs` epochs,
// then one global threshold over |gamma| of all selected BN layers.
class SlimPruner final : public Pruner {
 public:
  SlimPruner(int epochs, double scale) : epochs_(epochs), scale_(scale) {}

  absl::Status Prune(const CompressionTarget& target, PruneResult& result) override {
    std::vector<torch::Tensor> gammas;
    for (const LayerAssignment& a : target.assignments) {
      gammas.push_back(target.Attribute(target.LayerName(a)));
    }
    StepCallbacks callbacks;
    callbacks.before_step = [&] {
      torch::NoGradGuard no_grad;
      for (torch::Tensor& gamma : gammas) {
        if (gamma.grad().defined()) gamma.mutable_grad().add_(gamma.sign() * scale_);
      }
    };
    RETURN_IF_ERROR(TrainEpochs(target, epochs_, callbacks));
    Select(target, gammas, result);
    return absl::OkStatus();
  }

 private:
  static void Select(const CompressionTarget& target, const std::vector<torch::Tensor>& gammas,
                     PruneResult& result) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> magnitudes;
    for (const torch::Tensor& gamma : gammas)
      magnitudes.push_back(gamma.detach().abs().reshape({-1}));
    const torch::Tensor all = torch::cat(magnitudes);
    // NNI takes the sparsity of the first config entry for the global count.
    const int64_t k = ElementsToPrune(all.numel(), target.global_sparsity);
    const torch::Tensor threshold = k >= 1 ? std::get<0>(all.kthvalue(k)) : torch::Tensor();
    for (size_t i = 0; i < target.assignments.size(); ++i) {
      const torch::Tensor& gamma = gammas[i];
      const double layer_sparsity = *target.assignments[i].config.sparsity;
      torch::Tensor keep = torch::ones_like(gamma);
      if (k >= 1 && FiltersToPrune(gamma.numel(), layer_sparsity) >= 1) {
        keep = gamma.detach().abs().gt(threshold).to(gamma.scalar_type());
      }
      result.SetFilterMasks(target, target.LayerName(target.assignments[i]), layer_sparsity, keep);
    }
    result.masks.Apply();
  }

  int epochs_;
  double scale_;
};

// TaylorFO: after each of the first `batches` optimizer steps of one epoch,
// contribution[c] += sum over filter c of (w * grad)^2; then the lowest contributions
// are pruned per layer, or against one pool (global_sort).
class TaylorFoPruner final : public Pruner {
 public:
  TaylorFoPruner(int batches, bool global_sort, bool dependency_aware)
      : batches_(batches), global_sort_(global_sort), dependency_aware_(dependency_aware) {}

  absl::Status Prune(const CompressionTarget& target, PruneResult& result) override {
    std::vector<torch::Tensor> weights, contributions;
    for (const LayerAssignment& a : target.assignments) {
      weights.push_back(target.Attribute(target.LayerName(a)));
      contributions.push_back(torch::zeros({weights.back().size(0)}, torch::kDouble));
    }
    int steps = 0;
    StepCallbacks callbacks;
    callbacks.after_step = [&] {
      if (steps++ >= batches_) return;
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < weights.size(); ++i) {
        if (!weights[i].grad().defined()) continue;
        const torch::Tensor product = (weights[i].detach() * weights[i].grad()).pow(2);
        contributions[i] += product.reshape({product.size(0), -1}).sum(1).to(torch::kDouble).cpu();
      }
    };
    RETURN_IF_ERROR(TrainEpochs(target, 1, callbacks));
    if (steps == 0) {
      return absl::FailedPreconditionError(
          "taylorfo: the training epoch made no optimizer step, so no gradient statistics "
          "exist (is the training data empty?)");
    }
    torch::NoGradGuard no_grad;
    if (!global_sort_) {
      std::map<std::string, torch::Tensor> scores;
      for (size_t i = 0; i < target.assignments.size(); ++i) {
        scores[target.LayerName(target.assignments[i])] = contributions[i];
      }
      return SelectFilters(target, scores, /*threshold_style=*/false, dependency_aware_, result);
    }
    SelectGlobally(target, weights, contributions, result);
    return absl::OkStatus();
  }

 private:
  // Each filter's contribution counts numel(W) / C times in one pool.
  static void SelectGlobally(const CompressionTarget& target,
                             const std::vector<torch::Tensor>& weights,
                             const std::vector<torch::Tensor>& contributions, PruneResult& result) {
    std::vector<torch::Tensor> pool;
    for (size_t i = 0; i < weights.size(); ++i) {
      pool.push_back(contributions[i].repeat_interleave(weights[i].numel() / weights[i].size(0)));
    }
    const torch::Tensor all = torch::cat(pool);
    const int64_t k = ElementsToPrune(all.numel(), target.global_sparsity);
    const double threshold = k >= 1 ? std::get<0>(all.kthvalue(k)).item<double>() : -1;
    for (size_t i = 0; i < target.assignments.size(); ++i) {
      const int64_t filters = contributions[i].size(0);
      const int64_t count =
          std::min<int64_t>(contributions[i].lt(threshold).sum().item<int64_t>(), filters - 1);
      result.SetFilterMasks(target, target.LayerName(target.assignments[i]),
                            *target.assignments[i].config.sparsity,
                            IndexFilterKeepCount(contributions[i], count));
    }
    result.masks.Apply();
  }

  int batches_;
  bool global_sort_;
  bool dependency_aware_;
};

// Per-channel statistics of act(conv output) over the first `max_batches` forwards in
// training mode (APoZ: share of zeros; mean activation: mean).
class ActivationStatistics final : public ActivationHandler {
 public:
  ActivationStatistics(bool relu6, int max_batches) : relu6_(relu6), max_batches_(max_batches) {}

  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    if (!training || batches_ >= max_batches_ || x.dim() < 2) return x;
    torch::NoGradGuard no_grad;
    auto [zeros, sums] = kernels::ActivationStatistics(x.detach(), relu6_);
    zeros = zeros.cpu();
    sums = sums.cpu();
    zeros_ = zeros_.defined() ? zeros_ + zeros : zeros;
    sums_ = sums_.defined() ? sums_ + sums : sums;
    elements_ += x.numel() / x.size(1);
    ++batches_;
    return x;
  }

  int batches() const { return batches_; }
  // Higher = more important: 1 - APoZ, or the mean activation.
  torch::Tensor Scores(bool apoz) const {
    return apoz ? 1 - zeros_ / static_cast<double>(elements_)
                : sums_ / static_cast<double>(elements_);
  }

 private:
  bool relu6_;
  int max_batches_;
  int batches_ = 0;
  int64_t elements_ = 0;
  torch::Tensor zeros_, sums_;
};

class ActivationRankPruner final : public Pruner {
 public:
  ActivationRankPruner(bool apoz, bool relu6, int batches, bool dependency_aware)
      : apoz_(apoz), relu6_(relu6), batches_(batches), dependency_aware_(dependency_aware) {}

  absl::Status Prune(const CompressionTarget& target, PruneResult& result) override {
    GraphHooks graph_hooks(*target.model);  // removed when this returns, however
    std::vector<std::shared_ptr<ActivationStatistics>> statistics;
    for (const LayerAssignment& a : target.assignments) {
      statistics.push_back(std::make_shared<ActivationStatistics>(relu6_, batches_));
      RETURN_IF_ERROR(graph_hooks.Add(target.LayerName(a), HookSite::kOutput, statistics.back()));
    }
    // As NNI: after every optimizer step, once every layer has seen `batches` forwards,
    // the masks are computed; the rest of the epoch trains with them applied.
    bool selected = false;
    absl::Status selection;
    StepCallbacks callbacks;
    callbacks.after_step = [&] {
      torch::NoGradGuard no_grad;
      if (selected) {
        result.masks.Apply();
        return;
      }
      std::map<std::string, torch::Tensor> scores;
      for (size_t i = 0; i < target.assignments.size(); ++i) {
        if (statistics[i]->batches() < batches_) return;
        scores[target.LayerName(target.assignments[i])] = statistics[i]->Scores(apoz_);
      }
      selected = true;
      selection =
          SelectFilters(target, scores, /*threshold_style=*/false, dependency_aware_, result);
    };
    RETURN_IF_ERROR(TrainEpochs(target, 1, callbacks));
    graph_hooks.Remove();
    RETURN_IF_ERROR(selection);
    if (!selected) {
      // NNI leaves the layers silently unpruned here; an error says why instead.
      return absl::FailedPreconditionError(
          absl::StrCat(apoz_ ? "apoz" : "mean_activation", ": the training epoch ran ",
                       statistics.front()->batches(), " forward pass(es) through ",
                       target.LayerName(target.assignments.front()), " but ", batches_,
                       " are needed before masks can be computed (sparsifying_training_batches)"));
    }
    return absl::OkStatus();
  }

 private:
  bool apoz_;
  bool relu6_;
  int batches_;
  bool dependency_aware_;
};

}  // namespace

std::unique_ptr<Pruner> NewSlimPruner(int epochs, double scale) {
  return std::make_unique<SlimPruner>(epochs, scale);
}

std::unique_ptr<Pruner> NewTaylorFoPruner(int batches, bool global_sort, bool dependency_aware) {
  return std::make_unique<TaylorFoPruner>(batches, global_sort, dependency_aware);
}

std::unique_ptr<Pruner> NewActivationRankPruner(bool apoz, bool relu6, int batches,
                                                bool dependency_aware) {
  return std::make_unique<ActivationRankPruner>(apoz, relu6, batches, dependency_aware);
}

}  // namespace autocompress::compression
