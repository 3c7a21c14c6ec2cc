// The whole system once, in one process as the embedded mode holds it: the tuner, the
// scheduler and a worker agent on loopback, the worker running every trial in a real
// child process (worker_server --run_trial). An auto-compression experiment over the
// Fashion-MNIST subset (level, l1 and qat, with a searched learning rate) runs to DONE:
// every trial succeeds with real metrics and its result artifacts in the scheduler's
// store, and the best trial is the one with the highest accuracy.
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/artifact_transfer.h"
#include "common/channel.h"
#include "common/proto_time.h"
#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler_service/scheduler_server.h"
#include "tuner_service/tuner_server.h"
#include "worker/worker_server.h"

namespace autocompress {
namespace {

using testing::RunfilePath;

double Metric(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return m.value();
  }
  ADD_FAILURE() << "no metric " << name;
  return -1;
}

TEST(EndToEndTest, AutoCompressionExperimentRunsToDoneOnARealWorker) {
  prometheus::Registry registry;
  tuner::TunerServer::Options tuner_options;
  tuner_options.server = ServerOptions::Loopback();
  auto tuner = tuner::TunerServer::BuildAndStart(tuner_options, registry);
  ASSERT_TRUE(tuner.ok()) << tuner.status();

  scheduler::SchedulerServer::Options scheduler_options;
  scheduler_options.server = ServerOptions::Loopback();
  scheduler_options.data_dir = testing::TempPath("e2e-data");
  scheduler_options.tuner_address = absl::StrCat("127.0.0.1:", (*tuner)->port());
  auto scheduler = scheduler::SchedulerServer::BuildAndStart(scheduler_options, registry);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  const std::string address = absl::StrCat("127.0.0.1:", (*scheduler)->port());

  worker::WorkerServer::Options worker_options;
  worker_options.server = ServerOptions::Loopback();
  worker_options.scheduler_address = address;
  worker_options.devices.cpu_slots = 2;
  worker_options.threads_per_trial = 1;
  worker_options.agent.worker_id = "e2e-worker";
  worker_options.agent.trial_command = {RunfilePath("worker/worker_server"), "--run_trial"};
  worker_options.agent.work_dir = testing::TempPath("e2e-worker");
  auto worker = worker::WorkerServer::BuildAndStart(worker_options, registry);
  ASSERT_TRUE(worker.ok()) << worker.status();

  auto channel = CreateChannel(address);
  auto artifacts = v1::ArtifactService::NewStub(channel);
  auto experiments = v1::ExperimentService::NewStub(channel);
  auto upload = [&](const std::string& file, v1::ArtifactKind kind) {
    auto ref = UploadArtifact(*artifacts, RunfilePath("worker/testdata/" + file), file, kind,
                              absl::Seconds(30));
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? *ref : v1::ArtifactRef();
  };

  v1::ExperimentSpec spec;
  spec.set_name("fashion auto compression");
  spec.set_search_space_json(R"({
    "algorithm_name": {"_type": "choice", "_value": [
      {"_name": "level", "config_list::default::::sparsity": {"_type": "uniform", "_value": [0.3, 0.8]}},
      {"_name": "l1", "config_list::Conv2d::::sparsity": {"_type": "uniform", "_value": [0.2, 0.5]}},
      {"_name": "qat", "config_list::weight::Conv2d:Linear::::quant_bits": {"_type": "choice", "_value": [8]}}
    ]},
    "learning_rate": {"_type": "choice", "_value": [0.02, 0.05]}})");
  spec.mutable_tuner()->set_name("random");
  spec.mutable_objective()->mutable_primary()->set_metric("accuracy");
  spec.mutable_objective()->mutable_primary()->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
  spec.mutable_limits()->set_trial_concurrency(2);
  spec.mutable_limits()->set_max_trial_number(6);
  *spec.mutable_model() = upload("fashion_model.pt", v1::ARTIFACT_KIND_MODEL);
  v1::TrainingRecipe& recipe = *spec.mutable_recipe();
  v1::DatasetSpec& data = *recipe.mutable_dataset();
  data.set_format(v1::DATASET_FORMAT_IDX);
  *data.mutable_train() = upload("fashion_train.tar", v1::ARTIFACT_KIND_DATASET);
  *data.mutable_eval() = upload("fashion_test.tar", v1::ARTIFACT_KIND_DATASET);
  data.add_mean(0.2860f);
  data.add_stddev(0.3530f);
  data.set_batch_size(32);
  data.set_shuffle(true);
  recipe.mutable_optimizer()->set_name("sgd");
  recipe.mutable_optimizer()->set_learning_rate(0.01);
  recipe.set_criterion("cross_entropy");
  recipe.set_evaluator("top1_accuracy");
  recipe.set_finetune_epochs(1);
  spec.mutable_export_options()->set_model(true);
  spec.mutable_export_options()->set_report(true);

