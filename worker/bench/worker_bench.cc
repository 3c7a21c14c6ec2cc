// ./dev bench worker: what running a trial through the worker costs, and how fast the
// worker fine-tunes, each beside its baseline in the same run.
//
// Overhead: one trial (level pruning at 0.5, --epochs of fine-tuning on --train_examples
// Fashion-MNIST images, evaluation on the test split, export) run by a WorkerAgent in a
// child process, from assignment to its acknowledged finished event (artifact cache
// warm, results uploaded), against RunTrialPipeline called in this process on the same
// local files (the same work with no agent, process, gRPC or transfers). Medians of
// --repeats runs, interleaved. The two walls come from different runs, so on a noisy
// machine their difference is mostly noise; the overhead that decides the target is
// measured within each worker run instead: its wall minus the pipeline's own
// seconds_total (the child reports it), i.e. process start, artifact fetch, result
// upload and event round trips.
//
// Throughput: the trial's train_images_per_second (training steps alone) against the
// same fine-tuning written in PyTorch with its DataLoader (pytorch_finetune.py, Debian's
// python3-torch): same TorchScript network, batch size, threads, shuffling and masks.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/artifact_transfer.h"
#include "common/testing/command_output.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "tests/fakes/worker_endpoint.h"
#include "worker/agent.h"
#include "worker/artifact_cache.h"
#include "worker/trial_pipeline.h"

ABSL_FLAG(int, train_examples, 60000, "Fashion-MNIST training images fine-tuned on.");
ABSL_FLAG(int, epochs, 2, "Fine-tuning epochs per trial.");
ABSL_FLAG(int, repeats, 5, "Runs of each side (medians reported).");
ABSL_FLAG(int, threads, 2, "Intra-op threads of the trial and of PyTorch.");
ABSL_FLAG(int, batch_size, 32, "Training batch size.");
ABSL_FLAG(std::string, worker_server, "worker/worker_server", "The trial child binary.");
ABSL_FLAG(std::string, model, "worker/testdata/fashion_model.pt", "TorchScript model.");
ABSL_FLAG(std::string, train_tar, "worker/bench/fashion_full_train.tar", "Training split.");
ABSL_FLAG(std::string, test_tar, "worker/bench/fashion_full_test.tar", "Test split.");
ABSL_FLAG(std::string, pytorch_script, "worker/bench/pytorch_finetune.py",
          "Baseline; empty = skip.");
ABSL_FLAG(std::string, python, "/usr/bin/python3", "Interpreter with python3-torch.");

namespace autocompress::worker {
namespace {

namespace fs = std::filesystem;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double MetricOf(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return m.value();
  }
  return 0;
}

class NullReporter final : public PipelineReporter {
 public:
  void Phase(const std::string&) override {}
  void Intermediate(const v1::MetricReport&) override {}
};

int Main() {
  char dir_template[] = "/tmp/worker-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  auto endpoint = testing::WorkerEndpoint::Start(dir);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "endpoint: %s\n", std::string(endpoint.status().message()).c_str());
    return 1;
  }
  testing::FakeGateway& gateway = (*endpoint)->gateway();
  auto channel = (*endpoint)->channel();
  v1::ArtifactService::Stub& artifacts = (*endpoint)->artifacts();
  auto upload = [&](const std::string& path, v1::ArtifactKind kind) {
    auto ref = (*endpoint)->Upload(path, kind);
    if (!ref.ok())
      std::fprintf(stderr, "upload %s: %s\n", path.c_str(),
                   std::string(ref.status().message()).c_str());
    return ref.ok() ? *ref : v1::ArtifactRef();
  };

