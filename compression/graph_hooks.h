// Activation hooks for TorchScript models. TorchScript has no C++ forward hooks, so the
// forward graph of a selected layer's class is rewritten once to pass the layer's input
// and/or output through the custom operator autocompress::observe(x, id, training).
// Each module instance carries its own ids as int attributes (-1 = no hook), because all
// instances of a class share one graph (two Conv2d layers share Conv2d.forward).
//
// The operator looks the id up in a process-wide registry of handlers: statistics
// collectors (APoZ, mean activation) and fake quantizers with their own backward (QAT's
// clipped straight-through estimator, BNN's hard-tanh one).
#ifndef AUTOCOMPRESS_COMPRESSION_GRAPH_HOOKS_H_
#define AUTOCOMPRESS_COMPRESSION_GRAPH_HOOKS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

// What a hook does with the tensor passing through it.
class ActivationHandler {
 public:
  virtual ~ActivationHandler() = default;
  // Returns the value to pass on and sets `ste_mask` (undefined = gradient passes
  // unchanged). Returning `x` itself means the hook only observes.
  virtual at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) = 0;
};

enum class HookSite { kInput, kOutput };

// The hooks of one model. Add hooks before the model's first forward in this process:
// TorchScript compiles a method's graph on its first run and keeps that plan. Destroying
// the hooks (or Remove) takes the operator calls out of the graphs again, so a saved
// model needs nothing of this library to load; a plan compiled while hooked keeps
// calling the operator, which passes tensors through once its handler is gone.
class GraphHooks {
 public:
  explicit GraphHooks(torch::jit::Module& model);
  ~GraphHooks();

  // Hooks the input or output of the submodule named `layer` (dotted name).
  absl::Status Add(const std::string& layer, HookSite site,
                   std::shared_ptr<ActivationHandler> handler);

  // Removes every inserted call and unregisters the handlers. Idempotent.
  void Remove();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_GRAPH_HOOKS_H_
