// kernels-bench: each CPU kernel beside the composite LibTorch expression it replaces,
// on the same tensors in the same run. Prints a table of medians and the speedup.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "compression/bench/median_time.h"
#include "compression/kernels/prune_kernels.h"
#include "compression/kernels/quant_kernels.h"

namespace {

void Row(const std::string& kernel, const std::string& shape, int64_t elements,
         const std::function<void()>& fused, const std::function<void()>& composite, int reps) {
  const double a = autocompress::compression::bench::MedianCpuMs(fused, reps),
               b = autocompress::compression::bench::MedianCpuMs(composite, reps);
  std::printf("| %s | %s | %lld | %.3f | %.3f | %.2fx |\n", kernel.c_str(), shape.c_str(),
              static_cast<long long>(elements), a, b, b / a);
}

}  // namespace

void RunAll();

int main() {
  torch::manual_seed(0);
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  for (int threads : {1, hardware}) {
    at::set_num_threads(threads);
    std::printf("\n### %d intra-op thread(s)\n\n", at::get_num_threads());
    RunAll();
    if (hardware <= 1) break;
  }
  return 0;
}

void RunAll() {
  std::printf(
      "| kernel | shape | elements | ours ms (median) | composite ms (median) | speedup |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (auto shape :
       std::vector<std::vector<int64_t>>{{512, 256, 3, 3}, {1024, 1024}, {64, 3, 7, 7}}) {
    torch::Tensor w = torch::randn(shape);
    std::string s = torch::str(w.sizes());
    for (int p : {1, 2}) {
      Row(
          p == 1 ? "filter L1 norms" : "filter L2 norms", s, w.numel(),
          [&] { autocompress::compression::kernels::FilterNorms(w, p); },
          [&] { autocompress::compression::kernels::FilterNormsComposite(w, p); }, 21);
    }
  }
  for (auto shape : std::vector<std::vector<int64_t>>{{64, 64, 3, 3}, {256, 128, 3, 3}}) {
    torch::Tensor w = torch::randn(shape);
    Row(
        "FPGM distance sums (direct, vs cdist)", torch::str(w.sizes()), w.numel(),
        [&] { autocompress::compression::kernels::FpgmDistanceSums(w); },
        [&] { autocompress::compression::kernels::FpgmDistanceSumsComposite(w); }, 7);
  }
  {
    namespace k = autocompress::compression::kernels;
    torch::Tensor x = torch::randn({512, 256, 3, 3});
    for (int64_t channels : {1, 512}) {
      torch::Tensor scale = torch::rand({channels}) * 0.02 + 0.01;
      torch::Tensor zero = torch::randint(0, 256, {channels}).to(torch::kFloat);
      Row(
          channels == 1 ? "fake quantization + STE mask, per tensor"
                        : "fake quantization + STE mask, per channel",
          torch::str(x.sizes()), x.numel(), [&] { k::FakeQuantize(x, scale, zero, 0, 255); },
          [&] { k::FakeQuantizeComposite(x, scale, zero, 0, 255); }, 21);
    }
  }
  {
    torch::Tensor act = torch::randn({32, 256, 14, 14});
    Row(
        "activation statistics (relu zeros + sums)", torch::str(act.sizes()), act.numel(),
        [&] { autocompress::compression::kernels::ActivationStatistics(act, false); },
        [&] { autocompress::compression::kernels::ActivationStatisticsComposite(act, false); }, 21);
  }
  // Masks re-applied after an optimizer step: element masks (level) and filter masks
  // (half of the rows, as l1/l2/fpgm/... leave them), at 50% sparsity.
  for (bool filters : {false, true}) {
    std::vector<torch::Tensor> params, masks;
    autocompress::compression::kernels::MaskSet mask_set;
    int64_t total = 0;
    for (int i = 0; i < 8; ++i) {
      params.push_back(torch::randn({512, 1024}).requires_grad_(true));
      params.back().mutable_grad() = torch::randn({512, 1024});
      masks.push_back(
          filters ? (torch::rand({512, 1}) > 0.5).to(torch::kFloat).expand({512, 1024}).contiguous()
                  : (torch::rand({512, 1024}) > 0.5).to(torch::kFloat));
      mask_set.Add(params.back(), masks.back());
      total += params.back().numel();
    }
    torch::NoGradGuard no_grad;
    Row(
        filters ? "apply filter masks to weights and grads"
                : "apply element masks to weights and grads",
        "8 x [512, 1024]", total, [&] { mask_set.ApplyWithGradients(); },
        [&] { autocompress::compression::kernels::ApplyMasksComposite(params, masks, true); }, 21);
    if (!filters) {
      // The floor for element masks: every weight and gradient read and written once, no
      // mask at all (ATen's in-place scale). No mask kernel can beat this row's speedup.
      Row(
          "floor: scale weights and grads in place, no mask", "8 x [512, 1024]", total,
          [&] {
            for (torch::Tensor& p : params) {
              p.mul_(1.0f);
              p.mutable_grad().mul_(1.0f);
            }
          },
          [&] { autocompress::compression::kernels::ApplyMasksComposite(params, masks, true); },
          21);
    } else {
      std::printf("\nmask memory: %.1f MiB as float tensors, %.2f MiB packed\n",
                  total * 4.0 / (1 << 20), mask_set.mask_bytes() / double(1 << 20));
    }
  }
}
