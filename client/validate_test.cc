// `autocompress validate` run as a process on broken experiment files
// (client/testdata/broken): each gives exit code 2 and, on stderr, the problem as
// FILE:LINE:COLUMN: FIELD PATH: MESSAGE, at the place the mistake is in the file. A good
// file (the demo's) is valid.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/testing/runfiles.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using ::testing::HasSubstr;
using testing::RunfilePath;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

Result Validate(const std::string& file) {
  static int runs = 0;
  const std::string out = testing::TempPath(absl::StrCat("out.", runs));
  const std::string err = testing::TempPath(absl::StrCat("err.", runs++));
  auto process =
      testing::Subprocess::Start({"/bin/sh", "-c", "exec \"$0\" validate \"$1\" >\"$2\" 2>\"$3\"",
                                  RunfilePath("client/autocompress"), file, out, err});
  Result result;
  if (!process.ok()) return result;
  auto code = (*process)->Wait(absl::Seconds(60));
  result.code = code.ok() ? *code : -1;
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  result.out = slurp(out);
  result.err = slurp(err);
  return result;
}

struct Case {
  const char* file;
  const char* position;  // "LINE:COLUMN: PATH:"
  const char* message;
};

class BrokenFileTest : public ::testing::TestWithParam<Case> {};

TEST_P(BrokenFileTest, ReportsTheFieldPathAndPosition) {
  const Case& c = GetParam();
  const std::string file = RunfilePath(absl::StrCat("client/testdata/broken/", c.file));
  const Result result = Validate(file);
  EXPECT_EQ(result.code, 2) << result.err;
  EXPECT_THAT(result.err, HasSubstr(absl::StrCat(file, ":", c.position))) << result.err;
  EXPECT_THAT(result.err, HasSubstr(c.message)) << result.err;
  EXPECT_EQ(result.out, "");
}

INSTANTIATE_TEST_SUITE_P(
    Files, BrokenFileTest,
    ::testing::Values(
        Case{"01_unknown_key.yaml", "7:1: trial_concurency:", "did you mean trial_concurrency?"},
        Case{"02_sparsity_range.yaml",
             "5:19: search_space[0].config_list[0].sparsity:", "1.5 is outside (0, 1)"},
        Case{"03_unknown_algorithm.yaml",
             "3:16: search_space[0].algorithm:", "unknown algorithm \"lvel\""},
        Case{"04_wrong_type.yaml", "7:20: trial_concurrency:", "expected an integer, got two"},
        Case{"05_out_of_range.yaml", "7:20: trial_concurrency:", "must be in 1..10000, got 0"},
        Case{"06_missing_model.yaml", "1:1: model:", "required"},
        Case{"07_missing_file.yaml", "8:8: model:", "no_such_model.pt does not exist"},
        Case{"08_bad_duration.yaml", "7:26: max_experiment_duration:", "got 1 hour"},
        Case{"09_bad_constraint.yaml", "8:17: objective.constraints[0]:", "got \"accuracy < 0.9\""},
        Case{"10_unknown_format.yaml", "9:16: data.format:", "unknown format \"csv\""},
        Case{"11_yaml_syntax.yaml", "6:7: ", "not valid YAML or JSON"},
        Case{"12_inverted_range.yaml", "5:44: search_space[0].config_list[0].sparsity._value:",
             "upper bound 0.1 must exceed lower bound 0.9"},
        Case{"13_quant_bits.yaml",
             "6:30: search_space[0].config_list[0].quant_bits.weight:", "33 is outside 1..32"},
        Case{"14_unknown_kwarg.yaml",
             "8:7: search_space[0].kwargs:", "unknown key(s) sparsifying_epochs for level"},
        Case{"15_searched_op_types.yaml", "6:20: search_space[0].config_list[0].op_types[0]:",
             "layer selectors cannot be searched over"},
        Case{"16_tuner_without_name.yaml", "7:8: tuner.name:", "required"},
        Case{"17_training.yaml",
             "10:50: training.optimizer.name:", "unknown optimizer \"adamw\""}));

TEST(ValidateTest, EveryProblemOfAFileAtOnce) {
  const std::string file = RunfilePath("client/testdata/broken/17_training.yaml");
  const Result result = Validate(file);
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr(":9:7: data.train: required by training.finetune_epochs > 0"));
  EXPECT_THAT(result.err, HasSubstr(":10:50: training.optimizer.name:"));
  EXPECT_THAT(result.err, HasSubstr("2 problems"));
}

TEST(ValidateTest, TheDemoFilesAreValid) {
  // Beside a stand-in for the model `./dev demo` trains (its data is Debian's).
  const std::string dir = testing::TempPath("demo");
  std::filesystem::create_directories(dir);
  for (const char* name : {"experiment.yaml", "smallest.yaml"}) {
    std::filesystem::copy_file(RunfilePath(std::string("examples/fashion_mnist/") + name),
                               dir + "/" + name);
  }
  std::ofstream(dir + "/lenet5_fashion.pt") << "model";
  const Result demo = Validate(dir + "/experiment.yaml");
  EXPECT_EQ(demo.code, 0) << demo.err;
  EXPECT_THAT(demo.out, HasSubstr("valid (fashion-mnist auto compression"));
  const Result smallest = Validate(dir + "/smallest.yaml");
  EXPECT_EQ(smallest.code, 0) << smallest.err;
  EXPECT_THAT(smallest.out, HasSubstr("valid (fashion-mnist smallest model"));
}

TEST(ValidateTest, AMissingFileIsBadInput) {
  const Result result = Validate("/nonexistent/experiment.yaml");
  EXPECT_EQ(result.code, 2);
  EXPECT_THAT(result.err, HasSubstr("/nonexistent/experiment.yaml: cannot be read"));
}

}  // namespace
}  // namespace autocompress
