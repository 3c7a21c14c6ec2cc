// Experiment files read into specs: the add_config list form encoded as NNI's flattened
// keys, the same file as JSON, NNI's dumped form taken verbatim, search_space_file,
// defaults, NNI's tuner.class_args.optimize_mode, constraints, durations and sizes, paths
// resolved against the file's folder.
#include "client/experiment_file.h"

#include <filesystem>
#include <fstream>

#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

class ExperimentFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempPath("experiment-file");
    std::filesystem::create_directories(dir_ + "/data");
    for (const char* f : {"/model.pt", "/data/train-images-idx3-ubyte.gz",
                          "/data/train-labels-idx1-ubyte.gz", "/data/t10k-images-idx3-ubyte"}) {
      std::ofstream(dir_ + f) << "x";
    }
  }
  ExperimentFile Parse(const std::string& text) {
    problems_.clear();
    return ParseExperimentText(text, "test.yaml", dir_, problems_);
  }
  std::string Problems() const {
    std::string out;
    for (const auto& p : problems_) out += FormatProblem("test.yaml", p) + "\n";
    return out;
  }
  std::string dir_;
  std::vector<FileProblem> problems_;
};

constexpr char kSeedLike[] = R"(
experiment_name: auto compression torch example
labels: {team: vision}
search_space:
  - algorithm: level
    config_list:
      - sparsity: {_type: uniform, _value: [0.01, 0.99]}
        op_types: [default]
  - algorithm: qat
    config_list:
      - quant_types: [weight, output]
        quant_bits: {weight: 8, output: 8}
        op_types: [Conv2d, Linear]
tuner:
  name: TPE
  class_args: {optimize_mode: maximize}
trial_concurrency: 2
max_trial_number: 10
max_experiment_duration: 1h30m
max_trial_duration: 2d
trial_resources: {gpus: 1, min_gpu_memory: 8GiB, cpu_threads: 4, worker_selector: {pool: a100}}
model: model.pt
data:
  format: idx
  train: data/train
  eval: data/t10k
  mean: [0.286]
  std: [0.353]
  batch_size: 64
training:
  optimizer: {name: sgd, learning_rate: 0.01, momentum: 0.9}
  criterion: nll
  finetune_epochs: 2
  lr_schedule: {name: cosine, min_learning_rate: 0.001}
objective:
  constraints: ["sparsity >= 0.5", "latency_ms<=2"]
export: {calibration: false, keep_best: 3, speedup: true}
seed: 7
)";

TEST_F(ExperimentFileTest, ReadsTheSeedsExperimentIntoASpec) {
  const ExperimentFile file = Parse(kSeedLike);
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  const v1::ExperimentSpec& spec = file.spec;
  EXPECT_EQ(spec.name(), "auto compression torch example");
  EXPECT_EQ(spec.labels().at("team"), "vision");
  EXPECT_EQ(Json::parse(spec.search_space_json()), Json::parse(R"({"algorithm_name": {
      "_type": "choice", "_value": [
        {"_name": "level",
         "config_list::default::::sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}},
        {"_name": "qat",
         "config_list::weight:output::Conv2d:Linear::::quant_bits": {
           "weight": {"_type": "choice", "_value": [8]},
           "output": {"_type": "choice", "_value": [8]}}}]}})"));
  EXPECT_EQ(spec.tuner().name(), "TPE");
  EXPECT_EQ(spec.objective().primary().metric(), "accuracy");
  EXPECT_EQ(spec.objective().primary().mode(), v1::OPTIMIZE_MODE_MAXIMIZE);
  ASSERT_EQ(spec.objective().constraints_size(), 2);
  EXPECT_EQ(spec.objective().constraints(0).metric(), "sparsity");
  EXPECT_EQ(spec.objective().constraints(0).comparison(), v1::COMPARISON_GREATER_EQUAL);
  EXPECT_EQ(spec.objective().constraints(0).bound(), 0.5);
  EXPECT_EQ(spec.objective().constraints(1).comparison(), v1::COMPARISON_LESS_EQUAL);
  EXPECT_EQ(spec.limits().trial_concurrency(), 2);
  EXPECT_EQ(spec.limits().max_trial_number(), 10);
  EXPECT_EQ(spec.limits().max_experiment_duration().seconds(), 5400);
  EXPECT_EQ(spec.limits().max_trial_duration().seconds(), 2 * 86400);
  EXPECT_EQ(spec.trial_resources().gpus(), 1);
  EXPECT_EQ(spec.trial_resources().min_gpu_memory_bytes(), 8LL << 30);
  EXPECT_EQ(spec.trial_resources().cpu_threads(), 4);
  EXPECT_EQ(spec.trial_resources().worker_selector().at("pool"), "a100");
  EXPECT_EQ(file.model_path, dir_ + "/model.pt");
  EXPECT_EQ(file.train_path, dir_ + "/data/train");
  EXPECT_EQ(file.eval_path, dir_ + "/data/t10k");
  const v1::TrainingRecipe& recipe = spec.recipe();
  EXPECT_EQ(recipe.dataset().format(), v1::DATASET_FORMAT_IDX);
  EXPECT_FLOAT_EQ(recipe.dataset().mean(0), 0.286f);
  EXPECT_FLOAT_EQ(recipe.dataset().stddev(0), 0.353f);
  EXPECT_EQ(recipe.dataset().batch_size(), 64);
  EXPECT_EQ(recipe.optimizer().momentum(), 0.9);
  EXPECT_EQ(recipe.criterion(), "nll");
  EXPECT_EQ(recipe.evaluator(), "top1_accuracy");
  EXPECT_EQ(recipe.finetune_epochs(), 2);
  EXPECT_EQ(recipe.lr_schedule().name(), "cosine");
  EXPECT_TRUE(spec.export_options().model());
  EXPECT_FALSE(spec.export_options().calibration());
  EXPECT_EQ(spec.export_options().keep_best(), 3);
  EXPECT_TRUE(spec.export_options().speedup());
  EXPECT_EQ(spec.seed(), 7u);
}

