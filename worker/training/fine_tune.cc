#include "worker/training/fine_tune.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compression/module_modes.h"

namespace autocompress::training {

FineTuner::FineTuner(compression::CompressionSession& session, Recipe recipe, int epochs,
                     std::unique_ptr<EpochTrainer> trainer)
    : session_(session),
      recipe_(std::move(recipe)),
      epochs_(epochs),
      trainer_(std::move(trainer)) {}

FineTuner::~FineTuner() = default;

absl::StatusOr<std::unique_ptr<FineTuner>> FineTuner::Create(
    compression::CompressionSession& session, const Dataset& train, const Recipe& recipe,
    int epochs) {
  if (epochs < 0) {
    return absl::InvalidArgumentError(absl::StrCat("epochs: ", epochs, " is negative"));
  }
  RETURN_IF_ERROR(ValidateRecipe(recipe));
  ASSIGN_OR_RETURN(std::vector<at::Tensor> parameters, session.TrainableParameters());
  ASSIGN_OR_RETURN(std::unique_ptr<EpochTrainer> trainer,
                   EpochTrainer::Create(session.module(), parameters, train, recipe));
  return std::unique_ptr<FineTuner>(new FineTuner(session, recipe, epochs, std::move(trainer)));
}

double FineTuner::LearningRate(int64_t epoch) const {
  return LearningRateAt(recipe_, epoch, epochs_);
}

absl::StatusOr<EpochStats> FineTuner::RunEpoch(int64_t epoch, const TrainingObserver& observer,
                                               const std::function<absl::Status()>& after_step) {
  StepHooks hooks;
  hooks.before_step = [this] { return session_.BeforeOptimizerStep(); };
  hooks.after_step = [this, &after_step]() -> absl::Status {
    RETURN_IF_ERROR(session_.OnOptimizerStep());
    return after_step ? after_step() : absl::OkStatus();
  };
  const compression::ModeScope train_mode(session_.module(), /*training=*/true);
  trainer_->SetLearningRate(LearningRate(epoch));
  return trainer_->RunEpoch(epoch, hooks, observer);
}

absl::StatusOr<FineTuneResult> FineTune(compression::CompressionSession& session,
                                        const TrainingData& data, const Recipe& recipe, int epochs,
                                        const FineTuneCallbacks& callbacks) {
  if (data.train == nullptr) return absl::InvalidArgumentError("fine-tuning needs training data");
  ASSIGN_OR_RETURN(std::unique_ptr<FineTuner> tuner,
                   FineTuner::Create(session, *data.train, recipe, epochs));
  FineTuneResult result;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    EpochMetrics metrics;
    metrics.epoch = epoch;
    metrics.learning_rate = tuner->LearningRate(epoch);
    ASSIGN_OR_RETURN(metrics.train, tuner->RunEpoch(epoch, callbacks.observer));
    if (data.validation != nullptr) {
      ASSIGN_OR_RETURN(metrics.validation, Evaluate(session.module(), *data.validation, recipe));
    }
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
