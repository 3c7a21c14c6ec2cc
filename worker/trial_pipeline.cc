#include "worker/trial_pipeline.h"

#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "compression/algorithm_registry.h"
#include "compression/compression_session.h"
#include "compression/torch_status.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "worker/training/dataset.h"
#include "worker/training/fine_tune.h"
#include "worker/training/recipe.h"
#include "worker/training/trainer.h"
#include "worker/trial_parameters.h"

namespace autocompress::worker {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kLatencyWarmup = 5;
constexpr int kLatencyRuns = 30;

// A failure with the code a status means for retries.
v1::TrialFailure FailureOf(const absl::Status& status) {
  v1::TrialFailure failure;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kDataLoss:
      failure.set_code(v1::FAILURE_CODE_INVALID_INPUT);
      break;
    case absl::StatusCode::kResourceExhausted:
      failure.set_code(v1::FAILURE_CODE_OUT_OF_MEMORY);
      break;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnavailable:
      failure.set_code(v1::FAILURE_CODE_INFRASTRUCTURE);
      break;
    default:
      failure.set_code(v1::FAILURE_CODE_INTERNAL);
  }
  failure.set_message(std::string(status.message()));
  return failure;
}

void AddMetric(v1::MetricReport& report, const std::string& name, double value) {
  v1::Metric* metric = report.add_metrics();
  metric->set_name(name);
  metric->set_value(value);
}

std::string DatasetFormatName(v1::DatasetFormat format) {
  switch (format) {
    case v1::DATASET_FORMAT_IDX:
      return "idx";
    default:
      return "";
  }
}

// The declarative recipe as the training library takes it.
training::Recipe TrainingRecipeOf(const v1::TrialSpec& trial, const v1::TrainingRecipe& r) {
  training::Recipe recipe;
  if (!r.optimizer().name().empty()) recipe.optimizer = r.optimizer().name();
  if (r.optimizer().learning_rate() != 0) recipe.lr = r.optimizer().learning_rate();
  recipe.momentum = r.optimizer().momentum();
  recipe.weight_decay = r.optimizer().weight_decay();
  recipe.nesterov = r.optimizer().nesterov();
  if (r.dataset().batch_size() > 0) recipe.batch_size = r.dataset().batch_size();
  recipe.max_batches = r.max_train_batches();
  if (!r.criterion().empty()) recipe.criterion = r.criterion();
  recipe.shuffle = r.dataset().shuffle();
  if (!r.lr_schedule().name().empty()) recipe.lr_schedule = r.lr_schedule().name();
  if (r.lr_schedule().step_epochs() > 0) recipe.step_epochs = r.lr_schedule().step_epochs();
  if (r.lr_schedule().gamma() > 0) recipe.gamma = r.lr_schedule().gamma();
  recipe.min_lr = r.lr_schedule().min_learning_rate();
  recipe.seed = trial.seed() != 0 ? trial.seed() : 1;
  return recipe;
}

// The evaluators, by the name the recipe gives; each names the metrics it reports.
struct EvaluatorSpec {
  const char* name;
  std::vector<std::string> metrics;
};
const std::vector<EvaluatorSpec>& Evaluators() {
  static const auto* evaluators = new std::vector<EvaluatorSpec>{
      {"top1_accuracy", {"accuracy", "loss"}},
      {"top5_accuracy", {"top5_accuracy", "accuracy", "loss"}},
      {"neg_loss", {"neg_loss", "loss"}},
  };
  return *evaluators;
}

absl::StatusOr<const EvaluatorSpec*> FindEvaluator(const std::string& name) {
  const std::string wanted = name.empty() ? "top1_accuracy" : name;
  for (const EvaluatorSpec& e : Evaluators()) {
    if (wanted == e.name) return &e;
  }
  std::vector<std::string> known;
  for (const EvaluatorSpec& e : Evaluators()) known.push_back(e.name);
  return absl::InvalidArgumentError(absl::StrCat("recipe.evaluator: '", name,
                                                 "' is not known; known: ",
                                                 absl::StrJoin(known, ", ")));
}

