#include "tuner_service/search_space/search_space.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress::tuner {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::ordered_json;

constexpr int kSamples = 10000;

std::shared_ptr<const SearchSpace> MustParse(const std::string& text) {
  auto space = SearchSpace::Parse(text);
  EXPECT_TRUE(space.ok()) << space.status();
  return space.ok() ? *space : nullptr;
}

std::vector<double> Draw(const std::string& spec, uint64_t seed = 42) {
  auto space = MustParse(absl::StrCat(R"({"x": )", spec, "}"));
  std::mt19937_64 gen(seed);
  std::vector<double> values;
  for (int i = 0; i < kSamples; ++i) values.push_back(space->SamplePrior(gen)[0]);
  return values;
}

double Phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// Kolmogorov-Smirnov statistic of `values` against `cdf`.
double KsStatistic(std::vector<double> values, const std::function<double(double)>& cdf) {
  std::sort(values.begin(), values.end());
  const double n = values.size();
  double d = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double f = cdf(values[i]);
    d = std::max({d, (i + 1) / n - f, f - i / n});
  }
  return d;
}

// KS critical value at alpha = 0.001.
double KsCritical() { return 1.95 / std::sqrt(static_cast<double>(kSamples)); }

// Chi-square statistic; bins with expected count < 5 are rejected by the caller's design.
double ChiSquare(const std::map<double, int>& counts, const std::map<double, double>& probs) {
  double chi = 0;
  int seen = 0;
  for (const auto& [value, p] : probs) {
    auto it = counts.find(value);
    const double observed = it == counts.end() ? 0 : it->second;
    seen += static_cast<int>(observed);
    const double expected = p * kSamples;
    chi += (observed - expected) * (observed - expected) / expected;
  }
  EXPECT_EQ(seen, kSamples) << "values outside the expected support";
  return chi;
}

// Chi-square critical values at alpha = 0.001 by degrees of freedom.
double ChiCritical(int df) {
  static const double kTable[] = {0,     10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32,
                                  26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12};
  return kTable[df];
}

std::map<double, int> Counts(const std::vector<double>& values) {
  std::map<double, int> counts;
  for (double v : values) ++counts[v];
  return counts;
}

bool OnGrid(double v, double q) { return std::fabs(v / q - std::nearbyint(v / q)) < 1e-9; }

TEST(SearchSpaceSamplingTest, ChoiceIsUniformOverOptions) {
  auto values = Draw(R"({"_type": "choice", "_value": ["a", 2, [1, 2], {"w": 8}]})");
  std::map<double, double> probs = {{0, .25}, {1, .25}, {2, .25}, {3, .25}};
  EXPECT_LT(ChiSquare(Counts(values), probs), ChiCritical(3));
}

TEST(SearchSpaceSamplingTest, RandintIsUniformWithExclusiveUpperBound) {
  auto values = Draw(R"({"_type": "randint", "_value": [3, 8]})");
  std::map<double, double> probs;
  for (int v = 3; v < 8; ++v) probs[v] = 0.2;
  EXPECT_LT(ChiSquare(Counts(values), probs), ChiCritical(4));
}

TEST(SearchSpaceSamplingTest, UniformStaysInBoundsAndFitsItsCdf) {
  auto values = Draw(R"({"_type": "uniform", "_value": [-2, 5]})");
  for (double v : values) ASSERT_TRUE(v >= -2 && v <= 5) << v;
  EXPECT_LT(KsStatistic(values, [](double x) { return (x + 2) / 7; }), KsCritical());
}

TEST(SearchSpaceSamplingTest, QuniformLandsOnClippedGridWithNniProbabilities) {
  // Reference §4.1: [1, 9, 4] gives {1, 4, 8}; 0 is clipped up to 1.
  auto values = Draw(R"({"_type": "quniform", "_value": [1, 9, 4]})");
  std::map<double, double> probs = {{1, 1.0 / 8}, {4, 4.0 / 8}, {8, 3.0 / 8}};
  EXPECT_LT(ChiSquare(Counts(values), probs), ChiCritical(2));
}

