// The trial pipeline in process (the child's side without the process): report
// cadence and the learning-rate schedule reaching the reports. The whole trial, in a
// child and against PyTorch's numbers, is //tests:worker_agent_test.
#include "worker/trial_pipeline.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/artifact_cache.h"

namespace autocompress::worker {
namespace {

using testing::RunfilePath;
using testing::TempPath;

class Collect final : public PipelineReporter {
 public:
  void Phase(const std::string& phase) override { phases.push_back(phase); }
  void Intermediate(const v1::MetricReport& report) override { reports.push_back(report); }
  void Checkpoint(const std::string& path, int epoch) override { checkpoints[epoch] = path; }
  std::vector<std::string> phases;
  std::vector<v1::MetricReport> reports;
  std::map<int, std::string> checkpoints;
};

std::optional<double> MetricOf(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return m.value();
  }
  return std::nullopt;
}

// Level 0.5 on the Fashion-MNIST subset (2,000 training images, batches of 32: 63 per
// epoch), evaluating 4 batches of 250.
internal::ChildRequest Request(const std::string& name) {
  internal::ChildRequest request;
  v1::TrialSpec& trial = *request.mutable_trial();
  trial.set_parameters_json(
      R"({"algorithm_name": {"_name": "level", "config_list::default::::sparsity": 0.5}})");
  v1::TrainingRecipe& recipe = *trial.mutable_recipe();
  recipe.mutable_dataset()->set_format(v1::DATASET_FORMAT_IDX);
  recipe.mutable_dataset()->set_batch_size(32);
  recipe.mutable_dataset()->set_eval_batch_size(250);
  recipe.mutable_optimizer()->set_learning_rate(0.05);
  recipe.set_finetune_epochs(1);
  trial.add_devices("cpu");
  trial.set_seed(1);
  request.set_model_path(RunfilePath("worker/testdata/fashion_model.pt"));
  for (const auto& [tar, path] : {std::pair{"fashion_train.tar", request.mutable_train_path()},
                                  {"fashion_test.tar", request.mutable_eval_path()}}) {
    const std::string dir = TempPath(name + "-" + tar);
    std::filesystem::create_directories(dir);
    EXPECT_TRUE(ExtractArchive(RunfilePath(std::string("worker/testdata/") + tar), dir).ok());
    *path = dir;
  }
  const std::string out = TempPath(name + "-out");
  std::filesystem::create_directories(out);
  request.set_output_dir(out);
  return request;
}

TEST(TrialPipelineTest, ReportsEveryNBatchesWhenAsked) {
  internal::ChildRequest request = Request("every");
  request.mutable_trial()->mutable_recipe()->set_report_every_batches(20);
  Collect collect;
  const internal::ChildResult result = RunTrialPipeline(request, collect);
  ASSERT_EQ(result.state(), v1::TRIAL_STATE_SUCCEEDED) << result.failure().message();
  // Step 0 (after compression), then optimizer steps 20, 40, 60 of the 63.
  std::vector<int64_t> steps;
  for (const v1::MetricReport& r : collect.reports) {
    steps.push_back(r.step());
    EXPECT_TRUE(MetricOf(r, "accuracy").has_value()) << r.step();
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 20, 40, 60}));
  EXPECT_TRUE(MetricOf(result.final_report(), "train_images_per_second").has_value());
}

TEST(TrialPipelineTest, EpochReportsCarryTheScheduledLearningRate) {
  internal::ChildRequest request = Request("cosine");
  v1::TrainingRecipe& recipe = *request.mutable_trial()->mutable_recipe();
  recipe.set_finetune_epochs(3);
  recipe.set_max_train_batches(5);
  recipe.mutable_lr_schedule()->set_name("cosine");
  recipe.mutable_lr_schedule()->set_min_learning_rate(0.01);
  Collect collect;
  const internal::ChildResult result = RunTrialPipeline(request, collect);
  ASSERT_EQ(result.state(), v1::TRIAL_STATE_SUCCEEDED) << result.failure().message();
  ASSERT_EQ(collect.reports.size(), 4u);  // step 0 and one per epoch
  const double expected[] = {0.05, 0.03, 0.01};
  for (int e = 0; e < 3; ++e) {
    EXPECT_EQ(collect.reports[e + 1].step(), e + 1);
    EXPECT_NEAR(MetricOf(collect.reports[e + 1], "learning_rate").value_or(-1), expected[e], 1e-12);
    EXPECT_TRUE(MetricOf(collect.reports[e + 1], "train_loss").has_value());
  }
  EXPECT_THAT(collect.phases, ::testing::Contains("fine-tuning epoch 3"));
}

