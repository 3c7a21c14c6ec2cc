#include "compression/cuda/cuda_dispatch.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "compression/cuda/kernels.cuh"

namespace autocompress::compression::cuda {

// Each wrapper first makes the tensor's device current, so the kernel goes to that
// device's current stream (not device 0's for a tensor on cuda:1).

at::Tensor FilterNormsTensor(const at::Tensor& weight, int p) {
  const c10::cuda::OptionalCUDAGuard guard(weight.device());
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({w.size(0)}, w.options());
  FilterNorms(w.data_ptr<float>(), out.data_ptr<float>(), w.size(0), w.numel() / w.size(0), p,
              c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.to(weight.scalar_type());
}

at::Tensor FpgmDistanceSumsTensor(const at::Tensor& weight) {
  const c10::cuda::OptionalCUDAGuard guard(weight.device());
  const at::Tensor w = weight.to(at::kFloat).contiguous();
  at::Tensor out = at::empty({w.size(0)}, w.options());
  FpgmDistanceSums(w.data_ptr<float>(), out.data_ptr<float>(), w.size(0), w.numel() / w.size(0),
                   c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out.to(weight.scalar_type());
}

std::pair<at::Tensor, at::Tensor> FakeQuantizeTensor(const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, double qmin,
                                                     double qmax) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  const at::Tensor input = x.to(at::kFloat).contiguous();
  const at::Tensor s = scale.to(input.options()).contiguous();
  const at::Tensor z = zero_point.to(input.options()).contiguous();
  at::Tensor out = at::empty_like(input), mask = at::empty_like(input);
  const int64_t channels = s.numel();
  FakeQuantize(input.data_ptr<float>(), out.data_ptr<float>(), mask.data_ptr<float>(),
               input.numel(), channels == 1 ? input.numel() : input.numel() / channels,
               s.data_ptr<float>(), z.data_ptr<float>(), channels, static_cast<float>(qmin),
               static_cast<float>(qmax), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, mask};
}

std::pair<at::Tensor, at::Tensor> ActivationStatisticsTensor(const at::Tensor& x, bool relu6) {
  const c10::cuda::OptionalCUDAGuard guard(x.device());
  const at::Tensor input = x.to(at::kFloat).contiguous();
  const int64_t batch = input.size(0), channels = input.size(1);
  const int64_t span = batch * channels == 0 ? 0 : input.numel() / (batch * channels);
  at::Tensor zeros = at::empty({channels}, input.options().dtype(at::kDouble));
  at::Tensor sums = at::empty({channels}, input.options().dtype(at::kDouble));
  ActivationStatistics(input.data_ptr<float>(), zeros.data_ptr<double>(), sums.data_ptr<double>(),
                       batch, channels, span, relu6, c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {zeros, sums};
}

void ApplyMaskTensor(const at::Tensor& data, const at::Tensor& grad, const at::Tensor& mask) {
  const c10::cuda::OptionalCUDAGuard guard(data.device());
  ApplyMask(data.data_ptr<float>(), grad.defined() ? grad.data_ptr<float>() : nullptr,
            mask.data_ptr<float>(), data.numel(), c10::cuda::getCurrentCUDAStream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace autocompress::compression::cuda
