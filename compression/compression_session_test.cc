#include "compression/compression_session.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/testing/runfiles.h"
#include "compression/testing/synthetic_training.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using ::testing::HasSubstr;

using autocompress::compression::testing::SyntheticTraining;
using autocompress::testing::TempPath;

// A model the test-model genrule wrote.
std::string Model(const std::string& name) {
  return autocompress::testing::RunfilePath("compression/testdata/" + name);
}

std::unique_ptr<CompressionSession> Load(const std::string& name) {
  auto session = CompressionSession::Load(Model(name), "cpu");
  EXPECT_TRUE(session.ok()) << session.status();
  return std::move(*session);
}

torch::Tensor Weight(torch::jit::Module& model, const std::string& layer,
                     const char* what = "weight") {
  for (const auto& item : model.named_modules()) {
    if (item.name == layer) return item.value.attr(what).toTensor();
  }
  return {};
}

TEST(CompressionSessionTest, ListsLayersWithTypesAndShapes) {
  auto session = Load("small_cnn.pt");
  std::vector<std::string> names;
  for (const LayerInfo& l : session->layers()) names.push_back(l.name + ":" + l.type);
  EXPECT_EQ(names, (std::vector<std::string>{"conv1:Conv2d", "bn1:BatchNorm2d", "conv2:Conv2d",
                                             "bn2:BatchNorm2d", "fc1:Linear", "fc2:Linear"}));
  EXPECT_EQ(session->layers()[4].weight_shape, (std::vector<int64_t>{32, 400}));
  auto residual = Load("residual_cnn.pt");
  EXPECT_EQ(residual->layers()[1].name, "block1");
  EXPECT_EQ(residual->layers()[2].name, "block1.conv_a");
}