TEST_F(ExperimentFileTest, JsonIsReadAsYamlFlowStyle) {
  const ExperimentFile yaml = Parse(kSeedLike);
  const std::string json = R"({"experiment_name": "auto compression torch example",
    "labels": {"team": "vision"},
    "search_space": [
      {"algorithm": "level", "config_list": [{"sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}, "op_types": ["default"]}]},
      {"algorithm": "qat", "config_list": [{"quant_types": ["weight", "output"], "quant_bits": {"weight": 8, "output": 8}, "op_types": ["Conv2d", "Linear"]}]}],
    "tuner": {"name": "TPE", "class_args": {"optimize_mode": "maximize"}},
    "trial_concurrency": 2, "max_trial_number": 10, "max_experiment_duration": "1h30m",
    "max_trial_duration": "2d",
    "trial_resources": {"gpus": 1, "min_gpu_memory": "8GiB", "cpu_threads": 4, "worker_selector": {"pool": "a100"}},
    "model": "model.pt",
    "data": {"format": "idx", "train": "data/train", "eval": "data/t10k", "mean": [0.286], "std": [0.353], "batch_size": 64},
    "training": {"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}, "criterion": "nll", "finetune_epochs": 2,
                 "lr_schedule": {"name": "cosine", "min_learning_rate": 0.001}},
    "objective": {"constraints": ["sparsity >= 0.5", "latency_ms<=2"]},
    "export": {"calibration": false, "keep_best": 3, "speedup": true}, "seed": 7})";
  const ExperimentFile from_json = Parse(json);
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  EXPECT_EQ(from_json.spec.SerializeAsString(), yaml.spec.SerializeAsString());
}

TEST_F(ExperimentFileTest, NnisDumpedFormAndSearchSpaceFileAreTakenVerbatim) {
  const std::string dumped = R"({"algorithm_name": {"_type": "choice", "_value": [
      {"_name": "l1", "config_list::Conv2d::::sparsity": {"_type": "uniform", "_value": [0.2, 0.5]}}]},
      "learning_rate": {"_type": "loguniform", "_value": [0.001, 0.1]}})";
  const std::string rest = "\nmodel: model.pt\ndata: {format: idx, eval: data/t10k}\n";
  ExperimentFile file = Parse("search_space: " + dumped + rest);
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  EXPECT_EQ(Json::parse(file.spec.search_space_json()), Json::parse(dumped));

  std::ofstream(dir_ + "/space.json") << dumped;
  file = Parse("search_space_file: space.json" + rest);
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  EXPECT_EQ(Json::parse(file.spec.search_space_json()), Json::parse(dumped));

  // The list form beside other searched knobs.
  file = Parse(R"(search_space:
  algorithm_name:
    - algorithm: l1
      config_list: [{sparsity: {_type: uniform, _value: [0.2, 0.5]}, op_types: [Conv2d]}]
  learning_rate: {_type: loguniform, _value: [0.001, 0.1]})" +
               rest);
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  EXPECT_EQ(Json::parse(file.spec.search_space_json()), Json::parse(dumped));
}

