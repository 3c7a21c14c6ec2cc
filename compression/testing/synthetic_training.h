// SyntheticTraining: a TrainingHooks for tests on the training library
// (worker/training): each epoch runs `batches` SGD steps (lr 0.05) on seeded random
// Fashion-MNIST-shaped batches of 8 (10 classes; the same examples every epoch, in a new
// order), calls the pruner's callbacks around every step, and lets a test observe the
// model before each forward, after each step and at the end of the epoch. 0 batches
// takes no step at all.
#ifndef AUTOCOMPRESS_COMPRESSION_TESTING_SYNTHETIC_TRAINING_H_
#define AUTOCOMPRESS_COMPRESSION_TESTING_SYNTHETIC_TRAINING_H_

#include <functional>
#include <memory>
#include <vector>

#include "compression/training_hooks.h"

namespace autocompress::training {
class Dataset;
class DatasetTrainingHooks;
}  // namespace autocompress::training

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
  std::unique_ptr<training::Dataset> data_;
  std::unique_ptr<training::DatasetTrainingHooks> training_;  // made on the first epoch
};

}  // namespace autocompress::compression::testing

#endif  // AUTOCOMPRESS_COMPRESSION_TESTING_SYNTHETIC_TRAINING_H_
