#include "compression/pruner.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compression/dependency.h"
#include "compression/module_modes.h"
#include "compression/pruning.h"

namespace autocompress::compression {
namespace {

// The layers that must keep the same channels as `name` (itself when none).
std::vector<std::string> MembersOf(const std::string& name, const ChannelDependencies& deps) {
  for (const std::vector<std::string>& set : deps.sets) {
    if (std::find(set.begin(), set.end(), name) != set.end()) return set;
  }
  return {name};
}

// The channels a dependency set keeps in common (1 = kept): the lowest summed scores
// go, floor(target / G) per contiguous chunk of C / G channels for grouped convolutions
// so counts stay multiples of G.
torch::Tensor CommonChannels(const torch::Tensor& sum, double min_sparsity, int64_t group) {
  const int64_t channels = sum.size(0);
  if (channels % group != 0) group = 1;
  torch::Tensor common = torch::ones({channels}, torch::kDouble);
  const int64_t per_group = FiltersToPrune(channels, min_sparsity) / group;
  const int64_t chunk = channels / group;
  for (int64_t g = 0; g < group && per_group >= 1; ++g) {
    const torch::Tensor part = sum.slice(0, g * chunk, (g + 1) * chunk);
    common.slice(0, g * chunk, (g + 1) * chunk)
        .copy_(part.gt(std::get<0>(part.kthvalue(per_group))).to(torch::kDouble));
  }
  return common;
}

}  // namespace

at::Tensor CompressionTarget::Attribute(const std::string& layer, const std::string& name) const {
  const torch::jit::Module& m = modules->at(layer);
  if (!m.hasattr(name)) return {};
  torch::IValue value = m.attr(name);
  return value.isTensor() ? value.toTensor() : torch::Tensor();
}

void PruneResult::SetFilterMasks(const CompressionTarget& target, const std::string& layer,
                                 double sparsity, const at::Tensor& keep_in) {
  torch::Tensor weight = target.Attribute(layer, "weight");
  torch::Tensor bias = target.Attribute(layer, "bias");
  // Scores may have been computed on the CPU; masks live with the weights.
  torch::Tensor keep = keep_in.to(weight.device(), weight.scalar_type()).contiguous();
  masks.Add(weight, ExpandFilterKeep(keep, weight));
  if (bias.defined()) masks.Add(bias, keep.to(bias.device(), bias.scalar_type()));
  auto after = target.batch_norms_after.find(layer);
  for (const std::string& bn :
       after == target.batch_norms_after.end() ? std::vector<std::string>() : after->second) {
    for (const char* name : {"weight", "bias"}) {
      torch::Tensor t = target.Attribute(bn, name);
      if (t.defined() && t.dim() == 1 && t.size(0) == keep.size(0)) {
        masks.Add(t, keep.to(t.device(), t.scalar_type()));
      }
    }
  }
  LayerState state;
  state.config_sparsity = sparsity;
  state.filters_total = keep.size(0);
  torch::Tensor kept = keep.nonzero().reshape({-1}).cpu();
  for (int64_t i = 0; i < kept.size(0); ++i) state.kept_filters.push_back(kept[i].item<int64_t>());
  states[layer] = std::move(state);
}

absl::Status SelectFilters(const CompressionTarget& target,
                           const std::map<std::string, torch::Tensor>& scores, bool threshold_style,
                           bool dependency_aware, PruneResult& result) {
  std::map<std::string, double> sparsity;
  for (const LayerAssignment& a : target.assignments) {
    sparsity[target.LayerName(a)] = *a.config.sparsity;
  }
  ChannelDependencies dependencies;
  if (dependency_aware) {
    ASSIGN_OR_RETURN(dependencies, AnalyzeChannelDependencies(*target.model));
  }
  std::set<std::string> done;
  for (const LayerAssignment& a : target.assignments) {
    const std::string& name = target.LayerName(a);
    if (done.count(name)) continue;
    const std::vector<std::string> members = MembersOf(name, dependencies);
    std::vector<std::string> configured;
    for (const std::string& m : members) {
      if (sparsity.count(m)) configured.push_back(m);
    }
    double min_sparsity = 1;
    for (const std::string& m : configured) min_sparsity = std::min(min_sparsity, sparsity[m]);
    if (configured.size() != members.size()) min_sparsity = 0;  // someone keeps them all
    const int64_t channels = scores.at(name).size(0);
    torch::Tensor sum = torch::zeros({channels}, torch::kDouble);
    int64_t group = 1;
    for (const std::string& m : configured) {
      if (scores.at(m).size(0) != channels) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dependency_aware: ", name, " and ", m, " must keep the same channels but have ",
            channels, " and ", scores.at(m).size(0), " filters"));
      }
      sum += scores.at(m).to(torch::kDouble).cpu();
      auto it = dependencies.group_constraints.find(m);
      if (it != dependencies.group_constraints.end()) group = std::lcm(group, it->second);
    }
    const torch::Tensor common = CommonChannels(sum, min_sparsity, group);
    for (const std::string& m : configured) {
      const torch::Tensor s = scores.at(m).to(torch::kDouble).cpu() * common;
      result.SetFilterMasks(
          target, m, sparsity[m],
          threshold_style ? ThresholdFilterKeep(s, sparsity[m]) : IndexFilterKeep(s, sparsity[m]));
      done.insert(m);
    }
  }
  result.masks.Apply();
  return absl::OkStatus();
}

absl::Status TrainEpochs(const CompressionTarget& target, int epochs,
                         const StepCallbacks& callbacks) {
  torch::jit::Module& model = *target.model;
  std::vector<torch::Tensor> parameters;
  for (const torch::Tensor& p : model.parameters()) parameters.push_back(p);
  ModeScope train_mode(model, /*training=*/true);
  for (int epoch = 0; epoch < epochs; ++epoch) {
    RETURN_IF_ERROR(target.hooks->TrainEpoch(model, parameters, callbacks));
  }
  return absl::OkStatus();
}

}  // namespace autocompress::compression
