// Fake-quantization kernels (reference §3.3): x_hat = scale * (q - zero_point) with
// q = round(clamp(zero_point + x / scale, qmin, qmax)), round half to even, plus the
// straight-through-estimator mask of the backward pass: 1 where
// round(x / scale + zero_point) lies inside [qmin, qmax], else 0.
// Per-tensor (scale, zero_point of shape [] or [1]) or per-channel along dim 0 (shape
// [C]). CPU: one fused, multithreaded pass that writes both outputs; other devices use
// the composite expression.
#ifndef AUTOCOMPRESS_COMPRESSION_KERNELS_QUANT_KERNELS_H_
#define AUTOCOMPRESS_COMPRESSION_KERNELS_QUANT_KERNELS_H_

#include <utility>

namespace at {
class Tensor;
}

namespace autocompress::compression::kernels {

// Returns {x_hat, ste_mask}; both have x's shape and dtype.
std::pair<at::Tensor, at::Tensor> FakeQuantize(const at::Tensor& x, const at::Tensor& scale,
                                               const at::Tensor& zero_point, double qmin,
                                               double qmax);

// The same with LibTorch operators (baseline and non-CPU path).
std::pair<at::Tensor, at::Tensor> FakeQuantizeComposite(const at::Tensor& x,
                                                        const at::Tensor& scale,
                                                        const at::Tensor& zero_point, double qmin,
                                                        double qmax);

}  // namespace autocompress::compression::kernels

#endif  // AUTOCOMPRESS_COMPRESSION_KERNELS_QUANT_KERNELS_H_
