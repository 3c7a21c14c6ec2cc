// `autocompress compress` run as a process on the generated small CNN: for each
// algorithm the saved model reloads, runs, and has zeros exactly where the report says;
// bad input (flags, config lists, and data: every path that trains) is one line on
// stderr and exit code 2.
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress {
namespace {

using testing::RunfilePath;
using testing::Subprocess;
using testing::TempPath;

int RunCli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RunfilePath("client/autocompress")};
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = Subprocess::Start(argv);
  EXPECT_TRUE(process.ok());
  auto code = (*process)->Wait(absl::Seconds(120));
  EXPECT_TRUE(code.ok());
  return code.ok() ? *code : -1;
}

struct CliResult {
  int code = -1;
  std::vector<std::string> stderr_lines;
};

// Runs the CLI with its stderr captured (through a shell redirect to a file).
CliResult RunCliCapturingStderr(const std::vector<std::string>& args) {
  static int runs = 0;
  const std::string errors = TempPath("stderr." + std::to_string(runs++));
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$@\" 2>\"$ERRORS\"", "sh",
                                   RunfilePath("client/autocompress")};
  argv.insert(argv.end(), args.begin(), args.end());
  setenv("ERRORS", errors.c_str(), 1);
  CliResult result;
  auto process = Subprocess::Start(argv);
  EXPECT_TRUE(process.ok());
  if (!process.ok()) return result;
  auto code = (*process)->Wait(absl::Seconds(120));
  EXPECT_TRUE(code.ok());
  result.code = code.ok() ? *code : -1;
  std::ifstream in(errors);
  for (std::string line; std::getline(in, line);) result.stderr_lines.push_back(line);
  return result;
}

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A plain IDX training split in a new directory: `n` seeded random images of size x size
// (labels 0..9); `truncate` cuts the image file after its header and 100 bytes.
std::string WriteIdxSplit(const std::string& name, uint32_t n, uint32_t size,
                          bool truncate = false) {
  const std::string dir = TempPath(name);
  std::filesystem::create_directories(dir);
  std::string images = BigEndian(0x803) + BigEndian(n) + BigEndian(size) + BigEndian(size);
  std::string labels = BigEndian(0x801) + BigEndian(n);
  uint32_t state = 12345;
  for (uint32_t i = 0; i < n * size * size; ++i) {
    state = state * 1664525u + 1013904223u;
    images += static_cast<char>(state >> 24);
  }
  for (uint32_t i = 0; i < n; ++i) labels += static_cast<char>(i % 10);
  if (truncate) images.resize(16 + 100);
  std::ofstream(dir + "/train-images-idx3-ubyte", std::ios::binary) << images;
  std::ofstream(dir + "/train-labels-idx1-ubyte", std::ios::binary) << labels;
  return dir;
}

torch::Tensor Param(torch::jit::Module& model, const std::string& layer, const std::string& what) {
  for (const auto& item : model.named_modules()) {
    if (item.name == layer) return item.value.attr(what).toTensor();
  }
  return {};
}

class CompressCliTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CompressCliTest, SavedModelHasZerosWhereTheReportSays) {
  const std::string algorithm = GetParam();
  const std::string config = algorithm == "level"
                                 ? R"([{"sparsity": 0.6, "op_types": ["default"]}])"
                                 : R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
  const std::string out = TempPath(algorithm + ".pt"), report_path = TempPath(algorithm + ".json");
  ASSERT_EQ(RunCli({"compress", "--model", RunfilePath("compression/testdata/small_cnn.pt"),
                    "--algorithm", algorithm, "--config_list", config, "--output", out, "--report",
                    report_path}),
            0);
  for (const auto& entry : std::filesystem::directory_iterator(TempPath(""))) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos)
        << "temporary output left behind: " << entry.path();
  }
  std::ifstream in(report_path);
  nlohmann::json report = nlohmann::json::parse(in);
  EXPECT_EQ(report["algorithm"], algorithm);
  torch::jit::Module model = torch::jit::load(out);
  ASSERT_FALSE(report["layers"].empty());
  for (const auto& layer : report["layers"]) {
    torch::Tensor w = Param(model, layer["name"], "weight");
    const double zeros = w.eq(0).sum().item<double>() / w.numel();
    EXPECT_NEAR(zeros, layer["weight_sparsity"].get<double>(), 1e-12) << layer["name"];
    if (layer.contains("kept_filter_indices")) {
      std::vector<int64_t> kept = layer["kept_filter_indices"];
      for (int64_t c = 0; c < w.size(0); ++c) {
        const bool is_kept = std::find(kept.begin(), kept.end(), c) != kept.end();
        EXPECT_EQ(w[c].ne(0).any().item<bool>(), is_kept) << layer["name"] << " filter " << c;
      }
      EXPECT_EQ(kept.size(), static_cast<size_t>(w.size(0) / 2));
    } else {
      EXPECT_NEAR(zeros, std::floor(w.numel() * 0.6) / w.numel(), 1e-12);
    }
  }
  EXPECT_EQ(model.forward({torch::randn({1, 1, 28, 28})}).toTensor().sizes(),
            (std::vector<int64_t>{1, 10}));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, CompressCliTest,
                         ::testing::Values("level", "l1", "l2", "fpgm"));

class QuantizeCliTest : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizeCliTest, SavedWeightsTakeAtMostTwoToTheBitsValues) {
  const std::string algorithm = GetParam();
  const int bits = algorithm == "naive" ? 8 : algorithm == "bnn" ? 1 : 3;
  const std::string config = std::string(R"([{"quant_types": ["weight"], "quant_bits": )") +
                             std::to_string(bits) + R"(, "op_types": ["Conv2d", "Linear"]}])";
  const std::string out = TempPath(algorithm + ".pt"),
                    calibration = TempPath(algorithm + ".cal.json");
  ASSERT_EQ(RunCli({"compress", "--model", RunfilePath("compression/testdata/small_cnn.pt"),
                    "--algorithm", algorithm, "--config_list", config, "--output", out,
                    "--calibration", calibration}),
            0);
  std::ifstream in(calibration);
  nlohmann::json table = nlohmann::json::parse(in);
  torch::jit::Module model = torch::jit::load(out);
  for (const char* layer : {"conv1", "conv2", "fc1", "fc2"}) {
    ASSERT_TRUE(table.contains(layer)) << layer;
    const int64_t distinct = std::get<0>(at::_unique(Param(model, layer, "weight"))).numel();
    // Naive's int8 truncation uses 255 levels at most.
    EXPECT_LE(distinct, int64_t{1} << table[layer]["weight_bits"].get<int>()) << layer;
    EXPECT_GT(distinct, 1) << layer;
  }
}

INSTANTIATE_TEST_SUITE_P(Algorithms, QuantizeCliTest,
                         ::testing::Values("naive", "qat", "dorefa", "bnn"));

class DataDrivenCliTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DataDrivenCliTest, TrainsOnIdxDataAndPrunesHalfTheChannels) {
  const std::string algorithm = GetParam();
  const std::string type = algorithm == "slim" ? "BatchNorm2d" : "Conv2d";
  const std::string out = TempPath(algorithm + ".pt"), report_path = TempPath(algorithm + ".json");
  ASSERT_EQ(RunCli({"compress", "--model", RunfilePath("compression/testdata/small_cnn.pt"),
                    "--algorithm", algorithm, "--config_list",
                    R"([{"sparsity": 0.5, "op_types": [")" + type + R"("]}])", "--output", out,
                    "--report", report_path, "--data", RunfilePath("compression/testdata/tiny_idx"),
                    "--data_format", "idx", "--batches", "4"}),
            0);
  std::ifstream in(report_path);
  nlohmann::json report = nlohmann::json::parse(in);
  torch::jit::Module model = torch::jit::load(out);
  ASSERT_EQ(report["layers"].size(), 2u);
  int64_t kept = 0, total = 0;
  for (const auto& layer : report["layers"]) {
    torch::Tensor w = Param(model, layer["name"], "weight");
    std::vector<int64_t> indices = layer["kept_filter_indices"];
    for (int64_t c = 0; c < w.size(0); ++c) {
      const bool is_kept = std::find(indices.begin(), indices.end(), c) != indices.end();
      EXPECT_EQ(w[c].ne(0).any().item<bool>(), is_kept) << layer["name"] << " " << c;
    }
    kept += indices.size();
    total += w.size(0);
  }
  EXPECT_EQ(kept * 2, total);  // slim's global threshold also keeps half in all
}

