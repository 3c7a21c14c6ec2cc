#include "compression/testing/synthetic_training.h"

#include <torch/script.h>
#include <torch/torch.h>

namespace autocompress::compression::testing {

SyntheticTraining::SyntheticTraining(int batches) : batches_(batches) {}
SyntheticTraining::~SyntheticTraining() = default;

absl::Status SyntheticTraining::TrainEpoch(torch::jit::Module& model,
                                           const std::vector<at::Tensor>& parameters,
                                           const StepCallbacks& callbacks) {
  if (optimizer_ == nullptr) {
    optimizer_ = std::make_unique<torch::optim::SGD>(parameters, torch::optim::SGDOptions(0.05));
  }
  torch::manual_seed(100 + epochs_++);
  for (int b = 0; b < batches_; ++b) {
    optimizer_->zero_grad();
    torch::Tensor input = torch::randn({8, 1, 28, 28});
    if (before_forward_) before_forward_(model, input);
    torch::Tensor out = model.forward({input}).toTensor();
    torch::nn::functional::cross_entropy(out, torch::randint(0, 10, {8})).backward();
    if (callbacks.before_step) callbacks.before_step();
    optimizer_->step();
    if (on_step_) on_step_(model);
    if (callbacks.after_step) callbacks.after_step();
  }
  if (on_epoch_end_) on_epoch_end_(model);
  return absl::OkStatus();
}

}  // namespace autocompress::compression::testing
