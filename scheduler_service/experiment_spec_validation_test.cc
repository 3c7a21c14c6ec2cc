#include "scheduler_service/experiment_spec_validation.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Eq;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

v1::ArtifactRef Artifact(char fill) {
  v1::ArtifactRef ref;
  ref.set_sha256(std::string(64, fill));
  return ref;
}

// Artifacts made of 'f's are not stored; all others are.
bool Present(const v1::ArtifactRef& ref) { return ref.sha256()[0] != 'f'; }

v1::ExperimentSpec Valid() {
  v1::ExperimentSpec spec;
  spec.set_name("resnet18 pruning");
  (*spec.mutable_labels())["team"] = "vision";
  (*spec.mutable_labels())["note"] = "";  // empty values are allowed
  spec.set_search_space_json(R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
  spec.mutable_tuner()->set_name("tpe");
  spec.mutable_tuner()->set_args_json(R"({"n_startup_jobs": 4})");
  spec.mutable_assessor()->set_name("medianstop");
  spec.mutable_assessor()->set_args_json(R"({"start_step": 2})");
  v1::ObjectiveSpec* objective = spec.mutable_objective();
  objective->mutable_primary()->set_metric("accuracy");
  objective->mutable_primary()->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
  v1::Objective* size = objective->add_secondary();
  size->set_metric("model_bytes");
  size->set_mode(v1::OPTIMIZE_MODE_MINIMIZE);
  v1::MetricConstraint* sparsity = objective->add_constraints();
  sparsity->set_metric("sparsity");
  sparsity->set_comparison(v1::COMPARISON_GREATER_EQUAL);
  sparsity->set_bound(0.5);
  spec.mutable_limits()->set_trial_concurrency(2);
  spec.mutable_limits()->set_max_trial_number(20);
  spec.mutable_limits()->set_max_retries(3);
  spec.mutable_limits()->mutable_max_trial_duration()->set_seconds(600);
  spec.mutable_limits()->mutable_max_experiment_duration()->set_nanos(1);
  spec.mutable_trial_resources()->set_gpus(1);
  spec.mutable_trial_resources()->set_min_gpu_memory_bytes(1 << 30);
  spec.mutable_trial_resources()->set_cpu_threads(4);
  (*spec.mutable_trial_resources()->mutable_worker_selector())["pool"] = "a100";
  *spec.mutable_model() = Artifact('a');
  v1::DatasetSpec* dataset = spec.mutable_recipe()->mutable_dataset();
  dataset->set_format(v1::DATASET_FORMAT_IDX);
  *dataset->mutable_train() = Artifact('b');
  *dataset->mutable_eval() = Artifact('c');
  dataset->set_batch_size(32);
  dataset->set_eval_batch_size(0);
  dataset->add_mean(0.1307f);
  dataset->add_stddev(0.3081f);
  v1::OptimizerSpec* optimizer = spec.mutable_recipe()->mutable_optimizer();
  optimizer->set_name("sgd");
  optimizer->set_learning_rate(0.01);
  optimizer->set_momentum(0.9);
  optimizer->set_weight_decay(5e-4);
  spec.mutable_recipe()->set_criterion("cross_entropy");
  spec.mutable_recipe()->set_evaluator("top1_accuracy");
  spec.mutable_recipe()->set_finetune_epochs(2);
  spec.mutable_recipe()->set_sparsifying_epochs(10000);
  spec.mutable_export_options()->set_keep_best(3);
  return spec;
}

std::vector<std::string> Paths(const std::vector<SpecIssue>& issues) {
  std::vector<std::string> paths;
  for (const SpecIssue& issue : issues) paths.push_back(issue.path);
  return paths;
}

TEST(ExperimentSpecValidationTest, ValidSpecHasNoIssues) {
  EXPECT_THAT(ValidateExperimentSpec(Valid(), Present), IsEmpty());
}

TEST(ExperimentSpecValidationTest, AMillionTrialsIsTheLimit) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_limits()->set_max_trial_number(1'000'000);
  EXPECT_THAT(ValidateExperimentSpec(spec, Present), IsEmpty());
  spec.mutable_limits()->set_max_trial_number(1'000'001);
  EXPECT_THAT(Paths(ValidateExperimentSpec(spec, Present)),
              ElementsAre("spec.limits.max_trial_number"));
}

