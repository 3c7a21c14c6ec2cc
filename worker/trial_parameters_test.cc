#include "worker/trial_parameters.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

absl::StatusOr<DecodedParameters> Decode(const std::string& json) {
  v1::TrainingRecipe recipe;
  return DecodeTrialParameters(json, recipe);
}

TEST(TrialParametersTest, PrunerBranchDecodesAsReferenceSays) {
  // Reference §1.5's decoded example for the l1 branch.
  auto decoded = Decode(R"({"algorithm_name": {"_name": "l1",
                            "config_list::Conv2d::::sparsity": 0.4231}})");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->algorithm, "l1");
  EXPECT_EQ(Json::parse(decoded->config_list_json),
            Json::parse(R"([{"op_types": ["Conv2d"], "sparsity": 0.4231}])"));
  EXPECT_EQ(decoded->kwargs_json, "{}");
}

TEST(TrialParametersTest, GroupsKeepFirstSeenOrderAndNames) {
  auto decoded = Decode(R"({"algorithm_name": {"_name": "taylorfo",
      "config_list::Conv2d::conv1:conv2::sparsity": 0.5,
      "config_list::Conv2d::::sparsity": 0.2,
      "config_list::Conv2d::conv1:conv2::exclude": false,
      "parameter::sparsifying_training_batches": 2}})");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(Json::parse(decoded->config_list_json), Json::parse(R"([
      {"op_types": ["Conv2d"], "op_names": ["conv1", "conv2"], "sparsity": 0.5, "exclude": false},
      {"op_types": ["Conv2d"], "sparsity": 0.2}])"));
  EXPECT_EQ(Json::parse(decoded->kwargs_json),
            Json::parse(R"({"sparsifying_training_batches": 2})"));
}

TEST(TrialParametersTest, QuantizerEmptySegmentIsAbsentNotEmptyName) {
  // NNI decoded the empty op_names segment to [""] and so quantized nothing.
  auto decoded = Decode(R"({"algorithm_name": {"_name": "qat",
      "config_list::weight:output::Conv2d:Linear::::quant_bits": {"weight": 8, "output": 8}}})");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(Json::parse(decoded->config_list_json), Json::parse(R"([
      {"quant_types": ["weight", "output"], "op_types": ["Conv2d", "Linear"],
       "quant_bits": {"weight": 8, "output": 8}}])"));
}

TEST(TrialParametersTest, GroupWithoutLayerSelectionIsDropped) {
  auto decoded = Decode(R"({"algorithm_name": {"_name": "level",
      "config_list::::::sparsity": 0.3, "config_list::default::::sparsity": 0.5}})");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(Json::parse(decoded->config_list_json),
            Json::parse(R"([{"op_types": ["default"], "sparsity": 0.5}])"));
}

TEST(TrialParametersTest, TopLevelKnobsOverrideRecipeOrBecomeKwargs) {
  v1::TrainingRecipe recipe;
  recipe.mutable_optimizer()->set_learning_rate(0.1);
  recipe.set_finetune_epochs(5);
  auto decoded = DecodeTrialParameters(
      R"({"algorithm_name": {"_name": "slim", "config_list::BatchNorm2d::::sparsity": 0.5},
          "learning_rate": 0.003, "finetune_epochs": 2.0, "sparsifying_training_epochs": 3,
          "optimizer": "adam"})",
      recipe);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_DOUBLE_EQ(recipe.optimizer().learning_rate(), 0.003);
  EXPECT_EQ(recipe.finetune_epochs(), 2);
  EXPECT_EQ(recipe.optimizer().name(), "adam");
  EXPECT_THAT(decoded->recipe_overrides,
              ElementsAre("learning_rate", "finetune_epochs", "optimizer"));
  EXPECT_EQ(Json::parse(decoded->kwargs_json),
            Json::parse(R"({"sparsifying_training_epochs": 3})"));
}

TEST(TrialParametersTest, NoCompressorChoiceMeansNoCompression) {
  v1::TrainingRecipe recipe;
  auto decoded = DecodeTrialParameters(R"({"momentum": 0.9})", recipe);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->algorithm, "");
  EXPECT_DOUBLE_EQ(recipe.optimizer().momentum(), 0.9);
}

TEST(TrialParametersTest, ErrorsNameTheMember) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {"[1]", "parameters: not a JSON object"},
      {R"({"algorithm_name": {"_name": "zip"}})", "parameters.algorithm_name._name"},
      {R"({"algorithm_name": {"sparsity": 1}})", "an object with a string _name"},
      {R"({"algorithm_name": {"_name": "l1", "config_list::Conv2d::sparsity": 0.5}})",
       "parameters.algorithm_name.config_list::Conv2d::sparsity: expected "
       "config_list::<op_types>::<op_names>::<field>"},
      {R"({"algorithm_name": {"_name": "qat", "config_list::Conv2d::::quant_bits": 8}})",
       "<quant_types>"},
      {R"({"algorithm_name": {"_name": "l1", "sparsity": 0.5}})",
       "parameters.algorithm_name.sparsity: expected _name"},
      {R"({"lr": 0.1})", "parameters.lr: neither a kwarg"},
      {R"({"learning_rate": -1})", "parameters.learning_rate: -1 must be > 0"},
      {R"({"finetune_epochs": 1.5})", "parameters.finetune_epochs: expected an integer"},
      {R"({"momentum": 1.0})", "must be < 1"},
      {R"({"algorithm_name": {"_name": "slim", "parameter::sparsifying_training_epochs": 2},
           "sparsifying_training_epochs": 3})",
       "also searched as algorithm_name.parameter::sparsifying_training_epochs"},
  };
  for (const Case& c : cases) {
    auto decoded = Decode(c.json);
    ASSERT_FALSE(decoded.ok()) << c.json;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(c.message)) << c.json;
  }
}

}  // namespace
}  // namespace autocompress::worker
