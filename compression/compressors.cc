#include "compression/compressors.h"

#include "absl/strings/str_cat.h"
#include "compression/data_driven_pruners.h"
#include "compression/one_shot_pruners.h"

namespace autocompress::compression {
namespace {

using PrunerFactory = absl::StatusOr<std::unique_ptr<Pruner>> (*)(const Kwargs&,
                                                                  const std::vector<LayerConfig>&);
using QuantizerFactory = std::unique_ptr<Quantizer> (*)();

absl::Status NeedsGlobalSparsity(const std::vector<LayerConfig>& configs) {
  if (configs.front().sparsity.has_value()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      "config_list[0]: the global ranking takes its sparsity, so it cannot be an exclude "
      "entry");
}

absl::StatusOr<std::unique_ptr<Pruner>> NewLevel(const Kwargs&, const std::vector<LayerConfig>&) {
  return NewLevelPruner();
}
absl::StatusOr<std::unique_ptr<Pruner>> NewL1(const Kwargs& k, const std::vector<LayerConfig>&) {
  return NewNormPruner(1, k.Bool("dependency_aware"));
}
absl::StatusOr<std::unique_ptr<Pruner>> NewL2(const Kwargs& k, const std::vector<LayerConfig>&) {
  return NewNormPruner(2, k.Bool("dependency_aware"));
}
absl::StatusOr<std::unique_ptr<Pruner>> NewFpgm(const Kwargs& k, const std::vector<LayerConfig>&) {
  return NewFpgmPruner(k.Bool("dependency_aware"));
}
absl::StatusOr<std::unique_ptr<Pruner>> NewSlim(const Kwargs& k,
                                                const std::vector<LayerConfig>& configs) {
  if (absl::Status s = NeedsGlobalSparsity(configs); !s.ok()) return s;
  return NewSlimPruner(k.Int("sparsifying_training_epochs"), k.Double("scale"));
}
absl::StatusOr<std::unique_ptr<Pruner>> NewTaylorFo(const Kwargs& k,
                                                    const std::vector<LayerConfig>& configs) {
  const bool global_sort = k.Bool("global_sort");
  if (global_sort && k.Bool("dependency_aware")) {
    return absl::InvalidArgumentError(
        "kwargs: taylorfo's global_sort and dependency_aware cannot be combined");
  }
  if (global_sort) {
    if (absl::Status s = NeedsGlobalSparsity(configs); !s.ok()) return s;
  }
  return NewTaylorFoPruner(k.Int("sparsifying_training_batches"), global_sort,
                           k.Bool("dependency_aware"));
}
template <bool kApoz>
absl::StatusOr<std::unique_ptr<Pruner>> NewActivationRank(const Kwargs& k,
                                                          const std::vector<LayerConfig>&) {
  return NewActivationRankPruner(kApoz, k.Choice("activation") == "relu6",
                                 k.Int("sparsifying_training_batches"), k.Bool("dependency_aware"));
}

// The implementations of algorithm_registry.cc's names, looked up by name
// (architectures_test compresses with every registered name).
struct Implementation {
  const char* name;
  PrunerFactory pruner;
  QuantizerFactory quantizer;
};

constexpr Implementation kImplementations[] = {
    {"level", NewLevel, nullptr},
    {"slim", NewSlim, nullptr},
    {"l1", NewL1, nullptr},
    {"l2", NewL2, nullptr},
    {"fpgm", NewFpgm, nullptr},
    {"taylorfo", NewTaylorFo, nullptr},
    {"apoz", NewActivationRank<true>, nullptr},
    {"mean_activation", NewActivationRank<false>, nullptr},
    {"naive", nullptr, NewNaiveQuantizer},
    {"qat", nullptr, NewQatQuantizer},
    {"dorefa", nullptr, NewDorefaQuantizer},
    {"bnn", nullptr, NewBnnQuantizer},
};

const Implementation* Find(const AlgorithmSpec& spec) {
  for (const Implementation& i : kImplementations) {
    if (spec.name == i.name) return &i;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Pruner>> CreatePruner(const AlgorithmSpec& spec,
                                                     const Kwargs& kwargs,
                                                     const std::vector<LayerConfig>& configs) {
  const Implementation* impl = Find(spec);
  if (impl == nullptr || impl->pruner == nullptr) {
    return absl::InternalError(absl::StrCat("no pruner implements '", spec.name, "'"));
  }
  return impl->pruner(kwargs, configs);
}

absl::StatusOr<std::unique_ptr<Quantizer>> CreateQuantizer(const AlgorithmSpec& spec,
                                                           const Kwargs& kwargs) {
  const Implementation* impl = Find(spec);
  if (impl == nullptr || impl->quantizer == nullptr) {
    return absl::InternalError(absl::StrCat("no quantizer implements '", spec.name, "'"));
  }
  return impl->quantizer();
}

}  // namespace autocompress::compression