TEST(CompressionSessionTest, L1PrunesFiltersAndTheSavedModelCarriesTheZeros) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(session->Compress({"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).ok());
  const std::string path = TempPath("l1.pt");
  ASSERT_TRUE(session->Save(path).ok());
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  ASSERT_EQ(report["layers"].size(), 2u);
  EXPECT_EQ(report["layers"][1]["name"], "conv2");
  EXPECT_EQ(report["layers"][1]["filters_total"], 16);
  EXPECT_EQ(report["layers"][1]["filters_kept"], 8);

  torch::jit::Module reloaded = torch::jit::load(path);
  torch::Tensor w = Weight(reloaded, "conv2");
  torch::Tensor b = Weight(reloaded, "conv2", "bias");
  std::vector<int64_t> kept = report["layers"][1]["kept_filter_indices"];
  for (int64_t c = 0; c < 16; ++c) {
    const bool is_kept = std::find(kept.begin(), kept.end(), c) != kept.end();
    EXPECT_EQ(w[c].abs().sum().item<float>() > 0, is_kept) << c;
    EXPECT_EQ(b[c].item<float>() != 0, is_kept) << c;
  }
  // The reloaded model still runs.
  torch::Tensor out = reloaded.forward({torch::randn({2, 1, 28, 28})}).toTensor();
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(CompressionSessionTest, LevelOnDefaultReachesTheConfiguredSparsity) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(
      session->Compress({"level", R"([{"sparsity": 0.8, "op_types": ["default"]}])", ""}).ok());
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  ASSERT_EQ(report["layers"].size(), 4u);
  for (const auto& layer : report["layers"]) {
    const double expected = std::floor(layer["weight_elements"].get<double>() * 0.8) /
                            layer["weight_elements"].get<double>();
    EXPECT_NEAR(layer["weight_sparsity"].get<double>(), expected, 1e-9) << layer["name"];
  }
}

// Effective bytes restated from the report: per weight, the smaller of dense and sparse
// (non-zeros at 4 bytes plus a bitmap) or, quantized, bits per element plus 4 bytes
// per scale and zero-point entry; every other parameter dense.
TEST(CompressionSessionTest, EffectiveBytesFollowTheDefinitionForPrunersAndQuantizers) {
  auto dense_session = Load("small_cnn.pt");
  int64_t parameters = 0;
  for (const auto& p : dense_session->module().parameters()) parameters += p.numel();
  const ModelSize dense = dense_session->Size().value();
  EXPECT_EQ(dense.dense_bytes, 4 * parameters);
  EXPECT_EQ(dense.effective_bytes, dense.dense_bytes);  // random weights have no zeros

  struct Case {
    const char* algorithm;
    const char* config_list;
  };
  for (const Case& c : {Case{"level", R"([{"sparsity": 0.8, "op_types": ["default"]}])"},
                        Case{"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])"},
                        Case{"naive", R"([{"quant_types": ["weight"], "quant_bits": 8,
                                          "op_types": ["Conv2d", "Linear"]}])"},
                        Case{"bnn", R"([{"quant_types": ["weight"], "quant_bits": 8,
                                        "op_types": ["Conv2d"]}])"}}) {
    auto session = Load("small_cnn.pt");
    ASSERT_TRUE(session->Compress({c.algorithm, c.config_list, ""}).ok()) << c.algorithm;
    const nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
    int64_t expected = dense.dense_bytes;
    for (const auto& layer : report["layers"]) {
      const int64_t n = layer.contains("weight_elements")
                            ? layer["weight_elements"].get<int64_t>()
                            : Weight(session->module(), layer["name"].get<std::string>()).numel();
      expected -= 4 * n;
      if (layer.contains("weight_bits")) {
        expected += (n * layer["weight_bits"].get<int64_t>() + 7) / 8;
        if (layer.contains("weight_scale")) expected += 4 * layer["weight_scale"].size();
        if (layer.contains("weight_zero_point")) expected += 4 * layer["weight_zero_point"].size();
      } else {
        const auto zeros = static_cast<int64_t>(
            std::llround(layer["weight_sparsity"].get<double>() * static_cast<double>(n)));
        expected += std::min(4 * n, 4 * (n - zeros) + (n + 7) / 8);
      }
    }
    // l1 also zeroes the bias of each pruned filter, and the weight and bias of the
    // BatchNorm channel after it.
    if (std::string(c.algorithm) == "l1") {
      for (const auto& [layer, name] :
           std::vector<std::pair<std::string, std::string>>{{"conv1", "bias"},
                                                            {"conv2", "bias"},
                                                            {"bn1", "weight"},
                                                            {"bn1", "bias"},
                                                            {"bn2", "weight"},
                                                            {"bn2", "bias"}}) {
        const torch::Tensor t = Weight(session->module(), layer, name.c_str());
        const int64_t n = t.numel(), nonzero = t.count_nonzero().item<int64_t>();
        EXPECT_EQ(nonzero, n / 2) << layer << "." << name;
        expected += std::min(4 * n, 4 * nonzero + (n + 7) / 8) - 4 * n;
      }
    }
    const ModelSize size = session->Size().value();
    EXPECT_EQ(size.dense_bytes, dense.dense_bytes) << c.algorithm;
    EXPECT_EQ(size.effective_bytes, expected) << c.algorithm;
    EXPECT_LT(size.effective_bytes, dense.effective_bytes) << c.algorithm;
  }
}

TEST(CompressionSessionTest, MasksSurviveOptimizerStepsWithMomentum) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(
      session->Compress({"fpgm", R"([{"sparsity": 0.5, "op_names": ["conv2"]}])", ""}).ok());
  torch::jit::Module& model = session->module();
  model.train();
  const torch::Tensor pruned = Weight(model, "conv2").eq(0);
  ASSERT_EQ(pruned.sum().item<int64_t>(), 8 * 8 * 3 * 3);
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : model.parameters()) params.push_back(p);
  torch::optim::SGD optimizer(params, torch::optim::SGDOptions(0.1).momentum(0.9));
  torch::manual_seed(3);
  for (int step = 0; step < 5; ++step) {
    optimizer.zero_grad();
    torch::Tensor out = model.forward({torch::randn({4, 1, 28, 28})}).toTensor();
    torch::nn::functional::cross_entropy(out, torch::randint(0, 10, {4})).backward();
    optimizer.step();
    ASSERT_TRUE(session->OnOptimizerStep().ok());
    EXPECT_TRUE(Weight(model, "conv2").masked_select(pruned).eq(0).all().item<bool>()) << step;
    EXPECT_TRUE(Weight(model, "conv2").grad().masked_select(pruned).eq(0).all().item<bool>());
  }
  // Kept weights did train.
  EXPECT_GT(Weight(model, "conv2").masked_select(pruned.logical_not()).ne(0).sum().item<int64_t>(),
            0);
}

