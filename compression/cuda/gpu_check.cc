// gpu-check: on a machine with an NVIDIA GPU, checks every CUDA kernel against the CPU
// kernel on random inputs and times both, printing a markdown table with the card's
// name. Built by check_on_gpu.sh against the LibTorch inside the installed PyTorch.
// Exit code 1 when any CUDA result differs from the CPU one beyond tolerance.
#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "compression/bench/median_time.h"
#include "compression/kernels/prune_kernels.h"
#include "compression/kernels/quant_kernels.h"

namespace k = autocompress::compression::kernels;
using autocompress::compression::bench::MedianCpuMs;

namespace {

double MedianCudaMs(const std::function<void()>& f, int reps) {
  f();
  cudaDeviceSynchronize();
  std::vector<double> ms;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(start);
    f();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float elapsed = 0;
    cudaEventElapsedTime(&elapsed, start, stop);
    ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

bool failed = false;

// NaN in the same place on both sides counts as equal; NaN on one side is a mismatch.
void Check(const std::string& what, const at::Tensor& cpu, const at::Tensor& gpu, double tol) {
  const at::Tensor g = gpu.cpu();
  const at::Tensor diff = (cpu - g).abs().masked_fill(cpu.isnan().logical_and(g.isnan()), 0);
  const double err = diff.max().item<double>();
  const double scale = std::max(1.0, cpu.nan_to_num(0).abs().max().item<double>());
  const bool ok = err <= tol * scale;
  failed = failed || !ok;
  std::printf("check %-42s max |cpu - cuda| = %.3g %s\n", what.c_str(), err,
              ok ? "ok" : "MISMATCH");
}

}  // namespace

int main() {
  int devices = 0;
  cudaDeviceProp prop;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0 ||
      cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    std::fprintf(stderr, "gpu-check: no usable CUDA device\n");
    return 2;
  }
  at::manual_seed(0);
  std::printf("device: %s (%d SMs)\n\n", prop.name, prop.multiProcessorCount);

  const at::Tensor w = at::randn({512, 256, 3, 3});
  const at::Tensor wg = w.cuda();
  for (int p : {1, 2})
    Check("filter L" + std::to_string(p) + " norms", k::FilterNorms(w, p), k::FilterNorms(wg, p),
          1e-5);
  const at::Tensor small = at::randn({256, 128, 3, 3});
  Check("FPGM distance sums", k::FpgmDistanceSums(small), k::FpgmDistanceSums(small.cuda()), 1e-4);
  const at::Tensor x = at::randn({64, 512, 28, 28}) * 3;  // 25.7M values
  const at::Tensor xg = x.cuda();
  // The 2-D grid (channel = blockIdx.y, slices of 65535), the flat kernel for channels
  // smaller than a block, and a NaN, which must stay NaN with a 0 STE mask.
  struct QuantCase {
    std::string name;
    at::Tensor x;
    int64_t channels;
  };
  std::vector<QuantCase> quant_cases = {{"per tensor", x.clone(), 1},
                                        {"per channel", x.clone(), 64},
                                        {"depthwise [256,1,3,3]", at::randn({256, 1, 3, 3}), 256},
                                        {"70000 channels", at::randn({70000, 256}) * 3, 70000}};
  for (QuantCase& c : quant_cases) {
    c.x.view({-1})[7] = std::nanf("");
    const at::Tensor s = at::rand({c.channels}) * 0.05 + 0.01,
                     z = at::randint(0, 256, {c.channels}).to(at::kFloat);
    auto [cpu_out, cpu_mask] = k::FakeQuantize(c.x, s, z, 0, 255);
    auto [gpu_out, gpu_mask] = k::FakeQuantize(c.x.cuda(), s.cuda(), z.cuda(), 0, 255);
    Check("fake quantization, " + c.name, cpu_out, gpu_out, 1e-6);
    Check("STE mask, " + c.name, cpu_mask, gpu_mask, 0);
  }
  for (bool relu6 : {false, true}) {
    const at::Tensor act = at::randn({32, 64, 28, 28}) * 4;
    auto [cz, cs] = k::ActivationStatistics(act, relu6);
    auto [gz, gs] = k::ActivationStatistics(act.cuda(), relu6);
    Check(std::string("activation zeros") + (relu6 ? " (relu6)" : ""), cz, gz, 0);
    Check(std::string("activation sums") + (relu6 ? " (relu6)" : ""), cs, gs, 1e-5);
  }
  {
    at::Tensor p = at::randn({4096, 4096}), m = (at::rand({4096, 4096}) > 0.5).to(at::kFloat);
    // A pruned NaN becomes 0 on both devices.
    p.view({-1})[m.view({-1}).eq(0).nonzero()[0][0].item<int64_t>()] = std::nanf("");
    at::Tensor pg = p.cuda(), mg = m.cuda();
    k::MaskSet cpu_masks, gpu_masks;
    cpu_masks.Add(p, m);
    gpu_masks.Add(pg, mg);
    cpu_masks.Apply();
    gpu_masks.Apply();
    Check("apply masks", p, pg, 0);
  }

