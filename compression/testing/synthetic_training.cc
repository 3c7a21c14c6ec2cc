#include "compression/testing/synthetic_training.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "worker/training/fine_tune.h"
#include "worker/training/random_dataset.h"

namespace autocompress::compression::testing {

SyntheticTraining::SyntheticTraining(int batches) : batches_(batches) {}
SyntheticTraining::~SyntheticTraining() = default;

absl::Status SyntheticTraining::TrainEpoch(torch::jit::Module& model,
                                           const std::vector<at::Tensor>& parameters,
                                           const StepCallbacks& callbacks) {
  if (batches_ == 0) return absl::OkStatus();
  if (training_ == nullptr) {
    data_ = training::testing::RandomImages(8 * batches_, 100);
    training::TrainingObserver observer;
    observer.before_forward = [this](torch::jit::Module& m, const at::Tensor& x) {
      if (before_forward_) before_forward_(m, x);
    };
    observer.after_optimizer_step = [this](torch::jit::Module& m) {
      if (on_step_) on_step_(m);
    };
    observer.after_epoch = [this](torch::jit::Module& m) {
      if (on_epoch_end_) on_epoch_end_(m);
    };
    training_ = std::make_unique<training::DatasetTrainingHooks>(
        *data_, training::testing::SmallBatches(batches_, 0.05), observer);
  }
  return training_->TrainEpoch(model, parameters, callbacks);
}

}  // namespace autocompress::compression::testing