  const int threads = absl::GetFlag(FLAGS_threads);
  v1::TrialSpec trial;
  trial.set_experiment_id("bench");
  trial.set_attempt(1);
  trial.set_parameters_json(
      R"({"algorithm_name": {"_name": "level", "config_list::default::::sparsity": 0.5}})");
  *trial.mutable_model() = upload(absl::GetFlag(FLAGS_model), v1::ARTIFACT_KIND_MODEL);
  v1::TrainingRecipe& recipe = *trial.mutable_recipe();
  v1::DatasetSpec& data = *recipe.mutable_dataset();
  data.set_format(v1::DATASET_FORMAT_IDX);
  *data.mutable_train() = upload(absl::GetFlag(FLAGS_train_tar), v1::ARTIFACT_KIND_DATASET);
  *data.mutable_eval() = upload(absl::GetFlag(FLAGS_test_tar), v1::ARTIFACT_KIND_DATASET);
  data.add_mean(0.2860f);
  data.add_stddev(0.3530f);
  data.set_batch_size(absl::GetFlag(FLAGS_batch_size));
  data.set_eval_batch_size(1000);
  data.set_shuffle(true);
  recipe.mutable_optimizer()->set_name("sgd");
  recipe.mutable_optimizer()->set_learning_rate(0.05);
  recipe.set_evaluator("top1_accuracy");
  recipe.set_finetune_epochs(absl::GetFlag(FLAGS_epochs));
  recipe.set_max_train_batches((absl::GetFlag(FLAGS_train_examples) + data.batch_size() - 1) /
                               data.batch_size());
  trial.mutable_export_options()->set_model(true);
  trial.mutable_export_options()->set_report(true);
  trial.add_devices("cpu");
  trial.set_cpu_threads(threads);
  trial.set_seed(1);

  prometheus::Registry registry;
  WorkerAgent::Options options;
  options.worker_id = "bench";
  v1::Device cpu;
  cpu.set_name("cpu");
  cpu.set_slots(1);
  options.devices = {cpu};
  options.cpu_threads = threads;
  options.trial_command = {absl::GetFlag(FLAGS_worker_server), "--run_trial"};
  options.work_dir = dir + "/worker";
  auto agent = WorkerAgent::Start(options, channel, registry);
  if (!agent.ok() || !gateway.WaitForSession()) {
    std::fprintf(stderr, "agent did not connect\n");
    return 1;
  }

  // The in-process side reads the same extracted files from a cache of its own.
  auto local_cache =
      ArtifactCache::Open({dir + "/local-cache", int64_t{4} << 30},
                          [&](const v1::ArtifactRef& ref, const std::string& path) {
                            return DownloadArtifact(artifacts, ref, path, absl::Minutes(5));
                          });
  auto model_pin = (*local_cache)->Get(trial.model());
  auto train_pin = (*local_cache)->GetExtracted(data.train());
  auto test_pin = (*local_cache)->GetExtracted(data.eval());
  if (!model_pin.ok() || !train_pin.ok() || !test_pin.ok()) {
    std::fprintf(stderr, "local inputs missing\n");
    return 1;
  }

  const int repeats = absl::GetFlag(FLAGS_repeats);
  std::vector<double> worker_s, plain_s, worker_rate, plain_rate, outside_pct;
  for (int r = 0; r <= repeats; ++r) {  // run 0 warms the worker's cache, not counted
    trial.set_trial_id(absl::StrCat("t", r));
    const absl::Time start = absl::Now();
    gateway.Assign(trial);
    std::optional<v1::TrialFinished> finished =
        gateway.WaitForFinished(trial.trial_id(), 1, absl::Minutes(30));
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (!finished.has_value() || finished->state() != v1::TRIAL_STATE_SUCCEEDED) {
      std::fprintf(stderr, "worker trial failed: %s\n",
                   finished.has_value() ? finished->failure().message().c_str() : "timeout");
      return 1;
    }
    std::fprintf(stderr, "worker run %d: %.2f s, accuracy %.4f\n", r, seconds,
                 MetricOf(finished->final_report(), "accuracy"));
    if (r == 0) continue;
    worker_s.push_back(seconds);
    // What the trial spent outside its pipeline: process start, fetch, upload, events.
    const double pipeline = MetricOf(finished->final_report(), "seconds_total");
    outside_pct.push_back(100 * (seconds - pipeline) / seconds);
    worker_rate.push_back(MetricOf(finished->final_report(), "train_images_per_second"));

    internal::ChildRequest request;
    *request.mutable_trial() = trial;
    request.set_model_path((*model_pin)->path());
    request.set_train_path((*train_pin)->path());
    request.set_eval_path((*test_pin)->path());
    const std::string out = absl::StrCat(dir, "/plain-", r);
    fs::create_directories(out);
    request.set_output_dir(out);
    NullReporter reporter;
    const absl::Time plain_start = absl::Now();
    internal::ChildResult result = RunTrialPipeline(request, reporter);
    const double plain_seconds = absl::ToDoubleSeconds(absl::Now() - plain_start);
    if (result.state() != v1::TRIAL_STATE_SUCCEEDED) {
      std::fprintf(stderr, "in-process trial failed: %s\n", result.failure().message().c_str());
      return 1;
    }
    std::fprintf(stderr, "in-process run %d: %.2f s\n", r, plain_seconds);
    plain_s.push_back(plain_seconds);
    plain_rate.push_back(MetricOf(result.final_report(), "train_images_per_second"));
  }
  agent->reset();
  endpoint->reset();

