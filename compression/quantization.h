// Quantization rules of the four quantizers (reference §3), as tensor functions. All
// return the value a quantized weight takes in the forward pass; the session keeps the
// float shadow weights and the straight-through gradients.
//
// Differences from NNI: a zero range (all-zero tensor) gets scale 1 instead of 0, so it
// quantizes to zeros rather than NaN; QAT's min/max are per output channel for
// per_channel schemes (dim 0), as NNI.
#ifndef AUTOCOMPRESS_COMPRESSION_QUANTIZATION_H_
#define AUTOCOMPRESS_COMPRESSION_QUANTIZATION_H_

#include <string>

namespace at {
class Tensor;
}

namespace autocompress::compression {

// Integer range for `bits`: uint [0, 2^b - 1]; int [-(2^(b-1) - 1), 2^(b-1) - 1].
struct IntegerRange {
  double qmin;
  double qmax;
};
IntegerRange RangeFor(int bits, const std::string& dtype);

// Min and max of `x` per dim-0 channel ([C] each) or over the whole tensor ([1] each).
void RangeOf(const at::Tensor& x, bool per_channel, at::Tensor* min, at::Tensor* max);

// QAT scale and zero point from a real range (tensors of equal shape: [] or [C]).
void ComputeScaleZeroPoint(const at::Tensor& rmin, const at::Tensor& rmax, IntegerRange range,
                           bool symmetric, const std::string& dtype, at::Tensor* scale,
                           at::Tensor* zero_point);

// QAT weight quantization: min/max of `weight` (per tensor, or per dim-0 channel for
// per_channel_* schemes), scale/zero point, fake quantization. Returns the quantized
// value and sets the parameters and the STE mask.
at::Tensor QatQuantizeWeight(const at::Tensor& weight, int bits, const std::string& scheme,
                             const std::string& dtype, at::Tensor* scale, at::Tensor* zero_point,
                             at::Tensor* ste_mask);

// Naive: s = max(previous_scale, max|w| / 127); trunc(w / s) * s (truncation toward
// zero, as NNI's int8 cast). Updates `running_scale` (a 0-dim tensor, 0 initially).
at::Tensor NaiveQuantizeWeight(const at::Tensor& weight, at::Tensor& running_scale);

// DoReFa: 2 * round(((tanh w) / (2 max|tanh w|) + 0.5) * (2^k - 1)) / (2^k - 1) - 1.
at::Tensor DorefaQuantizeWeight(const at::Tensor& weight, int bits);

// BNN: sign(w) with sign(0) = +1.
at::Tensor BnnQuantizeWeight(const at::Tensor& weight);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_QUANTIZATION_H_
