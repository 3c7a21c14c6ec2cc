// TrainingHooks: how the data-driven pruners (slim, taylorfo, apoz, mean_activation)
// get training done without knowing about data. The caller (the
// worker's trainer, or a test) owns data, optimizer and criterion; the pruner asks it
// for epochs and hooks into every optimizer step (reference §2.1 "Optimizer hooks").
#ifndef AUTOCOMPRESS_COMPRESSION_TRAINING_HOOKS_H_
#define AUTOCOMPRESS_COMPRESSION_TRAINING_HOOKS_H_

#include <functional>
#include <vector>

#include "absl/status/status.h"

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

// Called around each optimizer step of a training epoch.
struct StepCallbacks {
  // After backward(), before optimizer.step(): gradients are present and may be edited.
  std::function<void()> before_step;
  // Right after optimizer.step(): gradients are still present.
  std::function<void()> after_step;
};

class TrainingHooks {
 public:
  virtual ~TrainingHooks() = default;

  // Trains `model` for one epoch in train mode, optimizing `parameters`, and calls
  // `callbacks` around every optimizer step. The number of batches is the caller's.
  virtual absl::Status TrainEpoch(torch::jit::Module& model,
                                  const std::vector<at::Tensor>& parameters,
                                  const StepCallbacks& callbacks) = 0;
};

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_TRAINING_HOOKS_H_