TEST(ExperimentSpecValidationTest, OptionalPartsMayBeLeftOut) {
  v1::ExperimentSpec spec = Valid();
  spec.clear_labels();
  spec.clear_name();
  spec.mutable_tuner()->clear_args_json();
  spec.clear_assessor();
  spec.mutable_objective()->clear_secondary();
  spec.mutable_objective()->clear_constraints();
  spec.mutable_limits()->clear_max_trial_duration();
  spec.mutable_limits()->clear_max_experiment_duration();
  spec.mutable_limits()->set_max_trial_number(0);
  spec.mutable_limits()->set_max_retries(0);
  spec.clear_trial_resources();
  spec.mutable_recipe()->mutable_dataset()->clear_mean();
  spec.mutable_recipe()->mutable_dataset()->clear_stddev();
  spec.mutable_recipe()->mutable_optimizer()->set_momentum(0);
  spec.mutable_recipe()->mutable_optimizer()->set_weight_decay(0);
  spec.mutable_recipe()->set_finetune_epochs(0);
  spec.mutable_recipe()->set_sparsifying_epochs(0);
  spec.clear_export_options();
  EXPECT_THAT(ValidateExperimentSpec(spec, Present), IsEmpty());
}

TEST(ExperimentSpecValidationTest, ACustomModuleNeedsNoDeclarativeRecipe) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_recipe()->Clear();
  spec.mutable_recipe()->set_module("my_module");
  spec.mutable_recipe()->set_module_args_json(R"({"width": 2})");
  EXPECT_THAT(ValidateExperimentSpec(spec, Present), IsEmpty());
  // What it does set is still checked.
  *spec.mutable_recipe()->mutable_dataset()->mutable_train() = Artifact('f');
  spec.mutable_recipe()->mutable_dataset()->set_batch_size(-1);
  spec.mutable_recipe()->mutable_optimizer()->set_learning_rate(-1);
  EXPECT_THAT(Paths(ValidateExperimentSpec(spec, Present)),
              ElementsAre("spec.recipe.dataset.train", "spec.recipe.dataset.batch_size",
                          "spec.recipe.optimizer.learning_rate"));
}

TEST(ExperimentSpecValidationTest, OnlyWellFormedReferencesAreLookedUp) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_model()->set_sha256("not-a-hash");
  std::vector<std::string> asked;
  ValidateExperimentSpec(spec, [&asked](const v1::ArtifactRef& ref) {
    asked.push_back(ref.sha256());
    return true;
  });
  EXPECT_THAT(asked, ElementsAre(std::string(64, 'b'), std::string(64, 'c')));
}

// ---- One rule at a time: the valid spec with one fault has exactly that issue --------------

struct Case {
  std::string name;
  std::function<void(v1::ExperimentSpec&)> break_it;
  std::string path;
  std::string message;  // a part of the message
};

