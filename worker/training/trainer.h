// The training and evaluation loops over a TorchScript model and a Dataset.
// EpochTrainer runs epochs of forward, loss, backward and optimizer step (the recipe's
// optimizer and criterion, batches on the model's device), calling step hooks around
// every optimizer step; Evaluate measures top-1 accuracy and mean loss. A batch the
// model cannot take is InvalidArgument naming the data's example shape and the layer
// that rejected it; every LibTorch error becomes a status.
//
// fine_tune.h builds on these (the session's fine-tuning contract, the pruners'
// TrainingHooks); use them directly only to train outside a session. Not thread-safe.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_TRAINER_H_
#define AUTOCOMPRESS_WORKER_TRAINING_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/training/batcher.h"
#include "worker/training/dataset.h"
#include "worker/training/recipe.h"

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}

namespace autocompress::training {

// Called around every optimizer step; an error ends the epoch with that error. Empty
// members are skipped.
struct StepHooks {
  // After backward(), before optimizer.step(): gradients are present and may be edited.
  std::function<absl::Status()> before_step;
  // Right after optimizer.step() (and the observer's after_optimizer_step).
  std::function<absl::Status()> after_step;
};

// Watches training from outside (tests, progress logs); empty members are skipped.
struct TrainingObserver {
  // The batch about to be forwarded (on the model's device).
  std::function<void(torch::jit::Module&, const at::Tensor& inputs)> before_forward;
  // Right after optimizer.step(), before StepHooks::after_step (masks not yet re-applied).
  std::function<void(torch::jit::Module&)> after_optimizer_step;
  // After the epoch's last step.
  std::function<void(torch::jit::Module&)> after_epoch;
};

struct EpochStats {
  int64_t batches = 0;
  int64_t examples = 0;
  double mean_loss = 0;  // over examples, of the loss at each batch's forward
};

struct Evaluation {
  int64_t examples = 0;
  int64_t correct = 0;       // argmax of the output equals the label
  double accuracy = 0;       // correct / examples
  int64_t correct_top5 = 0;  // the label is among the 5 largest outputs (all, below 5 classes)
  double top5_accuracy = 0;
  double mean_loss = 0;
};

class EpochTrainer {
 public:
  // Optimizes `parameters` of `model` on `data` as `recipe` says. InvalidArgument for
  // a bad recipe. `model` and `data` must outlive the trainer. The optimizer, and its
  // state (momentum, Adam's moments), lives as long as the trainer.
  static absl::StatusOr<std::unique_ptr<EpochTrainer>> Create(
      torch::jit::Module& model, const std::vector<at::Tensor>& parameters, const Dataset& data,
      const Recipe& recipe);
  ~EpochTrainer();

  // One epoch (batch order from the recipe's seed and `epoch`) in the model's current
  // mode; the caller sets train().
  absl::StatusOr<EpochStats> RunEpoch(int64_t epoch, const StepHooks& hooks,
                                      const TrainingObserver& observer = {});

  // Sets the learning rate of every parameter group (a schedule's next value).
  void SetLearningRate(double lr);

 private:
  EpochTrainer(torch::jit::Module& model, const Dataset& data, const Recipe& recipe,
               Batcher batcher, std::unique_ptr<torch::optim::Optimizer> optimizer);
  torch::jit::Module* model_;
  const Dataset* data_;
  Recipe recipe_;
  Batcher batcher_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

// Top-1 accuracy and mean loss (the recipe's criterion and batch size; every example
// once, in order) of `model` in eval mode without gradients; the model's mode is
// restored afterwards.
absl::StatusOr<Evaluation> Evaluate(torch::jit::Module& model, const Dataset& data,
                                    const Recipe& recipe);

// The device of the model's first parameter or buffer ("cpu" when it has none).
absl::StatusOr<std::string> ModelDevice(torch::jit::Module& model);

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_TRAINER_H_
