// SyntheticTraining: a TrainingHooks for tests. Each epoch runs `batches` SGD steps
// (lr 0.05) on seeded random Fashion-MNIST-shaped batches ([8, 1, 28, 28], 10 classes),
// calls the pruner's callbacks around every step, and lets a test observe the model
// before each forward, after each step and at the end of the epoch.
#ifndef AUTOCOMPRESS_COMPRESSION_TESTING_SYNTHETIC_TRAINING_H_
#define AUTOCOMPRESS_COMPRESSION_TESTING_SYNTHETIC_TRAINING_H_

#include <functional>
#include <memory>
#include <vector>

#include "compression/training_hooks.h"

namespace torch::optim {
class SGD;
}

namespace autocompress::compression::testing {

class SyntheticTraining final : public TrainingHooks {
 public:
  explicit SyntheticTraining(int batches);
  ~SyntheticTraining() override;

  absl::Status TrainEpoch(torch::jit::Module& model, const std::vector<at::Tensor>& parameters,
                          const StepCallbacks& callbacks) override;

  std::function<void(torch::jit::Module&, const at::Tensor&)> before_forward_;
  std::function<void(torch::jit::Module&)> on_step_;
  std::function<void(torch::jit::Module&)> on_epoch_end_;

 private:
  int batches_;
  int epochs_ = 0;
  std::unique_ptr<torch::optim::SGD> optimizer_;  // made on the first epoch
};

}  // namespace autocompress::compression::testing

#endif  // AUTOCOMPRESS_COMPRESSION_TESTING_SYNTHETIC_TRAINING_H_
