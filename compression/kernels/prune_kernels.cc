#include "compression/kernels/prune_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef AUTOCOMPRESS_WITH_CUDA
#include "compression/cuda/cuda_dispatch.h"
#endif

namespace autocompress::compression::kernels {

at::Tensor FilterNormsComposite(const at::Tensor& weight, int p) {
  at::Tensor flat = weight.reshape({weight.size(0), -1});
  return p == 1 ? flat.abs().sum(1) : flat.pow(2).sum(1).sqrt();
}

at::Tensor FpgmDistanceSumsComposite(const at::Tensor& weight) {
  at::Tensor flat = weight.reshape({weight.size(0), -1});
  return at::cdist(flat, flat).sum(1);
}

namespace {

// Inner loops for float32, the dtype models train in. Each is compiled twice (AVX2+FMA
// and baseline x86-64) and picked at load time, so one binary is fast on new CPUs and
// still runs on old ones. Sums run in 8 float lanes per 1024-element block and add the
// blocks in double: vector speed with close to double accuracy.
constexpr int64_t kBlock = 1024;

#define AC_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))

// sum of term(k) for k in [0, n): 8 float lanes per block, blocks added in double.
// Always inlined, so each vector clone below gets its own AVX2 or baseline copy.
template <typename Term>
inline __attribute__((always_inline)) double BlockedSum(int64_t n, Term term) {
  double total = 0;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t end = std::min(n, start + kBlock);
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = start;
    for (; k + 8 <= end; k += 8) {
      for (int j = 0; j < 8; ++j) lanes[j] += term(k + j);
    }
    float block = 0;
    for (int j = 0; j < 8; ++j) block += lanes[j];
    for (; k < end; ++k) block += term(k);
    total += block;
  }
  return total;
}

AC_VECTOR_CLONES double SumAbs(const float* v, int64_t n) {
  return BlockedSum(n, [v](int64_t k) { return std::fabs(v[k]); });
}

AC_VECTOR_CLONES double SumSquares(const float* v, int64_t n) {
  return BlockedSum(n, [v](int64_t k) { return v[k] * v[k]; });
}

AC_VECTOR_CLONES double SquaredDistance(const float* a, const float* b, int64_t n) {
  return BlockedSum(n, [a, b](int64_t k) {
    const float d = a[k] - b[k];
    return d * d;
  });
}

// Zeros and sum of act(v[0..n)) for one channel's contiguous span.
AC_VECTOR_CLONES void ActivationSpan(const float* v, int64_t n, bool relu6, double* zeros,
                                     double* sum) {
  const float cap = relu6 ? 6.0f : 3.4e38f;
  *zeros += BlockedSum(n, [v](int64_t k) { return v[k] <= 0.0f ? 1.0f : 0.0f; });
  *sum += BlockedSum(n, [v, cap](int64_t k) {
    const float a = v[k] > 0.0f ? v[k] : 0.0f;
    return a < cap ? a : cap;
  });
}

AC_VECTOR_CLONES void MultiplyInPlace(float* data, const float* mask, int64_t n) {
  for (int64_t k = 0; k < n; ++k) data[k] *= mask[k];
}

AC_VECTOR_CLONES void MultiplyTwoInPlace(float* data, float* grad, const float* mask, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    data[k] *= mask[k];
    grad[k] *= mask[k];
  }
}

// Generic (double) versions: plain loops.
template <typename T>
double SumAbs(const T* v, int64_t n) {
  double acc = 0;
  for (int64_t k = 0; k < n; ++k) acc += std::abs(static_cast<double>(v[k]));
  return acc;
}
template <typename T>
double SumSquares(const T* v, int64_t n) {
  double acc = 0;
  for (int64_t k = 0; k < n; ++k) acc += static_cast<double>(v[k]) * v[k];
  return acc;
}
template <typename T>
double SquaredDistance(const T* a, const T* b, int64_t n) {
  double acc = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double d = static_cast<double>(a[k]) - b[k];
    acc += d * d;
  }
  return acc;
}

}  // namespace