// recipe.checkpoint_epochs: a checkpoint after each epoch but the last. An attempt given
// the one after epoch 2 of 4 skips those epochs, sends their reports again, and ends
// exactly where the uninterrupted run ends (plain SGD has no state to lose, the data
// order depends only on (seed, epoch), and so does the learning rate).
TEST(TrialPipelineTest, ResumingFromACheckpointEndsWhereTheWholeRunEnds) {
  internal::ChildRequest request = Request("checkpoint");
  v1::TrainingRecipe& recipe = *request.mutable_trial()->mutable_recipe();
  recipe.set_finetune_epochs(4);
  recipe.set_max_train_batches(8);
  recipe.set_checkpoint_epochs(true);
  recipe.mutable_lr_schedule()->set_name("cosine");
  recipe.mutable_lr_schedule()->set_min_learning_rate(0.01);
  Collect whole;
  const internal::ChildResult uninterrupted = RunTrialPipeline(request, whole);
  ASSERT_EQ(uninterrupted.state(), v1::TRIAL_STATE_SUCCEEDED) << uninterrupted.failure().message();
  ASSERT_EQ(whole.checkpoints.size(), 3u);  // after epochs 1, 2 and 3
  ASSERT_EQ(whole.reports.size(), 5u);      // step 0 and one per epoch

  // What the scheduler would hand the re-run: the file and the reports up to epoch 2.
  const std::string kept = TempPath("checkpoint-2.pt");
  std::filesystem::copy_file(whole.checkpoints.at(2), kept,
                             std::filesystem::copy_options::overwrite_existing);
  internal::ChildRequest rerun = request;
  rerun.set_output_dir(TempPath("checkpoint-rerun-out"));
  std::filesystem::create_directories(rerun.output_dir());
  rerun.set_resume_path(kept);
  v1::TrialCheckpoint* from = rerun.mutable_trial()->mutable_resume_from();
  from->set_epoch(2);
  for (int step = 0; step <= 2; ++step) *from->add_reports() = whole.reports[step];
  Collect resumed;
  const internal::ChildResult result = RunTrialPipeline(rerun, resumed);
  ASSERT_EQ(result.state(), v1::TRIAL_STATE_SUCCEEDED) << result.failure().message();
  EXPECT_THAT(resumed.phases, ::testing::Not(::testing::Contains("fine-tuning epoch 2")));
  EXPECT_THAT(resumed.phases, ::testing::Contains("fine-tuning epoch 3"));
  EXPECT_EQ(MetricOf(result.final_report(), "resumed_from_epoch"), 2);
  ASSERT_EQ(resumed.reports.size(), 5u);
  for (int step = 0; step <= 4; ++step) {
    EXPECT_EQ(resumed.reports[step].step(), step);
    EXPECT_EQ(MetricOf(resumed.reports[step], "accuracy"),
              MetricOf(whole.reports[step], "accuracy"))
        << "step " << step;
  }
  for (const char* metric : {"accuracy", "loss", "sparsity"}) {
    EXPECT_EQ(MetricOf(result.final_report(), metric),
              MetricOf(uninterrupted.final_report(), metric))
        << metric;
  }
  EXPECT_EQ(resumed.checkpoints.size(), 1u);  // after epoch 3 only

  // A checkpoint that does not fit (here: not a checkpoint) is not used: the attempt
  // starts afresh and still succeeds.
  const std::string broken = TempPath("broken-checkpoint.pt");
  std::ofstream(broken) << "not a checkpoint";
  rerun.set_resume_path(broken);
  Collect afresh;
  const internal::ChildResult fresh = RunTrialPipeline(rerun, afresh);
  ASSERT_EQ(fresh.state(), v1::TRIAL_STATE_SUCCEEDED) << fresh.failure().message();
  EXPECT_FALSE(MetricOf(fresh.final_report(), "resumed_from_epoch").has_value());
  EXPECT_THAT(afresh.phases, ::testing::Contains("fine-tuning epoch 1"));
  EXPECT_EQ(MetricOf(fresh.final_report(), "accuracy"),
            MetricOf(uninterrupted.final_report(), "accuracy"));
}

