// The Pruner interface, what a pruner is given and what it returns, and the helpers the
// filter pruners share (dependency-aware filter selection, training epochs).
//
// A pruner computes masks into a PruneResult of its own and applies them to the model;
// CompressionSession commits the result only when Prune succeeds and restores the
// model's parameters otherwise, so a pruner need not undo anything on failure. Pruners
// are created per Compress call (compressors.h) and are not thread-safe.
#ifndef AUTOCOMPRESS_COMPRESSION_PRUNER_H_
#define AUTOCOMPRESS_COMPRESSION_PRUNER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "compression/config_list.h"
#include "compression/kernels/prune_kernels.h"
#include "compression/training_hooks.h"

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

// The model as Compress hands it to a pruner or quantizer.
struct CompressionTarget {
  torch::jit::Module* model = nullptr;
  const std::vector<LayerInfo>* layers = nullptr;
  // Submodules by layer name (handles to the model's own).
  const std::map<std::string, torch::jit::Module>* modules = nullptr;
  std::vector<LayerAssignment> assignments;
  // Sparsity of config_list[0], which NNI's global rankings (slim, taylorfo's
  // global_sort) use for the total count.
  double global_sparsity = 0;
  TrainingHooks* hooks = nullptr;  // data-driven pruners only; never null for them
  // The BatchNorm layers that normalize each convolution's output (script_graph.h).
  std::map<std::string, std::vector<std::string>> batch_norms_after;

  const std::string& LayerName(const LayerAssignment& a) const { return (*layers)[a.layer].name; }
  // The layer's "weight" (or other tensor attribute); undefined when it has none.
  at::Tensor Attribute(const std::string& layer, const std::string& name = "weight") const;
};

// What the report says about one pruned layer (its masks are in PruneResult::masks).
struct LayerState {
  double config_sparsity = 0;
  int64_t filters_total = 0;
  std::vector<int64_t> kept_filters;  // filter pruners only
};

struct PruneResult {
  kernels::MaskSet masks;                    // weight (and bias) masks
  std::map<std::string, LayerState> states;  // pruned layers, by name

  // Records a filter/channel keep vector (0/1 per filter) as the layer's masks. A
  // convolution's pruned filters also mask the channels of the BatchNorm after it
  // (weight and bias), so a pruned filter's channel is exactly zero downstream: the
  // masked model computes what the sped-up one does (speedup.h). NNI masks the
  // convolution only; its channels then leave BN's constant shift behind (NNI #2130).
  void SetFilterMasks(const CompressionTarget& target, const std::string& layer, double sparsity,
                      const at::Tensor& keep);
};

class Pruner {
 public:
  virtual ~Pruner() = default;
  // Chooses masks for target.assignments into `result` and applies them.
  virtual absl::Status Prune(const CompressionTarget& target, PruneResult& result) = 0;
};

// Chooses the filters of every assigned layer from its scores (higher = more important,
// non-negative) into `result`, then applies the masks. With `dependency_aware`, layers
// of one channel-dependency set first agree on common channels (reference §2.5): if
// every member is pruned, the floor(C * min sparsity) channels with the lowest summed
// score go in all of them; then each member prunes its own count, the common channels
// first. `threshold_style`: NNI's l1/l2 tie rule, else the index rule.
absl::Status SelectFilters(const CompressionTarget& target,
                           const std::map<std::string, at::Tensor>& scores, bool threshold_style,
                           bool dependency_aware, PruneResult& result);

// `epochs` epochs of the caller's training in train mode over the model's parameters;
// the model's mode is restored afterwards, also when an epoch fails.
absl::Status TrainEpochs(const CompressionTarget& target, int epochs,
                         const StepCallbacks& callbacks);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_PRUNER_H_