void AddEvaluation(v1::MetricReport& report, const EvaluatorSpec& evaluator,
                   const training::Evaluation& e, const std::string& suffix = "") {
  for (const std::string& name : evaluator.metrics) {
    const double value = name == "accuracy"        ? e.accuracy
                         : name == "top5_accuracy" ? e.top5_accuracy
                         : name == "neg_loss"      ? -e.mean_loss
                                                   : e.mean_loss;
    AddMetric(report, name + suffix, value);
  }
}

// Normalizes per channel and keeps at most `max_examples` (0 = all).
absl::StatusOr<std::unique_ptr<training::Dataset>> Prepare(std::unique_ptr<training::Dataset> data,
                                                           const v1::DatasetSpec& spec,
                                                           int64_t max_examples) {
  const bool trim = max_examples > 0 && max_examples < data->size();
  if (spec.mean_size() == 0 && !trim) return data;
  return compression::CatchTorch(
      "preparing data", [&]() -> absl::StatusOr<std::unique_ptr<training::Dataset>> {
        torch::Tensor inputs = data->inputs();
        torch::Tensor labels = data->labels();
        if (trim) {
          inputs = inputs.slice(0, 0, max_examples);
          labels = labels.slice(0, 0, max_examples);
        }
        if (spec.mean_size() > 0) {
          if (inputs.dim() < 2 || inputs.size(1) != spec.mean_size()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "recipe.dataset.mean: ", spec.mean_size(), " values for data with ",
                inputs.dim() < 2 ? 0 : inputs.size(1), " channels (", data->name(), ")"));
          }
          std::vector<int64_t> shape(inputs.dim(), 1);
          shape[1] = spec.mean_size();
          const torch::Tensor mean =
              torch::tensor(std::vector<float>(spec.mean().begin(), spec.mean().end()))
                  .view(shape);
          const torch::Tensor stddev =
              torch::tensor(std::vector<float>(spec.stddev().begin(), spec.stddev().end()))
                  .view(shape);
          inputs = (inputs - mean) / stddev;
        }
        return training::Dataset::FromTensors(data->name(), inputs.contiguous(), labels);
      });
}

absl::StatusOr<std::unique_ptr<training::Dataset>> LoadSplit(const v1::DatasetSpec& spec,
                                                             const std::string& path,
                                                             const std::string& split,
                                                             int64_t max_examples) {
  const std::string format = DatasetFormatName(spec.format());
  if (format.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.dataset.format: ", v1::DatasetFormat_Name(spec.format()),
                     " is not supported by this worker (supported: DATASET_FORMAT_IDX)"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<training::Dataset> data,
                   training::LoadDataset(format, path, split));
  return Prepare(std::move(data), spec, max_examples);
}

struct ParameterCounts {
  int64_t parameters = 0;
  int64_t nonzero = 0;
  int64_t weight_elements = 0;  // conv and linear weights: parameters of 2+ dims
  int64_t zero_weights = 0;
};

ParameterCounts CountParameters(torch::jit::Module& model) {
  ParameterCounts counts;
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& p : model.parameters()) {
    const int64_t nonzero = p.count_nonzero().item<int64_t>();
    counts.parameters += p.numel();
    counts.nonzero += nonzero;
    if (p.dim() >= 2) {
      counts.weight_elements += p.numel();
      counts.zero_weights += p.numel() - nonzero;
    }
  }
  return counts;
}