TEST(SearchSpaceSamplingTest, LoguniformFitsItsCdf) {
  auto values = Draw(R"({"_type": "loguniform", "_value": [0.001, 10]})");
  for (double v : values) ASSERT_TRUE(v >= 0.001 && v <= 10) << v;
  const double a = std::log(0.001), b = std::log(10.0);
  EXPECT_LT(KsStatistic(values, [&](double x) { return (std::log(x) - a) / (b - a); }),
            KsCritical());
}

TEST(SearchSpaceSamplingTest, QloguniformLandsOnClippedGridWithLogProbabilities) {
  auto values = Draw(R"({"_type": "qloguniform", "_value": [1, 100, 10]})");
  std::map<double, double> probs;
  const double span = std::log(100.0);
  for (int k = 0; k <= 10; ++k) {
    const double lo = std::max(1.0, (k - 0.5) * 10), hi = std::min(100.0, (k + 0.5) * 10);
    probs[std::clamp(k * 10.0, 1.0, 100.0)] += (std::log(hi) - std::log(lo)) / span;
  }
  for (double v : values) ASSERT_TRUE(v >= 1 && v <= 100 && (v == 1 || OnGrid(v, 10))) << v;
  EXPECT_LT(ChiSquare(Counts(values), probs), ChiCritical(static_cast<int>(probs.size()) - 1));
}

TEST(SearchSpaceSamplingTest, NormalFitsItsCdf) {
  auto values = Draw(R"({"_type": "normal", "_value": [3, 2]})");
  EXPECT_LT(KsStatistic(values, [](double x) { return Phi((x - 3) / 2); }), KsCritical());
}

TEST(SearchSpaceSamplingTest, QnormalLandsOnUnclippedGrid) {
  auto values = Draw(R"({"_type": "qnormal", "_value": [0, 1, 0.5]})");
  std::map<double, int> counts;
  for (double v : values) {
    ASSERT_TRUE(OnGrid(v, 0.5)) << v;
    counts[std::clamp(v, -2.0, 2.0)]++;  // tails merged into the end bins
  }
  std::map<double, double> probs;
  for (int k = -4; k <= 4; ++k) {
    const double lo = k == -4 ? -INFINITY : (k - 0.5) * 0.5;
    const double hi = k == 4 ? INFINITY : (k + 0.5) * 0.5;
    probs[k * 0.5] = Phi(hi) - Phi(lo);
  }
  EXPECT_LT(ChiSquare(counts, probs), ChiCritical(8));
}

TEST(SearchSpaceSamplingTest, LognormalFitsItsCdf) {
  auto values = Draw(R"({"_type": "lognormal", "_value": [0, 0.5]})");
  for (double v : values) ASSERT_GT(v, 0);
  EXPECT_LT(KsStatistic(values, [](double x) { return Phi(std::log(x) / 0.5); }), KsCritical());
}

TEST(SearchSpaceSamplingTest, QlognormalRoundsWithoutClipAndCanBeZero) {
  auto values = Draw(R"({"_type": "qlognormal", "_value": [0, 0.5, 1]})");
  std::map<double, int> counts;
  for (double v : values) {
    ASSERT_TRUE(OnGrid(v, 1)) << v;
    counts[std::min(v, 3.0)]++;
  }
  auto cdf = [](double x) { return x <= 0 ? 0.0 : Phi(std::log(x) / 0.5); };
  std::map<double, double> probs = {
      {0, cdf(0.5)}, {1, cdf(1.5) - cdf(0.5)}, {2, cdf(2.5) - cdf(1.5)}, {3, 1 - cdf(2.5)}};
  EXPECT_GT(counts[0], 0);
  EXPECT_LT(ChiSquare(counts, probs), ChiCritical(3));
}

TEST(SearchSpaceSamplingTest, QRoundIsHalfToEvenLikeNumpy) {
  EXPECT_EQ(QRound(0.5, 1), 0);
  EXPECT_EQ(QRound(1.5, 1), 2);
  EXPECT_EQ(QRound(2.5, 1), 2);
  EXPECT_EQ(QRound(-0.5, 1), 0);
  EXPECT_DOUBLE_EQ(QRound(0.7, 0.1), 0.7000000000000001);
}

// The generator's output from reference §1.3, verbatim.
constexpr char kGeneratorSpace[] = R"({"algorithm_name": {"_type": "choice", "_value": [
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
]}})";

