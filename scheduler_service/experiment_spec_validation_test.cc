#include "scheduler_service/experiment_spec_validation.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::ArtifactRef Artifact(char fill) {
  v1::ArtifactRef ref;
  ref.set_sha256(std::string(64, fill));
  return ref;
}

v1::ExperimentSpec Valid() {
  v1::ExperimentSpec spec;
  spec.set_search_space_json(R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
  spec.mutable_tuner()->set_name("tpe");
  spec.mutable_objective()->mutable_primary()->set_metric("accuracy");
  spec.mutable_objective()->mutable_primary()->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
  spec.mutable_limits()->set_trial_concurrency(2);
  *spec.mutable_model() = Artifact('a');
  v1::DatasetSpec* dataset = spec.mutable_recipe()->mutable_dataset();
  dataset->set_format(v1::DATASET_FORMAT_IDX);
  *dataset->mutable_train() = Artifact('b');
  *dataset->mutable_eval() = Artifact('c');
  dataset->set_batch_size(32);
  spec.mutable_recipe()->mutable_optimizer()->set_name("sgd");
  spec.mutable_recipe()->mutable_optimizer()->set_learning_rate(0.01);
  spec.mutable_recipe()->set_criterion("cross_entropy");
  spec.mutable_recipe()->set_evaluator("top1_accuracy");
  return spec;
}

bool Present(const v1::ArtifactRef& ref) { return ref.sha256()[0] != 'f'; }

std::vector<std::string> Paths(const v1::ExperimentSpec& spec) {
  std::vector<std::string> paths;
  for (const SpecIssue& issue : ValidateExperimentSpec(spec, Present)) paths.push_back(issue.path);
  return paths;
}

TEST(ExperimentSpecValidationTest, ValidSpecHasNoIssues) {
  EXPECT_THAT(ValidateExperimentSpec(Valid(), Present), IsEmpty());
}

TEST(ExperimentSpecValidationTest, EveryProblemIsListedWithItsPath) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_limits()->set_trial_concurrency(0);
  spec.mutable_limits()->set_max_retries(-1);
  spec.mutable_limits()->mutable_max_trial_duration()->set_seconds(-5);
  *spec.mutable_model() = Artifact('f');  // not uploaded
  spec.mutable_recipe()->mutable_dataset()->mutable_train()->set_sha256("XYZ");
  spec.mutable_recipe()->mutable_dataset()->set_batch_size(0);
  spec.mutable_recipe()->mutable_dataset()->add_mean(0.5);
  spec.mutable_recipe()->mutable_optimizer()->set_learning_rate(0);
  spec.mutable_tuner()->set_args_json("[1, 2]");
  spec.mutable_objective()->mutable_primary()->set_metric("Top-1");
  (*spec.mutable_labels())["-bad"] = "x";
  spec.mutable_trial_resources()->set_gpus(-1);
  const std::vector<std::string> paths = Paths(spec);
  for (const char* path :
       {"spec.limits.trial_concurrency", "spec.limits.max_retries",
        "spec.limits.max_trial_duration", "spec.model", "spec.recipe.dataset.train.sha256",
        "spec.recipe.dataset.batch_size", "spec.recipe.dataset.stddev",
        "spec.recipe.optimizer.learning_rate", "spec.tuner.args_json",
        "spec.objective.primary.metric", "spec.labels[\"-bad\"]", "spec.trial_resources.gpus"}) {
    EXPECT_THAT(paths, Contains(path));
  }
  const std::string message = FormatIssues(ValidateExperimentSpec(spec, Present));
  EXPECT_THAT(message, HasSubstr(std::to_string(paths.size()) + " problems: "));
  EXPECT_THAT(message, HasSubstr("upload it first"));
}

TEST(ExperimentSpecValidationTest, ObjectiveProblemsComeFromTheTunersRule) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_objective()->mutable_primary()->set_mode(v1::OPTIMIZE_MODE_UNSPECIFIED);
  EXPECT_THAT(ValidateExperimentSpec(spec, Present),
              Contains(Field(&SpecIssue::path, HasSubstr("spec.objective.primary"))));
  spec = Valid();
  *spec.mutable_objective()->add_secondary() = spec.objective().primary();
  EXPECT_THAT(Paths(spec), Contains("spec.objective.secondary[0].metric"));
}

TEST(ExperimentSpecValidationTest, CustomModuleNeedsNoDeclarativeRecipe) {
  v1::ExperimentSpec spec = Valid();
  spec.mutable_recipe()->Clear();
  spec.mutable_recipe()->set_module("my_module");
  EXPECT_THAT(ValidateExperimentSpec(spec, Present), IsEmpty());
}

}  // namespace
}  // namespace autocompress::scheduler
