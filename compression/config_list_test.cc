#include "compression/config_list.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::compression {
namespace {

using ::testing::HasSubstr;

std::vector<LayerInfo> Layers() {
  return {{"conv1", "Conv2d", {8, 1, 3, 3}, true},
          {"bn1", "BatchNorm2d", {8}, true},
          {"conv2", "Conv2d", {16, 8, 3, 3}, true},
          {"bn2", "BatchNorm2d", {16}, true},
          {"fc1", "Linear", {32, 400}, true},
          {"fc2", "Linear", {10, 32}, true},
          {"act", "ReLU", {}, false}};
}

std::vector<std::string> Names(const std::vector<LayerAssignment>& a) {
  std::vector<std::string> names;
  for (const auto& x : a) names.push_back(Layers()[x.layer].name);
  return names;
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ConfigListTest, DefaultExpandsToWeightedTypesAndLastMatchWins) {
  auto configs = ParseConfigList("level", R"([{"sparsity": 0.5, "op_types": ["default"]},
      {"sparsity": 0.9, "op_names": ["fc2"]}, {"exclude": true, "op_names": ["conv2"]}])");
  ASSERT_TRUE(configs.ok()) << configs.status();
  auto matched = MatchLayers("level", *configs, Layers());
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(Names(*matched), (std::vector<std::string>{"conv1", "fc1", "fc2"}));
  EXPECT_EQ(*(*matched)[2].config.sparsity, 0.9);
  EXPECT_EQ(*(*matched)[0].config.sparsity, 0.5);
}

TEST(ConfigListTest, ExcludeKeyExcludesWhateverItsValue) {
  auto configs = ParseConfigList("l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]},
      {"exclude": false, "op_names": ["conv1"]}])");
  auto matched = MatchLayers("l1", *configs, Layers());
  EXPECT_EQ(Names(*matched), (std::vector<std::string>{"conv2"}));
}

TEST(ConfigListTest, QuantizerBitsPerTypeAndEmptySegmentsAreAbsent) {
  // What the decoder of an encoded key with an empty op_names segment produces.
  auto configs = ParseConfigList("qat", R"([{"quant_types": ["weight", "output"],
      "quant_bits": {"weight": 8, "output": 4}, "op_types": ["Conv2d", "Linear"],
      "op_names": [""]}])");
  ASSERT_TRUE(configs.ok()) << configs.status();
  EXPECT_EQ((*configs)[0].quant_bits.at("output"), 4);
  auto matched = MatchLayers("qat", *configs, Layers());
  ASSERT_TRUE(matched.ok()) << matched.status();
  EXPECT_EQ(matched->size(), 4u);
  auto one_int = ParseConfigList("dorefa", R"([{"quant_types": ["weight"], "quant_bits": 3,
      "op_types": ["default"]}])");
  EXPECT_EQ((*one_int)[0].quant_bits.at("weight"), 3);
}

struct BadCase {
  std::string algorithm;
  std::string config;
  std::string message;
};

class ConfigListErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigListErrorTest, SaysWhatAndWhere) {
  auto configs = ParseConfigList(GetParam().algorithm, GetParam().config);
  absl::Status status = configs.status();
  if (configs.ok()) status = MatchLayers(GetParam().algorithm, *configs, Layers()).status();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(status), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigListErrorTest,
    ::testing::Values(
        BadCase{"level", R"([{"sparsity": 1.5, "op_types": ["default"]}])",
                "config_list[0].sparsity: 1.5 is outside (0, 1)"},
        BadCase{"level", R"([{"sparsity": 0, "op_types": ["default"]}])", "is outside (0, 1)"},
        BadCase{"level", R"([{"sparsity": 1, "op_types": ["default"]}])", "is outside (0, 1)"},
        BadCase{"l1", R"([{"sparsity": 0.5}])", "config_list[0]: needs op_types or op_names"},
        BadCase{"l1", R"([{"op_types": ["Conv2d"]}])", "needs sparsity"},
        BadCase{"l1", R"([{"sparsity": 0.5, "op_names": ["conv9"]}])",
                "no layer named 'conv9'; the model's layers are: conv1 (Conv2d [8, 1, 3, 3])"},
        BadCase{"l1", R"([{"sparsity": 0.5, "op_types": ["Linear"]}])",
                "selects fc1 (Linear) which is not a Conv2d"},
        BadCase{"slim", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])", "is not a BatchNorm2d"},
        BadCase{"level", R"([{"sparsity": 0.5, "op_types": ["LSTM"]}])",
                "config_list[0]: applies to no layer"},
        BadCase{"level", R"([{"sparsity": 0.5, "op_names": ["act"]}])", "has no weight tensor"},
        BadCase{"qat", R"([{"quant_types": ["weight"], "quant_bits": 33, "op_types": ["Conv2d"]}])",
                "config_list[0].quant_bits: 33 is outside 1..32"},
        BadCase{"qat", R"([{"quant_types": ["weight"], "quant_bits": 0, "op_types": ["Conv2d"]}])",
                "is outside 1..32"},
        BadCase{"qat", R"([{"quant_types": ["weight", "output"], "quant_bits": {"weight": 8},
                 "op_types": ["Conv2d"]}])",
                "has no entry for quant type 'output'"},
        BadCase{"qat", R"([{"quant_types": ["bias"], "quant_bits": 8, "op_types": ["Conv2d"]}])",
                "'bias' is not one of weight, input, output"},
        BadCase{"l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"], "sparsty": 1}])",
                "config_list[0].sparsty: unknown key for l1"},
        BadCase{"l1", "{}", "must be a non-empty JSON list"}, BadCase{"l1", "[", "not valid JSON"},
        BadCase{"prune_all", "[]", "unknown compression algorithm 'prune_all'"}));

TEST(ConfigListTest, AnExplicitEmptyListMatchesNothing) {
  // NNI: op_types present ⇒ the class must be in it; an empty list matches no layer.
  auto configs = ParseConfigList("l1", R"([{"sparsity": 0.5, "op_types": ["Conv2d"]},
      {"sparsity": 0.9, "op_types": [], "op_names": ["conv1"]}])");
  ASSERT_TRUE(configs.ok()) << configs.status();
  auto matched = MatchLayers("l1", *configs, Layers());
  EXPECT_EQ(matched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(matched.status()), HasSubstr("config_list[1]: applies to no layer"));
}

TEST(ConfigListTest, QatAcceptsOnlyItsLayerTypes) {
  EXPECT_THAT(Message(ParseConfigList("qat", R"([{"quant_types": ["weight"], "quant_bits": 8,
      "op_types": ["BatchNorm2d"]}])")
                          .status()),
              HasSubstr("qat quantizes Conv2d, Linear, ReLU and ReLU6 layers, not 'BatchNorm2d'"));
}

TEST(ConfigListTest, FamiliesAndNames) {
  EXPECT_EQ(AlgorithmNames().size(), 12u);
  EXPECT_EQ(*FamilyOf("fpgm"), AlgorithmFamily::kFilter);
  EXPECT_EQ(*FamilyOf("bnn"), AlgorithmFamily::kQuantizer);
  EXPECT_FALSE(FamilyOf("x").ok());
}

// Found by //tests/fuzz:config_list_fuzzer (nlohmann's out_of_range escaped the parse).
TEST(ConfigListTest, ANumberBeyondDoubleIsInvalidArgumentNotAThrow) {
  const auto configs =
      ParseConfigList("level", R"([{"sparsity": 1e999, "op_types": ["default"]}])");
  EXPECT_EQ(configs.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace autocompress::compression