TEST(SearchSpaceTest, GeneratorOutputParsesIntoConditionalDimensions) {
  auto space = MustParse(kGeneratorSpace);
  ASSERT_NE(space, nullptr);
  // 1 top choice + 1 + 1 + 2 + 2 leaves.
  ASSERT_EQ(space->size(), 7);
  const Dimension& top = space->dimensions()[0];
  EXPECT_EQ(top.type, ParamType::kChoice);
  EXPECT_EQ(top.num_categories, 4);
  EXPECT_EQ(space->Children(0, 2).size(), 2u);
  const Dimension& bits = space->dimensions()[6];
  EXPECT_EQ(bits.parent, 0);
  EXPECT_EQ(bits.parent_option, 3);
  EXPECT_EQ(bits.label,
            "algorithm_name/qat/config_list::weight:output::Conv2d:Linear::::quant_bits/output");
  EXPECT_EQ(bits.json_path,
            "algorithm_name._value[3].config_list::weight:output::Conv2d:Linear::::quant_bits."
            "output");
}

TEST(SearchSpaceTest, NestedSamplesCarryOnlyTheChosenBranch) {
  auto space = MustParse(kGeneratorSpace);
  std::mt19937_64 gen(7);
  std::map<std::string, int> seen;
  for (int i = 0; i < 2000; ++i) {
    Assignment x = space->SamplePrior(gen);
    Json params = Json::parse(space->Render(x));
    ASSERT_EQ(params.size(), 1u);
    const Json& branch = params["algorithm_name"];
    const std::string name = branch["_name"];
    ++seen[name];
    for (int d = 0; d < space->size(); ++d) {
      EXPECT_EQ(space->IsActive(x, d), !std::isnan(x[d])) << d;
    }
    if (name == "level") {
      EXPECT_EQ(branch.size(), 2u);
      double s = branch["config_list::default::::sparsity"];
      EXPECT_TRUE(s >= 0.01 && s <= 0.99);
    } else if (name == "l1") {
      EXPECT_EQ(branch.size(), 2u);
      EXPECT_TRUE(branch.contains("config_list::Conv2d::::sparsity"));
    } else if (name == "taylorfo") {
      EXPECT_EQ(branch.size(), 3u);
      EXPECT_EQ(branch["config_list::Conv2d::conv1:conv2::sparsity"], 0.5);
      int batches = branch["parameter::sparsifying_training_batches"];
      EXPECT_TRUE(batches == 1 || batches == 2);
    } else {
      ASSERT_EQ(name, "qat");
      EXPECT_EQ(branch["config_list::weight:output::Conv2d:Linear::::quant_bits"],
                Json::parse(R"({"weight": 8, "output": 8})"));
    }
  }
  EXPECT_EQ(seen.size(), 4u);
}

TEST(SearchSpaceTest, LiteralOptionsComeBackAsTheyWere) {
  auto space = MustParse(
      R"({"opt": {"_type": "choice", "_value": [[1, 2], {"weight": 8}, null, "s", 0.5]}})");
  std::mt19937_64 gen(1);
  std::set<std::string> rendered;
  for (int i = 0; i < 200; ++i) rendered.insert(space->Render(space->SamplePrior(gen)));
  EXPECT_EQ(rendered,
            (std::set<std::string>{R"({"opt":[1,2]})", R"({"opt":{"weight":8}})", R"({"opt":null})",
                                   R"({"opt":"s"})", R"({"opt":0.5})"}));
}

TEST(SearchSpaceTest, DecodeInvertsRender) {
  auto space = MustParse(kGeneratorSpace);
  std::mt19937_64 gen(3);
  for (int i = 0; i < 200; ++i) {
    Assignment x = space->SamplePrior(gen);
    auto decoded = space->Decode(space->Render(x));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    for (int d = 0; d < space->size(); ++d) {
      EXPECT_TRUE((std::isnan(x[d]) && std::isnan((*decoded)[d])) || x[d] == (*decoded)[d]);
    }
  }
  EXPECT_FALSE(space->Decode(R"({"algorithm_name": {"_name": "nope"}})").ok());
  EXPECT_FALSE(
      space->Decode(R"({"algorithm_name": {"_name": "l1", "config_list::Conv2d::::sparsity": 7}})")
          .ok());
  EXPECT_FALSE(space->Decode("[").ok());
}

