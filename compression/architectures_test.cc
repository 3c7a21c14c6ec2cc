// Every algorithm on models with the structure of torchvision's ResNet (scripted, and
// exported with torch.jit.trace) and MobileNetV2 (Conv-BN-ReLU6 Sequentials, depthwise
// convs, a skip add behind an `if` on a module flag): the session compresses, fine-tunes
// through its contract, saves, and the saved model reloads and computes what the session
// computes. Dependency-aware pruning ties exactly the channels that meet at an add.
#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "common/testing/runfiles.h"
#include "compression/compression_session.h"
#include "compression/config_list.h"
#include "compression/testing/synthetic_training.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "worker/training/fine_tune.h"
#include "worker/training/random_dataset.h"

namespace autocompress::compression {
namespace {

using autocompress::compression::testing::SyntheticTraining;
using autocompress::testing::RunfilePath;
using autocompress::testing::TempPath;

std::unique_ptr<CompressionSession> Load(const std::string& model) {
  auto session = CompressionSession::Load(RunfilePath("compression/testdata/" + model), "cpu");
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? std::move(*session) : nullptr;
}

std::string ConfigFor(const std::string& algorithm) {
  if (algorithm == "level") return R"([{"sparsity": 0.6, "op_types": ["default"]}])";
  if (algorithm == "slim") return R"([{"sparsity": 0.5, "op_types": ["BatchNorm2d"]}])";
  if (algorithm == "naive" || algorithm == "dorefa") {
    return R"([{"quant_types": ["weight"], "quant_bits": 8, "op_types": ["Conv2d", "Linear"]}])";
  }
  if (algorithm == "qat") {
    return R"([{"quant_types": ["weight", "output"], "quant_bits": {"weight": 8, "output": 8},
                "op_types": ["Conv2d"]}])";
  }
  if (algorithm == "bnn") {
    return R"([{"quant_types": ["weight", "output"], "quant_bits": 1, "op_types": ["Conv2d"]}])";
  }
  return R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
}

using Case = std::tuple<std::string, std::string>;  // model, algorithm

class ArchitectureTest : public ::testing::TestWithParam<Case> {};

TEST_P(ArchitectureTest, CompressesFineTunesSavesAndReloads) {
  const auto& [model_file, algorithm] = GetParam();
  std::unique_ptr<CompressionSession> session = Load(model_file);
  ASSERT_NE(session, nullptr);
  SyntheticTraining data_driven(4);
  CompressOptions options{algorithm, ConfigFor(algorithm), ""};
  if (TrainsBeforePruning(algorithm)) options.hooks = &data_driven;
  const absl::Status compressed = session->Compress(options);
  ASSERT_TRUE(compressed.ok()) << compressed;

  // Fine-tune through the session's contract (the training library's FineTune).
  torch::jit::Module& model = session->module();
  const std::unique_ptr<training::Dataset> data = training::testing::RandomImages(24, 100);
  const auto tuned =
      training::FineTune(*session, {data.get()}, training::testing::SmallBatches(3, 0.05), 1);
  ASSERT_TRUE(tuned.ok()) << tuned.status();

  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  ASSERT_FALSE(report["layers"].empty());
  std::map<std::string, torch::jit::Module> modules;
  for (const auto& item : model.named_modules()) modules.emplace(item.name, item.value);
  for (const auto& layer : report["layers"]) {
    const std::string name = layer["name"];
    const torch::Tensor w = modules.at(name).attr("weight").toTensor().detach();
    if (layer.contains("kept_filter_indices")) {
      // Pruned filters stayed exactly zero through fine-tuning; kept ones did not.
      std::vector<bool> kept(w.size(0), false);
      for (int64_t k : layer["kept_filter_indices"].get<std::vector<int64_t>>()) kept[k] = true;
      for (int64_t f = 0; f < w.size(0); ++f) {
        EXPECT_EQ(w[f].ne(0).any().item<bool>(), kept[f]) << name << " filter " << f;
      }
    }
    if (IsQuantizer(algorithm)) {
      const int bits = layer["weight_bits"];
      EXPECT_LE(layer["distinct_weight_values"].get<int64_t>(), int64_t{1} << bits) << name;
    }
  }
  if (algorithm == "qat") {
    // Output ranges were tracked in every quantized layer, traced models included.
    nlohmann::json calibration = nlohmann::json::parse(session->CalibrationJson().value());
    for (const auto& [name, entry] : calibration.items()) {
      EXPECT_TRUE(entry.contains("tracked_min_output")) << name;
    }
  }

  const std::string path = TempPath(model_file + "." + algorithm + ".pt");
  ASSERT_TRUE(session->Save(path).ok());
  torch::jit::Module reloaded = torch::jit::load(path);
  model.eval();
  reloaded.eval();
  torch::manual_seed(9);
  const torch::Tensor input = torch::randn({4, 1, 28, 28});
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model.forward({input}).toTensor();
  const torch::Tensor actual = reloaded.forward({input}).toTensor();
  ASSERT_EQ(actual.sizes(), (std::vector<int64_t>{4, 10}));
  EXPECT_TRUE(actual.isfinite().all().item<bool>());
  EXPECT_TRUE(torch::equal(actual, expected));
}

