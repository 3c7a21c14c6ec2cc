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
#include "compression/speedup.h"
#include "compression/torch_status.h"
#include "glog/logging.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "google/protobuf/util/time_util.h"
#include "nlohmann/json.hpp"
#include "worker/auto_compression_module.h"
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
struct SpedUp {
  torch::jit::Module model;
  compression::SpeedupResult result;
  compression::ModelSize size;
};

// Replaces the saved masked model at `model_path` by its sped-up version, after checking
// on `example` that both compute the same.
absl::StatusOr<SpedUp> SpeedUpSaved(const std::string& model_path, const std::string& device,
                                    const torch::Tensor& example) {
  SpedUp sped;
  double difference = 0;
  try {
    torch::NoGradGuard no_grad;
    torch::jit::Module masked = torch::jit::load(model_path, torch::Device(device));
    sped.model = torch::jit::load(model_path, torch::Device(device));
    masked.eval();
    sped.model.eval();
    ASSIGN_OR_RETURN(sped.result, compression::SpeedupModule(sped.model));
    const torch::Tensor x = example.to(torch::Device(device));
    const torch::Tensor expected = masked.forward({x}).toTensor();
    const torch::Tensor actual = sped.model.forward({x}).toTensor();
    difference =
        ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item<double>();
    if (!(difference <= 1e-4)) {
      return absl::InternalError(
          absl::StrCat("the sped-up model's outputs differ from the masked "
                       "model's by ",
                       difference, " (relative); not exported"));
    }
    const std::string temporary = model_path + ".sped-up";
    sped.model.save(temporary);
    std::filesystem::rename(temporary, model_path);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("speeding up ", model_path, ": ", e.what()));
  }
  ASSIGN_OR_RETURN(sped.size, compression::SizeOfModel(sped.model));
  return sped;
}

absl::StatusOr<double> MeasureLatencyMs(const std::string& model_path, const std::string& device,
                                        const torch::Tensor& batch) {
  return compression::CatchTorch("measuring latency", [&]() -> absl::StatusOr<double> {
    torch::jit::Module model = torch::jit::load(model_path, torch::Device(device));
    model.eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor input = batch.to(torch::Device(device));
    const bool cuda = absl::StartsWith(device, "cuda");
    std::vector<double> ms;
    for (int i = 0; i < kLatencyWarmup + kLatencyRuns; ++i) {
      const auto start = std::chrono::steady_clock::now();
      model.forward({input});
      if (cuda) torch::cuda::synchronize();
      const auto end = std::chrono::steady_clock::now();
      if (i >= kLatencyWarmup)
        ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
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

// ---- Checkpoints (recipe.checkpoint_epochs) -----------------------------------------
// A torch::serialize archive of "epoch", "trainable_<i>" (TrainableParameters(): the
// parameters, with float shadows for quantized weights) and "buffer_<i>" (the model's
// buffers, e.g. BatchNorm statistics), on the CPU so another device can resume it. The
// same compress step (deterministic by seed) gives the same tensors in the same order.

std::vector<at::Tensor> Buffers(torch::jit::Module& module) {
  std::vector<at::Tensor> buffers;
  for (const auto& buffer : module.named_buffers(/*recurse=*/true)) buffers.push_back(buffer.value);
  return buffers;
}

// Where fine-tuning stands: epochs done, and optimizer steps done (the step of
// recipe.report_every_batches reports).
struct Progress {
  int epoch = 0;
  int64_t steps = 0;
};

absl::Status SaveCheckpoint(compression::CompressionSession& session, Progress progress,
                            const std::string& path) {
  return compression::CatchTorch("writing a checkpoint", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<at::Tensor> trainable, session.TrainableParameters());
    torch::serialize::OutputArchive archive;
    archive.write("epoch", torch::tensor(static_cast<int64_t>(progress.epoch)));
    archive.write("steps", torch::tensor(progress.steps));
    for (size_t i = 0; i < trainable.size(); ++i) {
      archive.write(absl::StrCat("trainable_", i), trainable[i].detach().cpu());
    }
    const std::vector<at::Tensor> buffers = Buffers(session.module());
    for (size_t i = 0; i < buffers.size(); ++i) {
      archive.write(absl::StrCat("buffer_", i), buffers[i].detach().cpu(), /*is_buffer=*/true);
    }
    archive.save_to(path);
    return absl::OkStatus();
  });
}

// Loads a checkpoint into the compressed model and returns where it stood;
// InvalidArgument, with the model untouched, for a file that does not fit it (tensor
// count or shapes).
absl::StatusOr<Progress> LoadCheckpoint(compression::CompressionSession& session,
                                        const std::string& path) {
  return compression::CatchTorch("loading the checkpoint", [&]() -> absl::StatusOr<Progress> {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    // Each read into a fresh (undefined) tensor: reading into a defined one re-points
    // it, and the one read before aliases the archive's own tensor.
    torch::Tensor epoch, steps;
    archive.read("epoch", epoch);
    archive.read("steps", steps);
    ASSIGN_OR_RETURN(std::vector<at::Tensor> trainable, session.TrainableParameters());
    const std::vector<at::Tensor> buffers = Buffers(session.module());
    // Everything is read and checked before anything is copied.
    auto read = [&](const std::string& prefix, const std::vector<at::Tensor>& into,
                    bool is_buffer) -> absl::StatusOr<std::vector<torch::Tensor>> {
      std::vector<torch::Tensor> saved(into.size());
      for (size_t i = 0; i < into.size(); ++i) {
        const std::string key = absl::StrCat(prefix, i);
        if (!archive.try_read(key, saved[i], is_buffer) || saved[i].sizes() != into[i].sizes()) {
          return absl::InvalidArgumentError(
              absl::StrCat("checkpoint ", path, ": ", key, " is missing or of another shape"));
        }
      }
      torch::Tensor extra;
      if (archive.try_read(absl::StrCat(prefix, into.size()), extra, is_buffer)) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path, " has more ", prefix,
                                                       "* tensors than the model's ", into.size()));
      }
      return saved;
    };
    ASSIGN_OR_RETURN(const std::vector<torch::Tensor> saved_trainable,
                     read("trainable_", trainable, false));
    ASSIGN_OR_RETURN(const std::vector<torch::Tensor> saved_buffers,
                     read("buffer_", buffers, true));
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < trainable.size(); ++i) trainable[i].copy_(saved_trainable[i]);
    for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved_buffers[i]);
    // Masks applied again and quantized weights re-made from their loaded shadows.
    RETURN_IF_ERROR(session.OnOptimizerStep());
    return Progress{static_cast<int>(epoch.item<int64_t>()), steps.item<int64_t>()};
  });
}

