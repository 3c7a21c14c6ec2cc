// The speedup pass: a filter-pruned TorchScript model becomes physically smaller. Every
// channel that a pruned filter (or a BatchNorm channel masked by slim) leaves constant
// is removed from the layer that produces it, from every per-channel layer on its way
// (BatchNorm, depthwise convolution) and from every layer that reads it (convolution,
// grouped convolution, Linear, also after a flatten where each channel owns H x W
// inputs). Channels that residual adds tie together are one channel space and go
// together. Nothing is approximated: a removed channel's constant value (zero, or a
// BatchNorm shift) is folded into its readers' biases where that is exact, and a channel
// is kept when it is not (a non-zero constant under a padded convolution's border). So
// the result computes what the masked model computes, within float rounding.
//
// The model keeps its module names, forward signature and TorchScript types; only
// tensors change shape, and a depthwise convolution's `groups` constant in its method
// graph. Anything the pass does not understand (an op it has no rule for reading a
// channel tensor, a transposed convolution, a model output) keeps its channels, and the
// result names the layer and the reason. Module constants such as Conv2d's
// out_channels are not rewritten (TorchScript types are immutable); the tensors say the
// new sizes.
#ifndef AUTOCOMPRESS_COMPRESSION_SPEEDUP_H_
#define AUTOCOMPRESS_COMPRESSION_SPEEDUP_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

// A layer whose tensors were shrunk: its weight's shape before and after.
struct ShrunkLayer {
  std::string name;
  std::string kind;  // "conv", "depthwise_conv", "linear", "batch_norm"
  std::vector<int64_t> before, after;
};

// Pruned channels the pass kept (they stay masked): which layers produce them and why.
struct LeftMasked {
  std::string layers;  // the channel space's producing layers, '+'-joined
  int64_t channels = 0;
  std::string reason;
};

struct SpeedupResult {
  std::vector<ShrunkLayer> layers;
  std::vector<LeftMasked> left_masked;
};

// {"layers": [{name, kind, before, after}], "left_masked": [{layers, channels, reason}]}.
std::string SpeedupResultJson(const SpeedupResult& result);

// Shrinks `model` in place (on its device). Its parameters must be the masked ones
// (masks folded in, as CompressionSession::Save writes them).
absl::StatusOr<SpeedupResult> SpeedupModule(torch::jit::Module& model);

struct MeasureOptions {
  // One example's shape, without the batch dimension ({1, 28, 28}).
  std::vector<int64_t> input_shape;
  std::vector<int64_t> batch_sizes = {1, 32};
  int warmup = 5;
  int runs = 30;               // latency is the median of these
  bool latency = true;         // false: parameters and MACs only
  std::string device = "cpu";  // the model's device
};

struct ModelCost {
  int64_t parameters = 0;
  int64_t nonzero_parameters = 0;
  // Multiply-adds of every convolution and Linear for one example (counted by
  // observing the ops a forward pass runs, so every architecture is covered).
  int64_t macs = 0;
  std::map<int64_t, double> latency_ms;  // median forward time, by batch size
};

// Evaluation-mode forward passes on random inputs, without gradients, on the intra-op
// thread count the caller set.
absl::StatusOr<ModelCost> MeasureModel(torch::jit::Module& model, const MeasureOptions& options);

struct SpeedupReport {
  SpeedupResult result;
  std::optional<ModelCost> original;  // when the uncompressed model was given
  ModelCost masked, sped_up;
  MeasureOptions options;
  // Largest |sped_up - masked| over |masked| (max norm) on a random batch.
  double output_relative_difference = 0;

  std::string ToJson() const;
};

// Loads a masked model, measures it, shrinks it, checks its outputs against the masked
// model's on a random batch, saves it (through a temporary file and a rename) and
// measures it reloaded from `output_path`. `original_path` (optional) is measured too.
absl::StatusOr<SpeedupReport> SpeedupFile(const std::string& masked_path,
                                          const std::string& output_path,
                                          const MeasureOptions& options,
                                          const std::string& original_path = "");

// The report as a table for people: shrunk layers, kept channels, and the models side
// by side (parameters, MACs, latency per batch size).
std::string SpeedupTable(const SpeedupReport& report);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_SPEEDUP_H_