TEST(SearchSpaceTest, RepairResamplesANewBranchAndClearsTheOld) {
  auto space = MustParse(kGeneratorSpace);
  std::mt19937_64 gen(5);
  Assignment x = space->SamplePrior(gen);
  const int old_option = static_cast<int>(x[0]);
  x[0] = (old_option + 1) % 4;
  space->Repair(x, gen);
  for (int d = 1; d < space->size(); ++d) {
    EXPECT_EQ(!std::isnan(x[d]), space->dimensions()[d].parent_option == x[0]) << d;
  }
}

TEST(SearchSpaceTest, ConstantObjectsInsideOptionsStayAllowed) {
  // NNI passes constant options through; dict-valued ones such as quant_bits too.
  auto space = MustParse(R"({"q": {"_type": "choice", "_value": [
      {"weight": 8, "output": 8}, {"bits": [4, {"mode": "sym"}]}]}})");
  std::mt19937_64 gen(2);
  std::set<std::string> rendered;
  for (int i = 0; i < 100; ++i) rendered.insert(space->Render(space->SamplePrior(gen)));
  EXPECT_EQ(rendered, (std::set<std::string>{R"({"q":{"weight":8,"output":8}})",
                                             R"({"q":{"bits":[4,{"mode":"sym"}]}})"}));
}

struct BadCase {
  std::string text;
  std::string path;
  std::string message;
};

class SearchSpaceValidationTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(SearchSpaceValidationTest, ReportsThePathAndTheProblem) {
  std::vector<ValidationIssue> issues;
  auto space = SearchSpace::Parse(GetParam().text, {}, &issues);
  ASSERT_FALSE(space.ok());
  EXPECT_EQ(space.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_FALSE(issues.empty());
  EXPECT_EQ(issues[0].path, GetParam().path);
  EXPECT_THAT(issues[0].message, HasSubstr(GetParam().message));
  EXPECT_THAT(std::string(space.status().message()), HasSubstr(GetParam().path));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SearchSpaceValidationTest,
    ::testing::Values(
        BadCase{R"({"lr": {"_type": "uniform", "_value": [0.5, 0.1]}})", "lr._value",
                "must exceed lower bound"},
        BadCase{R"({"lr": {"_type": "uniform", "_value": [0.1]}})", "lr._value", "needs 2 numbers"},
        BadCase{R"({"lr": {"_type": "quniform", "_value": [0, 1, 0]}})", "lr._value[2]",
                "q must be positive"},
        BadCase{R"({"lr": {"_type": "loguniform", "_value": [0, 1]}})", "lr._value[0]",
                "positive lower bound"},
        BadCase{R"({"lr": {"_type": "normal", "_value": [0, -1]}})", "lr._value[1]",
                "sigma must be positive"},
        BadCase{R"({"n": {"_type": "randint", "_value": [1.5, 4]}})", "n._value[0]",
                "must be integers"},
        BadCase{R"({"n": {"_type": "randint", "_value": [4, 4]}})", "n._value", "exclusive"},
        BadCase{R"({"x": {"_type": "uniformm", "_value": [0, 1]}})", "x._type",
                "unknown type 'uniformm'"},
        BadCase{R"({"x": {"_type": "choice", "_value": []}})", "x._value", "at least one option"},
        BadCase{R"({"x": {"_type": "choice", "_value": 3}})", "x._value", "must be a list"},
        BadCase{R"({"x": {"_type": "uniform", "_value": ["a", 1]}})", "x._value[0]",
                "finite number"},
        BadCase{R"({"x": {"_type": "uniform"}})", "x", "missing _value"},
        BadCase{R"({"x": {"_type": "uniform", "_value": [0, 1], "_valeu": 1}})", "x._valeu",
                "unexpected key"},
        BadCase{R"({"x": 3})", "x", "expected an object with _type and _value"},
        BadCase{R"({"level": {"_type": "choice", "_value": [{"_name": "a", "sparsity":
                   {"_type": "uniform", "_value": [0.9, 0.1]}}]}})",
                "level._value[0].sparsity._value", "must exceed lower bound"},
        BadCase{R"({"a": {"_type": "choice", "_value": [{"_name": "x"}, {"_name": "x"}]}})",
                "a._value[1]._name", "duplicate option name"},
        BadCase{"[1, 2]", "", "must be a JSON object"}, BadCase{"{\"x\": ", "", "not valid JSON"},
        // Parameters inside an option without _name would reach the trial unsampled.
        BadCase{R"({"algorithm_name": {"_type": "choice", "_value": [{"_name": "l1"},
                   {"sparsity": {"_type": "uniform", "_value": [0.1, 0.9]}}]}})",
                "algorithm_name._value[1]",
                "(algorithm_name._value[1].sparsity has _type) must be a nested search space "
                "with a _name"},
        BadCase{R"({"q": {"_type": "choice", "_value": [{"bits": [8, {"_type": "choice",
                   "_value": [4, 8]}]}]}})",
                "q._value[0]", "q._value[0].bits[1] has _type"},
        BadCase{"{}", "", "defines no parameters"},
        BadCase{R"({"group": {}})", "", "no parameters"}));