  // Device-to-device copy bandwidth (bytes read + written) as the reference.
  at::Tensor big = at::empty({1 << 28}, at::TensorOptions().device(at::kCUDA));
  at::Tensor big_copy = at::empty_like(big);
  const double copy_ms = MedianCudaMs([&] { big_copy.copy_(big); }, 20);
  const double copy_gbs = 2.0 * big.numel() * 4 / (copy_ms * 1e6);

  std::printf(
      "\n| kernel | shape | CPU ms (median) | CUDA ms (median) | CUDA GB/s | %% of copy bandwidth "
      "|\n");
  std::printf("|---|---|---|---|---|---|\n");
  auto row = [&](const std::string& name, const std::string& shape, double cpu_ms, double gpu_ms,
                 double bytes) {
    const double gbs = bytes / (gpu_ms * 1e6);
    std::printf("| %s | %s | %.3f | %.4f | %.0f | %.0f%% |\n", name.c_str(), shape.c_str(), cpu_ms,
                gpu_ms, gbs, 100 * gbs / copy_gbs);
  };
  for (int p : {1, 2}) {
    row("filter L" + std::to_string(p) + " norms", "[512, 256, 3, 3]",
        MedianCpuMs([&] { k::FilterNorms(w, p); }, 11),
        MedianCudaMs([&] { k::FilterNorms(wg, p); }, 51), w.numel() * 4.0);
  }
  const at::Tensor smallg = small.cuda();
  row("FPGM distance sums", "[256, 128, 3, 3]", MedianCpuMs([&] { k::FpgmDistanceSums(small); }, 5),
      MedianCudaMs([&] { k::FpgmDistanceSums(smallg); }, 21), small.numel() * 4.0 * small.size(0));
  for (int64_t channels : {1, 64}) {
    const at::Tensor s = at::rand({channels}) * 0.05 + 0.01,
                     z = at::randint(0, 256, {channels}).to(at::kFloat);
    const at::Tensor sg = s.cuda(), zg = z.cuda();
    // Read x, write value and mask.
    row(std::string("fake quantization + mask, ") + (channels == 1 ? "per tensor" : "per channel"),
        "[64, 512, 28, 28]", MedianCpuMs([&] { k::FakeQuantize(x, s, z, 0, 255); }, 5),
        MedianCudaMs([&] { k::FakeQuantize(xg, sg, zg, 0, 255); }, 51), x.numel() * 12.0);
  }
  {
    const at::Tensor act = at::randn({64, 512, 28, 28});
    const at::Tensor actg = act.cuda();
    row("activation statistics (zeros + sums)", "[64, 512, 28, 28]",
        MedianCpuMs([&] { k::ActivationStatistics(act, false); }, 5),
        MedianCudaMs([&] { k::ActivationStatistics(actg, false); }, 51), act.numel() * 4.0);
  }
  {
    at::Tensor pg = at::randn({8192, 4096}, at::TensorOptions().device(at::kCUDA));
    at::Tensor mg =
        (at::rand({8192, 4096}, at::TensorOptions().device(at::kCUDA)) > 0.5).to(at::kFloat);
    at::Tensor p = pg.cpu(), m = mg.cpu();
    k::MaskSet cpu_masks, gpu_masks;
    cpu_masks.Add(p, m);
    gpu_masks.Add(pg, mg);
    // Read param and mask, write param.
    row("apply masks", "[8192, 4096]", MedianCpuMs([&] { cpu_masks.Apply(); }, 11),
        MedianCudaMs([&] { gpu_masks.Apply(); }, 51), pg.numel() * 12.0);
  }
  std::printf("\ndevice-to-device copy: %.0f GB/s (read + write)\n", copy_gbs);
  std::printf("gpu-check: %s\n", failed ? "MISMATCH" : "all CUDA results match the CPU kernels");
  return failed ? 1 : 0;
}
