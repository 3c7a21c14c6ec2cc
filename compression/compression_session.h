// CompressionSession: one TorchScript model being compressed. It loads the model onto a
// device, lists its layers, computes and applies masks for a pruning algorithm (the
// config list decides which layers), keeps masks applied through fine-tuning
// (OnOptimizerStep), and exports the compressed model with a JSON report.
//
// LibTorch stays behind this header (pimpl): callers need no torch includes. Every
// method that touches tensors returns a status (the accessors module() and layers()
// return references); LibTorch exceptions never escape. Not thread-safe: one session
// per trial.
#ifndef AUTOCOMPRESS_COMPRESSION_COMPRESSION_SESSION_H_
#define AUTOCOMPRESS_COMPRESSION_COMPRESSION_SESSION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compression/config_list.h"
#include "compression/training_hooks.h"

namespace at {
class Tensor;
}
namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

struct CompressOptions {
  // Algorithm name (reference §1.2): level, l1, l2, fpgm, ... .
  std::string algorithm;
  // NNI config list (JSON array).
  std::string config_list_json;
  // Algorithm keyword arguments (JSON object; empty = none).
  std::string kwargs_json;
  // Training for the data-driven pruners (slim, taylorfo, apoz, mean_activation); not
  // owned, may be null for the others.
  TrainingHooks* hooks = nullptr;
};

// The model's size on one axis for every algorithm (compression/README.md, "Effective
// bytes"): what its parameters need when zeros are not stored and quantized weights
// take their bit width.
struct ModelSize {
  // Every parameter at its dtype's width: the uncompressed model.
  int64_t dense_bytes = 0;
  // A quantized weight: ceil(elements x bits / 8) plus 4 bytes per scale and zero-point
  // element. Any other parameter: the smaller of dense and sparse storage, sparse being
  // the non-zero elements at the dtype's width plus a 1-bit-per-element bitmap.
  int64_t effective_bytes = 0;
};

class CompressionSession {
 public:
  // Loads a TorchScript file onto "cpu" or "cuda:N". NotFound for a missing file,
  // InvalidArgument for a file that is not a TorchScript model, FailedPrecondition
  // for a CUDA device this LibTorch build or machine lacks.
  static absl::StatusOr<std::unique_ptr<CompressionSession>> Load(const std::string& model_path,
                                                                  const std::string& device);
  ~CompressionSession();

  // The model being compressed, for training and evaluation by the caller (the worker's
  // trainer); its parameters are the ones masks apply to.
  torch::jit::Module& module();

  // Every named submodule (root excluded) in named_modules() order.
  const std::vector<LayerInfo>& layers() const;

  // Validates the options against the model and compresses it. One-shot pruners
  // (level, l1, l2, fpgm) compute and apply their masks here; the data-driven ones first
  // train through options.hooks (slim: `sparsifying_training_epochs` epochs with an L1
  // penalty on BN scales; taylorfo, apoz, mean_activation: one epoch, statistics from
  // the first `sparsifying_training_batches` steps or forwards); quantizers (naive, qat,
  // dorefa, bnn) keep a float shadow of each quantized weight and write the quantized
  // value into the model, and qat/bnn hook the selected layers' inputs/outputs.
  // Transactional: the algorithm builds its masks / quantization state locally and the
  // session commits it only on success; on failure the session is as before (it takes
  // another Compress) and the model's parameters, buffers, gradients and train/eval mode
  // are restored from a copy held during the call (one model's parameters extra, on the
  // model's device). What the caller's TrainingHooks did outside the model (optimizer
  // state, data position) is the caller's.
  absl::Status Compress(const CompressOptions& options);

  // The tensors an optimizer must update during fine-tuning: the model's parameters,
  // with each quantized weight replaced by its float shadow. FailedPrecondition (also
  // from the two step calls) when the caller re-bound a quantized layer's weight.
  absl::StatusOr<std::vector<at::Tensor>> TrainableParameters();

  // Call between backward() and the optimizer step. Pruners: zeroes the gradients of
  // masked elements, so momentum and weight decay never see them. Quantizers: passes
  // each quantized weight's gradient to its shadow (straight-through estimator; QAT
  // zeroes it where the value fell outside the integer range).
  absl::Status BeforeOptimizerStep();

  // Call after every optimizer step. Pruners: re-applies masks, so pruned weights are
  // exactly zero whatever the optimizer did. Quantizers: counts the step (QAT's
  // quant_start_step) and re-quantizes the weights from their shadows.
  absl::Status OnOptimizerStep();

  // Saves the model as TorchScript with the same module names, masks folded in and
  // quantized weights fake-quantized. Input/output quantization hooks are removed first
  // (the saved model needs nothing of this library), and stay removed even when writing
  // the file then fails: Save ends activation quantization, so call it after training.
  absl::Status Save(const std::string& path);

  // Per-layer report (sparsity, kept filters, bits, scale, zero point) and model totals
  // as JSON text.
  absl::StatusOr<std::string> ReportJson() const;

  // The model's size now (after Compress, and after fine-tuning: masks hold).
  absl::StatusOr<ModelSize> Size() const;

  // Quantizers' calibration table as JSON: per layer weight_bits, and for qat/naive the
  // weight scale and zero point (NNI's export_model calibration dict). "{}" for pruners.
  absl::StatusOr<std::string> CalibrationJson() const;

 private:
  struct Impl;
  explicit CompressionSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The same size of a model outside a session, whose weights are not quantized (a pruned
// model as saved, or one the speedup pass made smaller).
absl::StatusOr<ModelSize> SizeOfModel(const torch::jit::Module& model);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_COMPRESSION_SESSION_H_