TEST(SearchSpaceValidationTest, ReportsEveryIssueNotJustTheFirst) {
  std::vector<ValidationIssue> issues;
  auto space = SearchSpace::Parse(R"({"a": {"_type": "uniform", "_value": [2, 1]},
                                      "b": {"_type": "bogus", "_value": [0, 1]},
                                      "c": {"_type": "choice", "_value": [{"_name": "n",
                                            "d": {"_type": "loguniform", "_value": [-1, 1]}}]}})",
                                  {}, &issues);
  ASSERT_FALSE(space.ok());
  ASSERT_EQ(issues.size(), 3u);
  EXPECT_EQ(issues[0].path, "a._value");
  EXPECT_EQ(issues[1].path, "b._type");
  EXPECT_EQ(issues[2].path, "c._value[0].d._value[0]");
}

TEST(SearchSpaceLimitsTest, HostileInputIsRejectedClearly) {
  SearchSpaceLimits limits;
  limits.max_text_bytes = 100;
  auto big = SearchSpace::Parse(std::string(200, ' ') + "{}", limits);
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("the limit is 100"));

  std::string deep = "1";
  for (int i = 0; i < 5000; ++i) deep = "[" + deep + "]";
  auto too_deep = SearchSpace::Parse(absl::StrCat(R"({"x": )", deep, "}"));
  EXPECT_THAT(std::string(too_deep.status().message()), HasSubstr("depth"));

  std::string nested = R"({"_type": "uniform", "_value": [0, 1]})";
  for (int i = 0; i < 20; ++i) {
    nested = absl::StrCat(R"({"_type": "choice", "_value": [{"_name": "n", "p": )", nested, "}]}");
  }
  auto too_nested = SearchSpace::Parse(absl::StrCat(R"({"x": )", nested, "}"));
  EXPECT_FALSE(too_nested.ok());

  SearchSpaceLimits few;
  few.max_options = 3;
  auto many = SearchSpace::Parse(R"({"x": {"_type": "choice", "_value": [1, 2, 3, 4]}})", few);
  EXPECT_THAT(std::string(many.status().message()), HasSubstr("exceed the limit of 3"));

  few.max_dimensions = 2;
  auto dims = SearchSpace::Parse(R"({"a": {"_type": "uniform", "_value": [0, 1]},
      "b": {"_type": "uniform", "_value": [0, 1]}, "c": {"_type": "uniform", "_value": [0, 1]}})",
                                 few);
  EXPECT_THAT(std::string(dims.status().message()), HasSubstr("more than 2 parameters"));
}

// Found by //tests/fuzz:search_space_fuzzer: nlohmann throws out_of_range (not a
// parse_error) for a number beyond double, which used to escape Parse and Decode.
TEST(SearchSpaceParseTest, ANumberBeyondDoubleIsInvalidArgumentNotAThrow) {
  const auto space = SearchSpace::Parse(R"({"x": {"_type": "uniform", "_value": [0, 1e999]}})");
  EXPECT_EQ(space.status().code(), absl::StatusCode::kInvalidArgument);
  const auto good = MustParse(R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
  EXPECT_EQ(good->Decode(R"({"x": 1e999})").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace autocompress::tuner
