// gpu-session-check: the whole compression session on a CUDA device beside the CPU.
// For each test model (make_models.py) and algorithm, compresses a CPU session and a
// `device` session alike, fine-tunes both on the same batches through the session's
// contract (the training library's FineTune), saves the device model and reloads it on
// the CPU. Checks:
//   one-shot pruners (level, l1, l2, fpgm, dependency-aware l1): the same filters and
//     sparsity on both devices;
//   weight quantizers: the same quantized weights (at most one quantization step apart
//     on a few rounding ties);
//   every algorithm: pruned filters stay zero through fine-tuning, outputs are finite,
//     and the saved model computes on the CPU what the device session computed.
// Prints a markdown table; exit code 1 on any mismatch. Built by check_on_gpu.sh.
//
//   gpu_session_check MODELS_DIR [DEVICE]     (DEVICE: cuda:0 by default; cpu for a dry
//                                              run of this program on a CPU-only build)
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compression/compression_session.h"
#include "compression/config_list.h"
#include "nlohmann/json.hpp"
#include "worker/training/fine_tune.h"
#include "worker/training/random_dataset.h"

namespace {

using autocompress::compression::CompressionSession;
using autocompress::compression::CompressOptions;
using autocompress::compression::IsQuantizer;
using autocompress::compression::TrainsBeforePruning;
using autocompress::training::Dataset;
using autocompress::training::DatasetTrainingHooks;
using autocompress::training::FineTune;
using autocompress::training::testing::RandomImages;
using autocompress::training::testing::SmallBatches;
using Json = nlohmann::json;

// Seeded random batches made on the CPU and moved to the model's device (the training
// library's batcher), so two sessions on different devices see the same data.
const Dataset& TrainingData() {
  static const Dataset* data = RandomImages(32, 42).release();
  return *data;
}

struct Algorithm {
  std::string name;
  std::string config;
  std::string kwargs;
};

// Selections that depend on nothing but the weights must match the CPU exactly.
bool OneShot(const std::string& name) { return !IsQuantizer(name) && !TrainsBeforePruning(name); }

std::vector<Algorithm> Algorithms() {
  const std::string conv = R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
  const std::string weights8 =
      R"([{"quant_types": ["weight"], "quant_bits": 8, "op_types": ["Conv2d", "Linear"]}])";
  return {
      {"level", R"([{"sparsity": 0.6, "op_types": ["default"]}])", ""},
      {"l1", conv, ""},
      {"l2", conv, ""},
      {"fpgm", conv, ""},
      {"l1", conv, R"({"dependency_aware": true})"},
      {"slim", R"([{"sparsity": 0.5, "op_types": ["BatchNorm2d"]}])", ""},
      {"taylorfo", conv, ""},
      {"apoz", conv, ""},
      {"mean_activation", conv, ""},
      {"naive", weights8, ""},
      {"qat",
       R"([{"quant_types": ["weight", "output"], "quant_bits": {"weight": 8, "output": 8},
           "op_types": ["Conv2d"]}])",
       ""},
      {"dorefa", weights8, ""},
      {"bnn", R"([{"quant_types": ["weight"], "quant_bits": 1, "op_types": ["Conv2d"]}])", ""},
  };
}

std::map<std::string, torch::Tensor> Weights(torch::jit::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.named_modules()) {
    if (item.value.hasattr("weight") && item.value.attr("weight").isTensor()) {
      out[item.name] = item.value.attr("weight").toTensor().detach().cpu();
    }
  }
  return out;
}

struct Outcome {
  std::vector<std::string> problems;
  double cpu_ms = 0, device_ms = 0;
};

// One session: load, compress, (returns) ready for fine-tuning.
std::unique_ptr<CompressionSession> Compressed(const std::string& model, const std::string& device,
                                               const Algorithm& a, Outcome& outcome, double& ms) {
  auto session = CompressionSession::Load(model, device);
  if (!session.ok()) {
    outcome.problems.push_back(device + " load: " + std::string(session.status().message()));
    return nullptr;
  }
  DatasetTrainingHooks training(TrainingData(), SmallBatches(4, 0.01, 0.9));
  CompressOptions options{a.name, a.config, a.kwargs};
  if (TrainsBeforePruning(a.name)) options.hooks = &training;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = (*session)->Compress(options);
  if (device != "cpu" && torch::cuda::is_available()) torch::cuda::synchronize();
  ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!status.ok()) {
    outcome.problems.push_back(device + " compress: " + std::string(status.message()));
    return nullptr;
  }
  return std::move(*session);
}

