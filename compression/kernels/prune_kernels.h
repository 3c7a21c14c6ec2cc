// Pruning kernels: per-filter L1/L2 norms, FPGM distance sums and multi-tensor mask
// application. CPU tensors run a multithreaded loop (at::parallel_for over filters or
// element chunks, contiguous inner loops the compiler vectorizes, double accumulation);
// other devices fall back to the composite LibTorch expression until their kernels land.
// Filters are slices along dim 0; any trailing shape is flattened.
#ifndef AUTOCOMPRESS_COMPRESSION_KERNELS_PRUNE_KERNELS_H_
#define AUTOCOMPRESS_COMPRESSION_KERNELS_PRUNE_KERNELS_H_

#include <utility>
#include <vector>

namespace at {
class Tensor;
}

namespace autocompress::compression::kernels {

// [C] norms of the C filters of `weight`: sum |w| (p = 1) or sqrt(sum w^2) (p = 2), in
// weight's dtype.
at::Tensor FilterNorms(const at::Tensor& weight, int p);

// [C] sums over j of ||w_c - w_j||_2 (FPGM's distance to the other filters).
at::Tensor FpgmDistanceSums(const at::Tensor& weight);

// params[i] *= masks[i] for every i, in place (same shapes). With `grads`, also zeroes
// the gradients of masked elements (grads[i] may be undefined).
void ApplyMasks(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& masks);
void ApplyMasksAndGrads(const std::vector<at::Tensor>& params,
                        const std::vector<at::Tensor>& masks);
// Only the gradients: grads of params[i] *= masks[i] (undefined gradients are skipped).
void MaskGradients(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& masks);

// Per-channel statistics of act(x) for x of shape [N, C, ...], act = relu (or relu6):
// the number of zeros and the sum, over batch and spatial positions (APoZ and mean
// activation). Returns {zeros, sums}, both float64 [C] on x's device.
std::pair<at::Tensor, at::Tensor> ActivationStatistics(const at::Tensor& x, bool relu6);
std::pair<at::Tensor, at::Tensor> ActivationStatisticsComposite(const at::Tensor& x, bool relu6);

// The composite LibTorch expressions the kernels replace (baselines for benchmarks and
// the non-CPU fallback).
at::Tensor FilterNormsComposite(const at::Tensor& weight, int p);
at::Tensor FpgmDistanceSumsComposite(const at::Tensor& weight);

}  // namespace autocompress::compression::kernels

#endif  // AUTOCOMPRESS_COMPRESSION_KERNELS_PRUNE_KERNELS_H_
