#include "worker/auto_compression_module.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "compression/torch_status.h"
#include "worker/training/dataset.h"
#include "worker/training/fine_tune.h"
#include "worker/training/recipe.h"
#include "worker/training/trainer.h"

namespace autocompress::worker {

// ---- Registry ---------------------------------------------------------------------

namespace {

struct Registry {
  absl::Mutex mu;
  std::map<std::string, ModuleFactory> factories ABSL_GUARDED_BY(mu);
};

Registry& Modules() {
  static auto* registry = new Registry();
  return *registry;
}

}  // namespace

bool RegisterAutoCompressionModule(const std::string& name, ModuleFactory factory) {
  Registry& registry = Modules();
  absl::MutexLock lock(&registry.mu);
  return registry.factories.emplace(name, std::move(factory)).second;
}

std::vector<std::string> RegisteredModuleNames() {
  Registry& registry = Modules();
  absl::MutexLock lock(&registry.mu);
  std::vector<std::string> names;
  for (const auto& [name, unused] : registry.factories) names.push_back(name);
  return names;
}

absl::StatusOr<std::unique_ptr<AutoCompressionModule>> CreateAutoCompressionModule(
    const std::string& name) {
  ModuleFactory factory;
  {
    Registry& registry = Modules();
    absl::MutexLock lock(&registry.mu);
    auto it = registry.factories.find(name);
    if (it != registry.factories.end()) factory = it->second;
  }
  if (!factory) {
    const std::vector<std::string> names = RegisteredModuleNames();
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.module: '", name, "' is not compiled into this worker; it has: ",
                     names.empty() ? "none" : absl::StrJoin(names, ", ")));
  }
  return factory();
}

absl::StatusOr<std::unique_ptr<compression::CompressionSession>> AutoCompressionModule::Model(
    const ModuleContext& context) {
  absl::StatusOr<std::unique_ptr<compression::CompressionSession>> loaded =
      compression::CompressionSession::Load(context.model_path, context.device);
  if (loaded.ok()) return loaded;
  // Named by the artifact the user gave, not by its path in the node's cache.
  return absl::Status(
      loaded.status().code(),
      absl::StrCat("model ", context.trial->model().name(), " (", context.trial->model().sha256(),
                   ") on ", context.device, ": ", loaded.status().message()));
}

// ---- The declarative recipe ---------------------------------------------------------

namespace {

std::string DatasetFormatName(v1::DatasetFormat format) {
  switch (format) {
    case v1::DATASET_FORMAT_IDX:
      return "idx";
    case v1::DATASET_FORMAT_CIFAR10_BINARY:
      return "cifar10";
    case v1::DATASET_FORMAT_TENSORS:
      return "tensors";
    default:
      return "";
  }
}

// The declarative recipe as the training library takes it.
training::Recipe TrainingRecipeOf(const v1::TrialSpec& trial, const v1::TrainingRecipe& r) {
  training::Recipe recipe;
  if (!r.optimizer().name().empty()) recipe.optimizer = r.optimizer().name();
  if (r.optimizer().learning_rate() != 0) recipe.lr = r.optimizer().learning_rate();
  recipe.momentum = r.optimizer().momentum();
  recipe.weight_decay = r.optimizer().weight_decay();
  recipe.nesterov = r.optimizer().nesterov();
  if (r.dataset().batch_size() > 0) recipe.batch_size = r.dataset().batch_size();
  recipe.max_batches = r.max_train_batches();
  if (!r.criterion().empty()) recipe.criterion = r.criterion();
  recipe.shuffle = r.dataset().shuffle();
  if (!r.lr_schedule().name().empty()) recipe.lr_schedule = r.lr_schedule().name();
  if (r.lr_schedule().step_epochs() > 0) recipe.step_epochs = r.lr_schedule().step_epochs();
  if (r.lr_schedule().gamma() > 0) recipe.gamma = r.lr_schedule().gamma();
  recipe.min_lr = r.lr_schedule().min_learning_rate();
  recipe.seed = trial.seed() != 0 ? trial.seed() : 1;
  return recipe;
}

// The evaluators, by the name the recipe gives; each names the metrics it reports.
struct EvaluatorSpec {
  const char* name;
  std::vector<std::string> metrics;
};
const std::vector<EvaluatorSpec>& Evaluators() {
  static const auto* evaluators = new std::vector<EvaluatorSpec>{
      {"top1_accuracy", {"accuracy", "loss"}},
      {"top5_accuracy", {"top5_accuracy", "accuracy", "loss"}},
      {"neg_loss", {"neg_loss", "loss"}},
  };
  return *evaluators;
}

absl::StatusOr<const EvaluatorSpec*> FindEvaluator(const std::string& name) {
  const std::string wanted = name.empty() ? "top1_accuracy" : name;
  for (const EvaluatorSpec& e : Evaluators()) {
    if (wanted == e.name) return &e;
  }
  std::vector<std::string> known;
  for (const EvaluatorSpec& e : Evaluators()) known.push_back(e.name);
  return absl::InvalidArgumentError(absl::StrCat(
      "recipe.evaluator: '", name, "' is not known; known: ", absl::StrJoin(known, ", ")));
}

Metrics MetricsOf(const EvaluatorSpec& evaluator, const training::Evaluation& e) {
  Metrics metrics;
  for (const std::string& name : evaluator.metrics) {
    const double value = name == "accuracy"        ? e.accuracy
                         : name == "top5_accuracy" ? e.top5_accuracy
                         : name == "neg_loss"      ? -e.mean_loss
                                                   : e.mean_loss;
    metrics[name] = value;
  }
  return metrics;
}

// Normalizes per channel and keeps at most `max_examples` (0 = all).
absl::StatusOr<std::unique_ptr<training::Dataset>> Prepare(std::unique_ptr<training::Dataset> data,
                                                           const v1::DatasetSpec& spec,
                                                           int64_t max_examples) {
  const bool trim = max_examples > 0 && max_examples < data->size();
  if (spec.mean_size() == 0 && !trim) return data;
  return compression::CatchTorch(
      "preparing data", [&]() -> absl::StatusOr<std::unique_ptr<training::Dataset>> {
        torch::Tensor inputs = data->inputs();
        torch::Tensor labels = data->labels();
        if (trim) {
          inputs = inputs.slice(0, 0, max_examples);
          labels = labels.slice(0, 0, max_examples);
        }
        if (spec.mean_size() > 0) {
          if (inputs.dim() < 2 || inputs.size(1) != spec.mean_size()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "recipe.dataset.mean: ", spec.mean_size(), " values for data with ",
                inputs.dim() < 2 ? 0 : inputs.size(1), " channels (", data->name(), ")"));
          }
          std::vector<int64_t> shape(inputs.dim(), 1);
          shape[1] = spec.mean_size();
          const torch::Tensor mean =
              torch::tensor(std::vector<float>(spec.mean().begin(), spec.mean().end())).view(shape);
          const torch::Tensor stddev =
              torch::tensor(std::vector<float>(spec.stddev().begin(), spec.stddev().end()))
                  .view(shape);
          inputs = (inputs - mean) / stddev;
        }
        return training::Dataset::FromTensors(data->name(), inputs.contiguous(), labels);
      });
}