void AddMetrics(v1::MetricReport& report, const Metrics& metrics, const std::string& suffix = "") {
  for (const auto& [name, value] : metrics) AddMetric(report, name + suffix, value);
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
  absl::Status CheckFinite(const Metrics& metrics, const char* name,
                           const std::string& where) const {
    auto it = metrics.find(name);
    if (it == metrics.end() || std::isfinite(it->second)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "the ", name, " is ", it->second, " ", where, " (recipe.optimizer.learning_rate ",
        recipe_.optimizer().learning_rate(), " may be too high)"));
  }
  void Report(int64_t step, const Metrics& metrics) {
    v1::MetricReport report;
    report.set_step(step);
    AddMetrics(report, metrics);
    *report.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
    reporter_.Intermediate(report);
  }

  const internal::ChildRequest& request_;
  const v1::TrialSpec& trial_;
  PipelineReporter& reporter_;
  v1::TrainingRecipe recipe_;
  v1::MetricReport timings_;
  std::string section_;
  absl::Time section_start_;
};

absl::Status Pipeline::Run(internal::ChildResult& result) {
  const absl::Time start = absl::Now();
  Enter("decoding parameters");
  recipe_ = trial_.recipe();
  // The baseline evaluates the model as given: no parameters, compression, fine-tuning
  // or model export.
  const bool baseline = trial_.baseline();
  DecodedParameters decoded;
  if (!baseline) {
    ASSIGN_OR_RETURN(decoded, DecodeTrialParameters(trial_.parameters_json(), recipe_));
  }
  LOG(INFO) << "trial=" << trial_.trial_id() << " attempt=" << trial_.attempt()
            << " algorithm=" << (decoded.algorithm.empty() ? "none" : decoded.algorithm)
            << " config_list=" << decoded.config_list_json << " kwargs=" << decoded.kwargs_json
            << " recipe_overrides=" << absl::StrJoin(decoded.recipe_overrides, ",");
  std::unique_ptr<AutoCompressionModule> module;
  if (recipe_.module().empty()) {
    module = MakeRecipeModule();
  } else {
    ASSIGN_OR_RETURN(module, CreateAutoCompressionModule(recipe_.module()));
  }
  ModuleContext context;
  context.trial = &trial_;
  context.recipe = &recipe_;
  context.model_path = request_.model_path();
  context.train_path = request_.train_path();
  context.eval_path = request_.eval_path();
  context.device = trial_.devices_size() > 0 ? trial_.devices(0) : "cpu";
  if (trial_.cpu_threads() > 0) at::set_num_threads(trial_.cpu_threads());
  torch::manual_seed(trial_.seed() != 0 ? trial_.seed() : 1);

  Section("load");
  Enter("loading data");
  RETURN_IF_ERROR(module->Init(context));
  Enter("loading model");
  ASSIGN_OR_RETURN(std::unique_ptr<compression::CompressionSession> session,
                   module->Model(context));

  Section("compress");
  if (!decoded.algorithm.empty()) {
    Enter(absl::StrCat("compressing (", decoded.algorithm, ")"));
    compression::CompressOptions options;
    options.algorithm = decoded.algorithm;
    options.config_list_json = decoded.config_list_json;
    options.kwargs_json = KwargsWithRecipeDefaults(decoded.algorithm, decoded.kwargs_json, recipe_);
    options.hooks = module->SparsifyingTrainer(decoded.algorithm);
    if (options.hooks == nullptr && compression::TrainsBeforePruning(decoded.algorithm)) {
      return absl::InvalidArgumentError(absl::StrCat("recipe.module: '", recipe_.module(),
                                                     "' has no sparsifying trainer for ",
                                                     decoded.algorithm));
    }
    RETURN_IF_ERROR(session->Compress(options));
  }

  const int epochs = baseline ? 0 : module->FineTuneEpochs(decoded.algorithm);
  // Resuming: the epochs the checkpoint holds are not run again; their reports (and the
  // zero-shot one) are sent again from it, so this attempt's curve is whole.
  int first_epoch = 0;
  int64_t resumed_steps = 0;
  Metrics zero_shot;
  if (!baseline && !request_.resume_path().empty()) {
    Enter("loading the checkpoint");
    absl::StatusOr<Progress> resumed = LoadCheckpoint(*session, request_.resume_path());
    if (resumed.ok() && resumed->epoch >= 1 && resumed->epoch < epochs) {
      first_epoch = resumed->epoch;
      resumed_steps = resumed->steps;
      for (const v1::MetricReport& report : trial_.resume_from().reports()) {
        reporter_.Intermediate(report);
        if (report.step() == 0) {
          for (const v1::Metric& m : report.metrics()) zero_shot[m.name()] = m.value();
        }
      }
    } else {
      LOG(WARNING) << "trial=" << trial_.trial_id() << " attempt=" << trial_.attempt()
                   << " checkpoint not used ("
                   << (resumed.ok() ? absl::StrCat("epoch ", resumed->epoch, " of ", epochs)
                                    : std::string(resumed.status().message()))
                   << "): fine-tuning starts afresh";
    }
  }
  if (!baseline && first_epoch == 0) {
    Section("evaluate_zero_shot");
    Enter("evaluating after compression");
    ASSIGN_OR_RETURN(zero_shot, module->Evaluate(session->module()));
    Report(0, zero_shot);
  }

  Section("finetune");
  // Reports every N batches (step = optimizer steps) instead of per epoch, if asked.
  const int64_t every = recipe_.report_every_batches();
  int64_t steps = resumed_steps;
  double eval_seconds = 0;  // spent in those reports, not in training
  AutoCompressionModule::StepCallback after_step;
  if (every > 0) {
    after_step = [&]() -> absl::Status {
      if (++steps % every != 0) return absl::OkStatus();
      const absl::Time eval_start = absl::Now();
      ASSIGN_OR_RETURN(const Metrics validation, module->Evaluate(session->module()));
      eval_seconds += absl::ToDoubleSeconds(absl::Now() - eval_start);
      Report(steps, validation);
      return absl::OkStatus();
    };
  }
  double train_seconds = 0, train_examples = 0;
  const std::filesystem::path out(request_.output_dir());
  for (int epoch = first_epoch; epoch < epochs; ++epoch) {
    const std::string where = absl::StrCat("in fine-tuning epoch ", epoch + 1);
    Enter(absl::StrCat("fine-tuning epoch ", epoch + 1));
    const absl::Time epoch_start = absl::Now();
    eval_seconds = 0;
    ASSIGN_OR_RETURN(Metrics metrics,
                     module->FineTuneEpoch(decoded.algorithm, *session, epoch, after_step));
    train_seconds += absl::ToDoubleSeconds(absl::Now() - epoch_start) - eval_seconds;
    RETURN_IF_ERROR(CheckFinite(metrics, "train_loss", where));
    if (auto it = metrics.find("train_examples"); it != metrics.end()) {
      train_examples += it->second;
      metrics.erase(it);
    }
    if (every == 0) {  // else reported per batch
      ASSIGN_OR_RETURN(const Metrics validation, module->Evaluate(session->module()));
      metrics.insert(validation.begin(), validation.end());
      Report(epoch + 1, metrics);
    }
    if (recipe_.checkpoint_epochs() && epoch + 1 < epochs) {
      const std::string path = (out / absl::StrCat("checkpoint-", epoch + 1, ".pt")).string();
      if (absl::Status saved = SaveCheckpoint(*session, {epoch + 1, steps}, path); saved.ok()) {
        reporter_.Checkpoint(path, epoch + 1);
      } else {  // costs a re-run the epochs since the last one, not this attempt
        LOG(WARNING) << "trial=" << trial_.trial_id() << " " << saved;
      }
    }
  }

  Section("evaluate");
  Enter("evaluating");
  ASSIGN_OR_RETURN(const Metrics final_metrics, module->Evaluate(session->module()));
  RETURN_IF_ERROR(CheckFinite(final_metrics, "loss", "in the final evaluation"));
  ParameterCounts counts = CountParameters(session->module());
  ASSIGN_OR_RETURN(compression::ModelSize size, session->Size());

  Section("export");
  Enter("exporting");
  const std::string model_path = (out / "model.pt").string();
  RETURN_IF_ERROR(session->Save(model_path));
  std::error_code size_error;
  const auto model_bytes = std::filesystem::file_size(model_path, size_error);
  auto add_file = [&](const std::string& path, const std::string& name) {
    internal::ResultFile* file = result.add_files();
    file->set_path(path);
    file->set_name(name);
  };
  ASSIGN_OR_RETURN(const torch::Tensor example, module->ExampleInput());
  std::string speedup_json;
  if (trial_.export_options().speedup() && !baseline &&
      !compression::IsQuantizer(decoded.algorithm)) {
    Enter("speeding up the model");
    ASSIGN_OR_RETURN(SpedUp sped, SpeedUpSaved(model_path, context.device, example));
    counts = CountParameters(sped.model);
    size = sped.size;
    speedup_json = compression::SpeedupResultJson(sped.result);
  }
  if (trial_.export_options().model() && !baseline) add_file(model_path, "model.pt");
  auto write_text = [&](const std::string& name, const std::string& text) -> absl::Status {
    const std::string path = (out / name).string();
    FILE* f = fopen(path.c_str(), "w");
    if (f == nullptr || fwrite(text.data(), 1, text.size(), f) != text.size() || fclose(f) != 0) {
      return absl::InternalError(absl::StrCat("writing ", path, " failed"));
    }
    add_file(path, name);
    return absl::OkStatus();
  };
  if (trial_.export_options().report() && !baseline) {
    ASSIGN_OR_RETURN(std::string report, session->ReportJson());
    RETURN_IF_ERROR(write_text("report.json", report));
  }
  if (!speedup_json.empty()) RETURN_IF_ERROR(write_text("speedup.json", speedup_json));
  if (trial_.export_options().calibration() && compression::IsQuantizer(decoded.algorithm)) {
    ASSIGN_OR_RETURN(std::string calibration, session->CalibrationJson());
    RETURN_IF_ERROR(write_text("calibration.json", calibration));
  }

  Section("latency");
  Enter("measuring latency");
  ASSIGN_OR_RETURN(double latency_ms, MeasureLatencyMs(model_path, context.device, example));
  Section("");

  v1::MetricReport& report = *result.mutable_final_report();
  AddMetrics(report, final_metrics);
  AddMetrics(report, zero_shot, "_zero_shot");  // empty for the baseline
  AddMetric(report, "sparsity",
            counts.weight_elements == 0
                ? 0.0
                : static_cast<double>(counts.zero_weights) / counts.weight_elements);
  AddMetric(report, "parameters", static_cast<double>(counts.parameters));
  AddMetric(report, "nonzero_parameters", static_cast<double>(counts.nonzero));
  AddMetric(report, "model_bytes", size_error ? 0.0 : static_cast<double>(model_bytes));
  AddMetric(report, "effective_bytes", static_cast<double>(size.effective_bytes));
  AddMetric(report, "dense_bytes", static_cast<double>(size.dense_bytes));
  AddMetric(report, "compression_ratio",
            size.effective_bytes == 0 ? 1.0
                                      : static_cast<double>(size.dense_bytes) /
                                            static_cast<double>(size.effective_bytes));
  AddMetric(report, "latency_ms", latency_ms);
  if (first_epoch > 0) AddMetric(report, "resumed_from_epoch", first_epoch);
  if (train_seconds > 0 && train_examples > 0) {
    AddMetric(report, "train_images_per_second", train_examples / train_seconds);
  }
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
  void Checkpoint(const std::string& path, int epoch) override {
    internal::ChildMessage message;
    message.mutable_checkpoint()->set_path(path);
    message.mutable_checkpoint()->set_epoch(epoch);
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