TEST(CompressionSessionTest, MaskedGradientsKeepMomentumFromRevivingPrunedWeights) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(
      session->Compress({"l2", R"([{"sparsity": 0.25, "op_types": ["Conv2d"]}])", ""}).ok());
  torch::jit::Module& model = session->module();
  model.train();
  const torch::Tensor pruned = Weight(model, "conv1").eq(0);
  ASSERT_EQ(pruned.sum().item<int64_t>(), 2 * 9);
  std::vector<torch::Tensor> params;
  for (const torch::Tensor& p : model.parameters()) params.push_back(p);
  torch::optim::SGD optimizer(params,
                              torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
  torch::manual_seed(4);
  for (int step = 0; step < 5; ++step) {
    optimizer.zero_grad();
    torch::Tensor out = model.forward({torch::randn({4, 1, 28, 28})}).toTensor();
    torch::nn::functional::cross_entropy(out, torch::randint(0, 10, {4})).backward();
    ASSERT_TRUE(session->BeforeOptimizerStep().ok());
    optimizer.step();  // no re-masking afterwards: nothing may have moved them
    EXPECT_TRUE(Weight(model, "conv1").masked_select(pruned).eq(0).all().item<bool>()) << step;
  }
}

TEST(CompressionSessionTest, QatTrainsFloatShadowsThroughTheStraightThroughEstimator) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(session
                  ->Compress({"qat", R"([{"quant_types": ["weight"], "quant_bits": 4,
                                 "op_types": ["Conv2d", "Linear"], "quant_start_step": 3}])",
                              ""})
                  .ok());
  torch::jit::Module& model = session->module();
  model.train();
  // Before quant_start_step the weights stay float.
  EXPECT_GT(std::get<0>(at::_unique(Weight(model, "fc1"))).numel(), 16);
  std::vector<torch::Tensor> params = session->TrainableParameters().value();
  ASSERT_EQ(params.size(), model.parameters().size());
  torch::optim::SGD optimizer(params, torch::optim::SGDOptions(0.05).momentum(0.9));
  torch::manual_seed(5);
  for (int step = 0; step < 4; ++step) {
    optimizer.zero_grad();
    torch::Tensor out = model.forward({torch::randn({8, 1, 28, 28})}).toTensor();
    torch::nn::functional::cross_entropy(out, torch::randint(0, 10, {8})).backward();
    const torch::Tensor weight_grad = Weight(model, "conv2").grad().clone();
    ASSERT_TRUE(session->BeforeOptimizerStep().ok());
    // Straight-through: the shadow got the quantized weight's gradient (QAT weights
    // span their own range, so nothing is clipped).
    bool found = false;
    for (const torch::Tensor& p : params) {
      if (p.sizes() == Weight(model, "conv2").sizes() && !p.is_same(Weight(model, "conv2"))) {
        EXPECT_TRUE(torch::equal(p.grad(), weight_grad)) << step;
        found = true;
      }
    }
    EXPECT_TRUE(found);
    optimizer.step();
    ASSERT_TRUE(session->OnOptimizerStep().ok());
  }
  // From step 3 on every quantized layer holds at most 2^4 distinct values.
  for (const char* layer : {"conv1", "conv2", "fc1", "fc2"}) {
    EXPECT_LE(std::get<0>(at::_unique(Weight(model, layer))).numel(), 16) << layer;
  }
  nlohmann::json calibration = nlohmann::json::parse(session->CalibrationJson().value());
  EXPECT_EQ(calibration["fc1"]["weight_bits"], 4);
  EXPECT_EQ(calibration["fc1"]["weight_scale"].size(), 1u);
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  EXPECT_EQ(report["layers"].size(), 4u);
}

