// The speedup pass on every architecture the library tests (the seed's CNN, ResNet
// scripted and traced, MobileNetV2) after every filter pruner and slim at three
// sparsities: the shrunk model computes what the masked one does, each layer keeps the
// channels an independent count says (a tied set keeps the union of its members' kept
// channels), the parameter count is the formula's, and the saved model reloads. Then
// the refusals: channels the pass cannot remove stay masked and are named.
#include "compression/speedup.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/testing/runfiles.h"
#include "compression/algorithm_registry.h"
#include "compression/compression_session.h"
#include "compression/dependency.h"
#include "compression/testing/synthetic_training.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using autocompress::testing::RunfilePath;
using autocompress::testing::TempPath;

std::string ModelPath(const std::string& name) {
  return RunfilePath("compression/testdata/" + name);
}

// Compresses `model` and saves the masked model; returns its path.
std::string Masked(const std::string& model, const std::string& algorithm, double sparsity,
                   const std::string& kwargs = "") {
  auto session = CompressionSession::Load(ModelPath(model), "cpu");
  EXPECT_TRUE(session.ok()) << session.status();
  if (!session.ok()) return "";
  const std::string op_type = algorithm == "slim" ? "BatchNorm2d" : "Conv2d";
  CompressOptions options{
      algorithm, nlohmann::json::array({{{"sparsity", sparsity}, {"op_types", {op_type}}}}).dump(),
      kwargs};
  testing::SyntheticTraining training(3);
  if (TrainsBeforePruning(algorithm)) options.hooks = &training;
  const absl::Status compressed = (*session)->Compress(options);
  EXPECT_TRUE(compressed.ok()) << compressed;
  const std::string path = TempPath(model + "." + algorithm + ".masked.pt");
  const absl::Status saved = (*session)->Save(path);
  EXPECT_TRUE(saved.ok()) << saved;
  return path;
}

torch::Tensor Forward(torch::jit::Module& m, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return m.forward({x}).toTensor();
}

double RelativeDifference(const torch::Tensor& actual, const torch::Tensor& expected) {
  return ((actual - expected).abs().max() / expected.abs().max()).item<double>();
}

std::map<std::string, torch::jit::Module> Modules(const torch::jit::Module& m) {
  std::map<std::string, torch::jit::Module> out;
  for (const auto& item : m.named_modules()) out.emplace(item.name, item.value);
  return out;
}

int64_t ParameterCount(const torch::jit::Module& m) {
  int64_t n = 0;
  for (const torch::Tensor& p : m.parameters()) n += p.numel();
  return n;
}

// One conv or Linear layer: where its input comes from ("" = the model's input), how
// many inputs each of those channels owns (a flatten's H x W), its BatchNorm.
// A depthwise layer (`depthwise`) has its input's channels. `through`: the depthwise
// layer that alone reads this one's output, so a channel goes when either prunes it.
struct Layer {
  Layer(std::string n, std::string i, int64_t p, std::string bn, bool dw = false,
        std::string t = "")
      : name(std::move(n)),
        input(std::move(i)),
        per_channel(p),
        batch_norm(std::move(bn)),
        depthwise(dw),
        through(std::move(t)) {}
  Layer() = default;
  std::string name, input;
  int64_t per_channel = 1;
  std::string batch_norm;
  bool depthwise = false;
  std::string through;
};

std::vector<Layer> Topology(const std::string& model) {
  if (model == "small_cnn.pt") {
    return {{"conv1", "", 1, "bn1"},
            {"conv2", "conv1", 1, "bn2"},
            {"fc1", "conv2", 25, ""},
            {"fc2", "fc1", 1, ""}};
  }
  if (model == "mobilenet_mini.pt") {
    return {{"features.0.0", "", 1, "features.0.1"},
            {"features.1.conv.0.0", "features.0.0", 1, "features.1.conv.0.1", true},
            {"features.1.conv.1", "features.0.0", 1, "features.1.conv.2"},
            {"features.2.conv.0.0", "features.0.0", 1, "features.2.conv.0.1", false,
             "features.2.conv.1.0"},
            {"features.2.conv.1.0", "features.2.conv.0.0", 1, "features.2.conv.1.1", true},
            {"features.2.conv.2", "features.2.conv.0.0", 1, "features.2.conv.3"},
            {"features.3.conv.0.0", "features.2.conv.2", 1, "features.3.conv.0.1", false,
             "features.3.conv.1.0"},
            {"features.3.conv.1.0", "features.3.conv.0.0", 1, "features.3.conv.1.1", true},
            {"features.3.conv.2", "features.3.conv.0.0", 1, "features.3.conv.3"},
            {"features.4.0", "features.2.conv.2", 1, "features.4.1"},
            {"classifier.1", "features.4.0", 1, ""}};
  }
  return {{"conv1", "", 1, "bn1"},
          {"layer1.0.conv1", "conv1", 1, "layer1.0.bn1"},
          {"layer1.0.conv2", "layer1.0.conv1", 1, "layer1.0.bn2"},
          {"layer1.1.conv1", "conv1", 1, "layer1.1.bn1"},
          {"layer1.1.conv2", "layer1.1.conv1", 1, "layer1.1.bn2"},
          {"layer2.0.conv1", "conv1", 1, "layer2.0.bn1"},
          {"layer2.0.conv2", "layer2.0.conv1", 1, "layer2.0.bn2"},
          {"layer2.0.downsample.0", "conv1", 1, "layer2.0.downsample.1"},
          {"layer2.1.conv1", "layer2.0.conv2", 1, "layer2.1.bn1"},
          {"layer2.1.conv2", "layer2.1.conv1", 1, "layer2.1.bn2"},
          {"fc", "layer2.0.conv2", 1, ""}};
}

