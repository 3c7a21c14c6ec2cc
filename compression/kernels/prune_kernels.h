// Pruning kernels: per-filter L1/L2 norms, FPGM distance sums, activation statistics
// and the packed masks of MaskSet. CPU tensors run a multithreaded loop
// (at::parallel_for over filters or element chunks, contiguous inner loops the compiler
// vectorizes, double accumulation); float32 CUDA tensors run compression/cuda's kernels
// in builds with AUTOCOMPRESS_WITH_CUDA; anything else falls back to the composite
// LibTorch expression. Filters are slices along dim 0; any trailing shape is flattened.
#ifndef AUTOCOMPRESS_COMPRESSION_KERNELS_PRUNE_KERNELS_H_
#define AUTOCOMPRESS_COMPRESSION_KERNELS_PRUNE_KERNELS_H_

#include <cstdint>
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

// Parameters and their 0/1 masks, re-applied in place around every optimizer step.
// On the CPU (float32, contiguous) a mask is packed a bit per value, 32x smaller than a
// float mask, and applying it reads no mask floats: 64-value words of ones are skipped
// (the parameter is not touched), words of zeros are cleared without reading the
// parameter, and mixed words select value by value. Filter and channel masks are whole
// rows, so they cost only the writes of the pruned rows. Other parameters keep the mask
// tensor (the CUDA kernel, or a masked fill for other dtypes, layouts and devices).
// Masked values become +0 (also where they were NaN or infinite).
class MaskSet {
 public:
  MaskSet();
  ~MaskSet();
  MaskSet(MaskSet&&) noexcept;
  MaskSet& operator=(MaskSet&&) noexcept;

  // Adds `param` with `mask`: same shape and device, every value 0 or 1 (c10::Error
  // otherwise); a second Add of the same tensor replaces its mask. The set refers to
  // `param` itself: it follows set_data (module.to(...)), but a module attribute
  // re-bound to another tensor is not followed. The mask is copied or packed.
  void Add(const at::Tensor& param, const at::Tensor& mask);
  int64_t size() const;
  // Bytes the masks occupy, packed or not.
  int64_t mask_bytes() const;

  // param *= mask for every parameter.
  void Apply() const;
  // Both the parameters and their gradients (undefined gradients are skipped).
  void ApplyWithGradients() const;
  // Only the gradients.
  void MaskGradients() const;

 private:
  struct Entry;
  void ApplyImpl(bool values, bool grads) const;
  std::vector<Entry> entries_;
};

// params[i] *= masks[i] (and their gradients) with the composite LibTorch expression:
// the baseline MaskSet replaces, for benchmarks.
void ApplyMasksComposite(const std::vector<at::Tensor>& params,
                         const std::vector<at::Tensor>& masks, bool grads);

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
