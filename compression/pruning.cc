#include "compression/pruning.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace autocompress::compression {

int64_t ElementsToPrune(int64_t numel, double sparsity) {
  return static_cast<int64_t>(std::floor(static_cast<double>(numel) * sparsity));
}

int64_t FiltersToPrune(int64_t filters, double sparsity) {
  if (filters < 2) return 0;
  return static_cast<int64_t>(std::floor(static_cast<double>(filters) * sparsity));
}

at::Tensor LevelMask(const at::Tensor& weight, double sparsity) {
  const int64_t k = ElementsToPrune(weight.numel(), sparsity);
  if (k == 0) return at::ones_like(weight);
  const at::Tensor magnitude = weight.abs();
  const at::Tensor threshold = std::get<0>(magnitude.reshape({-1}).kthvalue(k));
  return magnitude.gt(threshold).to(weight.scalar_type());
}

at::Tensor ThresholdFilterKeep(const at::Tensor& scores, double sparsity) {
  const int64_t k = FiltersToPrune(scores.size(0), sparsity);
  if (k < 1) return at::ones_like(scores);
  const at::Tensor threshold = std::get<0>(scores.kthvalue(k));
  return scores.gt(threshold).to(scores.scalar_type());
}

at::Tensor IndexFilterKeep(const at::Tensor& scores, double sparsity) {
  return IndexFilterKeepCount(scores, FiltersToPrune(scores.size(0), sparsity));
}

at::Tensor IndexFilterKeepCount(const at::Tensor& scores, int64_t k) {
  at::Tensor keep = at::ones_like(scores);
  if (k < 1) return keep;
  const at::Tensor order =
      std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  keep.index_fill_(0, order.slice(0, 0, k), 0);
  return keep;
}

at::Tensor ExpandFilterKeep(const at::Tensor& keep, const at::Tensor& weight) {
  std::vector<int64_t> shape(weight.dim(), 1);
  shape[0] = weight.size(0);
  return keep.reshape(shape).expand(weight.sizes()).contiguous().to(weight.scalar_type());
}

}  // namespace autocompress::compression