// The expected channel count of every layer and the model's parameter count, from the
// masked model alone: a channel is pruned when its filter or its BatchNorm scale is all
// zero; layers tied by an add keep the union of their members' kept channels.
struct Expected {
  std::map<std::string, int64_t> channels;
  int64_t parameters = 0;
};

Expected Expect(const std::string& model, torch::jit::Module& masked) {
  const std::vector<Layer> layers = Topology(model);
  std::map<std::string, torch::jit::Module> modules = Modules(masked);
  std::map<std::string, Layer> by_name;
  for (const Layer& l : layers) by_name[l.name] = l;
  const ChannelDependencies deps = AnalyzeChannelDependencies(masked).value();
  const auto kept = [&](const std::string& name) {
    std::set<int64_t> out;
    const torch::Tensor w = modules.at(name).attr("weight").toTensor();
    const Layer& l = by_name.at(name);
    for (int64_t c = 0; c < w.size(0); ++c) {
      bool alive = w[c].count_nonzero().item<int64_t>() > 0;
      if (!l.batch_norm.empty()) {
        alive = alive && modules.at(l.batch_norm).attr("weight").toTensor()[c].item<double>() != 0;
      }
      if (alive) out.insert(c);
    }
    return out;
  };
  Expected e;
  for (const Layer& l : layers) {
    std::vector<std::string> tied = {l.name};
    for (const auto& set : deps.sets) {
      if (std::find(set.begin(), set.end(), l.name) != set.end()) tied = set;
    }
    if (l.depthwise) continue;
    std::set<int64_t> all;
    for (const std::string& m : tied) {
      const std::set<int64_t> k = kept(m);
      all.insert(k.begin(), k.end());
    }
    if (!l.through.empty()) {
      const std::set<int64_t> k = kept(l.through);
      std::set<int64_t> both;
      for (int64_t c : all)
        if (k.count(c)) both.insert(c);
      all = both;
    }
    e.channels[l.name] = std::max<int64_t>(1, all.size());
  }
  for (const Layer& l : layers) {
    if (l.depthwise) e.channels[l.name] = e.channels.at(l.input);
  }
  for (const Layer& l : layers) {
    const torch::jit::Module& m = modules.at(l.name);
    const torch::Tensor w = m.attr("weight").toTensor();
    const int64_t in =
        l.input.empty() || l.depthwise ? w.size(1) : e.channels.at(l.input) * l.per_channel;
    const int64_t out = e.channels.at(l.name);
    e.parameters += out * in * (w.numel() / w.size(0) / w.size(1));
    if (m.hasattr("bias") && m.attr("bias").isTensor()) e.parameters += out;
    if (!l.batch_norm.empty()) e.parameters += 2 * out;
  }
  return e;
}

using Case = std::tuple<std::string, std::string, double>;  // model, algorithm, sparsity

class SpeedupTest : public ::testing::TestWithParam<Case> {};