Outcome Run(const std::string& model, const std::string& device, const Algorithm& a,
            const std::string& out_dir) {
  Outcome outcome;
  std::unique_ptr<CompressionSession> cpu = Compressed(model, "cpu", a, outcome, outcome.cpu_ms);
  std::unique_ptr<CompressionSession> dev =
      Compressed(model, device, a, outcome, outcome.device_ms);
  if (cpu == nullptr || dev == nullptr) return outcome;

  const Json cpu_report = Json::parse(cpu->ReportJson().value());
  const Json dev_report = Json::parse(dev->ReportJson().value());
  if (OneShot(a.name)) {
    for (size_t i = 0; i < cpu_report["layers"].size(); ++i) {
      const Json& c = cpu_report["layers"][i];
      const Json& d = dev_report["layers"][i];
      if (c.value("kept_filter_indices", Json()) != d.value("kept_filter_indices", Json()) ||
          c["weight_sparsity"] != d["weight_sparsity"]) {
        outcome.problems.push_back("layer " + c["name"].get<std::string>() +
                                   ": CPU and device selections differ");
      }
    }
  }
  if (IsQuantizer(a.name)) {
    const auto cw = Weights(cpu->module()), dw = Weights(dev->module());
    for (const auto& [name, w] : cw) {
      const torch::Tensor diff = (w - dw.at(name)).abs();
      const double step = (w.max() - w.min()).item<double>() / 255.0 + 1e-12;
      const double off = diff.gt(1e-5 * std::max(1.0, w.abs().max().item<double>()))
                             .to(torch::kDouble)
                             .mean()
                             .item<double>();
      if (diff.max().item<double>() > step * 1.01 || off > 1e-3) {
        outcome.problems.push_back("layer " + name + ": quantized weights differ (" +
                                   std::to_string(off * 100) + "% of values)");
      }
    }
  }

  if (auto tuned = FineTune(*dev, {&TrainingData()}, SmallBatches(3, 0.01, 0.9), 1); !tuned.ok()) {
    outcome.problems.push_back("fine-tuning on " + device + ": " +
                               std::string(tuned.status().message()));
    return outcome;
  }
  const Json tuned = Json::parse(dev->ReportJson().value());
  const auto weights = Weights(dev->module());
  for (const Json& layer : tuned["layers"]) {
    if (!layer.contains("kept_filter_indices")) continue;
    const torch::Tensor w = weights.at(layer["name"].get<std::string>());
    std::vector<bool> kept(w.size(0), false);
    for (int64_t k : layer["kept_filter_indices"].get<std::vector<int64_t>>()) kept[k] = true;
    for (int64_t f = 0; f < w.size(0); ++f) {
      if (!kept[f] && w[f].ne(0).any().item<bool>()) {
        outcome.problems.push_back("layer " + layer["name"].get<std::string>() +
                                   ": a pruned filter came back during fine-tuning");
        break;
      }
    }
  }
  const std::string saved = out_dir + "/session_check.pt";
  if (absl::Status s = dev->Save(saved); !s.ok()) {
    outcome.problems.push_back("save: " + std::string(s.message()));
    return outcome;
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  const torch::Tensor input = torch::randn({4, 1, 28, 28});
  dev->module().eval();
  const torch::Tensor on_device =
      dev->module().forward({input.to(torch::Device(device))}).toTensor().cpu();
  torch::jit::Module reloaded = torch::jit::load(saved, torch::kCPU);
  reloaded.eval();
  const torch::Tensor on_cpu = reloaded.forward({input}).toTensor();
  if (!on_cpu.isfinite().all().item<bool>()) outcome.problems.push_back("non-finite outputs");
  // Relative to the outputs' scale: summation order differs between cuDNN and the CPU.
  const double scale = std::max(1.0, on_cpu.abs().max().item<double>());
  if ((on_cpu - on_device).abs().max().item<double>() > 1e-4 * scale) {
    outcome.problems.push_back("the saved model computes differently on the CPU (max diff " +
                               std::to_string((on_cpu - on_device).abs().max().item<double>()) +
                               ")");
  }
  return outcome;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: gpu_session_check MODELS_DIR [DEVICE]\n");
    return 2;
  }
  const std::string models = argv[1];
  const std::string device = argc > 2 ? argv[2] : "cuda:0";
  // cuDNN and cuBLAS would run float32 convolutions and matmuls in TF32 (10-bit
  // mantissa) on Ampere and Hopper; the comparison with the CPU wants float32.
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  std::printf("\n| model | algorithm | CPU compress ms | %s compress ms | result |\n",
              device.c_str());
  std::printf("|---|---|---|---|---|\n");
  int failures = 0;
  for (const char* model : {"small_cnn.pt", "resnet_mini.pt", "mobilenet_mini.pt"}) {
    for (const Algorithm& a : Algorithms()) {
      const Outcome o = Run(models + "/" + model, device, a, models);
      std::string result = o.problems.empty() ? "ok" : "";
      for (const std::string& p : o.problems) result += (result.empty() ? "" : "; ") + p;
      failures += !o.problems.empty();
      std::printf("| %s | %s%s | %.1f | %.1f | %s |\n", model, a.name.c_str(),
                  a.kwargs.empty() ? "" : " (dependency_aware)", o.cpu_ms, o.device_ms,
                  result.c_str());
      std::fflush(stdout);
    }
  }
  std::printf("\ngpu-session-check: %s\n",
              failures == 0 ? "every algorithm agrees with the CPU"
                            : (std::to_string(failures) + " case(s) MISMATCH").c_str());
  return failures == 0 ? 0 : 1;
}