// Median milliseconds of a batch-1 forward of the saved model on `device`.
absl::StatusOr<double> MeasureLatencyMs(const std::string& model_path, const std::string& device,
                                        const torch::Tensor& example) {
  return compression::CatchTorch("measuring latency", [&]() -> absl::StatusOr<double> {
    torch::jit::Module model = torch::jit::load(model_path, torch::Device(device));
    model.eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor input = example.unsqueeze(0).to(torch::Device(device));
    const bool cuda = absl::StartsWith(device, "cuda");
    std::vector<double> ms;
    for (int i = 0; i < kLatencyWarmup + kLatencyRuns; ++i) {
      const auto start = std::chrono::steady_clock::now();
      model.forward({input});
      if (cuda) torch::cuda::synchronize();
      const auto end = std::chrono::steady_clock::now();
      if (i >= kLatencyWarmup) ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
  });
}

// For slim: recipe.sparsifying_epochs is the default of its sparsifying_training_epochs.
std::string KwargsWithRecipeDefaults(const std::string& algorithm, const std::string& kwargs_json,
                                     const v1::TrainingRecipe& recipe) {
  Json kwargs = Json::parse(kwargs_json);
  if (algorithm == "slim" && recipe.sparsifying_epochs() > 0 &&
      !kwargs.contains("sparsifying_training_epochs")) {
    kwargs["sparsifying_training_epochs"] = recipe.sparsifying_epochs();
  }
  return kwargs.dump();
}

class Pipeline {
 public:
  Pipeline(const internal::ChildRequest& request, PipelineReporter& reporter)
      : request_(request), trial_(request.trial()), reporter_(reporter) {}

  absl::Status Run(internal::ChildResult& result);

 private:
  void Enter(const std::string& phase) { reporter_.Phase(phase); }
  // Ends the timed section running (its seconds_<name> metric) and starts `name` ("" =
  // none).
  void Section(const std::string& name) {
    const absl::Time now = absl::Now();
    if (!section_.empty()) {
      AddMetric(timings_, "seconds_" + section_, absl::ToDoubleSeconds(now - section_start_));
    }
    section_ = name;
    section_start_ = now;
  }
  absl::Status CheckFinite(double loss, const std::string& where) const {
    if (std::isfinite(loss)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "the loss is ", loss, " ", where, " (recipe.optimizer.learning_rate ",
        recipe_.lr, " may be too high)"));
  }

  const internal::ChildRequest& request_;
  const v1::TrialSpec& trial_;
  PipelineReporter& reporter_;
  training::Recipe recipe_;
  v1::MetricReport timings_;
  std::string section_;
  absl::Time section_start_;
};

