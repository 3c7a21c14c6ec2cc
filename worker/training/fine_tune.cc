#include "worker/training/fine_tune.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compression/module_modes.h"

namespace autocompress::training {
namespace {

absl::StatusOr<EpochMetrics> FineTuneEpoch(EpochTrainer& trainer, torch::jit::Module& model,
                                           int64_t epoch, const StepHooks& hooks,
                                           const TrainingData& data, const Recipe& recipe,
                                           const FineTuneCallbacks& callbacks) {
  EpochMetrics metrics;
  metrics.epoch = epoch;
  ASSIGN_OR_RETURN(metrics.train, trainer.RunEpoch(epoch, hooks, callbacks.observer));
  if (data.validation != nullptr) {
    ASSIGN_OR_RETURN(metrics.validation, Evaluate(model, *data.validation, recipe));
  }
  return metrics;
}

}  // namespace

absl::StatusOr<FineTuneResult> FineTune(compression::CompressionSession& session,
                                        const TrainingData& data, const Recipe& recipe, int epochs,
                                        const FineTuneCallbacks& callbacks) {
  if (data.train == nullptr) return absl::InvalidArgumentError("fine-tuning needs training data");
  if (epochs < 0) {
    return absl::InvalidArgumentError(absl::StrCat("epochs: ", epochs, " is negative"));
  }
  RETURN_IF_ERROR(ValidateRecipe(recipe));
  torch::jit::Module& model = session.module();
  ASSIGN_OR_RETURN(std::vector<at::Tensor> parameters, session.TrainableParameters());
  ASSIGN_OR_RETURN(std::unique_ptr<EpochTrainer> trainer,
                   EpochTrainer::Create(model, parameters, *data.train, recipe));
  StepHooks hooks;
  hooks.before_step = [&] { return session.BeforeOptimizerStep(); };
  hooks.after_step = [&] { return session.OnOptimizerStep(); };
  compression::ModeScope train_mode(model, /*training=*/true);
  FineTuneResult result;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const double lr = LearningRateAt(recipe, epoch, epochs);
    trainer->SetLearningRate(lr);
    ASSIGN_OR_RETURN(EpochMetrics metrics,
                     FineTuneEpoch(*trainer, model, epoch, hooks, data, recipe, callbacks));
    metrics.learning_rate = lr;
    result.epochs.push_back(metrics);
    if (callbacks.on_epoch_end && callbacks.on_epoch_end(metrics) == EpochDecision::kStop) {
      result.stopped_early = epoch + 1 < epochs;
      break;
    }
  }
  return result;
}

DatasetTrainingHooks::DatasetTrainingHooks(const Dataset& data, Recipe recipe,
                                           TrainingObserver observer)
    : data_(data), recipe_(std::move(recipe)), observer_(std::move(observer)) {}

DatasetTrainingHooks::~DatasetTrainingHooks() = default;

absl::Status DatasetTrainingHooks::TrainEpoch(torch::jit::Module& model,
                                              const std::vector<at::Tensor>& parameters,
                                              const compression::StepCallbacks& callbacks) {
  const bool same_parameters =
      trainer_ != nullptr && trained_parameters_.size() == parameters.size() &&
      std::equal(parameters.begin(), parameters.end(), trained_parameters_.begin(),
                 [](const at::Tensor& a, const at::Tensor& b) { return a.is_same(b); });
  if (!same_parameters) {
    trainer_.reset();
    ASSIGN_OR_RETURN(trainer_, EpochTrainer::Create(model, parameters, data_, recipe_));
    trained_parameters_ = parameters;
    epochs_ = 0;
  }
  StepHooks hooks;
  hooks.before_step = [&] {
    if (callbacks.before_step) callbacks.before_step();
    return absl::OkStatus();
  };
  hooks.after_step = [&] {
    if (callbacks.after_step) callbacks.after_step();
    return absl::OkStatus();
  };
  return trainer_->RunEpoch(epochs_++, hooks, observer_).status();
}

}  // namespace autocompress::training