at::Tensor FilterNorms(const at::Tensor& weight, int p) {
  TORCH_CHECK(p == 1 || p == 2, "FilterNorms: p must be 1 or 2, got ", p);
  TORCH_CHECK(weight.dim() >= 1 && weight.size(0) > 0, "FilterNorms: weight has no filters");
#ifdef AUTOCOMPRESS_WITH_CUDA
  if (weight.is_cuda()) return cuda::FilterNormsTensor(weight, p);
#endif
  if (!weight.device().is_cpu()) return FilterNormsComposite(weight, p);
  const at::Tensor w = weight.contiguous();
  const int64_t filters = w.size(0);
  const int64_t size = w.numel() / filters;
  at::Tensor out = at::empty({filters}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "FilterNorms", [&] {
    const scalar_t* data = w.data_ptr<scalar_t>();
    scalar_t* result = out.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(size, 1));
    at::parallel_for(0, filters, grain, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const double acc =
            p == 1 ? SumAbs(data + c * size, size) : std::sqrt(SumSquares(data + c * size, size));
        result[c] = static_cast<scalar_t>(acc);
      }
    });
  });
  return out;
}

at::Tensor FpgmDistanceSums(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() >= 1 && weight.size(0) > 0, "FpgmDistanceSums: weight has no filters");
#ifdef AUTOCOMPRESS_WITH_CUDA
  if (weight.is_cuda()) return cuda::FpgmDistanceSumsTensor(weight);
#endif
  if (!weight.device().is_cpu()) return FpgmDistanceSumsComposite(weight);
  const at::Tensor w = weight.contiguous();
  const int64_t filters = w.size(0);
  const int64_t size = w.numel() / filters;
  // Each pair once (upper triangle), then row sums of the symmetric distance matrix.
  std::vector<double> distance(filters * filters, 0.0);
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "FpgmDistanceSums", [&] {
    const scalar_t* data = w.data_ptr<scalar_t>();
    // Row c has filters-1-c pairs: rows i and filters-1-i go together to balance threads.
    auto row = [&](int64_t c) {
      for (int64_t j = c + 1; j < filters; ++j) {
        distance[c * filters + j] =
            std::sqrt(SquaredDistance(data + c * size, data + j * size, size));
      }
    };
    at::parallel_for(0, (filters + 1) / 2, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        row(i);
        if (filters - 1 - i != i) row(filters - 1 - i);
      }
    });
  });
  at::Tensor out = at::empty({filters}, w.options().dtype(at::kDouble));
  double* result = out.data_ptr<double>();
  for (int64_t c = 0; c < filters; ++c) {
    double total = 0;
    for (int64_t j = 0; j < filters; ++j) {
      total += j > c ? distance[c * filters + j] : distance[j * filters + c];
    }
    result[c] = total;
  }
  return out.to(w.scalar_type());
}

std::pair<at::Tensor, at::Tensor> ActivationStatisticsComposite(const at::Tensor& x, bool relu6) {
  const at::Tensor a = relu6 ? x.clamp(0, 6) : x.relu();
  const at::Tensor per_channel = a.transpose(0, 1).reshape({x.size(1), -1});
  return {per_channel.eq(0).sum(1).to(at::kDouble), per_channel.sum(1).to(at::kDouble)};
}