absl::Status Pipeline::Run(internal::ChildResult& result) {
  const absl::Time start = absl::Now();
  Enter("decoding parameters");
  v1::TrainingRecipe spec_recipe = trial_.recipe();
  ASSIGN_OR_RETURN(DecodedParameters decoded,
                   DecodeTrialParameters(trial_.parameters_json(), spec_recipe));
  if (!spec_recipe.module().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recipe.module: '", spec_recipe.module(), "' is not compiled into this worker"));
  }
  recipe_ = TrainingRecipeOf(trial_, spec_recipe);
  RETURN_IF_ERROR(training::ValidateRecipe(recipe_));
  ASSIGN_OR_RETURN(const EvaluatorSpec* evaluator, FindEvaluator(spec_recipe.evaluator()));
  training::Recipe eval_recipe = recipe_;
  if (spec_recipe.dataset().eval_batch_size() > 0) {
    eval_recipe.batch_size = spec_recipe.dataset().eval_batch_size();
  }
  const std::string device = trial_.devices_size() > 0 ? trial_.devices(0) : "cpu";
  if (trial_.cpu_threads() > 0) at::set_num_threads(trial_.cpu_threads());
  torch::manual_seed(recipe_.seed);

  Section("load");
  Enter("loading data");
  ASSIGN_OR_RETURN(std::unique_ptr<training::Dataset> train,
                   LoadSplit(spec_recipe.dataset(), request_.train_path(), "train", 0));
  const int64_t max_eval = static_cast<int64_t>(spec_recipe.max_eval_batches()) * eval_recipe.batch_size;
  ASSIGN_OR_RETURN(std::unique_ptr<training::Dataset> eval,
                   LoadSplit(spec_recipe.dataset(), request_.eval_path(), "test", max_eval));
  Enter("loading model");
  absl::StatusOr<std::unique_ptr<compression::CompressionSession>> loaded =
      compression::CompressionSession::Load(request_.model_path(), device);
  if (!loaded.ok()) {
    // Named by the artifact the user gave, not by its path in the node's cache.
    return absl::Status(loaded.status().code(),
                        absl::StrCat("model ", trial_.model().name(), " (", trial_.model().sha256(),
                                     ") on ", device, ": ", loaded.status().message()));
  }
  std::unique_ptr<compression::CompressionSession> session = std::move(*loaded);

  Section("compress");
  training::DatasetTrainingHooks hooks(*train, recipe_);
  if (!decoded.algorithm.empty()) {
    Enter(absl::StrCat("compressing (", decoded.algorithm, ")"));
    compression::CompressOptions options;
    options.algorithm = decoded.algorithm;
    options.config_list_json = decoded.config_list_json;
    options.kwargs_json = KwargsWithRecipeDefaults(decoded.algorithm, decoded.kwargs_json, spec_recipe);
    options.hooks = &hooks;
    RETURN_IF_ERROR(session->Compress(options));
  }

  Section("evaluate_zero_shot");
  Enter("evaluating after compression");
  ASSIGN_OR_RETURN(training::Evaluation zero_shot, training::Evaluate(session->module(), *eval, eval_recipe));
  v1::MetricReport step0;
  step0.set_step(0);
  AddEvaluation(step0, *evaluator, zero_shot);
  *step0.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  reporter_.Intermediate(step0);

  Section("finetune");
  const int epochs = spec_recipe.finetune_epochs();
  absl::Status epoch_error;
  double train_seconds = 0;
  int64_t train_examples = 0;
  absl::Time epoch_start;
  bool in_epoch = false;
  if (epochs > 0) {
    Enter("fine-tuning epoch 1");
    training::FineTuneCallbacks callbacks;
    callbacks.on_epoch_end = [&](const training::EpochMetrics& m) {
      epoch_error = CheckFinite(m.train.mean_loss, absl::StrCat("in fine-tuning epoch ", m.epoch + 1));
      if (!epoch_error.ok()) return training::EpochDecision::kStop;
      train_examples += m.train.examples;
      v1::MetricReport report;
      report.set_step(m.epoch + 1);
      AddEvaluation(report, *evaluator, *m.validation);
      AddMetric(report, "train_loss", m.train.mean_loss);
      AddMetric(report, "learning_rate", m.learning_rate);
      *report.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
      reporter_.Intermediate(report);
      if (m.epoch + 1 < epochs) reporter_.Phase(absl::StrCat("fine-tuning epoch ", m.epoch + 2));
      return training::EpochDecision::kContinue;
    };
    // Training time alone (the per-epoch validation excluded), for throughput.
    callbacks.observer.before_forward = [&](torch::jit::Module&, const torch::Tensor&) {
      if (!in_epoch) epoch_start = absl::Now();
      in_epoch = true;
    };
    callbacks.observer.after_epoch = [&](torch::jit::Module&) {
      train_seconds += absl::ToDoubleSeconds(absl::Now() - epoch_start);
      in_epoch = false;
    };
    training::TrainingData data{train.get(), eval.get()};
    ASSIGN_OR_RETURN(training::FineTuneResult tuned,
                     training::FineTune(*session, data, recipe_, epochs, callbacks));
    RETURN_IF_ERROR(epoch_error);
  }

  Section("evaluate");
  Enter("evaluating");
  ASSIGN_OR_RETURN(training::Evaluation final_eval, training::Evaluate(session->module(), *eval, eval_recipe));
  RETURN_IF_ERROR(CheckFinite(final_eval.mean_loss, "in the final evaluation"));
  const ParameterCounts counts = CountParameters(session->module());

  Section("export");
  Enter("exporting");
  const std::filesystem::path out(request_.output_dir());
  const std::string model_path = (out / "model.pt").string();
  RETURN_IF_ERROR(session->Save(model_path));
  std::error_code size_error;
  const auto model_bytes = std::filesystem::file_size(model_path, size_error);
  auto add_file = [&](const std::string& path, const std::string& name) {
    internal::ResultFile* file = result.add_files();
    file->set_path(path);
    file->set_name(name);
  };
  if (trial_.export_options().model()) add_file(model_path, "model.pt");
  auto write_text = [&](const std::string& name, const std::string& text) -> absl::Status {
    const std::string path = (out / name).string();
    FILE* f = fopen(path.c_str(), "w");
    if (f == nullptr || fwrite(text.data(), 1, text.size(), f) != text.size() || fclose(f) != 0) {
      return absl::InternalError(absl::StrCat("writing ", path, " failed"));
    }
    add_file(path, name);
    return absl::OkStatus();
  };
  if (trial_.export_options().report()) {
    ASSIGN_OR_RETURN(std::string report, session->ReportJson());
    RETURN_IF_ERROR(write_text("report.json", report));
  }
  if (trial_.export_options().calibration() && compression::IsQuantizer(decoded.algorithm)) {
    ASSIGN_OR_RETURN(std::string calibration, session->CalibrationJson());
    RETURN_IF_ERROR(write_text("calibration.json", calibration));
  }

  Section("latency");
  Enter("measuring latency");
  ASSIGN_OR_RETURN(double latency_ms, MeasureLatencyMs(model_path, device, eval->inputs()[0]));
  Section("");

  v1::MetricReport& report = *result.mutable_final_report();
  AddEvaluation(report, *evaluator, final_eval);
  AddEvaluation(report, *evaluator, zero_shot, "_zero_shot");
  AddMetric(report, "sparsity",
            counts.weight_elements == 0
                ? 0.0
                : static_cast<double>(counts.zero_weights) / counts.weight_elements);
  AddMetric(report, "parameters", static_cast<double>(counts.parameters));
  AddMetric(report, "nonzero_parameters", static_cast<double>(counts.nonzero));
  AddMetric(report, "model_bytes", size_error ? 0.0 : static_cast<double>(model_bytes));
  AddMetric(report, "latency_ms", latency_ms);
  if (train_seconds > 0) AddMetric(report, "train_images_per_second", train_examples / train_seconds);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  AddMetric(report, "peak_rss_bytes", static_cast<double>(usage.ru_maxrss) * 1024);
  for (const v1::Metric& m : timings_.metrics()) *report.add_metrics() = m;
  AddMetric(report, "seconds_total", absl::ToDoubleSeconds(absl::Now() - start));
  *report.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  result.set_state(v1::TRIAL_STATE_SUCCEEDED);
  return absl::OkStatus();
}

