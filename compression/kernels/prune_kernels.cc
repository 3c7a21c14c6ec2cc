#include "compression/kernels/prune_kernels.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>

namespace autocompress::compression::kernels {

at::Tensor FilterNormsComposite(const at::Tensor& weight, int p) {
  at::Tensor flat = weight.reshape({weight.size(0), -1});
  return p == 1 ? flat.abs().sum(1) : flat.pow(2).sum(1).sqrt();
}

at::Tensor FpgmDistanceSumsComposite(const at::Tensor& weight) {
  at::Tensor flat = weight.reshape({weight.size(0), -1});
  return at::cdist(flat, flat).sum(1);
}

at::Tensor FilterNorms(const at::Tensor& weight, int p) {
  TORCH_CHECK(p == 1 || p == 2, "FilterNorms: p must be 1 or 2, got ", p);
  TORCH_CHECK(weight.dim() >= 1 && weight.size(0) > 0, "FilterNorms: weight has no filters");
  if (!weight.device().is_cpu()) return FilterNormsComposite(weight, p);
  const at::Tensor w = weight.contiguous();
  const int64_t filters = w.size(0);
  const int64_t size = filters == 0 ? 0 : w.numel() / filters;
  at::Tensor out = at::empty({filters}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "FilterNorms", [&] {
    const scalar_t* data = w.data_ptr<scalar_t>();
    scalar_t* result = out.data_ptr<scalar_t>();
    at::parallel_for(0, filters, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const scalar_t* v = data + c * size;
        double acc = 0;
        if (p == 1) {
          for (int64_t k = 0; k < size; ++k) acc += std::abs(static_cast<double>(v[k]));
        } else {
          for (int64_t k = 0; k < size; ++k) acc += static_cast<double>(v[k]) * v[k];
          acc = std::sqrt(acc);
        }
        result[c] = static_cast<scalar_t>(acc);
      }
    });
  });
  return out;
}

at::Tensor FpgmDistanceSums(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() >= 1 && weight.size(0) > 0, "FpgmDistanceSums: weight has no filters");
  if (!weight.device().is_cpu()) return FpgmDistanceSumsComposite(weight);
  const at::Tensor w = weight.contiguous();
  const int64_t filters = w.size(0);
  const int64_t size = w.numel() / filters;
  at::Tensor out = at::empty({filters}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "FpgmDistanceSums", [&] {
    const scalar_t* data = w.data_ptr<scalar_t>();
    scalar_t* result = out.data_ptr<scalar_t>();
    at::parallel_for(0, filters, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        const scalar_t* a = data + c * size;
        double total = 0;
        for (int64_t j = 0; j < filters; ++j) {
          if (j == c) continue;
          const scalar_t* b = data + j * size;
          double acc = 0;
          for (int64_t k = 0; k < size; ++k) {
            const double d = static_cast<double>(a[k]) - b[k];
            acc += d * d;
          }
          total += std::sqrt(acc);
        }
        result[c] = static_cast<scalar_t>(total);
      }
    });
  });
  return out;
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
    const at::Tensor g = grads ? p.grad() : at::Tensor();
    if (!p.device().is_cpu() || !p.is_contiguous() || !m.is_contiguous() ||
        p.scalar_type() != m.scalar_type() || (g.defined() && !g.is_contiguous())) {
      if (values) p.mul_(m);
      if (g.defined()) g.mul_(m);
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