std::vector<Case> Cases() {
  using S = v1::ExperimentSpec;
  auto limits = [](S& s) { return s.mutable_limits(); };
  auto resources = [](S& s) { return s.mutable_trial_resources(); };
  auto dataset = [](S& s) { return s.mutable_recipe()->mutable_dataset(); };
  auto optimizer = [](S& s) { return s.mutable_recipe()->mutable_optimizer(); };
  return {
      // name and labels
      {"NameTooLong", [](S& s) { s.set_name(std::string(257, 'n')); }, "spec.name",
       "at most 256 characters, got 257"},
      {"NameWithNewline", [](S& s) { s.set_name("a\nb"); }, "spec.name", "control characters"},
      {"LabelKeyStartsWithDash", [](S& s) { (*s.mutable_labels())["-team"] = "x"; },
       "spec.labels[\"-team\"]", "key must be 1-63 characters of [A-Za-z0-9._-]"},
      {"LabelKeyEmpty", [](S& s) { (*s.mutable_labels())[""] = "x"; }, "spec.labels[\"\"]",
       "Kubernetes' label rule"},
      {"LabelKeyTooLong", [](S& s) { (*s.mutable_labels())[std::string(64, 'k')] = "x"; },
       "spec.labels[\"" + std::string(64, 'k') + "\"]", "key must be"},
      {"LabelValueWithSpace", [](S& s) { (*s.mutable_labels())["team"] = "a b"; },
       "spec.labels[\"team\"]", "value \"a b\" must be empty or 1-63 characters"},
      {"TooManyLabels",
       [](S& s) {
         for (int i = 0; i < 64; ++i) (*s.mutable_labels())["k" + std::to_string(i)] = "v";
       },
       "spec.labels", "at most 64 labels, got 66"},
      // search space and algorithms
      {"NoSearchSpace", [](S& s) { s.clear_search_space_json(); }, "spec.search_space_json",
       "required"},
      {"NoTuner", [](S& s) { s.mutable_tuner()->clear_name(); }, "spec.tuner.name", "required"},
      {"TunerArgsNotAnObject", [](S& s) { s.mutable_tuner()->set_args_json("[1, 2]"); },
       "spec.tuner.args_json", "must be a JSON object such as {\"key\": 1}, got array"},
      {"TunerArgsNotJson", [](S& s) { s.mutable_tuner()->set_args_json("{oops"); },
       "spec.tuner.args_json", "not valid JSON: "},
      {"AssessorArgsNotAnObject", [](S& s) { s.mutable_assessor()->set_args_json("3"); },
       "spec.assessor.args_json", "got number"},
      {"AssessorArgsWithoutAssessor", [](S& s) { s.mutable_assessor()->clear_name(); },
       "spec.assessor.args_json", "no assessor is named"},
      // objective
      {"NoPrimaryObjective", [](S& s) { s.mutable_objective()->clear_primary(); },
       "spec.objective.primary", "must be set"},
      {"PrimaryWithoutMode", [](S& s) { s.mutable_objective()->mutable_primary()->clear_mode(); },
       "spec.objective.primary.mode", "MAXIMIZE or MINIMIZE"},
      {"PrimaryWithoutMetric",
       [](S& s) { s.mutable_objective()->mutable_primary()->clear_metric(); },
       "spec.objective.primary.metric", "must name a metric"},
      {"PrimaryMetricNotSnakeCase",
       [](S& s) { s.mutable_objective()->mutable_primary()->set_metric("Top-1"); },
       "spec.objective.primary.metric", "\"Top-1\" is not a metric name: lower snake_case"},
      {"SecondaryRepeatsPrimary",
       [](S& s) { s.mutable_objective()->mutable_secondary(0)->set_metric("accuracy"); },
       "spec.objective.secondary[0].metric", "already an objective"},
      {"SecondSecondaryWithoutMode",
       [](S& s) { s.mutable_objective()->add_secondary()->set_metric("latency_ms"); },
       "spec.objective.secondary[1].mode", "MAXIMIZE or MINIMIZE"},
      {"ConstraintWithoutComparison",
       [](S& s) { s.mutable_objective()->mutable_constraints(0)->clear_comparison(); },
       "spec.objective.constraints[0].comparison", "LESS_EQUAL or GREATER_EQUAL"},
      {"ConstraintBoundInfinite",
       [](S& s) { s.mutable_objective()->mutable_constraints(0)->set_bound(kInf); },
       "spec.objective.constraints[0].bound", "not a finite number"},
      {"ConstraintMetricNotSnakeCase",
       [](S& s) { s.mutable_objective()->mutable_constraints(0)->set_metric("size MB"); },
       "spec.objective.constraints[0].metric", "not a metric name"},
      {"TooManyConstraints",
       [](S& s) {
         for (int i = 0; i < 32; ++i) {
           *s.mutable_objective()->add_constraints() = s.objective().constraints(0);
         }
       },
       "spec.objective.constraints", "at most 32, got 33"},
      // limits
      {"ConcurrencyZero", [&](S& s) { limits(s)->set_trial_concurrency(0); },
       "spec.limits.trial_concurrency", "must be >= 1, got 0"},
      {"MaxTrialsNegative", [&](S& s) { limits(s)->set_max_trial_number(-1); },
       "spec.limits.max_trial_number", "must be in [0, 1000000] (0 = up to 1000000), got -1"},
      {"MaxTrialsOverAMillion", [&](S& s) { limits(s)->set_max_trial_number(1'000'001); },
       "spec.limits.max_trial_number", "got 1000001"},
      // search space
      {"UnknownAlgorithm",
       [](S& s) {
         s.set_search_space_json(R"({"algorithm_name": {"_type": "choice", "_value": [
             {"_name": "level", "config_list::default::::sparsity": 0.5},
             {"_name": "lvel", "config_list::default::::sparsity": 0.5}]}})");
       },
       "spec.search_space_json.algorithm_name._value[1]._name", "lvel"},
      {"RetriesNegative", [&](S& s) { limits(s)->set_max_retries(-1); }, "spec.limits.max_retries",
       "must be in [0, 100]"},
      {"RetriesTooMany", [&](S& s) { limits(s)->set_max_retries(101); }, "spec.limits.max_retries",
       "got 101"},
      {"TrialDurationNegative",
       [&](S& s) { limits(s)->mutable_max_trial_duration()->set_seconds(-5); },
       "spec.limits.max_trial_duration", "seconds must be in [0, 315576000000], got -5"},
      {"TrialDurationZeroWhenSet",
       [&](S& s) { limits(s)->mutable_max_trial_duration()->set_seconds(0); },
       "spec.limits.max_trial_duration", "must be positive when set"},
      {"ExperimentDurationBadNanos",
       [&](S& s) { limits(s)->mutable_max_experiment_duration()->set_nanos(1'000'000'000); },
       "spec.limits.max_experiment_duration", "nanos must be in [0, 999999999]"},
      {"ExperimentDurationNegativeNanos",
       [&](S& s) { limits(s)->mutable_max_experiment_duration()->set_nanos(-1); },
       "spec.limits.max_experiment_duration", "got -1"},
      // trial resources
      {"GpusNegative", [&](S& s) { resources(s)->set_gpus(-1); }, "spec.trial_resources.gpus",
       "must be in [0, 64], got -1"},
      {"GpusTooMany", [&](S& s) { resources(s)->set_gpus(65); }, "spec.trial_resources.gpus",
       "got 65"},
      {"GpuMemoryNegative", [&](S& s) { resources(s)->set_min_gpu_memory_bytes(-1); },
       "spec.trial_resources.min_gpu_memory_bytes", "must be >= 0"},
      {"GpuMemoryWithoutGpus", [&](S& s) { resources(s)->set_gpus(0); },
       "spec.trial_resources.min_gpu_memory_bytes", "asks for no GPU"},
      {"CpuThreadsNegative", [&](S& s) { resources(s)->set_cpu_threads(-2); },
       "spec.trial_resources.cpu_threads", "got -2"},
      {"CpuThreadsTooMany", [&](S& s) { resources(s)->set_cpu_threads(5000); },
       "spec.trial_resources.cpu_threads", "must be in [0, 4096]"},
      {"SelectorKeyWithSpace",
       [&](S& s) { (*resources(s)->mutable_worker_selector())["gpu type"] = "a100"; },
       "spec.trial_resources.worker_selector[\"gpu type\"]", "key must be"},
      {"SelectorValueWithSlash",
       [&](S& s) { (*resources(s)->mutable_worker_selector())["pool"] = "a/b"; },
       "spec.trial_resources.worker_selector[\"pool\"]", "value \"a/b\""},
      // model
      {"NoModel", [](S& s) { s.clear_model(); }, "spec.model.sha256", "required"},
      {"ModelShaUppercase", [](S& s) { s.mutable_model()->set_sha256(std::string(64, 'A')); },
       "spec.model.sha256", "must be 64 lowercase hex characters"},
      {"ModelShaShort", [](S& s) { s.mutable_model()->set_sha256("abc"); }, "spec.model.sha256",
       "got \"abc\""},
      {"ModelNotUploaded", [](S& s) { *s.mutable_model() = Artifact('f'); }, "spec.model",
       "artifact " + std::string(64, 'f') + " not found; upload it first"},
      // dataset
      {"NoDatasetFormat", [&](S& s) { dataset(s)->clear_format(); }, "spec.recipe.dataset.format",
       "required: DATASET_FORMAT_IDX"},
      {"UnknownDatasetFormat",
       [&](S& s) { dataset(s)->set_format(static_cast<v1::DatasetFormat>(99)); },
       "spec.recipe.dataset.format", "unknown value 99"},
      {"NoTrainSplit", [&](S& s) { dataset(s)->clear_train(); }, "spec.recipe.dataset.train.sha256",
       "required"},
      {"NoEvalSplit", [&](S& s) { dataset(s)->clear_eval(); }, "spec.recipe.dataset.eval.sha256",
       "required"},
      {"EvalSplitNotUploaded", [&](S& s) { *dataset(s)->mutable_eval() = Artifact('f'); },
       "spec.recipe.dataset.eval", "upload it first"},
      {"BatchSizeZero", [&](S& s) { dataset(s)->set_batch_size(0); },
       "spec.recipe.dataset.batch_size", "must be >= 1, got 0"},
      {"EvalBatchSizeNegative", [&](S& s) { dataset(s)->set_eval_batch_size(-1); },
       "spec.recipe.dataset.eval_batch_size", "must be >= 0"},
      {"MeanWithoutStddev", [&](S& s) { dataset(s)->add_mean(0.5f); }, "spec.recipe.dataset.stddev",
       "has 1 values but mean has 2"},
      {"StddevZero", [&](S& s) { dataset(s)->set_stddev(0, 0.0f); },
       "spec.recipe.dataset.stddev[0]", "must be positive and finite"},
      {"StddevNaN", [&](S& s) { dataset(s)->set_stddev(0, std::nanf("")); },
       "spec.recipe.dataset.stddev[0]", "must be positive and finite"},
      {"MeanInfinite", [&](S& s) { dataset(s)->set_mean(0, static_cast<float>(kInf)); },
       "spec.recipe.dataset.mean[0]", "must be finite"},
      // optimizer, criterion, evaluator, epochs
      {"NoOptimizer", [&](S& s) { optimizer(s)->clear_name(); }, "spec.recipe.optimizer.name",
       "required"},
      {"LearningRateZero", [&](S& s) { optimizer(s)->set_learning_rate(0); },
       "spec.recipe.optimizer.learning_rate", "must be positive and finite, got 0"},
      {"LearningRateInfinite", [&](S& s) { optimizer(s)->set_learning_rate(kInf); },
       "spec.recipe.optimizer.learning_rate", "got inf"},
      {"LearningRateNaN", [&](S& s) { optimizer(s)->set_learning_rate(kNaN); },
       "spec.recipe.optimizer.learning_rate", "must be positive"},
      {"MomentumOne", [&](S& s) { optimizer(s)->set_momentum(1); },
       "spec.recipe.optimizer.momentum", "must be in [0, 1), got 1"},
      {"MomentumNegative", [&](S& s) { optimizer(s)->set_momentum(-0.1); },
       "spec.recipe.optimizer.momentum", "got -0.1"},
      {"MomentumNaN", [&](S& s) { optimizer(s)->set_momentum(kNaN); },
       "spec.recipe.optimizer.momentum", "must be in [0, 1)"},
      {"WeightDecayNegative", [&](S& s) { optimizer(s)->set_weight_decay(-1e-4); },
       "spec.recipe.optimizer.weight_decay", "must be >= 0"},
      {"NoCriterion", [](S& s) { s.mutable_recipe()->clear_criterion(); }, "spec.recipe.criterion",
       "unless module is set"},
      {"NoEvaluator", [](S& s) { s.mutable_recipe()->clear_evaluator(); }, "spec.recipe.evaluator",
       "unless module is set"},
      {"FinetuneEpochsNegative", [](S& s) { s.mutable_recipe()->set_finetune_epochs(-1); },
       "spec.recipe.finetune_epochs", "must be in [0, 10000], got -1"},
      {"SparsifyingEpochsTooMany", [](S& s) { s.mutable_recipe()->set_sparsifying_epochs(10001); },
       "spec.recipe.sparsifying_epochs", "got 10001"},
      {"MaxTrainBatchesNegative", [](S& s) { s.mutable_recipe()->set_max_train_batches(-1); },
       "spec.recipe.max_train_batches", "must be >= 0 (0 = no cap)"},
      {"MaxEvalBatchesNegative", [](S& s) { s.mutable_recipe()->set_max_eval_batches(-3); },
       "spec.recipe.max_eval_batches", "got -3"},
      {"ModuleArgsWithoutModule",
       [](S& s) { s.mutable_recipe()->set_module_args_json(R"({"a": 1})"); },
       "spec.recipe.module_args_json", "no module is named"},
      {"ModuleArgsNotAnObject",
       [](S& s) {
         s.mutable_recipe()->set_module("my_module");
         s.mutable_recipe()->set_module_args_json("\"wide\"");
       },
       "spec.recipe.module_args_json", "got string"},
      // export
      {"KeepBestNegative", [](S& s) { s.mutable_export_options()->set_keep_best(-1); },
       "spec.export_options.keep_best", "must be >= 0 (0 = all), got -1"},
  };
}