TEST_F(ExperimentFileTest, DefaultsFillWhatIsNotWritten) {
  const ExperimentFile file = Parse(R"(search_space:
  - {algorithm: level, config_list: [{sparsity: 0.5, op_types: [default]}]}
model: model.pt
data: {format: idx, eval: data/t10k}
)");
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  EXPECT_EQ(file.spec.tuner().name(), "tpe");
  EXPECT_EQ(file.spec.objective().primary().metric(), "accuracy");
  EXPECT_EQ(file.spec.limits().trial_concurrency(), 1);
  EXPECT_EQ(file.spec.recipe().optimizer().name(), "sgd");
  EXPECT_EQ(file.spec.recipe().criterion(), "cross_entropy");
  EXPECT_EQ(file.spec.recipe().dataset().batch_size(), 64);
  EXPECT_TRUE(file.train_path.empty());
}

TEST_F(ExperimentFileTest, MinimizeFromTheTunersClassArgs) {
  const ExperimentFile file = Parse(R"(search_space:
  - {algorithm: level, config_list: [{sparsity: 0.5, op_types: [default]}]}
tuner: {name: Anneal, class_args: {optimize_mode: minimize}}
objective: {metric: loss}
model: model.pt
data: {format: idx, eval: data/t10k, train: data/train}
training: {evaluator: neg_loss}
)");
  ASSERT_EQ(problems_.size(), 0u) << Problems();
  EXPECT_EQ(file.spec.objective().primary().metric(), "loss");
  EXPECT_EQ(file.spec.objective().primary().mode(), v1::OPTIMIZE_MODE_MINIMIZE);
}

TEST_F(ExperimentFileTest, ProblemsAreSortedByPositionAndNotStopAtTheFirst) {
  Parse(R"(search_space:
  - {algorithm: level, config_list: [{sparsity: 1.5, op_types: [default]}]}
trial_concurrency: -1
model: missing.pt
data: {format: idx, eval: data/t10k, shuffle: maybe}
)");
  ASSERT_EQ(problems_.size(), 4u) << Problems();
  EXPECT_EQ(problems_[0].path, "search_space[0].config_list[0].sparsity");
  EXPECT_EQ(problems_[0].line, 2);
  EXPECT_EQ(problems_[1].path, "trial_concurrency");
  EXPECT_EQ(problems_[2].path, "model");
  EXPECT_EQ(problems_[3].path, "data.shuffle");
  EXPECT_THAT(problems_[3].message, HasSubstr("expected true or false"));
}

// Found by //tests/fuzz:experiment_file_fuzzer: invalid UTF-8 passed yaml-cpp and then
// made nlohmann throw when the value was written out as JSON.
TEST_F(ExperimentFileTest, InvalidUtf8IsAProblemWithItsPlace) {
  Parse("experiment_name: ok\nsearch_space:\n  - algorithm: le\xB6vel\n");
  ASSERT_EQ(problems_.size(), 1u) << Problems();
  EXPECT_EQ(problems_[0].line, 3);
  EXPECT_EQ(problems_[0].column, 18);
  EXPECT_THAT(problems_[0].message, HasSubstr("(byte 0xB6)"));
  // Overlong forms, surrogates and truncated sequences are refused; real UTF-8 is not.
  for (const std::string& bad :
       std::vector<std::string>{"\xC0\xAF", "\xED\xA0\x80", "\xE2\x82", "\xF5\x80\x80\x80",
                                std::string(1, '\0'), "\x7F"}) {
    Parse("experiment_name: " + bad + "\n");
    ASSERT_EQ(problems_.size(), 1u) << bad;
    EXPECT_EQ(problems_[0].column, 18);
  }
  Parse("experiment_name: caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n");
  for (const auto& p : problems_) EXPECT_THAT(p.message, ::testing::Not(HasSubstr("UTF-8")));
}

}  // namespace
}  // namespace autocompress
