#include "compression/kernels/prune_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Clears the values of one 64-value word whose mask bit is 0 (bit k <-> v[k]). Selects
// on 32-bit halves: AVX2 shifts 32-bit lanes by a variable count, not 64-bit ones.
AC_VECTOR_CLONES void ClearMaskedInWord(float* v, uint64_t word) {
  for (int half = 0; half < 2; ++half) {
    const uint32_t bits = static_cast<uint32_t>(word >> (32 * half));
    float* h = v + 32 * half;
    for (int k = 0; k < 32; ++k) h[k] = (bits >> k) & 1u ? h[k] : 0.0f;
  }
}

// Applies words [begin, end) of a packed mask over `numel` values to data and grad
// (either may be null). Runs of zero words (pruned rows) are cleared with one fill each.
void ApplyPackedWords(float* data, float* grad, const uint64_t* words, int64_t begin, int64_t end,
                      int64_t numel) {
  int64_t w = begin;
  while (w < end) {
    const uint64_t word = words[w];
    if (word == ~uint64_t{0}) {  // all kept: nothing to read or write
      ++w;
      continue;
    }
    const int64_t first = w * 64;
    if (word == 0) {
      int64_t last = w + 1;
      while (last < end && words[last] == 0) ++last;
      const int64_t count = std::min(last * 64, numel) - first;
      if (data != nullptr) std::fill_n(data + first, count, 0.0f);
      if (grad != nullptr) std::fill_n(grad + first, count, 0.0f);
      w = last;
      continue;
    }
    const int64_t count = std::min<int64_t>(64, numel - first);
    for (float* v : {data, grad}) {
      if (v == nullptr) continue;
      if (count == 64) {
        ClearMaskedInWord(v + first, word);
      } else {
        for (int64_t k = 0; k < count; ++k) v[first + k] = (word >> k) & 1u ? v[first + k] : 0.0f;
      }
    }
    ++w;
  }
}

}  // namespace

struct MaskSet::Entry {
  at::Tensor param;
  int64_t numel = 0;
  at::Tensor mask;              // undefined when packed
  std::vector<uint64_t> words;  // packed: bit k of word i = mask value 64 i + k
  mutable at::Tensor pruned;    // cache for the fallback: mask == 0, flat, on one device

  // The float32 CPU tensors the packed kernel applies to.
  static bool Packable(const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous();
  }

  // Fallback for any tensor: t[mask == 0] = 0 (a select, so NaN and inf become 0 too).
  void ClearPruned(at::Tensor t) const {
    if (!pruned.defined() || pruned.device() != t.device()) {
      at::Tensor flat;
      if (mask.defined()) {
        flat = mask.eq(0).reshape({-1});
      } else {
        flat = at::empty({numel}, at::kBool);
        bool* v = flat.data_ptr<bool>();
        for (int64_t k = 0; k < numel; ++k) v[k] = !((words[k / 64] >> (k % 64)) & 1u);
      }
      pruned = flat.to(t.device());
    }
    t.masked_fill_(pruned.view(t.sizes()), 0);
  }
};

MaskSet::MaskSet() = default;
MaskSet::~MaskSet() = default;
MaskSet::MaskSet(MaskSet&&) noexcept = default;
MaskSet& MaskSet::operator=(MaskSet&&) noexcept = default;

