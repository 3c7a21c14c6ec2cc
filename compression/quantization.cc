#include "compression/quantization.h"

#include <ATen/ATen.h>

#include <cmath>

#include "compression/kernels/quant_kernels.h"

namespace autocompress::compression {

IntegerRange RangeFor(int bits, const std::string& dtype) {
  if (dtype == "int") {
    const double half = std::ldexp(1.0, bits - 1) - 1;
    return {-half, half};
  }
  return {0, std::ldexp(1.0, bits) - 1};
}

// a / b as a true division on every device: ATen's CUDA kernel turns division by a host
// scalar into a * (1 / b), one unit in the last place off the CPU's result, enough to
// move a weight on a rounding edge to the next integer level.
at::Tensor Divide(const at::Tensor& a, double b) { return a / at::full({}, b, a.options()); }

void ComputeScaleZeroPoint(const at::Tensor& rmin_in, const at::Tensor& rmax_in, IntegerRange range,
                           bool symmetric, const std::string& dtype, at::Tensor* scale,
                           at::Tensor* zero_point) {
  const at::Tensor rmin = rmin_in.to(at::kDouble).clamp_max(0);
  const at::Tensor rmax = rmax_in.to(at::kDouble).clamp_min(0);
  at::Tensor s, z;
  if (symmetric) {
    s = Divide(at::max(rmin.abs(), rmax.abs()), (range.qmax - range.qmin) / 2);
    // A zero range quantizes to zeros instead of NaN (NNI divides by 0).
    s = at::where(s.eq(0), at::ones_like(s), s);
    z = at::full_like(s, dtype == "int" ? 0.0 : std::floor((range.qmin + range.qmax) / 2));
  } else {
    s = Divide(rmax - rmin, range.qmax - range.qmin);
    s = at::where(s.eq(0), at::ones_like(s), s);
    z = range.qmin - (rmin / s).round();
  }
  *scale = s.to(at::kFloat);
  *zero_point = z.clamp(range.qmin, range.qmax).to(at::kFloat);
}

void RangeOf(const at::Tensor& x, bool per_channel, at::Tensor* min, at::Tensor* max) {
  if (per_channel) {
    const at::Tensor flat = x.reshape({x.size(0), -1});
    *min = std::get<0>(flat.min(1));
    *max = std::get<0>(flat.max(1));
  } else {
    *min = x.min().reshape({1});
    *max = x.max().reshape({1});
  }
}

at::Tensor QatQuantizeWeight(const at::Tensor& weight, int bits, const std::string& scheme,
                             const std::string& dtype, at::Tensor* scale, at::Tensor* zero_point,
                             at::Tensor* ste_mask) {
  const bool per_channel = scheme.rfind("per_channel", 0) == 0;
  const bool symmetric = scheme.find("symmetric") != std::string::npos;
  at::Tensor rmin, rmax;
  RangeOf(weight, per_channel, &rmin, &rmax);
  const IntegerRange range = RangeFor(bits, dtype);
  ComputeScaleZeroPoint(rmin, rmax, range, symmetric, dtype, scale, zero_point);
  auto [value, mask] = kernels::FakeQuantize(weight, *scale, *zero_point, range.qmin, range.qmax);
  *ste_mask = mask;
  return value;
}

at::Tensor NaiveQuantizeWeight(const at::Tensor& weight, at::Tensor& running_scale) {
  const at::Tensor fresh = Divide(weight.abs().max(), 127);
  running_scale = running_scale.defined() ? at::max(running_scale, fresh) : fresh;
  const at::Tensor s = at::where(running_scale.eq(0), at::ones_like(running_scale), running_scale);
  return (weight / s).trunc() * s;
}

at::Tensor DorefaQuantizeWeight(const at::Tensor& weight, int bits) {
  const at::Tensor t = weight.tanh();
  const at::Tensor u = t / (2 * t.abs().max()) + 0.5;
  const double levels = std::ldexp(1.0, bits) - 1;
  return 2 * Divide((u * levels).round(), levels) - 1;
}

at::Tensor BnnQuantizeWeight(const at::Tensor& weight) {
  return at::where(weight.ge(0), at::ones_like(weight), -at::ones_like(weight));
}

}  // namespace autocompress::compression