// Writes each message as it comes; a write that fails means the agent is gone, and the
// kernel ends this process with it (PR_SET_PDEATHSIG).
class PipeReporter final : public PipelineReporter {
 public:
  explicit PipeReporter(int fd) : fd_(fd) {}
  void Phase(const std::string& phase) override {
    internal::ChildMessage message;
    message.set_phase(phase);
    Write(message);
  }
  void Intermediate(const v1::MetricReport& report) override {
    internal::ChildMessage message;
    *message.mutable_intermediate() = report;
    Write(message);
  }
  void Write(const internal::ChildMessage& message) {
    (void)google::protobuf::util::SerializeDelimitedToFileDescriptor(message, fd_);
  }

 private:
  int fd_;
};

}  // namespace

internal::ChildResult RunTrialPipeline(const internal::ChildRequest& request,
                                       PipelineReporter& reporter) {
  internal::ChildResult result;
  Pipeline pipeline(request, reporter);
  absl::Status status = compression::CatchTorch("trial", [&] { return pipeline.Run(result); });
  if (!status.ok()) {
    result.Clear();
    result.set_state(v1::TRIAL_STATE_FAILED);
    *result.mutable_failure() = FailureOf(status);
  }
  return result;
}

int RunTrialChild(int in_fd, int out_fd) {
  internal::ChildRequest request;
  google::protobuf::io::FileInputStream input(in_fd);
  bool clean_eof = false;
  if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&request, &input, &clean_eof)) {
    fprintf(stderr, "run_trial: no trial request on stdin\n");
    return 2;
  }
  PipeReporter reporter(out_fd);
  internal::ChildMessage last;
  *last.mutable_result() = RunTrialPipeline(request, reporter);
  reporter.Write(last);
  return 0;
}

}  // namespace autocompress::worker