  double pytorch_rate = 0;
  if (!absl::GetFlag(FLAGS_pytorch_script).empty()) {
    const std::string command =
        absl::StrCat(absl::GetFlag(FLAGS_python), " ", absl::GetFlag(FLAGS_pytorch_script), " ",
                     absl::GetFlag(FLAGS_model), " ", absl::GetFlag(FLAGS_train_examples), " ",
                     repeats, " ", data.batch_size(), " ", threads, " 0.5");
    auto out = testing::CommandOutput(command);
    if (out.ok()) {
      auto parsed = nlohmann::json::parse(*out, nullptr, false);
      if (parsed.is_object())
        pytorch_rate = Median(parsed["images_per_second"].get<std::vector<double>>());
    }
    if (pytorch_rate == 0) std::fprintf(stderr, "PyTorch baseline failed: %s\n", command.c_str());
  }

  const double worker_median = Median(worker_s), plain_median = Median(plain_s);
  const double paired_pct = 100 * (worker_median - plain_median) / worker_median;
  const double overhead_pct = Median(outside_pct);
  const double rate = Median(worker_rate);
  const double ratio = pytorch_rate > 0 ? rate / pytorch_rate : 0;
  auto verdict = [](bool ok) { return ok ? "yes" : "NO"; };
  std::printf(
      "\n## Worker: level 0.5 + %d epoch(s) on %d Fashion-MNIST images, eval 10000, %d "
      "threads, batch %d, medians of %d\n\n",
      absl::GetFlag(FLAGS_epochs), absl::GetFlag(FLAGS_train_examples), threads, data.batch_size(),
      repeats);
  std::printf("| measure | worker | baseline | target | met |\n|---|---|---|---|---|\n");
  std::printf(
      "| trial wall s (worker: assign to acked finish; baseline: pipeline in process) "
      "| %.2f | %.2f | | |\n",
      worker_median, plain_median);
  std::printf(
      "| overhead %% of trial time, by wall medians above (machine noise included) "
      "| %.2f | | | |\n",
      paired_pct);
  std::printf(
      "| overhead %% of trial time: worker wall minus the child's own pipeline time "
      "| %.2f | | <= 1 | %s |\n",
      overhead_pct, verdict(overhead_pct <= 1));
  std::printf("| fine-tuning images/s (worker child vs in-process pipeline) | %.0f | %.0f | | |\n",
              rate, Median(plain_rate));
  std::printf("| fine-tuning images/s (worker vs PyTorch DataLoader loop) | %.0f | %.0f | | |\n",
              rate, pytorch_rate);
  std::printf("| throughput ratio vs PyTorch | %.2f | | >= 1.2 | %s |\n", ratio,
              verdict(ratio >= 1.2));
  std::printf("\nworker-bench: overhead_pct=%.2f throughput_ratio_vs_pytorch=%.2f\n", overhead_pct,
              ratio);
  std::error_code error;
  fs::remove_all(dir, error);
  return 0;
}

}  // namespace
}  // namespace autocompress::worker

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return autocompress::worker::Main();
}
