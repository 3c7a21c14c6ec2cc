#include "worker/training/fine_tune.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>

#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "worker/training/idx_dataset.h"
#include "worker/training/random_dataset.h"

namespace autocompress::training {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<compression::CompressionSession> SmallCnn() {
  auto session = compression::CompressionSession::Load(
      autocompress::testing::RunfilePath("compression/testdata/small_cnn.pt"), "cpu");
  EXPECT_TRUE(session.ok()) << session.status();
  return std::move(*session);
}

std::unique_ptr<Dataset> TinyIdx() {
  return std::move(
      LoadIdxSplit(autocompress::testing::RunfilePath("compression/testdata/tiny_idx"), "train")
          .value());
}

torch::Tensor Weight(torch::jit::Module& model, const std::string& layer) {
  for (const auto& item : model.named_modules()) {
    if (item.name == layer) return item.value.attr("weight").toTensor();
  }
  return {};
}

Recipe Sgd() {
  Recipe recipe;
  recipe.lr = 0.05;
  recipe.momentum = 0.9;
  recipe.weight_decay = 1e-4;
  recipe.batch_size = 32;
  return recipe;
}

// tiny_idx is learnable (label k brightens row band k): three epochs of SGD with
// momentum on a half-pruned small CNN lower the loss, and pruned filters stay exactly
// zero before every forward and at the end.
// A BatchNorm the caller froze in eval mode inside a model in train mode keeps its mode
// through fine-tuning and evaluation (Module::train would reset it to the root's).
TEST(FineTuneTest, EachModuleKeepsItsOwnModeThroughFineTuneAndEvaluate) {
  auto session = SmallCnn();
  ASSERT_TRUE(session->Compress({"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).ok());
  auto data = TinyIdx();
  session->module().train();
  session->module().attr("bn1").toModule().eval();
  ASSERT_TRUE(FineTune(*session, {data.get(), data.get()}, Sgd(), 1).ok());
  ASSERT_TRUE(Evaluate(session->module(), *data, Sgd()).ok());
  EXPECT_TRUE(session->module().is_training());
  EXPECT_TRUE(session->module().attr("conv1").toModule().is_training());
  EXPECT_FALSE(session->module().attr("bn1").toModule().is_training());
}

TEST(FineTuneTest, ReducesTheLossAndKeepsPrunedWeightsAtZero) {
  auto session = SmallCnn();
  ASSERT_TRUE(session->Compress({"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", ""}).ok());
  const torch::Tensor pruned = Weight(session->module(), "conv2").eq(0).clone();
  ASSERT_EQ(pruned.sum().item<int64_t>(), 8 * 8 * 3 * 3);
  auto data = TinyIdx();
  int forwards = 0;
  std::vector<int64_t> reported;
  FineTuneCallbacks callbacks;
  callbacks.observer.before_forward = [&](torch::jit::Module& model, const at::Tensor&) {
    ++forwards;
    EXPECT_TRUE(Weight(model, "conv2").masked_select(pruned).eq(0).all().item<bool>()) << forwards;
  };
  callbacks.on_epoch_end = [&](const EpochMetrics& m) {
    reported.push_back(m.epoch);
    return EpochDecision::kContinue;
  };
  session->module().eval();
  auto result = FineTune(*session, {data.get(), data.get()}, Sgd(), 3, callbacks);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(session->module().is_training());  // the mode is restored
  EXPECT_EQ(reported, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(forwards, 3 * 8);
  ASSERT_EQ(result->epochs.size(), 3u);
  EXPECT_EQ(result->epochs[0].train.batches, 8);
  EXPECT_EQ(result->epochs[0].train.examples, 256);
  EXPECT_LT(result->epochs[2].train.mean_loss, result->epochs[0].train.mean_loss);
  ASSERT_TRUE(result->epochs[0].validation.has_value());
  EXPECT_LT(result->epochs[2].validation->mean_loss, result->epochs[0].validation->mean_loss);
  EXPECT_GT(result->epochs[2].validation->accuracy, 0.3);
  EXPECT_TRUE(Weight(session->module(), "conv2").masked_select(pruned).eq(0).all().item<bool>());
  EXPECT_GT(Weight(session->module(), "conv2").ne(0).sum().item<int64_t>(), 0);
}

TEST(FineTuneTest, AdamAlsoLowersTheLoss) {
  auto session = SmallCnn();
  auto data = TinyIdx();
  Recipe adam;
  adam.optimizer = "adam";
  adam.lr = 1e-3;
  auto result = FineTune(*session, {data.get()}, adam, 3);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LT(result->epochs[2].train.mean_loss, result->epochs[0].train.mean_loss);
  EXPECT_FALSE(result->epochs[0].validation.has_value());
}

TEST(FineTuneTest, TheEpochCallbackCanStopTraining) {
  auto session = SmallCnn();
  auto data = testing::RandomImages(16, 1);
  Recipe recipe = Sgd();
  recipe.batch_size = 8;
  FineTuneCallbacks callbacks;
  callbacks.on_epoch_end = [](const EpochMetrics& m) {
    return m.epoch == 1 ? EpochDecision::kStop : EpochDecision::kContinue;
  };
  auto result = FineTune(*session, {data.get()}, recipe, 5, callbacks);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->epochs.size(), 2u);
  EXPECT_TRUE(result->stopped_early);
}

// Evaluate against a count made example by example, with the loss in float64.
TEST(EvaluateTest, MatchesAnIndependentCount) {
  auto session = SmallCnn();
  auto data = TinyIdx();
  torch::jit::Module& model = session->module();
  Recipe recipe;
  recipe.batch_size = 50;  // 256 is not a multiple: the short last batch counts too
  auto evaluation = Evaluate(model, *data, recipe);
  ASSERT_TRUE(evaluation.ok()) << evaluation.status();
  model.eval();
  torch::NoGradGuard no_grad;
  int64_t correct = 0, correct_top5 = 0;
  double loss = 0;
  for (int64_t i = 0; i < data->size(); ++i) {
    const torch::Tensor out =
        model.forward({data->inputs().slice(0, i, i + 1)}).toTensor()[0].to(torch::kDouble);
    const int64_t label = data->labels()[i].item<int64_t>();
    int64_t best = 0;
    double sum = 0;
    for (int64_t c = 0; c < out.size(0); ++c) {
      if (out[c].item<double>() > out[best].item<double>()) best = c;
      sum += std::exp(out[c].item<double>());
    }
    correct += best == label;
    int64_t above = 0;  // outputs larger than the label's: top-5 when fewer than 5
    for (int64_t c = 0; c < out.size(0); ++c)
      above += out[c].item<double>() > out[label].item<double>();
    correct_top5 += above < 5;
    loss += std::log(sum) - out[label].item<double>();
  }
  EXPECT_EQ(evaluation->examples, 256);
  EXPECT_EQ(evaluation->correct, correct);
  EXPECT_EQ(evaluation->correct_top5, correct_top5);
  EXPECT_GT(correct_top5, correct);
  EXPECT_DOUBLE_EQ(evaluation->accuracy, correct / 256.0);
  EXPECT_NEAR(evaluation->mean_loss, loss / 256, 1e-5 * std::max(1.0, loss / 256));
}

TEST(RecipeTest, NllOnLogSoftmaxIsCrossEntropy) {
  torch::manual_seed(2);
  const torch::Tensor logits = torch::randn({6, 10});
  const torch::Tensor labels = torch::randint(0, 10, {6});
  EXPECT_TRUE(torch::allclose(Loss("nll", torch::log_softmax(logits, 1), labels),
                              Loss("cross_entropy", logits, labels)));
}

TEST(RecipeTest, MseIsAgainstOneHotLabels) {
  torch::manual_seed(3);
  const torch::Tensor outputs = torch::randn({4, 3});
  const torch::Tensor labels = torch::tensor({0, 2, 1, 2}, torch::kLong);
  double expected = 0;
  for (int i = 0; i < 4; ++i) {
    for (int c = 0; c < 3; ++c) {
      const double target = labels[i].item<int64_t>() == c ? 1 : 0;
      expected += std::pow(outputs[i][c].item<double>() - target, 2);
    }
  }
  EXPECT_NEAR(Loss("mse", outputs, labels).item<double>(), expected / 12, 1e-6);
}

TEST(RecipeTest, LearningRateSchedules) {
  Recipe r;
  r.lr = 0.1;
  EXPECT_DOUBLE_EQ(LearningRateAt(r, 3, 5), 0.1);
  r.lr_schedule = "step";
  r.step_epochs = 2;
  r.gamma = 0.5;
  const double step[] = {0.1, 0.1, 0.05, 0.05, 0.025};
  for (int e = 0; e < 5; ++e) EXPECT_DOUBLE_EQ(LearningRateAt(r, e, 5), step[e]) << e;
  r.lr_schedule = "cosine";
  r.min_lr = 0.01;
  EXPECT_DOUBLE_EQ(LearningRateAt(r, 0, 5), 0.1);
  EXPECT_NEAR(LearningRateAt(r, 2, 5), 0.055, 1e-12);  // halfway
  EXPECT_DOUBLE_EQ(LearningRateAt(r, 4, 5), 0.01);
  EXPECT_DOUBLE_EQ(LearningRateAt(r, 0, 1), 0.1);  // one epoch: no annealing
}

TEST(RecipeTest, BadRecipesNameTheField) {
  auto message = [](const Recipe& r) { return std::string(ValidateRecipe(r).message()); };
  Recipe r;
  r.optimizer = "rmsprop";
  EXPECT_THAT(message(r), HasSubstr("recipe.optimizer: 'rmsprop' is not known; known: sgd, adam"));
  r = Recipe();
  r.criterion = "hinge";
  EXPECT_THAT(message(r), HasSubstr("known: cross_entropy, nll, mse"));
  r = Recipe();
  r.lr_schedule = "linear";
  EXPECT_THAT(
      message(r),
      HasSubstr("recipe.lr_schedule: 'linear' is not known; known: constant, step, cosine"));
  r = Recipe();
  r.lr_schedule = "step";
  r.step_epochs = 0;
  EXPECT_THAT(message(r), HasSubstr("recipe.step_epochs"));
  r = Recipe();
  r.min_lr = 1;
  EXPECT_THAT(message(r), HasSubstr("recipe.min_lr: 1 is above recipe.lr"));
  r = Recipe();
  r.lr = 0;
  EXPECT_THAT(message(r), HasSubstr("recipe.lr"));
  r = Recipe();
  r.nesterov = true;
  EXPECT_THAT(message(r), HasSubstr("recipe.nesterov: needs momentum"));
  r = Recipe();
  r.optimizer = "adam";
  r.momentum = 0.9;
  EXPECT_THAT(message(r), HasSubstr("sgd only"));
  r = Recipe();
  r.batch_size = 0;
  EXPECT_THAT(message(r), HasSubstr("recipe.batch_size"));
  auto session = SmallCnn();
  auto data = testing::RandomImages(8, 1);
  EXPECT_EQ(FineTune(*session, {data.get()}, r, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FineTune(*session, {}, Recipe(), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Data the model cannot take is the data's error: its shape and the layer that
// rejected it, whether fine-tuning or training for a data-driven pruner.
TEST(FineTuneTest, DataThatDoesNotFitNamesItsShapeAndTheLayer) {
  auto wide =
      Dataset::FromTensors("wide", torch::randn({8, 1, 32, 32}), torch::zeros({8}, torch::kLong))
          .value();
  auto session = SmallCnn();
  auto fine_tuned = FineTune(*session, {wide.get()}, Sgd(), 1);
  EXPECT_EQ(fine_tuned.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fine_tuned.status().message(),
            "wide: images of shape [1, 32, 32] do not fit the model: fc1 (Linear) expects 400 "
            "inputs, got 576");

  auto rgb =
      Dataset::FromTensors("rgb", torch::randn({8, 3, 28, 28}), torch::zeros({8}, torch::kLong))
          .value();
  DatasetTrainingHooks hooks(*rgb, Sgd());
  const absl::Status pruned =
      session->Compress({"taylorfo", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", "", &hooks});
  EXPECT_EQ(pruned.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pruned.message()),
              HasSubstr("rgb: images of shape [3, 28, 28] do not fit the model: conv1 (Conv2d) "
                        "expects 1 input channels, got 3"));

  auto labels = Dataset::FromTensors("labels", torch::randn({8, 1, 28, 28}),
                                     torch::full({8}, 12, torch::kLong))
                    .value();
  auto out_of_range = Evaluate(session->module(), *labels, Recipe());
  EXPECT_EQ(out_of_range.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out_of_range.status().message()),
              HasSubstr("labels: labels do not fit the model's outputs of shape [8, 10]"));
}

TEST(DatasetTrainingHooksTest, DrivesTheDataDrivenPruners) {
  auto data = TinyIdx();
  Recipe recipe = Sgd();
  recipe.max_batches = 4;
  int steps = 0;
  TrainingObserver observer;
  observer.after_optimizer_step = [&](torch::jit::Module&) { ++steps; };
  DatasetTrainingHooks hooks(*data, recipe, observer);
  auto session = SmallCnn();
  ASSERT_TRUE(session
                  ->Compress({"slim", R"([{"sparsity": 0.5, "op_types": ["BatchNorm2d"]}])",
                              R"({"sparsifying_training_epochs": 2})", &hooks})
                  .ok());
  EXPECT_EQ(steps, 2 * 4);
  const nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
  EXPECT_EQ(report["layers"].size(), 2u);
}

}  // namespace
}  // namespace autocompress::training
