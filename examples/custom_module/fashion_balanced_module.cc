// An AutoCompressionModule written by a user (worker/auto_compression_module.h): the
// Fashion-MNIST trial of the declarative recipe, plus an evaluator metric the recipe
// cannot express, `balanced_accuracy` (the mean of per-class recalls), and its own
// fine-tuning recipe read from recipe.module_args_json:
//   {"lr": 0.05, "momentum": 0.9, "epochs": 2, "batch_size": 64}
// Linked into a worker binary (BUILD: worker_with_fashion_module) and named in an
// experiment's recipe as "fashion_balanced".
#include <torch/script.h>
#include <torch/torch.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "worker/auto_compression_module.h"
#include "worker/training/dataset.h"
#include "worker/training/fine_tune.h"
#include "worker/training/recipe.h"
#include "worker/training/trainer.h"

namespace example {

using autocompress::worker::Metrics;
using autocompress::worker::ModuleContext;
namespace training = autocompress::training;

class FashionBalancedModule final : public autocompress::worker::AutoCompressionModule {
 public:
  absl::Status Init(const ModuleContext& context) override {
    const nlohmann::json args = nlohmann::json::parse(
        context.recipe->module_args_json().empty() ? "{}" : context.recipe->module_args_json(),
        nullptr, /*allow_exceptions=*/false);
    if (!args.is_object()) {
      return absl::InvalidArgumentError("recipe.module_args_json: not a JSON object");
    }
    recipe_.lr = args.value("lr", 0.05);
    recipe_.momentum = args.value("momentum", 0.0);
    recipe_.batch_size = args.value("batch_size", 32);
    recipe_.seed = context.trial->seed();
    epochs_ = args.value("epochs", 1);
    RETURN_IF_ERROR(training::ValidateRecipe(recipe_));
    ASSIGN_OR_RETURN(train_, Normalized(training::LoadDataset("idx", context.train_path, "train")));
    ASSIGN_OR_RETURN(eval_, Normalized(training::LoadDataset("idx", context.eval_path, "test")));
    hooks_ = std::make_unique<training::DatasetTrainingHooks>(*train_, recipe_);
    return absl::OkStatus();
  }

  absl::StatusOr<Metrics> Evaluate(torch::jit::Module& model) override {
    ASSIGN_OR_RETURN(training::Evaluation e, training::Evaluate(model, *eval_, recipe_));
    // Per-class recall, computed from the predictions.
    model.eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor predicted = model.forward({eval_->inputs()}).toTensor().argmax(1);
    double recall_sum = 0;
    int classes = 0;
    for (int64_t c = 0; c < 10; ++c) {
      const torch::Tensor of_class = eval_->labels().eq(c);
      const int64_t n = of_class.sum().item<int64_t>();
      if (n == 0) continue;
      recall_sum +=
          static_cast<double>(predicted.eq(c).logical_and(of_class).sum().item<int64_t>()) / n;
      ++classes;
    }
    return Metrics{{"accuracy", e.accuracy},
                   {"loss", e.mean_loss},
                   {"balanced_accuracy", classes == 0 ? 0 : recall_sum / classes}};
  }

  autocompress::compression::TrainingHooks* SparsifyingTrainer(const std::string&) override {
    return hooks_.get();
  }

  int FineTuneEpochs(const std::string&) override { return epochs_; }

  absl::StatusOr<Metrics> FineTuneEpoch(const std::string&,
                                        autocompress::compression::CompressionSession& session,
                                        int epoch, const StepCallback& after_step) override {
    if (tuner_ == nullptr) {
      ASSIGN_OR_RETURN(tuner_, training::FineTuner::Create(session, *train_, recipe_, epochs_));
    }
    ASSIGN_OR_RETURN(training::EpochStats stats, tuner_->RunEpoch(epoch, {}, after_step));
    return Metrics{{"train_loss", stats.mean_loss},
                   {"train_examples", static_cast<double>(stats.examples)}};
  }

  absl::StatusOr<at::Tensor> ExampleInput() override { return eval_->inputs().slice(0, 0, 1); }

 private:
  // Fashion-MNIST's mean and standard deviation, as the model was trained.
  static absl::StatusOr<std::unique_ptr<training::Dataset>> Normalized(
      absl::StatusOr<std::unique_ptr<training::Dataset>> data) {
    if (!data.ok()) return data;
    return training::Dataset::FromTensors((*data)->name(), ((*data)->inputs() - 0.2860) / 0.3530,
                                          (*data)->labels());
  }

  training::Recipe recipe_;
  int epochs_ = 1;
  std::unique_ptr<training::Dataset> train_, eval_;
  std::unique_ptr<training::DatasetTrainingHooks> hooks_;
  std::unique_ptr<training::FineTuner> tuner_;
};

AUTOCOMPRESS_REGISTER_MODULE("fashion_balanced", FashionBalancedModule);

}  // namespace example