void MaskSet::Add(const at::Tensor& param, const at::Tensor& mask) {
  size_t index = 0;
  while (index < entries_.size() && !entries_[index].param.is_same(param)) ++index;
  TORCH_CHECK(param.sizes() == mask.sizes(), "MaskSet: tensor ", index, " has shape ",
              param.sizes(), " but its mask ", mask.sizes());
  TORCH_CHECK(param.device() == mask.device(), "MaskSet: tensor ", index, " is on ", param.device(),
              " but its mask on ", mask.device());
  TORCH_CHECK(mask.eq(0).logical_or(mask.eq(1)).all().item<bool>(), "MaskSet: the mask of tensor ",
              index, " has values other than 0 and 1");
  Entry entry;
  entry.param = param;
  entry.numel = param.numel();
  if (Entry::Packable(param)) {
    const at::Tensor keep = mask.ne(0).contiguous();
    const bool* k = keep.data_ptr<bool>();
    const int64_t n = keep.numel();
    entry.words.assign((n + 63) / 64, 0);
    uint64_t* words = entry.words.data();
    at::parallel_for(0, static_cast<int64_t>(entry.words.size()), 1024, [&](int64_t b, int64_t e) {
      for (int64_t w = b; w < e; ++w) {
        uint64_t word = 0;
        for (int64_t j = 0; j < 64 && w * 64 + j < n; ++j) word |= uint64_t{k[w * 64 + j]} << j;
        words[w] = word;
      }
    });
  } else {
    entry.mask = mask.to(param.scalar_type(), /*non_blocking=*/false, /*copy=*/true).contiguous();
  }
  if (index < entries_.size()) {
    entries_[index] = std::move(entry);  // a new mask for the same parameter replaces the old
  } else {
    entries_.push_back(std::move(entry));
  }
}

int64_t MaskSet::size() const { return static_cast<int64_t>(entries_.size()); }

int64_t MaskSet::mask_bytes() const {
  int64_t bytes = 0;
  for (const Entry& e : entries_) {
    bytes += e.mask.defined() ? e.mask.numel() * e.mask.element_size()
                              : static_cast<int64_t>(e.words.size() * sizeof(uint64_t));
  }
  return bytes;
}

void MaskSet::Apply() const { ApplyImpl(/*values=*/true, /*grads=*/false); }
void MaskSet::ApplyWithGradients() const { ApplyImpl(/*values=*/true, /*grads=*/true); }
void MaskSet::MaskGradients() const { ApplyImpl(/*values=*/false, /*grads=*/true); }

void MaskSet::ApplyImpl(bool values, bool grads) const {
  for (const Entry& e : entries_) {
    const at::Tensor& p = e.param;
    TORCH_CHECK(p.numel() == e.numel, "MaskSet: a parameter of ", e.numel, " values now has ",
                p.numel());
    const at::Tensor v = values ? p : at::Tensor();
    const at::Tensor g = grads ? p.grad() : at::Tensor();
#ifdef AUTOCOMPRESS_WITH_CUDA
    // The CUDA kernel masks a parameter and its gradient in one pass.
    auto on_gpu = [&](const at::Tensor& t) {
      return t.is_cuda() && t.scalar_type() == at::kFloat && t.is_contiguous() &&
             e.mask.defined() && e.mask.device() == t.device() &&
             e.mask.scalar_type() == at::kFloat;
    };
    if ((!v.defined() || on_gpu(v)) && (!g.defined() || on_gpu(g)) &&
        (v.defined() || g.defined())) {
      cuda::ApplyMaskTensor(v.defined() ? v : g, v.defined() ? g : at::Tensor(), e.mask);
      continue;
    }
#endif
    // The tensor's data for the packed kernel, or null after a select (other dtypes,
    // layouts and devices).
    auto packed_target = [&](const at::Tensor& t) -> float* {
      if (!t.defined()) return nullptr;
      if (!e.mask.defined() && Entry::Packable(t)) return t.data_ptr<float>();
      e.ClearPruned(t);
      return nullptr;
    };
    float* data = packed_target(v);
    float* grad = packed_target(g);
    if (data == nullptr && grad == nullptr) continue;
    at::parallel_for(0, static_cast<int64_t>(e.words.size()), 1024, [&](int64_t b, int64_t end) {
      ApplyPackedWords(data, grad, e.words.data(), b, end, e.numel);
    });
  }
}

void ApplyMasksComposite(const std::vector<at::Tensor>& params,
                         const std::vector<at::Tensor>& masks, bool grads) {
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor p = params[i];
    p.mul_(masks[i]);
    if (grads && p.grad().defined()) p.mutable_grad().mul_(masks[i]);
  }
}

}  // namespace autocompress::compression::kernels
