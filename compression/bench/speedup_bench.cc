// ./dev bench speedup: the seed's CNN and a ResNet-18 with 50% of their convolution
// filters pruned (l1; dependency-aware on the ResNet, so residual sets prune together),
// as the original, the masked and the sped-up model, measured in one run: parameters,
// multiply-adds, and median latency at batch 1 and 32 on 1 and 2 intra-op threads
// (the three models timed in turns, so that drift falls on all alike).
// Ends with `speedup-bench: cnn_ratio=N resnet_ratio=N` (masked / sped-up latency at
// batch 32, 2 threads).
#include <ATen/Parallel.h>
#include <stdlib.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "compression/bench/median_time.h"
#include "compression/compression_session.h"
#include "compression/speedup.h"

ABSL_FLAG(double, sparsity, 0.5, "Fraction of each convolution's filters pruned.");
ABSL_FLAG(int, runs, 20, "Timed forward passes per model and setting (median).");
ABSL_FLAG(int, warmup, 5, "Untimed forward passes first.");
ABSL_FLAG(std::string, threads, "1,2", "Intra-op thread counts.");

namespace autocompress::compression {
namespace {

struct BenchModel {
  std::string name, file, kwargs;
  std::vector<int64_t> input_shape;
};

// Median forward time of each model, timed in turns (one pass of each per round) so
// that the machine's drift falls on all of them alike.
std::vector<double> InterleavedMedians(std::vector<torch::jit::Module>& models,
                                       const std::vector<int64_t>& input_shape, int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> shape = {batch};
  shape.insert(shape.end(), input_shape.begin(), input_shape.end());
  const torch::Tensor x = torch::randn(shape);
  for (torch::jit::Module& m : models)
    for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) m.forward({x});
  std::vector<std::vector<double>> times(models.size());
  for (int r = 0; r < absl::GetFlag(FLAGS_runs); ++r) {
    for (size_t i = 0; i < models.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      models[i].forward({x});
      times[i].push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
  }
  std::vector<double> medians;
  for (const std::vector<double>& t : times) medians.push_back(bench::Median(t));
  return medians;
}

int Fail(const std::string& what, const absl::Status& status) {
  std::fprintf(stderr, "speedup-bench: %s: %s\n", what.c_str(), status.ToString().c_str());
  return 1;
}

int Main() {
  char dir_template[] = "/tmp/speedup-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::vector<BenchModel> models = {
      {"seed_cnn", "compression/bench/seed_cnn.pt", "", {1, 28, 28}},
      {"resnet18", "compression/bench/resnet18.pt", R"({"dependency_aware": true})", {3, 32, 32}},
  };
  std::vector<int> threads;
  for (const absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_threads), ',')) {
    threads.push_back(std::stoi(std::string(t)));
  }
  std::map<std::string, double> ratio;  // model -> masked / sped-up at batch 32, 2 threads
  std::printf("%-9s %-8s %11s %11s %9s %12s\n", "model", "variant", "parameters", "nonzero",
              "MMACs", "vs original");
  std::vector<std::string> latency_rows;
  for (const BenchModel& m : models) {
    auto session = CompressionSession::Load(m.file, "cpu");
    if (!session.ok()) return Fail(m.file, session.status());
    CompressOptions options;
    options.algorithm = "l1";
    options.config_list_json = absl::StrFormat(R"([{"sparsity": %g, "op_types": ["Conv2d"]}])",
                                               absl::GetFlag(FLAGS_sparsity));
    options.kwargs_json = m.kwargs;
    if (absl::Status s = (*session)->Compress(options); !s.ok()) return Fail("compress", s);
    const std::string masked = absl::StrCat(dir, "/", m.name, ".masked.pt");
    const std::string small = absl::StrCat(dir, "/", m.name, ".small.pt");
    if (absl::Status s = (*session)->Save(masked); !s.ok()) return Fail("save", s);
    MeasureOptions measure;
    measure.input_shape = m.input_shape;
    measure.latency = false;
    auto report = SpeedupFile(masked, small, measure, m.file);
    if (!report.ok()) return Fail("speedup", report.status());
    for (const LeftMasked& left : report->result.left_masked) {
      std::printf("# %s: left masked %s (%lld channels): %s\n", m.name.c_str(), left.layers.c_str(),
                  static_cast<long long>(left.channels), left.reason.c_str());
    }
    const std::vector<std::pair<std::string, const ModelCost*>> costs = {
        {"original", &*report->original},
        {"masked", &report->masked},
        {"sped_up", &report->sped_up}};
    for (const auto& [variant, cost] : costs) {
      std::printf("%-9s %-8s %11lld %11lld %9.2f %11.3fx\n", m.name.c_str(), variant.c_str(),
                  static_cast<long long>(cost->parameters),
                  static_cast<long long>(cost->nonzero_parameters), cost->macs / 1e6,
                  static_cast<double>(report->original->macs) / cost->macs);
    }
    std::printf("# %s: sped-up outputs differ from the masked model's by %.2g (relative)\n",
                m.name.c_str(), report->output_relative_difference);

    std::vector<torch::jit::Module> loaded;
    for (const std::string& path : {m.file, masked, small}) {
      loaded.push_back(torch::jit::load(path));
      loaded.back().eval();
    }
    for (int t : threads) {
      at::set_num_threads(t);
      for (int64_t batch : {1, 32}) {
        const std::vector<double> ms = InterleavedMedians(loaded, m.input_shape, batch);
        const double r = ms[1] / ms[2];
        latency_rows.push_back(absl::StrFormat("%-9s %7d %5d %12.3f %12.3f %12.3f %10.2fx %10.2fx",
                                               m.name, t, batch, ms[0], ms[1], ms[2], r,
                                               ms[0] / ms[2]));
        if (batch == 32 && t == 2) ratio[m.name] = r;
      }
    }
  }
  std::printf("\n%-9s %7s %5s %12s %12s %12s %11s %11s\n", "model", "threads", "batch",
              "original_ms", "masked_ms", "sped_up_ms", "vs_masked", "vs_original");
  for (const std::string& row : latency_rows) std::printf("%s\n", row.c_str());
  std::printf("speedup-bench: cnn_ratio=%.2f resnet_ratio=%.2f\n", ratio["seed_cnn"],
              ratio["resnet18"]);
  return 0;
}

}  // namespace
}  // namespace autocompress::compression

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return autocompress::compression::Main();
}
