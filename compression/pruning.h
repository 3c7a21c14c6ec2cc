// Mask rules of the one-shot pruners (reference §2.2, §2.3), as pure tensor functions.
//
// Counting: level prunes k = floor(numel * s) elements; filter pruners floor(C * s)
// filters, nothing when C < 2 or that count is 0 (the same double arithmetic as NNI's
// Python, so the same rounding). Selection: threshold style (level, l1, l2) keeps
// scores strictly above the k-th smallest, so ties at the threshold are all pruned;
// index style (fpgm) prunes exactly k, ties to the lower index (stable sort).
// Masks have the weight's dtype and device; 1 keeps, 0 prunes.
#ifndef AUTOCOMPRESS_COMPRESSION_PRUNING_H_
#define AUTOCOMPRESS_COMPRESSION_PRUNING_H_

#include <cstdint>

namespace at {
class Tensor;
}

namespace autocompress::compression {

int64_t ElementsToPrune(int64_t numel, double sparsity);
int64_t FiltersToPrune(int64_t filters, double sparsity);

// Element mask for level: keeps |w| > t, t = k-th smallest |w|.
at::Tensor LevelMask(const at::Tensor& weight, double sparsity);

// [C] keep vector, threshold style over per-filter scores (lower = pruned).
at::Tensor ThresholdFilterKeep(const at::Tensor& scores, double sparsity);

// [C] keep vector, index style: exactly FiltersToPrune lowest scores pruned.
at::Tensor IndexFilterKeep(const at::Tensor& scores, double sparsity);

// [C] keep vector pruning exactly `count` lowest scores (ties to the lower index).
at::Tensor IndexFilterKeepCount(const at::Tensor& scores, int64_t count);

// The weight-shaped mask of a [C] keep vector.
at::Tensor ExpandFilterKeep(const at::Tensor& keep, const at::Tensor& weight);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_PRUNING_H_
