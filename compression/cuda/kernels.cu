#include "kernels.cuh"

namespace autocompress::compression::cuda {
namespace {

constexpr int kThreads = 256;

// Sum over a block of kThreads threads (warp shuffles, then one warp over warp sums).
// Double, like the CPU kernels' block totals, so both rank near-ties alike.
__device__ double BlockSum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffff, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffff, v, offset);
  }
  __syncthreads();
  return v;  // valid in thread 0
}

__global__ void FilterNormsKernel(const float* w, float* out, int64_t size, int p) {
  const float* v = w + blockIdx.x * size;
  double acc = 0;
  for (int64_t k = threadIdx.x; k < size; k += blockDim.x) {
    acc += p == 1 ? fabsf(v[k]) : static_cast<double>(v[k]) * v[k];
  }
  acc = BlockSum(acc);
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<float>(p == 1 ? acc : sqrt(acc));
}

// One block per filter c; loops over j in a fixed order (deterministic sums).
__global__ void FpgmKernel(const float* w, float* out, int64_t filters, int64_t size) {
  const float* a = w + blockIdx.x * size;
  double total = 0;
  for (int64_t j = 0; j < filters; ++j) {
    const float* b = w + j * size;
    double acc = 0;
    for (int64_t k = threadIdx.x; k < size; k += blockDim.x) {
      const double d = static_cast<double>(a[k]) - b[k];
      acc += d * d;
    }
    acc = BlockSum(acc);
    if (threadIdx.x == 0) total += sqrt(acc);
  }
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<float>(total);
}

// One value, as the CPU kernel: clamping by comparisons keeps NaN (fminf/fmaxf would turn
// it into qmin), rint rounds half to even.
__device__ void FakeQuantizeValue(const float* x, float* out, float* mask, int64_t i, float s,
                                  float z, float qmin, float qmax) {
  const float shifted = z + x[i] / s;
  const float clamped = shifted < qmin ? qmin : (shifted > qmax ? qmax : shifted);
  out[i] = s * (rintf(clamped) - z);
  const float unclamped = rintf(shifted);
  mask[i] = (unclamped >= qmin && unclamped <= qmax) ? 1.0f : 0.0f;
}

// blockIdx.y is the channel (0 per tensor), so no thread divides a 64-bit index by the
// span (tens of instructions per value on the GPU); each block strides over its channel.
__global__ void FakeQuantizeKernel(const float* x, float* out, float* mask, int64_t n,
                                   const float* scale, const float* zero_point, float qmin,
                                   float qmax) {
  const int64_t c = blockIdx.y;
  const float s = scale[c], z = zero_point[c];
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    FakeQuantizeValue(x + c * n, out + c * n, mask + c * n, i, s, z, qmin, qmax);
  }
}

// Channels of fewer values than a block (depthwise weights, [C, 1, 3, 3]): one flat
// grid-stride loop that finds each value's channel by division.
__global__ void FakeQuantizeFlatKernel(const float* x, float* out, float* mask, int64_t n,
                                       int64_t span, const float* scale, const float* zero_point,
                                       float qmin, float qmax) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i / span;
    FakeQuantizeValue(x, out, mask, i, scale[c], zero_point[c], qmin, qmax);
  }
}

// Selects rather than multiplies, so a pruned NaN or infinity becomes 0 (as on the CPU).
__global__ void ApplyMaskKernel(float* data, float* grad, const float* mask, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const bool keep = mask[i] != 0.0f;
    data[i] = keep ? data[i] : 0.0f;
    if (grad != nullptr) grad[i] = keep ? grad[i] : 0.0f;
  }
}

// One block per channel; for each sample the threads stride over its positions (no
// 64-bit division per value).
__global__ void ActivationStatisticsKernel(const float* x, double* zeros, double* sums,
                                           int64_t batch, int64_t channels, int64_t span,
                                           bool relu6) {
  const int64_t c = blockIdx.x;
  double zero_count = 0, total = 0;  // exact counts beyond 2^24, CPU-like sums
  for (int64_t n = 0; n < batch; ++n) {
    const float* v = x + (n * channels + c) * span;
    for (int64_t k = threadIdx.x; k < span; k += blockDim.x) {
      float a = v[k] > 0.0f ? v[k] : 0.0f;  // NaN -> 0, as on the CPU
      if (relu6) a = fminf(a, 6.0f);
      zero_count += v[k] <= 0.0f ? 1.0 : 0.0;  // NaN is not a zero, as on the CPU
      total += a;
    }
  }
  zero_count = BlockSum(zero_count);
  total = BlockSum(total);
  if (threadIdx.x == 0) {
    zeros[c] = zero_count;
    sums[c] = total;
  }
}

int Blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65536 ? blocks : 65536);
}

}  // namespace

void FilterNorms(const float* w, float* out, int64_t filters, int64_t size, int p,
                 cudaStream_t stream) {
  FilterNormsKernel<<<static_cast<unsigned>(filters), kThreads, 0, stream>>>(w, out, size, p);
}

void FpgmDistanceSums(const float* w, float* out, int64_t filters, int64_t size,
                      cudaStream_t stream) {
  FpgmKernel<<<static_cast<unsigned>(filters), kThreads, 0, stream>>>(w, out, filters, size);
}

void FakeQuantize(const float* x, float* out, float* mask, int64_t n, int64_t span,
                  const float* scale, const float* zero_point, int64_t channels, float qmin,
                  float qmax, cudaStream_t stream) {
  if (n == 0) return;
  if (channels > 1 && span < kThreads) {
    FakeQuantizeFlatKernel<<<Blocks(n), kThreads, 0, stream>>>(x, out, mask, n, span, scale,
                                                               zero_point, qmin, qmax);
    return;
  }
  // grid.y is limited to 65535 channels; beyond that, one launch per slice of channels.
  const int64_t per_channel = channels == 1 ? n : span;
  for (int64_t first = 0; first < channels; first += 65535) {
    const int64_t count = channels - first < 65535 ? channels - first : 65535;
    // Up to 65536 blocks in all (as Blocks()); each strides over its channel's values.
    const int64_t cap = 65536 / count > 0 ? 65536 / count : 1;
    const int64_t blocks_x = (per_channel + kThreads - 1) / kThreads;
    const dim3 grid(static_cast<unsigned>(blocks_x < cap ? blocks_x : cap),
                    static_cast<unsigned>(count));
    FakeQuantizeKernel<<<grid, kThreads, 0, stream>>>(
        x + first * per_channel, out + first * per_channel, mask + first * per_channel, per_channel,
        scale + first, zero_point + first, qmin, qmax);
  }
}

void ActivationStatistics(const float* x, double* zeros, double* sums, int64_t batch,
                          int64_t channels, int64_t span, bool relu6, cudaStream_t stream) {
  if (channels == 0) return;
  ActivationStatisticsKernel<<<static_cast<unsigned>(channels), kThreads, 0, stream>>>(
      x, zeros, sums, batch, channels, span, relu6);
}

void ApplyMask(float* data, float* grad, const float* mask, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  ApplyMaskKernel<<<Blocks(n), kThreads, 0, stream>>>(data, grad, mask, n);
}

}  // namespace autocompress::compression::cuda
