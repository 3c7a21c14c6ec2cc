// The example module runs a whole trial through the same pipeline as the declarative
// recipe (in process here; a worker binary it is linked into runs it in a child).
#include <filesystem>

#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/artifact_cache.h"
#include "worker/auto_compression_module.h"
#include "worker/trial_pipeline.h"

namespace example {
namespace {

using autocompress::testing::RunfilePath;
using autocompress::testing::TempPath;
namespace v1 = autocompress::v1;

class Collect final : public autocompress::worker::PipelineReporter {
 public:
  void Phase(const std::string&) override {}
  void Intermediate(const v1::MetricReport& report) override { reports.push_back(report); }
  std::vector<v1::MetricReport> reports;
};

double MetricOf(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return m.value();
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

autocompress::internal::ChildRequest Request(const std::string& module) {
  autocompress::internal::ChildRequest request;
  v1::TrialSpec& trial = *request.mutable_trial();
  trial.set_parameters_json(
      R"({"algorithm_name": {"_name": "level", "config_list::default::::sparsity": 0.5}})");
  trial.mutable_model()->set_name("fashion_model.pt");
  trial.mutable_recipe()->set_module(module);
  trial.mutable_recipe()->set_module_args_json(R"({"lr": 0.05, "epochs": 2})");
  trial.add_devices("cpu");
  trial.set_seed(1);
  request.set_model_path(RunfilePath("worker/testdata/fashion_model.pt"));
  for (const auto& [tar, path] : {std::pair{"fashion_train.tar", request.mutable_train_path()},
                                  {"fashion_test.tar", request.mutable_eval_path()}}) {
    const std::string dir = TempPath(tar);
    std::filesystem::create_directories(dir);
    EXPECT_TRUE(autocompress::worker::ExtractArchive(
                    RunfilePath(std::string("worker/testdata/") + tar), dir)
                    .ok());
    *path = dir;
  }
  const std::string out = TempPath("out-" + module);
  std::filesystem::create_directories(out);
  request.set_output_dir(out);
  return request;
}

TEST(FashionBalancedModuleTest, RunsATrialWithItsOwnEvaluatorAndTrainer) {
  Collect reports;
  const auto result = autocompress::worker::RunTrialPipeline(Request("fashion_balanced"), reports);
  ASSERT_EQ(result.state(), v1::TRIAL_STATE_SUCCEEDED) << result.failure().message();
  // Zero-shot, then one report per epoch of the module's own recipe (2 epochs).
  ASSERT_EQ(reports.reports.size(), 3u);
  for (const v1::MetricReport& r : reports.reports) {
    EXPECT_GT(MetricOf(r, "balanced_accuracy"), 0.3);
  }
  const double balanced = MetricOf(result.final_report(), "balanced_accuracy");
  EXPECT_GT(balanced, 0.6);
  EXPECT_LE(balanced, 1.0);
  EXPECT_GT(MetricOf(result.final_report(), "accuracy"), 0.6);
  EXPECT_NEAR(MetricOf(result.final_report(), "sparsity"), 0.5, 0.01);
}

TEST(FashionBalancedModuleTest, AnUnknownModuleListsTheRegisteredOnes) {
  Collect reports;
  const auto result = autocompress::worker::RunTrialPipeline(Request("nope"), reports);
  EXPECT_EQ(result.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(result.failure().code(), v1::FAILURE_CODE_INVALID_INPUT);
  EXPECT_THAT(
      result.failure().message(),
      ::testing::HasSubstr("'nope' is not compiled into this worker; it has: fashion_balanced"));
}

}  // namespace
}  // namespace example