TEST_P(SpeedupTest, ComputesWhatTheMaskedModelComputesWithTheFormulasChannels) {
  const auto& [model, algorithm, sparsity] = GetParam();
  const std::string masked_path = Masked(model, algorithm, sparsity);
  ASSERT_FALSE(masked_path.empty());
  torch::jit::Module masked = torch::jit::load(masked_path);
  torch::jit::Module small = torch::jit::load(masked_path);
  masked.eval();
  small.eval();
  const absl::StatusOr<SpeedupResult> result = SpeedupModule(small);
  ASSERT_TRUE(result.ok()) << result.status();
  // Pruned channels stay only where a residual add ties them to channels another
  // member of the set keeps (these models' pruners prune each layer on its own).
  for (const LeftMasked& left : result->left_masked) {
    EXPECT_TRUE(left.reason.find("tied to it by an add") != std::string::npos ||
                left.reason == "a layer keeps at least one channel")
        << left.layers << ": " << left.reason;
  }
  torch::manual_seed(11);
  const torch::Tensor x = torch::randn({4, 1, 28, 28});
  const torch::Tensor expected = Forward(masked, x);
  EXPECT_LE(RelativeDifference(Forward(small, x), expected), 1e-5);

  // Fewer parameters whenever anything was pruned, and the formula's count.
  EXPECT_LT(ParameterCount(small), ParameterCount(masked));
  {
    const Expected e = Expect(model, masked);
    std::map<std::string, torch::jit::Module> modules = Modules(small);
    for (const auto& [layer, channels] : e.channels) {
      EXPECT_EQ(modules.at(layer).attr("weight").toTensor().size(0), channels) << layer;
    }
    EXPECT_EQ(ParameterCount(small), e.parameters);
  }

  // Saved and reloaded like any other model: same module names, same outputs.
  const std::string path = TempPath(model + "." + algorithm + ".small.pt");
  small.save(path);
  torch::jit::Module reloaded = torch::jit::load(path);
  reloaded.eval();
  std::vector<std::string> names, reloaded_names;
  for (const auto& item : masked.named_modules()) names.push_back(item.name);
  for (const auto& item : reloaded.named_modules()) reloaded_names.push_back(item.name);
  EXPECT_EQ(reloaded_names, names);
  EXPECT_LE(RelativeDifference(Forward(reloaded, x), expected), 1e-5);
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string model = std::get<0>(info.param);
  model = model.substr(0, model.find('.'));
  return model + "_" + std::get<1>(info.param) + "_" +
         std::to_string(static_cast<int>(std::get<2>(info.param) * 10));
}

INSTANTIATE_TEST_SUITE_P(EveryModelPrunerAndSparsity, SpeedupTest,
                         ::testing::Combine(::testing::Values("small_cnn.pt", "resnet_mini.pt",
                                                              "resnet_mini_traced.pt",
                                                              "mobilenet_mini.pt"),
                                            ::testing::Values("l1", "l2", "fpgm", "taylorfo",
                                                              "apoz", "mean_activation", "slim"),
                                            ::testing::Values(0.3, 0.5, 0.8)),
                         CaseName);

TEST(SpeedupRefusalTest, ChannelsFeedingAnUnknownOpStayMaskedAndAreNamed) {
  const std::string masked_path = Masked("cat_cnn.pt", "l1", 0.5);
  torch::jit::Module masked = torch::jit::load(masked_path);
  torch::jit::Module small = torch::jit::load(masked_path);
  const absl::StatusOr<SpeedupResult> result = SpeedupModule(small);
  ASSERT_TRUE(result.ok()) << result.status();
  std::map<std::string, torch::jit::Module> modules = Modules(small);
  EXPECT_EQ(modules.at("conv1").attr("weight").toTensor().size(0), 4);  // shrunk
  EXPECT_EQ(modules.at("conv2").attr("weight").toTensor().size(0), 8);  // kept
  EXPECT_EQ(modules.at("conv2").attr("weight").toTensor().size(1), 4);  // reads conv1's 4
  ASSERT_EQ(result->left_masked.size(), 1u);
  EXPECT_EQ(result->left_masked[0].layers, "conv2");
  EXPECT_EQ(result->left_masked[0].channels, 4);
  EXPECT_NE(result->left_masked[0].reason.find("aten::cat"), std::string::npos)
      << result->left_masked[0].reason;
  const torch::Tensor x = torch::randn({3, 1, 28, 28});
  EXPECT_LE(RelativeDifference(Forward(small, x), Forward(masked, x)), 1e-5);
}