std::vector<double> Doubles(const torch::Tensor& t) {
  torch::Tensor flat = t.detach().to(torch::kDouble).contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

TEST(CompressionSessionTest, SlimPrunesBnChannelsByOneGlobalThreshold) {
  auto session = Load("small_cnn.pt");
  SyntheticTraining training(3);
  std::vector<double> gamma1, gamma2;
  training.on_epoch_end_ = [&](torch::jit::Module& model) {
    gamma1 = Doubles(Weight(model, "bn1"));
    gamma2 = Doubles(Weight(model, "bn2"));
  };
  CompressOptions options{"slim", R"([{"sparsity": 0.5, "op_types": ["BatchNorm2d"]}])",
                          R"({"sparsifying_training_epochs": 2, "scale": 0.001})", &training};
  ASSERT_TRUE(session->Compress(options).ok());
  // Reference: the 12 smallest |gamma| of all 24 channels (after training) go.
  std::vector<double> all;
  for (double g : gamma1) all.push_back(std::fabs(g));
  for (double g : gamma2) all.push_back(std::fabs(g));
  std::vector<double> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  const double t = sorted[12 - 1];
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  ASSERT_EQ(report["layers"].size(), 2u);
  int kept_total = 0;
  for (int layer = 0; layer < 2; ++layer) {
    const std::vector<double>& gamma = layer == 0 ? gamma1 : gamma2;
    std::vector<int64_t> expected;
    for (size_t c = 0; c < gamma.size(); ++c) {
      if (std::fabs(gamma[c]) > t) expected.push_back(c);
    }
    EXPECT_EQ(report["layers"][layer]["kept_filter_indices"].get<std::vector<int64_t>>(), expected);
    kept_total += expected.size();
  }
  EXPECT_EQ(kept_total, 12);
  // BN scale and shift of pruned channels are zero in the model.
  torch::Tensor beta = Weight(session->module(), "bn2", "bias");
  torch::Tensor gamma = Weight(session->module(), "bn2");
  EXPECT_TRUE(beta.masked_select(gamma.eq(0)).eq(0).all().item<bool>());
}

TEST(CompressionSessionTest, SlimPenaltyShrinksBnScales) {
  auto sum_of_gammas = [](double scale) {
    auto session = Load("small_cnn.pt");
    SyntheticTraining training(3);
    double total = 0;
    training.on_epoch_end_ = [&](torch::jit::Module& model) {
      total = Weight(model, "bn1").abs().sum().item<double>() +
              Weight(model, "bn2").abs().sum().item<double>();
    };
    CompressOptions options{
        "slim", R"([{"sparsity": 0.25, "op_types": ["BatchNorm2d"]}])",
        absl::StrCat(R"({"sparsifying_training_epochs": 2, "scale": )", scale, "}"), &training};
    EXPECT_TRUE(session->Compress(options).ok());
    return total;
  };
  EXPECT_LT(sum_of_gammas(1.0), sum_of_gammas(1e-6) - 0.5);
}

TEST(CompressionSessionTest, TaylorFoRanksFiltersByTheFirstStepsSquaredWeightGradients) {
  auto session = Load("small_cnn.pt");
  SyntheticTraining training(4);
  // Independent bookkeeping: (w * g)^2 per filter after each of the first 2 steps.
  std::vector<double> reference(16, 0.0);
  int steps = 0;
  training.on_step_ = [&](torch::jit::Module& model) {
    if (steps++ >= 2) return;
    const std::vector<double> w = Doubles(Weight(model, "conv2"));
    const std::vector<double> g = Doubles(Weight(model, "conv2").grad());
    const size_t span = w.size() / 16;
    for (size_t k = 0; k < w.size(); ++k) {
      const double v = static_cast<float>(w[k]) * static_cast<float>(g[k]);
      reference[k / span] += v * v;
    }
  };
  CompressOptions options{"taylorfo", R"([{"sparsity": 0.25, "op_names": ["conv2"]}])",
                          R"({"sparsifying_training_batches": 2})", &training};
  ASSERT_TRUE(session->Compress(options).ok());
  std::vector<int> order(16);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return reference[a] < reference[b]; });
  std::vector<int64_t> expected;
  for (int c = 0; c < 16; ++c) {
    if (std::find(order.begin(), order.begin() + 4, c) == order.begin() + 4) expected.push_back(c);
  }
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  EXPECT_EQ(report["layers"][0]["kept_filter_indices"].get<std::vector<int64_t>>(), expected);
}