class OneRuleTest : public ::testing::TestWithParam<Case> {};

TEST_P(OneRuleTest, ReportsExactlyThatProblemWithItsPath) {
  v1::ExperimentSpec spec = Valid();
  GetParam().break_it(spec);
  EXPECT_THAT(ValidateExperimentSpec(spec, Present),
              ElementsAre(AllOf(Field(&SpecIssue::path, Eq(GetParam().path)),
                                Field(&SpecIssue::message, HasSubstr(GetParam().message)))));
}

INSTANTIATE_TEST_SUITE_P(EveryRule, OneRuleTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ---- Many at once ------------------------------------------------------------------------

TEST(ExperimentSpecValidationTest, EveryProblemIsListedAtOnce) {
  v1::ExperimentSpec spec = Valid();
  spec.set_name(std::string(300, 'n'));
  (*spec.mutable_labels())["-bad"] = "x";
  spec.clear_search_space_json();
  spec.mutable_tuner()->set_args_json("[1, 2]");
  spec.mutable_objective()->mutable_primary()->set_metric("Top-1");
  spec.mutable_objective()->mutable_constraints(0)->set_bound(kInf);
  spec.mutable_limits()->set_trial_concurrency(0);
  spec.mutable_limits()->set_max_retries(101);
  spec.mutable_limits()->mutable_max_trial_duration()->set_seconds(-5);
  spec.mutable_trial_resources()->set_gpus(65);
  spec.mutable_trial_resources()->set_cpu_threads(-1);
  *spec.mutable_model() = Artifact('f');  // not uploaded
  spec.mutable_recipe()->mutable_dataset()->mutable_train()->set_sha256("XYZ");
  spec.mutable_recipe()->mutable_dataset()->set_batch_size(0);
  spec.mutable_recipe()->mutable_dataset()->set_stddev(0, 0.0f);
  spec.mutable_recipe()->mutable_optimizer()->set_learning_rate(0);
  spec.mutable_recipe()->mutable_optimizer()->set_momentum(1);
  spec.mutable_recipe()->clear_criterion();
  spec.mutable_recipe()->set_finetune_epochs(-1);
  spec.mutable_export_options()->set_keep_best(-1);
  const std::vector<SpecIssue> issues = ValidateExperimentSpec(spec, Present);
  EXPECT_THAT(
      Paths(issues),
      ElementsAre("spec.name", "spec.labels[\"-bad\"]", "spec.search_space_json",
                  "spec.tuner.args_json", "spec.objective.constraints[0].bound",
                  "spec.objective.primary.metric", "spec.limits.trial_concurrency",
                  "spec.limits.max_retries", "spec.limits.max_trial_duration",
                  "spec.trial_resources.gpus", "spec.trial_resources.cpu_threads", "spec.model",
                  "spec.recipe.dataset.train.sha256", "spec.recipe.dataset.batch_size",
                  "spec.recipe.dataset.stddev[0]", "spec.recipe.optimizer.learning_rate",
                  "spec.recipe.optimizer.momentum", "spec.recipe.criterion",
                  "spec.recipe.finetune_epochs", "spec.export_options.keep_best"));
  const std::string message = FormatIssues(issues);
  EXPECT_THAT(message, StartsWith("20 problems: spec.name: at most 256 characters, got 300; "));
  EXPECT_THAT(message, HasSubstr("; spec.limits.trial_concurrency: must be >= 1, got 0; "));
  EXPECT_THAT(message, HasSubstr("; spec.model: artifact " + std::string(64, 'f') +
                                 " not found; upload it first; "));
}

TEST(ExperimentSpecValidationTest, TheTunersObjectiveRuleReportsEveryElement) {
  v1::ExperimentSpec spec = Valid();
  v1::ObjectiveSpec* objective = spec.mutable_objective();
  objective->mutable_primary()->clear_mode();
  objective->mutable_secondary(0)->clear_metric();
  objective->mutable_constraints(0)->set_bound(kNaN);
  objective->add_constraints()->set_metric("latency_ms");  // no comparison
  EXPECT_THAT(Paths(ValidateExperimentSpec(spec, Present)),
              ElementsAre("spec.objective.primary.mode", "spec.objective.secondary[0].metric",
                          "spec.objective.constraints[0].bound",
                          "spec.objective.constraints[1].comparison"));
}

TEST(FormatIssuesTest, CountsAndJoins) {
  EXPECT_EQ(FormatIssues({{"spec.a", "bad"}}), "1 problem: spec.a: bad");
  EXPECT_EQ(FormatIssues({{"spec.a", "bad"}, {"spec.b", "worse"}}),
            "2 problems: spec.a: bad; spec.b: worse");
}

// A client's tuner arguments with a number beyond double must be an issue, not an
// exception thrown through the scheduler's handler (nlohmann's out_of_range).
TEST(ExperimentSpecValidationTest, ANumberBeyondDoubleInJsonArgumentsIsAnIssue) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_tuner()->set_args_json(R"({"seed": 1e999})");
  EXPECT_THAT(Paths(ValidateExperimentSpec(spec, Present)),
              ::testing::Contains("spec.tuner.args_json"));
}

}  // namespace
}  // namespace autocompress::scheduler