// A model masked the way NNI masks it (convolution filters only, BatchNorm untouched)
// leaves each pruned channel at BN's constant shift. Under a Linear layer (the seed
// CNN's fc1, after a flatten) the constants fold into its bias and the channels go;
// under ResNet's padded 3x3 convolutions they cannot, so those stay and are named.
TEST(SpeedupRefusalTest, ConstantChannelsFoldWhereExactAndStayWhereNot) {
  torch::manual_seed(5);
  for (const std::string model : {"small_cnn.pt", "resnet_mini.pt"}) {
    SCOPED_TRACE(model);
    const std::string layer = model == "small_cnn.pt" ? "conv2" : "layer1.0.conv1";
    torch::jit::Module masked = torch::jit::load(ModelPath(model));
    masked.eval();
    {
      torch::NoGradGuard no_grad;
      Modules(masked).at(layer).attr("weight").toTensor().slice(0, 0, 4).zero_();
      torch::jit::Module m = Modules(masked).at(layer);
      if (m.hasattr("bias") && m.attr("bias").isTensor()) {
        m.attr("bias").toTensor().slice(0, 0, 4).zero_();
      }
    }
    const std::string path = TempPath(model + ".nni_style.pt");
    masked.save(path);
    torch::jit::Module small = torch::jit::load(path);
    small.eval();
    const absl::StatusOr<SpeedupResult> result = SpeedupModule(small);
    ASSERT_TRUE(result.ok()) << result.status();
    const torch::Tensor x = torch::randn({4, 1, 28, 28});
    EXPECT_LE(RelativeDifference(Forward(small, x), Forward(masked, x)), 1e-5);
    const int64_t filters = Modules(small).at(layer).attr("weight").toTensor().size(0);
    if (model == "small_cnn.pt") {
      EXPECT_EQ(filters, 12);
      EXPECT_TRUE(result->left_masked.empty());
    } else {
      // Channels whose BN shift ReLU turns to zero go; the others stay, named.
      EXPECT_GT(filters, 4);
      ASSERT_EQ(result->left_masked.size(), 1u);
      EXPECT_EQ(result->left_masked[0].layers, layer);
      EXPECT_NE(result->left_masked[0].reason.find("layer1.0.conv2"), std::string::npos)
          << result->left_masked[0].reason;
      EXPECT_NE(result->left_masked[0].reason.find("padding"), std::string::npos)
          << result->left_masked[0].reason;
    }
  }
}

TEST(MeasureModelTest, CountsMultiplyAddsOfEveryConvolutionAndLinear) {
  torch::jit::Module model = torch::jit::load(ModelPath("small_cnn.pt"));
  MeasureOptions options;
  options.input_shape = {1, 28, 28};
  options.latency = false;
  const absl::StatusOr<ModelCost> cost = MeasureModel(model, options);
  ASSERT_TRUE(cost.ok()) << cost.status();
  // conv1 26x26x8 outputs of 9, conv2 11x11x16 of 72, fc1 32 of 400, fc2 10 of 32.
  EXPECT_EQ(cost->macs, 26 * 26 * 8 * 9 + 11 * 11 * 16 * 72 + 32 * 400 + 10 * 32);
  EXPECT_EQ(cost->parameters, ParameterCount(model));

  // After pruning half the filters: conv1 keeps 4, conv2 8.
  torch::jit::Module small = torch::jit::load(Masked("small_cnn.pt", "l1", 0.5));
  ASSERT_TRUE(SpeedupModule(small).ok());
  const absl::StatusOr<ModelCost> after = MeasureModel(small, options);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->macs, 26 * 26 * 4 * 9 + 11 * 11 * 8 * 36 + 32 * 200 + 10 * 32);
}

TEST(SpeedupFileTest, WritesTheModelAndReportsAllThreeModels) {
  const std::string masked = Masked("resnet_mini.pt", "l1", 0.5, R"({"dependency_aware": true})");
  MeasureOptions options;
  options.input_shape = {1, 28, 28};
  options.runs = 3;
  options.warmup = 1;
  const std::string out = TempPath("resnet_small.pt");
  const absl::StatusOr<SpeedupReport> report =
      SpeedupFile(masked, out, options, ModelPath("resnet_mini.pt"));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_LE(report->output_relative_difference, 1e-5);
  ASSERT_TRUE(report->original.has_value());
  EXPECT_EQ(report->original->macs, report->masked.macs);
  // Chained convolutions lose half their inputs and half their outputs.
  EXPECT_LT(report->sped_up.macs, report->masked.macs * 0.3);
  EXPECT_LT(report->sped_up.parameters, report->masked.parameters * 0.3);
  EXPECT_EQ(report->sped_up.latency_ms.size(), 2u);
  const nlohmann::json json = nlohmann::json::parse(report->ToJson());
  EXPECT_FALSE(json["layers"].empty());
  EXPECT_EQ(json["models"]["sped_up"]["macs"], report->sped_up.macs);
  EXPECT_NE(SpeedupTable(*report).find("sped_up"), std::string::npos);
  torch::jit::Module reloaded = torch::jit::load(out);
  EXPECT_EQ(ParameterCount(reloaded), report->sped_up.parameters);

  EXPECT_FALSE(SpeedupFile(TempPath("missing.pt"), out, options).ok());
  EXPECT_EQ(SpeedupFile(masked, out, MeasureOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace autocompress::compression