TEST(CompressionSessionTest, ApozAndMeanActivationRankFiltersByTheirStatistics) {
  for (const std::string algorithm : {"apoz", "mean_activation"}) {
    auto session = Load("small_cnn.pt");
    SyntheticTraining training(3);
    // Reference: relu(conv2 output) of the first two training forwards, recomputed with
    // functional ops from the weights as they are just before each forward.
    std::vector<double> zeros(16, 0), sums(16, 0);
    double elements = 0;
    int forwards = 0;
    training.before_forward_ = [&](torch::jit::Module& model, const torch::Tensor& x) {
      if (forwards++ >= 2) return;
      torch::NoGradGuard no_grad;
      auto p = [&](const char* layer, const char* what) {
        return Weight(model, layer, what).detach();
      };
      torch::Tensor h = torch::conv2d(x, p("conv1", "weight"), p("conv1", "bias"));
      h = torch::batch_norm(h, p("bn1", "weight"), p("bn1", "bias"), {}, {}, true, 0.1, 1e-5,
                            false);
      h = torch::max_pool2d(torch::relu(h), 2);
      torch::Tensor out = torch::relu(torch::conv2d(h, p("conv2", "weight"), p("conv2", "bias")));
      const torch::Tensor per_channel = out.transpose(0, 1).reshape({16, -1});
      for (int c = 0; c < 16; ++c) {
        zeros[c] += per_channel[c].eq(0).sum().item<double>();
        sums[c] += per_channel[c].sum().item<double>();
      }
      elements += per_channel.size(1);
    };
    CompressOptions options{algorithm, R"([{"sparsity": 0.5, "op_names": ["conv2"]}])",
                            R"({"sparsifying_training_batches": 2})", &training};
    ASSERT_TRUE(session->Compress(options).ok()) << algorithm;
    std::vector<double> scores(16);
    for (int c = 0; c < 16; ++c) {
      scores[c] = algorithm == "apoz" ? 1 - zeros[c] / elements : sums[c] / elements;
    }
    std::vector<int> order(16);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return scores[a] < scores[b]; });
    std::vector<int64_t> expected;
    for (int c = 0; c < 16; ++c) {
      if (std::find(order.begin(), order.begin() + 8, c) == order.begin() + 8)
        expected.push_back(c);
    }
    nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
    EXPECT_EQ(report["layers"][0]["kept_filter_indices"].get<std::vector<int64_t>>(), expected)
        << algorithm;
    // The saved model carries no hook.
    const std::string path = TempPath(algorithm + ".pt");
    ASSERT_TRUE(session->Save(path).ok());
    EXPECT_EQ(torch::jit::load(path).get_method("forward").graph()->toString().find("observe"),
              std::string::npos);
  }
}

// small_cnn with qat quantizing fc2's `site` ("input" or "output") to `bits` bits.
std::unique_ptr<CompressionSession> QatOnFc2(const std::string& site, int bits) {
  auto session = Load("small_cnn.pt");
  const absl::Status status =
      session->Compress({"qat",
                         absl::StrCat(R"([{"quant_types": [")", site, R"("], "quant_bits": )", bits,
                                      R"(, "op_names": ["fc2"]}])"),
                         ""});
  EXPECT_TRUE(status.ok()) << status;
  return status.ok() ? std::move(session) : nullptr;
}

