// at::Tensor wrappers of the CUDA kernels (float32, contiguous copies, current stream).
// Built only where a CUDA-enabled LibTorch is present (check_on_gpu.sh defines
// AUTOCOMPRESS_WITH_CUDA); compression/kernels/*.cc route CUDA tensors here then.
#ifndef AUTOCOMPRESS_COMPRESSION_CUDA_CUDA_DISPATCH_H_
#define AUTOCOMPRESS_COMPRESSION_CUDA_CUDA_DISPATCH_H_

#include <utility>
#include <vector>

namespace at {
class Tensor;
}

namespace autocompress::compression::cuda {

at::Tensor FilterNormsTensor(const at::Tensor& weight, int p);
at::Tensor FpgmDistanceSumsTensor(const at::Tensor& weight);
std::pair<at::Tensor, at::Tensor> FakeQuantizeTensor(const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, double qmin,
                                                     double qmax);
std::pair<at::Tensor, at::Tensor> ActivationStatisticsTensor(const at::Tensor& x, bool relu6);
void ApplyMaskTensor(const at::Tensor& data, const at::Tensor& grad, const at::Tensor& mask);

}  // namespace autocompress::compression::cuda

#endif  // AUTOCOMPRESS_COMPRESSION_CUDA_CUDA_DISPATCH_H_
