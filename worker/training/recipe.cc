#include "worker/training/recipe.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compression/torch_status.h"

namespace autocompress::training {
namespace {

struct OptimizerKind {
  const char* name;
  bool takes_momentum;  // momentum and nesterov apply
  std::function<std::unique_ptr<torch::optim::Optimizer>(const Recipe&,
                                                         const std::vector<at::Tensor>&)>
      make;
};

const std::vector<OptimizerKind>& Optimizers() {
  static const auto* kinds = new std::vector<OptimizerKind>{
      {"sgd", true,
       [](const Recipe& r, const std::vector<at::Tensor>& p) {
         return std::make_unique<torch::optim::SGD>(p, torch::optim::SGDOptions(r.lr)
                                                           .momentum(r.momentum)
                                                           .weight_decay(r.weight_decay)
                                                           .nesterov(r.nesterov));
       }},
      {"adam", false,
       [](const Recipe& r, const std::vector<at::Tensor>& p) {
         return std::make_unique<torch::optim::Adam>(
             p, torch::optim::AdamOptions(r.lr).weight_decay(r.weight_decay));
       }},
  };
  return *kinds;
}

struct CriterionKind {
  const char* name;
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> loss;
};

const std::vector<CriterionKind>& Criteria() {
  static const auto* kinds = new std::vector<CriterionKind>{
      {"cross_entropy",
       [](const torch::Tensor& out, const torch::Tensor& labels) {
         return torch::nn::functional::cross_entropy(out, labels);
       }},
      {"nll",
       [](const torch::Tensor& out, const torch::Tensor& labels) {
         return torch::nn::functional::nll_loss(out, labels);
       }},
      {"mse",
       [](const torch::Tensor& out, const torch::Tensor& labels) {
         const torch::Tensor target = torch::one_hot(labels, out.size(1)).to(out.dtype());
         return torch::nn::functional::mse_loss(out, target);
       }},
  };
  return *kinds;
}

const std::vector<std::string>& Schedules() {
  static const auto* names = new std::vector<std::string>{"constant", "step", "cosine"};
  return *names;
}

template <typename Kind>
const Kind* Find(const std::vector<Kind>& kinds, const std::string& name) {
  for (const Kind& k : kinds) {
    if (name == k.name) return &k;
  }
  return nullptr;
}

template <typename Kind>
std::vector<std::string> Names(const std::vector<Kind>& kinds) {
  std::vector<std::string> names;
  for (const Kind& k : kinds) names.push_back(k.name);
  return names;
}

absl::Status NonNegative(const char* field, double value) {
  if (std::isfinite(value) && value >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("recipe.", field, ": ", value, " is not a finite number >= 0"));
}

}  // namespace

std::vector<std::string> OptimizerNames() { return Names(Optimizers()); }
std::vector<std::string> CriterionNames() { return Names(Criteria()); }
std::vector<std::string> LrScheduleNames() { return Schedules(); }

double LearningRateAt(const Recipe& recipe, int64_t epoch, int64_t epochs) {
  if (recipe.lr_schedule == "step") {
    return recipe.lr * std::pow(recipe.gamma, static_cast<double>(epoch / recipe.step_epochs));
  }
  if (recipe.lr_schedule == "cosine" && epochs > 1) {
    const double progress = static_cast<double>(epoch) / static_cast<double>(epochs - 1);
    return recipe.min_lr + 0.5 * (recipe.lr - recipe.min_lr) * (1 + std::cos(M_PI * progress));
  }
  return recipe.lr;
}

absl::Status ValidateRecipe(const Recipe& recipe) {
  const OptimizerKind* optimizer = Find(Optimizers(), recipe.optimizer);
  if (optimizer == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.optimizer: '", recipe.optimizer,
                     "' is not known; known: ", absl::StrJoin(OptimizerNames(), ", ")));
  }
  if (Find(Criteria(), recipe.criterion) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.criterion: '", recipe.criterion,
                     "' is not known; known: ", absl::StrJoin(CriterionNames(), ", ")));
  }
  if (!(std::isfinite(recipe.lr) && recipe.lr > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.lr: ", recipe.lr, " is not a finite number > 0"));
  }
  if (absl::Status s = NonNegative("momentum", recipe.momentum); !s.ok()) return s;
  if (absl::Status s = NonNegative("weight_decay", recipe.weight_decay); !s.ok()) return s;
  if (!optimizer->takes_momentum && (recipe.momentum != 0 || recipe.nesterov)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recipe.momentum / recipe.nesterov: apply to sgd only, not ", recipe.optimizer));
  }
  if (recipe.nesterov && recipe.momentum == 0) {
    return absl::InvalidArgumentError("recipe.nesterov: needs momentum > 0");
  }
  if (recipe.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.batch_size: ", recipe.batch_size, " is not a positive integer"));
  }
  if (std::find(Schedules().begin(), Schedules().end(), recipe.lr_schedule) == Schedules().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.lr_schedule: '", recipe.lr_schedule,
                     "' is not known; known: ", absl::StrJoin(Schedules(), ", ")));
  }
  if (recipe.step_epochs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.step_epochs: ", recipe.step_epochs, " is not a positive integer"));
  }
  if (!(std::isfinite(recipe.gamma) && recipe.gamma > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.gamma: ", recipe.gamma, " is not a finite number > 0"));
  }
  if (absl::Status s = NonNegative("min_lr", recipe.min_lr); !s.ok()) return s;
  if (recipe.min_lr > recipe.lr) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.min_lr: ", recipe.min_lr, " is above recipe.lr ", recipe.lr));
  }
  if (recipe.max_batches < 0) {
    return absl::InvalidArgumentError(absl::StrCat("recipe.max_batches: ", recipe.max_batches,
                                                   " is negative (0 = the whole data set)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> MakeOptimizer(
    const Recipe& recipe, const std::vector<at::Tensor>& parameters) {
  if (absl::Status s = ValidateRecipe(recipe); !s.ok()) return s;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  absl::Status made = compression::CatchTorch(absl::StrCat("making ", recipe.optimizer), [&] {
    optimizer = Find(Optimizers(), recipe.optimizer)->make(recipe, parameters);
    return absl::OkStatus();
  });
  if (!made.ok()) return made;
  return optimizer;
}

at::Tensor Loss(const std::string& criterion, const at::Tensor& outputs, const at::Tensor& labels) {
  return Find(Criteria(), criterion)->loss(outputs, labels);
}

}  // namespace autocompress::training