TEST(CompressionSessionTest, QatOutputQuantizationTracksAnEmaRangeAndQuantizesOnIt) {
  auto session = QatOnFc2("output", 3);
  ASSERT_NE(session, nullptr);
  torch::jit::Module& model = session->module();
  // The outputs take at most 2^3 values once quantized.
  model.train();
  torch::manual_seed(9);
  std::vector<torch::Tensor> params = session->TrainableParameters().value();
  torch::optim::SGD optimizer(params, torch::optim::SGDOptions(0.01));
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    torch::Tensor out = model.forward({torch::randn({16, 1, 28, 28})}).toTensor();
    EXPECT_LE(std::get<0>(at::_unique(out.detach())).numel(), 8) << step;
    torch::nn::functional::cross_entropy(out, torch::randint(0, 10, {16})).backward();
    ASSERT_TRUE(session->BeforeOptimizerStep().ok());
    optimizer.step();
    ASSERT_TRUE(session->OnOptimizerStep().ok());
  }
  // Eval mode uses the stored scale: still quantized.
  model.eval();
  torch::Tensor eval_out = model.forward({torch::randn({16, 1, 28, 28})}).toTensor();
  EXPECT_LE(std::get<0>(at::_unique(eval_out)).numel(), 8);
  nlohmann::json calibration = nlohmann::json::parse(session->CalibrationJson().value());
  EXPECT_EQ(calibration["fc2"]["output_bits"], 3);
  EXPECT_LT(calibration["fc2"]["tracked_min_output"][0].get<double>(), 0);
  EXPECT_GT(calibration["fc2"]["tracked_max_output"][0].get<double>(), 0);
  // The saved model is plain TorchScript again: outputs are no longer quantized.
  const std::string path = TempPath("qat_output.pt");
  ASSERT_TRUE(session->Save(path).ok());
  torch::jit::Module reloaded = torch::jit::load(path);
  reloaded.eval();
  EXPECT_GT(std::get<0>(at::_unique(reloaded.forward({torch::randn({16, 1, 28, 28})}).toTensor()))
                .numel(),
            8);
}

TEST(CompressionSessionTest, QatInputQuantizationTracksTheLayersInputRange) {
  auto session = QatOnFc2("input", 3);
  ASSERT_NE(session, nullptr);
  torch::jit::Module& model = session->module();
  torch::jit::Module reference = torch::jit::load(Model("small_cnn.pt"));  // unhooked twin
  model.train();
  reference.train();
  torch::optim::SGD optimizer(session->TrainableParameters().value(),
                              torch::optim::SGDOptions(0.01));
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({16, 1, 28, 28});
  optimizer.zero_grad();
  torch::Tensor out = model.forward({x}).toTensor();
  // fc2's input (relu(fc1(...)), >= 0) was quantized to at most 2^3 levels, so the
  // output differs from the unhooked model's on the same input.
  EXPECT_FALSE(torch::allclose(out, reference.forward({x}).toTensor()));
  torch::nn::functional::cross_entropy(out, torch::randint(0, 10, {16})).backward();
  ASSERT_TRUE(session->BeforeOptimizerStep().ok());
  optimizer.step();
  ASSERT_TRUE(session->OnOptimizerStep().ok());
  nlohmann::json calibration = nlohmann::json::parse(session->CalibrationJson().value());
  EXPECT_EQ(calibration["fc2"]["input_bits"], 3);
  EXPECT_EQ(calibration["fc2"]["tracked_min_input"][0].get<double>(), 0);  // relu output
  EXPECT_GT(calibration["fc2"]["tracked_max_input"][0].get<double>(), 0);
  EXPECT_FALSE(calibration["fc2"].contains("tracked_min_output"));
}

