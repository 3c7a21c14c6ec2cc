// SearchSpaceGenerator against the verified example of reference §1.3 (NNI 2.5's own
// generator output for the same calls), its round trip through Loads, the quirks we fix,
// and the tuner's parser accepting what Dumps writes.
#include "client/search_space_generator.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tuner_service/search_space/search_space.h"

namespace autocompress {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

Json Uniform() { return Json::parse(R"({"_type": "uniform", "_value": [0.01, 0.99]})"); }

TEST(SearchSpaceGeneratorTest, ReproducesNnisDumpOfTheVerifiedExample) {
  SearchSpaceGenerator generator;
  ASSERT_TRUE(
      generator
          .AddConfig("level", Json::array({{{"sparsity", Uniform()}, {"op_types", {"default"}}}}))
          .ok());
  ASSERT_TRUE(
      generator.AddConfig("l1", Json::array({{{"sparsity", Uniform()}, {"op_types", {"Conv2d"}}}}))
          .ok());
  ASSERT_TRUE(generator
                  .AddConfig("taylorfo",
                             Json::array({{{"sparsity", 0.5},
                                           {"op_types", {"Conv2d"}},
                                           {"op_names", {"conv1", "conv2"}}}}),
                             {{"sparsifying_training_batches",
                               Json::parse(R"({"_type": "choice", "_value": [1, 2]})")}})
                  .ok());
  ASSERT_TRUE(generator
                  .AddConfig("qat", Json::array({{{"quant_types", {"weight", "output"}},
                                                  {"quant_bits", {{"weight", 8}, {"output", 8}}},
                                                  {"op_types", {"Conv2d", "Linear"}}}}))
                  .ok());
  const Json expected = Json::parse(R"({"algorithm_name": {"_type": "choice", "_value": [
    {"_name": "level",
     "config_list::default::::sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}},
    {"_name": "l1",
     "config_list::Conv2d::::sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}},
    {"_name": "taylorfo",
     "config_list::Conv2d::conv1:conv2::sparsity": {"_type": "choice", "_value": [0.5]},
     "parameter::sparsifying_training_batches": {"_type": "choice", "_value": [1, 2]}},
    {"_name": "qat",
     "config_list::weight:output::Conv2d:Linear::::quant_bits": {
         "weight": {"_type": "choice", "_value": [8]},
         "output": {"_type": "choice", "_value": [8]}}}
  ]}})");
  EXPECT_EQ(generator.ToJson(), expected) << generator.Dumps(2);
  EXPECT_EQ(Json::parse(generator.Dumps()), expected);

  // What the tuner parses: 2 uniform + choice of 4 + taylorfo's 2 + qat's 2 dimensions.
  auto space = tuner::SearchSpace::Parse(generator.Dumps());
  ASSERT_TRUE(space.ok()) << space.status();
  EXPECT_EQ((*space)->size(), 7);

  auto loaded = SearchSpaceGenerator::Loads(expected);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->ToJson(), expected);
}

TEST(SearchSpaceGeneratorTest, DoesNotModifyTheCallersConfigAndReusesIt) {
  // NNI popped op_types from the caller's dict, so the second call lost them.
  const Json config = Json::array({{{"sparsity", 0.5}, {"op_types", {"Conv2d"}}}});
  SearchSpaceGenerator generator;
  ASSERT_TRUE(generator.AddConfig("l1", config).ok());
  ASSERT_TRUE(generator.AddConfig("l2", config).ok());
  EXPECT_EQ(config[0]["op_types"], Json({"Conv2d"}));
  EXPECT_TRUE(generator.options()[1].contains("config_list::Conv2d::::sparsity"));
}

TEST(SearchSpaceGeneratorTest, RejectsWhatNniSilentlyMangled) {
  SearchSpaceGenerator generator;
  absl::Status unknown = generator.AddConfig("lvel", Json::array());
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.message(), HasSubstr("unknown algorithm \"lvel\""));

  // Two entries for the same layers setting the same field: NNI kept the later one.
  absl::Status repeated =
      generator.AddConfig("level", Json::array({{{"sparsity", 0.5}, {"op_types", {"default"}}},
                                                {{"sparsity", 0.7}, {"op_types", {"default"}}}}));
  EXPECT_THAT(repeated.message(), HasSubstr("config_list[1].sparsity: an earlier entry"));

  absl::Status searched = generator.AddConfig(
      "l1", Json::array({{{"sparsity", 0.5}, {"op_types", {{{"_type", "choice"}}}}}}));
  EXPECT_THAT(searched.message(), HasSubstr("config_list[0].op_types[0]: expected a string"));

  absl::Status pruner_quant =
      generator.AddConfig("l1", Json::array({{{"sparsity", 0.5}, {"quant_types", {"weight"}}}}));
  EXPECT_THAT(pruner_quant.message(), HasSubstr("config_list[0].quant_types: l1 is a pruner"));

  absl::Status no_field = generator.AddConfig("l1", Json::array({{{"op_types", {"Conv2d"}}}}));
  EXPECT_THAT(no_field.message(), HasSubstr("config_list[0]: has no field"));
  EXPECT_TRUE(generator.options().empty());

  // A plain string is one selector (NNI joined its characters: "C:o:n:v:2:d").
  ASSERT_TRUE(
      generator.AddConfig("l1", Json::array({{{"sparsity", 0.5}, {"op_types", "Conv2d"}}})).ok());
  EXPECT_TRUE(generator.options()[0].contains("config_list::Conv2d::::sparsity"));
}

TEST(SearchSpaceGeneratorTest, WrapsValuesByNnisRule) {
  EXPECT_EQ(WrapSearchValue(8), Json::parse(R"({"_type": "choice", "_value": [8]})"));
  EXPECT_EQ(WrapSearchValue(Uniform()), Uniform());
  EXPECT_EQ(WrapSearchValue(
                Json::parse(R"({"weight": 8, "output": {"_type": "choice", "_value": [4, 8]}})")),
            Json::parse(R"({"weight": {"_type": "choice", "_value": [8]},
                            "output": {"_type": "choice", "_value": [4, 8]}})"));
  EXPECT_EQ(WrapSearchValue(Json::array({1, 2})),
            Json::parse(R"({"_type": "choice", "_value": [[1, 2]]})"));
}

TEST(SearchSpaceGeneratorTest, LoadsRejectsOtherShapes) {
  EXPECT_FALSE(SearchSpaceGenerator::Loads(Json::parse(R"({"lr": 1})")).ok());
  EXPECT_FALSE(SearchSpaceGenerator::Loads(
                   Json::parse(R"({"algorithm_name": {"_type": "choice", "_value": [{"x": 1}]}})"))
                   .ok());
}

}  // namespace
}  // namespace autocompress