INSTANTIATE_TEST_SUITE_P(Algorithms, DataDrivenCliTest,
                         ::testing::Values("slim", "taylorfo", "apoz", "mean_activation"));

// With --data, qat trains after compressing: its output ranges get calibrated, the
// weights move from their compressed values, and stay on the 8-bit grid.
TEST(QatCliTest, TrainsOnIdxDataAndCalibratesOutputRanges) {
  const std::string model = RunfilePath("compression/testdata/small_cnn.pt");
  const std::string config =
      R"([{"quant_types": ["weight", "output"], "quant_bits": {"weight": 8, "output": 8},
           "op_types": ["Conv2d"]}])";
  const std::string trained = TempPath("qat_trained.pt"), untrained = TempPath("qat.pt");
  const std::string calibration_path = TempPath("qat_calibration.json");
  ASSERT_EQ(RunCli({"compress", "--model", model, "--algorithm", "qat", "--config_list", config,
                    "--output", trained, "--calibration", calibration_path, "--data",
                    RunfilePath("compression/testdata/tiny_idx"), "--batches", "5"}),
            0);
  ASSERT_EQ(RunCli({"compress", "--model", model, "--algorithm", "qat", "--config_list", config,
                    "--output", untrained}),
            0);
  std::ifstream in(calibration_path);
  const nlohmann::json calibration = nlohmann::json::parse(in);
  torch::jit::Module a = torch::jit::load(trained), b = torch::jit::load(untrained);
  for (const char* layer : {"conv1", "conv2"}) {
    ASSERT_TRUE(calibration.contains(layer)) << layer;
    EXPECT_TRUE(calibration[layer].contains("tracked_min_output")) << layer;
    EXPECT_TRUE(calibration[layer].contains("tracked_max_output")) << layer;
    const torch::Tensor wa = Param(a, layer, "weight"), wb = Param(b, layer, "weight");
    EXPECT_FALSE(torch::equal(wa, wb)) << layer << ": training did not move the weights";
    EXPECT_LE(std::get<0>(at::_unique(wa)).numel(), 256) << layer;
  }
}

// Every algorithm that trains (the data-driven pruners before pruning, the quantizers
// after compressing) reports data that does not fit the model, or a broken IDX file, as
// the user's error: exit 2 and one line naming the data's shape and the rejecting layer,
// or the file.
class BadDataCliTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BadDataCliTest, ExitsTwoWithOneLine) {
  const std::string algorithm = GetParam();
  const std::string weights = R"([{"quant_types": ["weight"], "quant_bits": 8,
                                   "op_types": ["Conv2d", "Linear"]}])";
  const std::map<std::string, std::string> configs = {
      {"slim", R"([{"sparsity": 0.5, "op_types": ["BatchNorm2d"]}])"},
      {"bnn", R"([{"quant_types": ["weight"], "quant_bits": 1, "op_types": ["Conv2d"]}])"},
      {"naive", weights},
      {"qat", weights},
      {"dorefa", weights}};
  const std::string config = configs.count(algorithm)
                                 ? configs.at(algorithm)
                                 : R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
  auto run = [&](const std::string& data) {
    return RunCliCapturingStderr(
        {"compress", "--model", RunfilePath("compression/testdata/small_cnn.pt"), "--algorithm",
         algorithm, "--config_list", config, "--output", TempPath(algorithm + ".bad.pt"), "--data",
         data, "--batches", "2", "--batch_size", "4"});
  };
  const CliResult wide = run(WriteIdxSplit("wide_" + algorithm, 16, 32));
  EXPECT_EQ(wide.code, 2);
  ASSERT_EQ(wide.stderr_lines.size(), 1u) << ::testing::PrintToString(wide.stderr_lines);
  EXPECT_THAT(wide.stderr_lines[0],
              ::testing::MatchesRegex("autocompress compress: .*/train-images-idx3-ubyte: images "
                                      "of shape \\[1, 32, 32\\] do not fit the model: fc1 "
                                      "\\(Linear\\) expects 400 inputs, got 576"));
  const CliResult truncated = run(WriteIdxSplit("truncated_" + algorithm, 16, 28, true));
  EXPECT_EQ(truncated.code, 2);
  ASSERT_EQ(truncated.stderr_lines.size(), 1u) << ::testing::PrintToString(truncated.stderr_lines);
  EXPECT_THAT(truncated.stderr_lines[0],
              ::testing::HasSubstr("train-images-idx3-ubyte: expected 16 images of 28x28"));
  EXPECT_FALSE(std::filesystem::exists(TempPath(algorithm + ".bad.pt")));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, BadDataCliTest,
                         ::testing::Values("slim", "taylorfo", "apoz", "mean_activation", "naive",
                                           "qat", "dorefa", "bnn"));