INSTANTIATE_TEST_SUITE_P(Models, ArchitectureTest,
                         ::testing::Combine(::testing::Values("resnet_mini.pt",
                                                              "resnet_mini_traced.pt",
                                                              "mobilenet_mini.pt"),
                                            ::testing::ValuesIn(AlgorithmNames())),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string model = std::get<0>(info.param);
                           model = model.substr(0, model.find('.'));
                           return model + "_" + std::get<1>(info.param);
                         });

std::map<std::string, std::vector<int64_t>> KeptFilters(const std::string& model_file) {
  std::unique_ptr<CompressionSession> session = Load(model_file);
  std::map<std::string, std::vector<int64_t>> kept;
  if (session == nullptr) return kept;
  const absl::Status status = session->Compress(
      {"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", R"({"dependency_aware": true})"});
  EXPECT_TRUE(status.ok()) << status;
  const nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  for (const auto& layer : report["layers"]) {
    kept[layer["name"].get<std::string>()] =
        layer["kept_filter_indices"].get<std::vector<int64_t>>();
  }
  return kept;
}

// The sets of layers whose outputs meet at a residual add, and layers free of any.
void ExpectTied(const std::map<std::string, std::vector<int64_t>>& kept,
                const std::vector<std::vector<std::string>>& tied,
                const std::vector<std::string>& free_layers) {
  for (const auto& set : tied) {
    for (const std::string& name : set) {
      ASSERT_TRUE(kept.count(name)) << name;
      EXPECT_EQ(kept.at(name), kept.at(set.front())) << name << " vs " << set.front();
    }
  }
  // A free layer is pruned on its own norms; across a whole model at least one of them
  // differs from every tied set's choice (random weights), which shows they are not tied.
  int differs = 0;
  for (const std::string& name : free_layers) {
    bool same_as_any = false;
    for (const auto& set : tied) same_as_any |= kept.at(name) == kept.at(set.front());
    differs += !same_as_any;
  }
  EXPECT_GT(differs, 0);
}

TEST(DependencyAwareArchitectureTest, ResNetTiesTheConvsBeforeEachStagesAdds) {
  const auto scripted = KeptFilters("resnet_mini.pt");
  ExpectTied(scripted,
             {{"conv1", "layer1.0.conv2", "layer1.1.conv2"},
              {"layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2"}},
             {"layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1", "layer2.1.conv1"});
  // Tracing records the same structure: the same choice on the same weights.
  EXPECT_EQ(KeptFilters("resnet_mini_traced.pt"), scripted);
}

TEST(DependencyAwareArchitectureTest, MobileNetTiesOnlyTheBlocksWhoseSkipIsTaken) {
  // features.2 (stride 2, 8 -> 16) has a skip branch in its graph that its flag never
  // takes; tying across it would join 8- and 16-filter layers.
  ExpectTied(KeptFilters("mobilenet_mini.pt"),
             {{"features.0.0", "features.1.conv.1"}, {"features.2.conv.2", "features.3.conv.2"}},
             {"features.2.conv.0.0", "features.3.conv.0.0", "features.4.0"});
}

}  // namespace
}  // namespace autocompress::compression