// With report_every_batches the reports' step counts optimizer steps: a resumed attempt
// counts on from the checkpoint's, so its reports fall where the whole run's do.
TEST(TrialPipelineTest, ResumingKeepsTheStepsOfPerBatchReports) {
  internal::ChildRequest request = Request("checkpoint-steps");
  v1::TrainingRecipe& recipe = *request.mutable_trial()->mutable_recipe();
  recipe.set_finetune_epochs(3);
  recipe.set_max_train_batches(8);
  recipe.set_report_every_batches(3);
  recipe.set_checkpoint_epochs(true);
  Collect whole;
  const internal::ChildResult uninterrupted = RunTrialPipeline(request, whole);
  ASSERT_EQ(uninterrupted.state(), v1::TRIAL_STATE_SUCCEEDED) << uninterrupted.failure().message();
  ASSERT_EQ(whole.checkpoints.count(1), 1u);
  std::vector<int64_t> whole_steps;
  for (const v1::MetricReport& r : whole.reports) whole_steps.push_back(r.step());
  EXPECT_EQ(whole_steps, (std::vector<int64_t>{0, 3, 6, 9, 12, 15, 18, 21, 24}));

  internal::ChildRequest rerun = request;
  rerun.set_output_dir(TempPath("checkpoint-steps-rerun-out"));
  std::filesystem::create_directories(rerun.output_dir());
  const std::string kept = TempPath("checkpoint-steps-1.pt");
  std::filesystem::copy_file(whole.checkpoints.at(1), kept,
                             std::filesystem::copy_options::overwrite_existing);
  rerun.set_resume_path(kept);
  v1::TrialCheckpoint* from = rerun.mutable_trial()->mutable_resume_from();
  from->set_epoch(1);
  for (const v1::MetricReport& r : whole.reports) {
    if (r.step() <= 8) *from->add_reports() = r;  // what was reported before it
  }
  Collect resumed;
  const internal::ChildResult result = RunTrialPipeline(rerun, resumed);
  ASSERT_EQ(result.state(), v1::TRIAL_STATE_SUCCEEDED) << result.failure().message();
  std::vector<int64_t> steps;
  for (const v1::MetricReport& r : resumed.reports) steps.push_back(r.step());
  EXPECT_EQ(steps, whole_steps);
  EXPECT_EQ(MetricOf(result.final_report(), "accuracy"),
            MetricOf(uninterrupted.final_report(), "accuracy"));
}

// export_options.speedup: the same l1 trial exports a physically smaller model, whose
// parameters and effective bytes the final report then measures; accuracy is the same
// (evaluated before export, and the worker checks that both models compute the same).
TEST(TrialPipelineTest, SpeedupExportsTheSmallerModelAndMeasuresIt) {
  std::map<bool, internal::ChildResult> results;
  for (bool speedup : {false, true}) {
    internal::ChildRequest request = Request(speedup ? "sped" : "masked");
    v1::TrialSpec& trial = *request.mutable_trial();
    trial.set_parameters_json(
        R"({"algorithm_name": {"_name": "l1", "config_list::Conv2d::::sparsity": 0.5}})");
    trial.mutable_recipe()->set_max_train_batches(3);
    trial.mutable_export_options()->set_model(true);
    trial.mutable_export_options()->set_speedup(speedup);
    Collect collect;
    results[speedup] = RunTrialPipeline(request, collect);
    ASSERT_EQ(results[speedup].state(), v1::TRIAL_STATE_SUCCEEDED)
        << results[speedup].failure().message();
    std::vector<std::string> files;
    for (const auto& f : results[speedup].files()) files.push_back(f.name());
    EXPECT_EQ(std::count(files.begin(), files.end(), "speedup.json"), speedup ? 1 : 0);
  }
  const v1::MetricReport& masked = results[false].final_report();
  const v1::MetricReport& sped = results[true].final_report();
  EXPECT_EQ(MetricOf(sped, "accuracy"), MetricOf(masked, "accuracy"));
  EXPECT_LT(MetricOf(sped, "parameters").value(), MetricOf(masked, "parameters").value());
  // The masked model's zeros are gone: nothing left to store sparsely.
  EXPECT_EQ(MetricOf(sped, "nonzero_parameters"), MetricOf(sped, "parameters"));
  EXPECT_LT(MetricOf(sped, "effective_bytes").value(), MetricOf(masked, "effective_bytes").value());
  EXPECT_LT(MetricOf(sped, "dense_bytes").value(), MetricOf(masked, "dense_bytes").value());
  EXPECT_TRUE(MetricOf(sped, "latency_ms").has_value());
}

TEST(TrialPipelineTest, AnUnsupportedFormatIsInvalidInput) {
  internal::ChildRequest request = Request("format");
  request.mutable_trial()->mutable_recipe()->mutable_dataset()->set_format(
      v1::DATASET_FORMAT_IMAGE_FOLDER);
  Collect collect;
  const internal::ChildResult result = RunTrialPipeline(request, collect);
  EXPECT_EQ(result.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(result.failure().code(), v1::FAILURE_CODE_INVALID_INPUT);
  EXPECT_THAT(result.failure().message(),
              ::testing::HasSubstr("DATASET_FORMAT_IMAGE_FOLDER is not supported"));
}

}  // namespace
}  // namespace autocompress::worker