TEST(CompressCliErrorsTest, BadInputExitsTwo) {
  const std::string model = RunfilePath("compression/testdata/small_cnn.pt");
  const std::string half = R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
  // `compress` of the small CNN, half of its conv filters, to `output`, plus `extra`.
  auto compress = [&](const std::string& algorithm, const std::string& output,
                      const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"compress",    "--model",  model,
                                     "--algorithm", algorithm,  "--config_list",
                                     half,          "--output", output};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCli(args);
  };
  EXPECT_EQ(RunCli({}), 2);
  EXPECT_EQ(RunCli({"frobnicate"}), 2);
  EXPECT_EQ(RunCli({"compress", "--model", model}), 2);  // missing flags
  EXPECT_EQ(RunCli({"compress", "--model", model, "--algorithm", "l1", "--config_list", "[",
                    "--output", TempPath("x.pt")}),
            2);
  EXPECT_EQ(RunCli({"compress", "--model", model, "--algorithm", "l1", "--config_list",
                    R"([{"sparsity": 2, "op_types": ["Conv2d"]}])", "--output", TempPath("x.pt")}),
            2);
  EXPECT_EQ(RunCli({"compress", "--model", "/does/not/exist.pt", "--algorithm", "l1",
                    "--config_list", half, "--output", TempPath("x.pt")}),
            2);
  EXPECT_EQ(compress("l1", TempPath("x.pt"), {"--bogus", "1"}), 2);
  EXPECT_EQ(compress("l1", TempPath("x.pt"), {"--threads", "-1"}), 2);
  // Outputs into a missing directory, or a report onto a directory: refused before any
  // work, so the valid --output is not written either.
  EXPECT_EQ(compress("l1", TempPath("missing-dir") + "/x.pt", {}), 2);
  EXPECT_EQ(compress("l1", TempPath("ok.pt"), {"--report", TempPath("")}), 2);
  EXPECT_FALSE(std::filesystem::exists(TempPath("ok.pt")));
  // Data-driven without data, and a data directory without IDX files.
  EXPECT_EQ(compress("apoz", TempPath("x.pt"), {}), 2);
  EXPECT_EQ(compress("apoz", TempPath("x.pt"), {"--data", TempPath("")}), 2);
}