  v1::CreateExperimentRequest create;
  *create.mutable_spec() = spec;
  v1::CreateExperimentResponse created;
  {
    grpc::ClientContext context;
    const grpc::Status status = experiments->CreateExperiment(&context, create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const std::string id = created.experiment().id();

  v1::Experiment experiment;
  const absl::Time deadline = absl::Now() + absl::Minutes(5);
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    v1::GetExperimentRequest get;
    get.set_experiment_id(id);
    v1::GetExperimentResponse got;
    ASSERT_TRUE(experiments->GetExperiment(&context, get, &got).ok());
    experiment = got.experiment();
    if (experiment.state() != v1::EXPERIMENT_STATE_RUNNING) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(experiment.state(), v1::EXPERIMENT_STATE_DONE) << experiment.DebugString();
  // Six suggested trials and the baseline.
  EXPECT_EQ(experiment.trial_counts().succeeded(), 7) << experiment.DebugString();

  grpc::ClientContext context;
  v1::ListTrialsRequest list;
  list.set_experiment_id(id);
  list.set_order_by("objective");
  v1::ListTrialsResponse trials;
  ASSERT_TRUE(experiments->ListTrials(&context, list, &trials).ok());
  ASSERT_EQ(trials.trials_size(), 7);
  EXPECT_EQ(experiment.best_trial_id(), trials.trials(0).id());
  // The baseline: the uncompressed model, evaluated once, first, and never the best;
  // it exports nothing, and its size is the dense size.
  const v1::Trial& baseline = trials.trials(6);
  ASSERT_TRUE(baseline.baseline());
  EXPECT_EQ(baseline.id(), experiment.baseline_trial_id());
  EXPECT_EQ(baseline.sequence(), 0);
  EXPECT_EQ(baseline.results_size(), 0);
  EXPECT_GT(Metric(baseline.final_report(), "accuracy"), 0.5);
  EXPECT_EQ(Metric(baseline.final_report(), "effective_bytes"),
            Metric(baseline.final_report(), "dense_bytes"));
  const double baseline_accuracy = Metric(baseline.final_report(), "accuracy");
  for (int i = 0; i < 6; ++i) {
    const v1::Trial& trial = trials.trials(i);
    EXPECT_FALSE(trial.baseline());
    // Every trial started after the baseline ended.
    EXPECT_GE(absl::ToUnixMicros(FromProtoTime(trial.start_time())),
              absl::ToUnixMicros(FromProtoTime(baseline.end_time())));
    EXPECT_NEAR(Metric(trial.final_report(), "accuracy_drop"),
                baseline_accuracy - Metric(trial.final_report(), "accuracy"), 1e-12);
    EXPECT_LT(Metric(trial.final_report(), "effective_bytes"),
              Metric(trial.final_report(), "dense_bytes"));
    EXPECT_NEAR(Metric(trial.final_report(), "compression_ratio"),
                Metric(trial.final_report(), "dense_bytes") /
                    Metric(trial.final_report(), "effective_bytes"),
                1e-9);
  }
  for (int i = 0; i < 6; ++i) {
    const v1::Trial& trial = trials.trials(i);
    EXPECT_EQ(trial.state(), v1::TRIAL_STATE_SUCCEEDED) << trial.failure().message();
    EXPECT_EQ(trial.worker_id(), "e2e-worker");
    EXPECT_GT(Metric(trial.final_report(), "accuracy"), 0.5) << trial.parameters_json();
    EXPECT_GT(Metric(trial.final_report(), "latency_ms"), 0);
    std::printf("trial %s: accuracy %.4f sparsity %.3f %s\n", trial.id().c_str(),
                Metric(trial.final_report(), "accuracy"), Metric(trial.final_report(), "sparsity"),
                trial.parameters_json().c_str());
    ASSERT_EQ(trial.results_size(), 2);
    for (const v1::ArtifactRef& ref : trial.results()) {
      grpc::ClientContext stat_context;
      v1::StatRequest stat;
      stat.set_sha256(ref.sha256());
      v1::StatResponse found;
      EXPECT_TRUE(artifacts->Stat(&stat_context, stat, &found).ok()) << ref.name();
      EXPECT_EQ(found.artifact().size_bytes(), ref.size_bytes());
    }
  }

  (*worker)->Shutdown();
  (*scheduler)->Shutdown();
  (*tuner)->Shutdown();
}

}  // namespace
}  // namespace autocompress