TEST(CompressionSessionTest, QatOutputRangeIsOverwrittenThenEmaUpdated) {
  auto session = QatOnFc2("output", 8);
  ASSERT_NE(session, nullptr);
  torch::jit::Module& model = session->module();
  torch::jit::Module reference = torch::jit::load(Model("small_cnn.pt"));  // unhooked twin
  model.train();
  reference.train();
  torch::manual_seed(21);
  std::vector<double> mins, maxs;
  for (int step = 0; step < 3; ++step) {
    torch::Tensor x = torch::randn({16, 1, 28, 28});
    torch::Tensor raw = reference.forward({x}).toTensor().detach();
    mins.push_back(raw.min().item<double>());
    maxs.push_back(raw.max().item<double>());
    model.forward({x});
    ASSERT_TRUE(session->OnOptimizerStep().ok());  // no weight change: lr 0 in effect
  }
  // Step 1 overwrites with the batch range (and the EMA of equal values keeps it); later
  // steps: tracked = 0.99 * tracked + 0.01 * current. The tracked range is the raw one;
  // it is widened to include 0 only when the scale is computed.
  double tracked_min = mins[0], tracked_max = maxs[0];
  for (int step = 1; step < 3; ++step) {
    tracked_min = 0.99 * tracked_min + 0.01 * mins[step];
    tracked_max = 0.99 * tracked_max + 0.01 * maxs[step];
  }
  nlohmann::json calibration = nlohmann::json::parse(session->CalibrationJson().value());
  EXPECT_NEAR(calibration["fc2"]["tracked_min_output"][0].get<double>(), tracked_min, 1e-4);
  EXPECT_NEAR(calibration["fc2"]["tracked_max_output"][0].get<double>(), tracked_max, 1e-4);
}

TEST(CompressionSessionTest, BnnBinarizesWeightsAndOutputs) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(session
                  ->Compress({"bnn", R"([{"quant_types": ["weight", "output"], "quant_bits": 1,
                                 "op_names": ["fc1"]}])",
                              ""})
                  .ok());
  torch::jit::Module& model = session->module();
  EXPECT_TRUE(Weight(model, "fc1").abs().eq(1).all().item<bool>());
  model.eval();
  // Reference: the same network with fc1's output replaced by its sign (sign(0) = +1).
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({4, 1, 28, 28});
  auto run = [&](const char* layer, const torch::Tensor& in) {
    return model.attr(layer).toModule().forward({in}).toTensor();
  };
  torch::Tensor h = torch::max_pool2d(torch::relu(run("bn1", run("conv1", x))), 2);
  h = torch::flatten(torch::max_pool2d(torch::relu(run("bn2", run("conv2", h))), 2), 1);
  torch::Tensor fc1 = torch::linear(h, Weight(model, "fc1"), Weight(model, "fc1", "bias"));
  torch::Tensor binary = torch::where(fc1.ge(0), torch::ones_like(fc1), -torch::ones_like(fc1));
  torch::Tensor expected =
      torch::linear(torch::relu(binary), Weight(model, "fc2"), Weight(model, "fc2", "bias"));
  EXPECT_TRUE(torch::allclose(model.forward({x}).toTensor(), expected, 1e-5, 1e-6));
}

TEST(CompressionSessionTest, DependencyAwareL1PrunesTheSameChannelsAcrossAResidualAdd) {
  auto session = Load("residual_cnn.pt");
  torch::jit::Module& model = session->module();
  // Reference: summed L1 norms of the dependent convs pick the common channels.
  const std::vector<std::string> tied = {"stem", "block1.conv_b", "block2.conv_b"};
  torch::Tensor sum = torch::zeros({8}, torch::kDouble);
  std::map<std::string, torch::Tensor> norms;
  for (const auto& item : model.named_modules()) {
    if (item.value.hasattr("weight") && item.value.type()->name()->name() == "Conv2d") {
      torch::Tensor w = item.value.attr("weight").toTensor().detach().to(torch::kDouble);
      norms[item.name] = w.abs().reshape({w.size(0), -1}).sum(1);
    }
  }
  for (const std::string& name : tied) sum += norms[name];
  std::vector<int64_t> order(8);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int64_t a, int64_t b) { return sum[a].item<double>() < sum[b].item<double>(); });
  std::vector<int64_t> common_kept(order.begin() + 4, order.end());
  std::sort(common_kept.begin(), common_kept.end());

  ASSERT_TRUE(session
                  ->Compress({"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])",
                              R"({"dependency_aware": true})"})
                  .ok());
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  std::map<std::string, std::vector<int64_t>> kept;
  for (const auto& layer : report["layers"]) {
    kept[layer["name"].get<std::string>()] =
        layer["kept_filter_indices"].get<std::vector<int64_t>>();
  }
  for (const std::string& name : tied) EXPECT_EQ(kept[name], common_kept) << name;
  // conv_a layers are free: they follow their own norms.
  for (const char* name : {"block1.conv_a", "block2.conv_a"}) {
    std::vector<int64_t> own(8);
    std::iota(own.begin(), own.end(), 0);
    const torch::Tensor n = norms[name];
    std::sort(own.begin(), own.end(),
              [&](int64_t a, int64_t b) { return n[a].item<double>() < n[b].item<double>(); });
    std::vector<int64_t> expected(own.begin() + 4, own.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(kept[name], expected) << name;
  }
}

