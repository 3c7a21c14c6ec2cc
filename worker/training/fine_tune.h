// Fine-tuning a CompressionSession's model on a Dataset, and the TrainingHooks the
// data-driven pruners (slim, taylorfo, apoz, mean_activation) train through.
//
// FineTune is the one implementation of the session's fine-tuning contract
// (compression/README.md): forward, backward, session.BeforeOptimizerStep(), the
// optimizer step over session.TrainableParameters(), session.OnOptimizerStep(), so
// pruned weights stay exactly zero and quantized weights stay on their grid. After each
// epoch it evaluates the validation data (when given) and reports the epoch to the
// caller, who may stop training (an assessor's early stop). Not thread-safe: one
// FineTune per session at a time.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_FINE_TUNE_H_
#define AUTOCOMPRESS_WORKER_TRAINING_FINE_TUNE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "compression/compression_session.h"
#include "compression/training_hooks.h"
#include "worker/training/dataset.h"
#include "worker/training/recipe.h"
#include "worker/training/trainer.h"

namespace autocompress::training {

struct TrainingData {
  const Dataset* train = nullptr;  // required
  // Evaluated after every epoch when set (EpochMetrics::validation).
  const Dataset* validation = nullptr;
};

struct EpochMetrics {
  int64_t epoch = 0;         // 0-based
  double learning_rate = 0;  // the schedule's value for this epoch
  EpochStats train;
  std::optional<Evaluation> validation;
};

enum class EpochDecision { kContinue, kStop };

struct FineTuneCallbacks {
  // After every epoch (e.g. to stream the intermediate metric); kStop ends training
  // there. Empty: always continue.
  std::function<EpochDecision(const EpochMetrics&)> on_epoch_end;
  TrainingObserver observer;
};

struct FineTuneResult {
  std::vector<EpochMetrics> epochs;  // one per epoch run
  bool stopped_early = false;        // on_epoch_end said kStop before the last epoch
};

// Fine-tuning one epoch at a time, for callers that interleave their own work between
// epochs (an AutoCompressionModule's trainer). The optimizer and its state live as long
// as the FineTuner; each epoch runs in train mode (the model's mode is restored
// afterwards) at the recipe schedule's learning rate.
class FineTuner {
 public:
  // `session` and `train` must outlive the FineTuner; `epochs` is the total the
  // schedule spans.
  static absl::StatusOr<std::unique_ptr<FineTuner>> Create(compression::CompressionSession& session,
                                                           const Dataset& train,
                                                           const Recipe& recipe, int epochs);
  ~FineTuner();

  // Epoch `epoch` (0-based). `after_step`, when set, runs after every optimizer step
  // once masks are re-applied; an error ends the epoch with it.
  absl::StatusOr<EpochStats> RunEpoch(int64_t epoch, const TrainingObserver& observer = {},
                                      const std::function<absl::Status()>& after_step = {});
  double LearningRate(int64_t epoch) const;

 private:
  FineTuner(compression::CompressionSession& session, Recipe recipe, int epochs,
            std::unique_ptr<EpochTrainer> trainer);
  compression::CompressionSession& session_;
  Recipe recipe_;
  int epochs_;
  std::unique_ptr<EpochTrainer> trainer_;
};

// Fine-tunes `session`'s model for `epochs` epochs (>= 0) of `recipe` on data.train, in
// train mode (the model's mode is restored afterwards, also on failure). Errors:
// InvalidArgument for a bad recipe, a missing training set, or data that does not fit
// the model (naming the data's shape and the rejecting layer); the session's own errors
// as it returns them.
absl::StatusOr<FineTuneResult> FineTune(compression::CompressionSession& session,
                                        const TrainingData& data, const Recipe& recipe, int epochs,
                                        const FineTuneCallbacks& callbacks = {});

// TrainingHooks over a Dataset: each TrainEpoch runs one epoch of `recipe` (its
// max_batches steps at most) with the pruner's callbacks around every step. The
// optimizer is made on the first epoch and kept while the parameters are the same
// tensors, so slim's several epochs share momentum; other tensors (a new session) get a
// fresh optimizer and epoch count. A Compress retried on the same session after a
// failure keeps the optimizer's momentum: use a new hooks object to start afresh. `data` must
// outlive it.
class DatasetTrainingHooks final : public compression::TrainingHooks {
 public:
  DatasetTrainingHooks(const Dataset& data, Recipe recipe, TrainingObserver observer = {});
  ~DatasetTrainingHooks() override;

  absl::Status TrainEpoch(torch::jit::Module& model, const std::vector<at::Tensor>& parameters,
                          const compression::StepCallbacks& callbacks) override;

 private:
  const Dataset& data_;
  Recipe recipe_;
  TrainingObserver observer_;
  int64_t epochs_ = 0;
  // The tensors the trainer's optimizer updates, held so that their identity (not an
  // address a freed model could hand to a new one) decides when to make a new trainer.
  std::vector<at::Tensor> trained_parameters_;
  std::unique_ptr<EpochTrainer> trainer_;
};

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_FINE_TUNE_H_
