// Recipe: how to fine-tune (optimizer, learning rate, criterion, batching), as a plain
// struct; the worker maps the experiment's declarative training recipe onto it.
// ValidateRecipe checks it; MakeOptimizer and Loss build what it names from one table
// each (recipe.cc), so a new optimizer or criterion is one table row.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_RECIPE_H_
#define AUTOCOMPRESS_WORKER_TRAINING_RECIPE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace at {
class Tensor;
}
namespace torch::optim {
class Optimizer;
}

namespace autocompress::training {

struct Recipe {
  // "sgd" or "adam".
  std::string optimizer = "sgd";
  double lr = 0.01;
  // SGD only (Adam keeps its default betas).
  double momentum = 0;
  double weight_decay = 0;
  // SGD only; needs momentum > 0.
  bool nesterov = false;
  int64_t batch_size = 32;
  // Optimizer steps per epoch at most; 0 = the whole data set once.
  int64_t max_batches = 0;
  // "cross_entropy" (on logits), "nll" (on log-probabilities) or "mse" (outputs against
  // one-hot labels).
  std::string criterion = "cross_entropy";
  // Learning rate over the epochs of one FineTune: "constant"; "step" (lr x gamma every
  // step_epochs epochs); "cosine" (from lr at the first epoch down to min_lr at the last).
  std::string lr_schedule = "constant";
  int64_t step_epochs = 1;
  double gamma = 0.1;
  double min_lr = 0;
  // Shuffle order (see batcher.h).
  bool shuffle = true;
  uint64_t seed = 1;
};

// The names the tables know, in table order.
std::vector<std::string> OptimizerNames();
std::vector<std::string> CriterionNames();
std::vector<std::string> LrScheduleNames();

// The learning rate of epoch `epoch` (0-based) of `epochs` under the recipe's schedule.
double LearningRateAt(const Recipe& recipe, int64_t epoch, int64_t epochs);

// InvalidArgument naming the field ("recipe.lr: ...") and, for names, the known ones.
absl::Status ValidateRecipe(const Recipe& recipe);

// The recipe's optimizer over `parameters` (validated first).
absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> MakeOptimizer(
    const Recipe& recipe, const std::vector<at::Tensor>& parameters);

// The recipe's criterion, mean over the batch, of `outputs` [B, classes] against
// `labels` [B]. Throws LibTorch's error for outputs and labels that do not fit; callers
// convert it. `criterion` must be a known name (ValidateRecipe).
at::Tensor Loss(const std::string& criterion, const at::Tensor& outputs, const at::Tensor& labels);

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_RECIPE_H_