// `compress --speedup` writes the smaller model directly; `speedup` makes the same
// model from a masked one written earlier. Both compute what the masked model computes.
TEST(SpeedupCliTest, CompressSpeedupAndSpeedupWriteTheSmallModel) {
  const std::string model = RunfilePath("compression/testdata/small_cnn.pt");
  const std::string config = R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
  const std::string masked = TempPath("masked.pt"), direct = TempPath("direct.pt"),
                    later = TempPath("later.pt"), report = TempPath("direct.json"),
                    later_report = TempPath("later.json");
  ASSERT_EQ(RunCli({"compress", "--model", model, "--algorithm", "l1", "--config_list", config,
                    "--output", masked}),
            0);
  ASSERT_EQ(RunCli({"compress", "--model", model, "--algorithm", "l1", "--config_list", config,
                    "--output", direct, "--report", report, "--speedup", "--input_shape", "1,28,28",
                    "--runs", "2"}),
            0);
  ASSERT_EQ(RunCli({"speedup", "--model", masked, "--output", later, "--input_shape", "1,28,28",
                    "--original", model, "--report", later_report, "--runs", "2"}),
            0);
  torch::jit::Module m = torch::jit::load(masked), a = torch::jit::load(direct),
                     b = torch::jit::load(later);
  EXPECT_EQ(Param(a, "conv1", "weight").sizes(), (std::vector<int64_t>{4, 1, 3, 3}));
  EXPECT_EQ(Param(a, "conv2", "weight").sizes(), (std::vector<int64_t>{8, 4, 3, 3}));
  EXPECT_EQ(Param(a, "fc1", "weight").sizes(), (std::vector<int64_t>{32, 200}));
  EXPECT_EQ(Param(b, "fc1", "weight").sizes(), (std::vector<int64_t>{32, 200}));
  torch::NoGradGuard no_grad;
  m.eval();
  a.eval();
  b.eval();
  const torch::Tensor x = torch::randn({5, 1, 28, 28});
  const torch::Tensor expected = m.forward({x}).toTensor();
  for (torch::jit::Module* small : {&a, &b}) {
    const torch::Tensor y = small->forward({x}).toTensor();
    EXPECT_LE(((y - expected).abs().max() / expected.abs().max()).item<double>(), 1e-5);
  }
  std::ifstream direct_in(report), later_in(later_report);
  const nlohmann::json direct_json = nlohmann::json::parse(direct_in);
  const nlohmann::json later_json = nlohmann::json::parse(later_in);
  // The compression report plus its speedup section; `speedup` reports all three models.
  EXPECT_EQ(direct_json["algorithm"], "l1");
  const nlohmann::json& models = direct_json["speedup"]["models"];
  EXPECT_LT(models["sped_up"]["macs"].get<int64_t>(), models["masked"]["macs"].get<int64_t>());
  EXPECT_TRUE(models["sped_up"]["latency_ms"].contains("batch_32"));
  EXPECT_EQ(later_json["models"]["original"]["macs"], models["masked"]["macs"]);
  EXPECT_EQ(later_json["models"]["sped_up"]["parameters"], models["sped_up"]["parameters"]);
}

TEST(SpeedupCliTest, BadInputExitsTwoWithOneLine) {
  const std::string model = RunfilePath("compression/testdata/small_cnn.pt");
  const std::string out = TempPath("never.pt");
  const CliResult no_shape = RunCliCapturingStderr({"speedup", "--model", model, "--output", out});
  EXPECT_EQ(no_shape.code, 2);
  ASSERT_EQ(no_shape.stderr_lines.size(), 1u);
  EXPECT_EQ(no_shape.stderr_lines[0], "autocompress speedup: --input_shape is required");
  EXPECT_EQ(RunCli({"speedup", "--model", model, "--output", out, "--input_shape", "1,0,28"}), 2);
  EXPECT_EQ(RunCli({"speedup", "--model", "/does/not/exist.pt", "--output", out, "--input_shape",
                    "1,28,28"}),
            2);
  // The input shape does not fit the model.
  EXPECT_EQ(RunCli({"speedup", "--model", model, "--output", out, "--input_shape", "3,8,8"}), 2);
  const std::string config = R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
  EXPECT_EQ(RunCli({"compress", "--model", model, "--algorithm", "l1", "--config_list", config,
                    "--output", out, "--speedup"}),
            2);  // no input shape
  EXPECT_EQ(RunCli({"compress", "--model", model, "--algorithm", "naive", "--config_list",
                    R"([{"quant_types": ["weight"], "quant_bits": 8, "op_types": ["Conv2d"]}])",
                    "--output", out, "--speedup", "--input_shape", "1,28,28"}),
            2);  // a quantizer
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace autocompress
