#include "compression/kernels/quant_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#ifdef AUTOCOMPRESS_WITH_CUDA
#include "compression/cuda/cuda_dispatch.h"
#endif

namespace autocompress::compression::kernels {
namespace {

#define AC_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))

// One channel (or the whole tensor): n values sharing scale and zero point. Branch free
// so that it vectorizes: std::min/max are compare-and-select (std::fmin/fmax are library
// calls), nearbyint is one rounding instruction (half to even, as torch.round) in the
// AVX2 clone, and the mask ands two comparisons without short-circuit.
AC_VECTOR_CLONES void FakeQuantizeSpan(const float* x, float* out, float* mask, int64_t n,
                                       float scale, float zero_point, float qmin, float qmax) {
  for (int64_t k = 0; k < n; ++k) {
    const float shifted = zero_point + x[k] / scale;
    const float q = std::nearbyint(std::min(std::max(shifted, qmin), qmax));
    out[k] = scale * (q - zero_point);
    const float unclamped = std::nearbyint(shifted);
    mask[k] = static_cast<float>((unclamped >= qmin) & (unclamped <= qmax));
  }
}

}  // namespace

std::pair<at::Tensor, at::Tensor> FakeQuantizeComposite(const at::Tensor& x,
                                                        const at::Tensor& scale,
                                                        const at::Tensor& zero_point, double qmin,
                                                        double qmax) {
  at::Tensor s = scale, z = zero_point;
  if (s.numel() > 1) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[0] = s.numel();
    s = s.reshape(shape);
    z = z.reshape(shape);
  }
  const at::Tensor shifted = z + x / s;
  const at::Tensor q = shifted.clamp(qmin, qmax).round();
  const at::Tensor unclamped = shifted.round();
  return {(q - z) * s, unclamped.ge(qmin).logical_and(unclamped.le(qmax)).to(x.scalar_type())};
}

std::pair<at::Tensor, at::Tensor> FakeQuantize(const at::Tensor& x, const at::Tensor& scale,
                                               const at::Tensor& zero_point, double qmin,
                                               double qmax) {
  const bool per_channel = scale.numel() > 1;
  TORCH_CHECK(!per_channel || (x.dim() >= 1 && x.size(0) == scale.numel()),
              "FakeQuantize: ", scale.numel(), " scales for a tensor of shape ", x.sizes());
  TORCH_CHECK(scale.numel() >= 1, "FakeQuantize: no scale given");
  TORCH_CHECK(scale.numel() == zero_point.numel(), "FakeQuantize: scale and zero point differ");
#ifdef AUTOCOMPRESS_WITH_CUDA
  if (x.is_cuda() && x.scalar_type() == at::kFloat) {
    return cuda::FakeQuantizeTensor(x, scale, zero_point, qmin, qmax);
  }
#endif
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) {
    return FakeQuantizeComposite(x, scale.to(x.options()), zero_point.to(x.options()), qmin, qmax);
  }
  const at::Tensor input = x.contiguous();
  const at::Tensor s = scale.to(at::kFloat).contiguous().cpu();
  const at::Tensor z = zero_point.to(at::kFloat).contiguous().cpu();
  at::Tensor out = at::empty_like(input);
  at::Tensor mask = at::empty_like(input);
  const float* in_data = input.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  float* mask_data = mask.data_ptr<float>();
  const float* s_data = s.data_ptr<float>();
  const float* z_data = z.data_ptr<float>();
  if (per_channel) {
    const int64_t channels = x.size(0), span = input.numel() / channels;
    at::parallel_for(0, channels, std::max<int64_t>(1, 32768 / std::max<int64_t>(span, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t c = begin; c < end; ++c) {
                         FakeQuantizeSpan(in_data + c * span, out_data + c * span,
                                          mask_data + c * span, span, s_data[c], z_data[c],
                                          static_cast<float>(qmin), static_cast<float>(qmax));
                       }
                     });
  } else {
    at::parallel_for(0, input.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      FakeQuantizeSpan(in_data + begin, out_data + begin, mask_data + begin, end - begin, s_data[0],
                       z_data[0], static_cast<float>(qmin), static_cast<float>(qmax));
    });
  }
  return {out, mask};
}

}  // namespace autocompress::compression::kernels