std::pair<at::Tensor, at::Tensor> ActivationStatistics(const at::Tensor& x, bool relu6) {
  TORCH_CHECK(x.dim() >= 2, "ActivationStatistics: expected [N, C, ...], got ", x.sizes());
#ifdef AUTOCOMPRESS_WITH_CUDA
  if (x.is_cuda() && x.scalar_type() == at::kFloat)
    return cuda::ActivationStatisticsTensor(x, relu6);
#endif
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat) {
    return ActivationStatisticsComposite(x, relu6);
  }
  const at::Tensor input = x.contiguous();
  const int64_t batch = input.size(0), channels = input.size(1);
  const int64_t span = batch == 0 || channels == 0 ? 0 : input.numel() / (batch * channels);
  at::Tensor zeros = at::zeros({channels}, at::kDouble), sums = at::zeros({channels}, at::kDouble);
  const float* data = input.data_ptr<float>();
  double* z = zeros.data_ptr<double>();
  double* s = sums.data_ptr<double>();
  at::parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t n = 0; n < batch; ++n) {
        ActivationSpan(data + (n * channels + c) * span, span, relu6, &z[c], &s[c]);
      }
    }
  });
  return {zeros, sums};
}

namespace {

void ApplyMasksImpl(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& masks,
                    bool values, bool grads) {
  TORCH_CHECK(params.size() == masks.size(), "ApplyMasks: ", params.size(), " tensors but ",
              masks.size(), " masks");
  for (size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    const at::Tensor& m = masks[i];
    TORCH_CHECK(p.sizes() == m.sizes(), "ApplyMasks: tensor ", i, " has shape ", p.sizes(),
                " but its mask ", m.sizes());
    TORCH_CHECK(p.device() == m.device(), "ApplyMasks: tensor ", i, " is on ", p.device(),
                " but its mask on ", m.device());
    const at::Tensor g = grads ? p.grad() : at::Tensor();
#ifdef AUTOCOMPRESS_WITH_CUDA
    if (p.is_cuda() && p.scalar_type() == at::kFloat && m.scalar_type() == at::kFloat &&
        p.is_contiguous() && m.is_contiguous() && (!g.defined() || g.is_contiguous())) {
      if (values) {
        cuda::ApplyMaskTensor(p, g, m);
      } else if (g.defined()) {
        cuda::ApplyMaskTensor(g, at::Tensor(), m);
      }
      continue;
    }
#endif
    if (!p.device().is_cpu() || !p.is_contiguous() || !m.is_contiguous() ||
        p.scalar_type() != m.scalar_type() || (g.defined() && !g.is_contiguous())) {
      if (values) p.mul_(m);
      if (g.defined()) g.mul_(m);
      continue;
    }
    if (p.scalar_type() == at::kFloat) {
      float* data = p.data_ptr<float>();
      const float* mask = m.data_ptr<float>();
      float* grad = g.defined() ? g.data_ptr<float>() : nullptr;
      at::parallel_for(0, p.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
        if (values && grad != nullptr) {
          MultiplyTwoInPlace(data + begin, grad + begin, mask + begin, end - begin);
        } else if (values) {
          MultiplyInPlace(data + begin, mask + begin, end - begin);
        } else if (grad != nullptr) {
          MultiplyInPlace(grad + begin, mask + begin, end - begin);
        }
      });
      continue;
    }
    AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "ApplyMasks", [&] {
      scalar_t* data = p.data_ptr<scalar_t>();
      const scalar_t* mask = m.data_ptr<scalar_t>();
      scalar_t* grad = g.defined() ? g.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
        if (values) {
          for (int64_t k = begin; k < end; ++k) data[k] *= mask[k];
        }
        if (grad != nullptr) {
          for (int64_t k = begin; k < end; ++k) grad[k] *= mask[k];
        }
      });
    });
  }
}

}  // namespace

void ApplyMasks(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& masks) {
  ApplyMasksImpl(params, masks, /*values=*/true, /*grads=*/false);
}

void ApplyMasksAndGrads(const std::vector<at::Tensor>& params,
                        const std::vector<at::Tensor>& masks) {
  ApplyMasksImpl(params, masks, /*values=*/true, /*grads=*/true);
}

void MaskGradients(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& masks) {
  ApplyMasksImpl(params, masks, /*values=*/false, /*grads=*/true);
}

}  // namespace autocompress::compression::kernels