absl::StatusOr<std::unique_ptr<training::Dataset>> LoadSplit(const v1::DatasetSpec& spec,
                                                             const std::string& path,
                                                             const std::string& split,
                                                             int64_t max_examples) {
  const std::string format = DatasetFormatName(spec.format());
  if (format.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.dataset.format: ", v1::DatasetFormat_Name(spec.format()),
                     " is not supported by this worker (supported: DATASET_FORMAT_IDX, "
                     "DATASET_FORMAT_CIFAR10_BINARY, DATASET_FORMAT_TENSORS)"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<training::Dataset> data,
                   training::LoadDataset(format, path, split));
  return Prepare(std::move(data), spec, max_examples);
}

class RecipeModule final : public AutoCompressionModule {
 public:
  absl::Status Init(const ModuleContext& context) override {
    const v1::TrainingRecipe& spec = *context.recipe;
    recipe_ = TrainingRecipeOf(*context.trial, spec);
    RETURN_IF_ERROR(training::ValidateRecipe(recipe_));
    ASSIGN_OR_RETURN(evaluator_, FindEvaluator(spec.evaluator()));
    eval_recipe_ = recipe_;
    if (spec.dataset().eval_batch_size() > 0)
      eval_recipe_.batch_size = spec.dataset().eval_batch_size();
    epochs_ = spec.finetune_epochs();
    ASSIGN_OR_RETURN(train_, LoadSplit(spec.dataset(), context.train_path, "train", 0));
    const int64_t max_eval =
        static_cast<int64_t>(spec.max_eval_batches()) * eval_recipe_.batch_size;
    ASSIGN_OR_RETURN(eval_, LoadSplit(spec.dataset(), context.eval_path, "test", max_eval));
    hooks_ = std::make_unique<training::DatasetTrainingHooks>(*train_, recipe_);
    return absl::OkStatus();
  }

  absl::StatusOr<Metrics> Evaluate(torch::jit::Module& model) override {
    ASSIGN_OR_RETURN(training::Evaluation e, training::Evaluate(model, *eval_, eval_recipe_));
    return MetricsOf(*evaluator_, e);
  }

  compression::TrainingHooks* SparsifyingTrainer(const std::string&) override {
    return hooks_.get();
  }

  int FineTuneEpochs(const std::string&) override { return epochs_; }

  absl::StatusOr<Metrics> FineTuneEpoch(const std::string&,
                                        compression::CompressionSession& session, int epoch,
                                        const StepCallback& after_step) override {
    if (tuner_ == nullptr) {
      ASSIGN_OR_RETURN(tuner_, training::FineTuner::Create(session, *train_, recipe_, epochs_));
    }
    ASSIGN_OR_RETURN(training::EpochStats stats, tuner_->RunEpoch(epoch, {}, after_step));
    return Metrics{{"train_loss", stats.mean_loss},
                   {"train_examples", static_cast<double>(stats.examples)},
                   {"learning_rate", tuner_->LearningRate(epoch)}};
  }

  absl::StatusOr<at::Tensor> ExampleInput() override {
    return compression::CatchTorch("example input", [&]() -> absl::StatusOr<at::Tensor> {
      return eval_->inputs()[0].unsqueeze(0);
    });
  }

 private:
  training::Recipe recipe_, eval_recipe_;
  const EvaluatorSpec* evaluator_ = nullptr;
  int epochs_ = 0;
  std::unique_ptr<training::Dataset> train_, eval_;
  std::unique_ptr<training::DatasetTrainingHooks> hooks_;
  std::unique_ptr<training::FineTuner> tuner_;
};

}  // namespace

std::unique_ptr<AutoCompressionModule> MakeRecipeModule() {
  return std::make_unique<RecipeModule>();
}

}  // namespace autocompress::worker