TEST(CompressionSessionTest, DependencyAwarePruningKeepsGroupedConvCountsEvenPerGroup) {
  auto session = Load("grouped_cnn.pt");
  {
    // Make filters 0..2 (all in the first group) the three smallest: unconstrained
    // selection would take three from one group.
    torch::NoGradGuard no_grad;
    Weight(session->module(), "conv1").slice(0, 0, 3).mul_(0.01);
  }
  torch::Tensor w = Weight(session->module(), "conv1").detach().to(torch::kDouble);
  const torch::Tensor norms = w.abs().reshape({8, -1}).sum(1);
  ASSERT_TRUE(session
                  ->Compress({"l1", R"([{"sparsity": 0.5, "op_names": ["conv1"]}])",
                              R"({"dependency_aware": true})"})
                  .ok());
  nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  const std::vector<int64_t> kept = report["layers"][0]["kept_filter_indices"];
  // conv1 feeds a groups=2 conv: two channels go in each half, the lower-norm ones.
  std::vector<int64_t> expected;
  for (int64_t half = 0; half < 2; ++half) {
    std::vector<int64_t> order = {4 * half, 4 * half + 1, 4 * half + 2, 4 * half + 3};
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return norms[a].item<double>() < norms[b].item<double>();
    });
    expected.push_back(order[2]);
    expected.push_back(order[3]);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(kept, expected);
}

TEST(CompressionSessionTest, DataDrivenPrunersNeedTrainingData) {
  auto session = Load("small_cnn.pt");
  EXPECT_EQ(
      session->Compress({"taylorfo", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).code(),
      absl::StatusCode::kFailedPrecondition);
  SyntheticTraining empty(0);
  absl::Status status =
      session->Compress({"taylorfo", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", "", &empty});
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("no optimizer step"));
}

TEST(CompressionSessionTest, BadInputIsAClearError) {
  auto missing = CompressionSession::Load("/nonexistent/model.pt", "cpu");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto bad_device = CompressionSession::Load(Model("small_cnn.pt"), "tpu:0");
  EXPECT_EQ(bad_device.status().code(), absl::StatusCode::kInvalidArgument);
  auto no_cuda = CompressionSession::Load(Model("small_cnn.pt"), "cuda:0");
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(no_cuda.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  const std::string junk = TempPath("junk.pt");
  FILE* file = std::fopen(junk.c_str(), "w");
  std::fputs("not a model", file);
  std::fclose(file);
  auto not_a_model = CompressionSession::Load(junk, "cpu");
  EXPECT_EQ(not_a_model.status().code(), absl::StatusCode::kInvalidArgument);

  auto session = Load("small_cnn.pt");
  absl::Status status =
      session->Compress({"l1", R"([{"sparsity": 0.5, "op_names": ["conv7"]}])", ""});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("conv1 (Conv2d [8, 1, 3, 3])"));
  EXPECT_EQ(
      session->Compress({"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", R"({"bogus": 1})"})
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      session->Compress({"apoz", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).code(),
      absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(session->Compress({"l2", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).ok());
  EXPECT_EQ(session->Compress({"l2", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace autocompress::compression
