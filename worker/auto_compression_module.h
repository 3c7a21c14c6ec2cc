// AutoCompressionModule: the seed's user contract (reference §1.7) in C++, for trials
// the declarative recipe cannot express. A user implements it, links it into a worker
// binary with AUTOCOMPRESS_REGISTER_MODULE, and names it in the experiment's
// `recipe.module`; the trial pipeline (trial_pipeline.h) then asks the module for the
// model, the evaluator, the sparsifying trainer and the fine-tuning trainer and epochs,
// as NNI's auto-compression engine asks the Python module.
//
// The seed's optimizer_factory and criterion have no method of their own: in C++ they
// are what the module's trainers use (training::Recipe names both for the library's
// trainers). The declarative recipe is itself a module (RecipeModule below), so both
// paths run the same pipeline.
//
// One module object per trial attempt, in the attempt's child process; it need not be
// thread-safe.
#ifndef AUTOCOMPRESS_WORKER_AUTO_COMPRESSION_MODULE_H_
#define AUTOCOMPRESS_WORKER_AUTO_COMPRESSION_MODULE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "autocompress/v1/common.pb.h"
#include "compression/compression_session.h"
#include "compression/training_hooks.h"

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}

namespace autocompress::worker {

// What a module is given: the attempt and where its inputs are.
struct ModuleContext {
  const v1::TrialSpec* trial = nullptr;
  // The attempt's recipe after the searched parameters overrode it.
  const v1::TrainingRecipe* recipe = nullptr;
  std::string model_path;  // the experiment's model artifact (verified, local)
  std::string train_path;  // the data set artifacts: directories for archives, else files
  std::string eval_path;
  std::string device;  // "cpu" or "cuda:N"
};

// Named metrics, e.g. {"accuracy": 0.91, "loss": 0.3}.
using Metrics = std::map<std::string, double>;

class AutoCompressionModule {
 public:
  virtual ~AutoCompressionModule() = default;

  // Called first: read arguments (recipe->module_args_json), load data.
  virtual absl::Status Init(const ModuleContext& context) = 0;
  // model(): the pre-trained model to compress. The default loads the experiment's
  // model artifact onto the context's device.
  virtual absl::StatusOr<std::unique_ptr<compression::CompressionSession>> Model(
      const ModuleContext& context);
  // evaluator(): the metrics of `model`, the experiment's objective among them.
  virtual absl::StatusOr<Metrics> Evaluate(torch::jit::Module& model) = 0;
  // sparsifying_trainer(algorithm): how slim, taylorfo, apoz and mean_activation train;
  // null when this module cannot train for them (those trials then fail, saying so).
  virtual compression::TrainingHooks* SparsifyingTrainer(const std::string& algorithm) = 0;
  // post_compress_finetuning_epochs(algorithm).
  virtual int FineTuneEpochs(const std::string& algorithm) = 0;
  // post_compress_finetuning_trainer(algorithm): one epoch (0-based) of fine-tuning,
  // calling session.BeforeOptimizerStep() and OnOptimizerStep() around every optimizer
  // step so masks and quantization hold, then `after_step` (the pipeline's per-batch
  // reports; stop the epoch with its error if it returns one). training::FineTuner
  // does all three. Returns training metrics for the epoch's report: `train_loss` is
  // checked to be finite, and `train_examples` gives the pipeline its images/s.
  using StepCallback = std::function<absl::Status()>;
  virtual absl::StatusOr<Metrics> FineTuneEpoch(const std::string& algorithm,
                                                compression::CompressionSession& session, int epoch,
                                                const StepCallback& after_step) = 0;
  // One input batch of one example, for the latency measurement.
  virtual absl::StatusOr<at::Tensor> ExampleInput() = 0;
};

using ModuleFactory = std::function<std::unique_ptr<AutoCompressionModule>()>;

// Registers `factory` under `name` (at static initialization, through the macro below);
// false when the name is taken.
bool RegisterAutoCompressionModule(const std::string& name, ModuleFactory factory);
// A new module of a registered name; InvalidArgument listing the registered names.
absl::StatusOr<std::unique_ptr<AutoCompressionModule>> CreateAutoCompressionModule(
    const std::string& name);
std::vector<std::string> RegisteredModuleNames();

#define AUTOCOMPRESS_REGISTER_MODULE(name, type)                                           \
  static const bool autocompress_module_registered_##type =                                \
      ::autocompress::worker::RegisterAutoCompressionModule(name, [] {                     \
        return std::unique_ptr<::autocompress::worker::AutoCompressionModule>(new type()); \
      })

// The declarative recipe (TrainingRecipe's dataset, optimizer, criterion, evaluator,
// epochs, schedule) as a module: data from the dataset artifacts in their format,
// normalized and capped as the recipe says; training with the training library.
std::unique_ptr<AutoCompressionModule> MakeRecipeModule();

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_AUTO_COMPRESSION_MODULE_H_
