// CUDA implementations of the compression kernels, on raw device pointers so this
// file needs no LibTorch headers (the host dispatch in cuda_dispatch.cc wraps them for
// at::Tensor). Float32; every launch goes on the given stream; results match the CPU
// kernels in compression/kernels/ (checked by check_on_gpu.sh on random inputs).
#ifndef AUTOCOMPRESS_COMPRESSION_CUDA_KERNELS_CUH_
#define AUTOCOMPRESS_COMPRESSION_CUDA_KERNELS_CUH_

#include <cstdint>

#include <cuda_runtime.h>

namespace autocompress::compression::cuda {

// out[c] = sum |w_c| (p = 1) or sqrt(sum w_c^2) (p = 2) over `size` values per filter.
void FilterNorms(const float* w, float* out, int64_t filters, int64_t size, int p,
                 cudaStream_t stream);

// out[c] = sum_j ||w_c - w_j||_2.
void FpgmDistanceSums(const float* w, float* out, int64_t filters, int64_t size,
                      cudaStream_t stream);

// Fake quantization with the STE mask; `channels` scales/zero points over dim 0 (1 =
// per tensor), `span` = values per channel.
void FakeQuantize(const float* x, float* out, float* mask, int64_t n, int64_t span,
                  const float* scale, const float* zero_point, int64_t channels, float qmin,
                  float qmax, cudaStream_t stream);

// Per-channel zeros and sums of act(x) (relu or relu6) for x [batch, channels, span].
void ActivationStatistics(const float* x, double* zeros, double* sums, int64_t batch,
                          int64_t channels, int64_t span, bool relu6, cudaStream_t stream);

// data *= mask and, when grad is not null, grad *= mask.
void ApplyMask(float* data, float* grad, const float* mask, int64_t n, cudaStream_t stream);

}  // namespace autocompress::compression::cuda

#endif  // AUTOCOMPRESS_COMPRESSION_CUDA_KERNELS_CUH_
