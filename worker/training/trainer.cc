#include "worker/training/trainer.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <optional>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "compression/module_modes.h"
#include "compression/torch_status.h"

namespace autocompress::training {
namespace {

using compression::CatchTorch;
using compression::StatusFromCurrentException;

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// "[1, 32, 32]" images, or other inputs.
std::string DataText(const Dataset& data) {
  const std::vector<int64_t> shape = data.example_shape();
  return absl::StrCat(data.name(), ": ", shape.size() == 3 ? "images" : "inputs", " of shape ",
                      ShapeText(shape));
}

// The error's own line: TorchScript puts its traceback first and the operator's message
// ("RuntimeError: ...") last.
std::string LastLine(absl::string_view message) {
  std::string last;
  for (absl::string_view line : absl::StrSplit(message, '\n', absl::SkipWhitespace())) {
    last = std::string(absl::StripAsciiWhitespace(line));
  }
  return std::string(absl::StripPrefix(last, "RuntimeError: "));
}

std::vector<int64_t> Integers(const std::string& list) {
  std::vector<int64_t> out;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(item), &v)) out.push_back(v);
  }
  return out;
}

// The layers whose weight has `shape`, as "fc1 (Linear)".
std::string LayersWithWeight(torch::jit::Module& model, const std::vector<int64_t>& shape) {
  std::vector<std::string> names;
  for (const auto& item : model.named_modules()) {
    if (item.name.empty() || !item.value.hasattr("weight")) continue;
    const c10::IValue weight = item.value.attr("weight");
    if (!weight.isTensor() || weight.toTensor().sizes().vec() != shape) continue;
    const auto type = item.value.type()->name();
    names.push_back(absl::StrCat(item.name, " (", type ? type->name() : "module", ")"));
  }
  return names.empty() ? "a layer" : absl::StrJoin(names, " or ");
}

// What rejected the batch, from LibTorch's message for Linear and Conv shape errors;
// nullopt when the message is no such shape error.
std::optional<std::string> Rejection(torch::jit::Module& model, const std::string& message) {
  static const std::regex kLinear(
      R"(mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\))");
  static const std::regex kConv(
      R"(weight of size \[([0-9, ]+)\], expected input\[[0-9, ]+\] to have (\d+) channels, )"
      R"(but got (\d+) channels)");
  std::smatch m;
  if (std::regex_search(message, m, kLinear)) {
    const std::vector<int64_t> weight = {std::stoll(m[4]), std::stoll(m[3])};
    return absl::StrCat(LayersWithWeight(model, weight), " expects ", m[3].str(), " inputs, got ",
                        m[2].str());
  }
  if (std::regex_search(message, m, kConv)) {
    return absl::StrCat(LayersWithWeight(model, Integers(m[1])), " expects ", m[2].str(),
                        " input channels, got ", m[3].str());
  }
  return std::nullopt;
}

// The forward's output; a batch the model rejects is the data's error, not the model's.
absl::StatusOr<torch::Tensor> Forward(torch::jit::Module& model, const Dataset& data,
                                      const torch::Tensor& inputs) {
  try {
    return model.forward({inputs}).toTensor();
  } catch (...) {
    // TorchScript's interpreter rethrows operator errors as std::runtime_error; the model
    // and the data are both the user's, so only running out of memory is not their error.
    const absl::Status status = StatusFromCurrentException("forward");
    if (status.code() == absl::StatusCode::kResourceExhausted) return status;
    const std::string last = LastLine(status.message());
    if (std::optional<std::string> rejection = Rejection(model, last)) {
      return absl::InvalidArgumentError(
          absl::StrCat(DataText(data), " do not fit the model: ", *rejection));
    }
    // A device fault is not the user's input: it must stay retryable.
    for (const char* device_fault :
         {"CUDA error", "cuDNN error", "CUBLAS_STATUS", "illegal memory"}) {
      if (absl::StrContains(last, device_fault)) {
        return absl::InternalError(absl::StrCat("forward on ", DataText(data), ": ", last));
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("forward on ", DataText(data), ": ", last));
  }
}

absl::StatusOr<torch::Tensor> BatchLoss(const std::string& criterion, const Dataset& data,
                                        const torch::Tensor& outputs, const torch::Tensor& labels) {
  try {
    return Loss(criterion, outputs, labels);
  } catch (...) {
    const absl::Status status = StatusFromCurrentException(criterion);
    if (status.code() == absl::StatusCode::kResourceExhausted) return status;
    return absl::InvalidArgumentError(absl::StrCat(
        data.name(), ": labels do not fit the model's outputs of shape ",
        ShapeText(outputs.sizes().vec()), " (", criterion, "): ", LastLine(status.message())));
  }
}

// Sums per-batch values where they are computed and reads the total once: on CUDA an
// item() per batch would make every step wait for the device.
class DeviceSum {
 public:
  void Add(const torch::Tensor& value) {
    const torch::Tensor v = value.detach().to(torch::kDouble);
    sum_ = sum_.defined() ? sum_ + v : v;
  }
  double Read() const { return sum_.defined() ? sum_.item<double>() : 0; }

 private:
  torch::Tensor sum_;
};

absl::Status Call(const std::function<absl::Status()>& hook) {
  return hook ? hook() : absl::OkStatus();
}

absl::StatusOr<Batcher> MakeBatcher(torch::jit::Module& model, const Dataset& data,
                                    const Recipe& recipe, bool training) {
  ASSIGN_OR_RETURN(std::string device, ModelDevice(model));
  BatchOptions options;
  options.batch_size = recipe.batch_size;
  options.max_batches = training ? recipe.max_batches : 0;
  options.shuffle = training && recipe.shuffle;
  options.seed = recipe.seed;
  options.device = device;
  return Batcher::Create(data, options);
}

}  // namespace

absl::StatusOr<std::string> ModelDevice(torch::jit::Module& model) {
  std::string device = "cpu";
  RETURN_IF_ERROR(CatchTorch("the model's device", [&] {
    const auto parameters = model.parameters();
    const auto buffers = model.buffers();
    if (parameters.size() > 0) {
      device = (*parameters.begin()).device().str();
    } else if (buffers.size() > 0) {
      device = (*buffers.begin()).device().str();
    }
    return absl::OkStatus();
  }));
  return device;
}

EpochTrainer::EpochTrainer(torch::jit::Module& model, const Dataset& data, const Recipe& recipe,
                           Batcher batcher, std::unique_ptr<torch::optim::Optimizer> optimizer)
    : model_(&model),
      data_(&data),
      recipe_(recipe),
      batcher_(std::move(batcher)),
      optimizer_(std::move(optimizer)) {}

EpochTrainer::~EpochTrainer() = default;

absl::StatusOr<std::unique_ptr<EpochTrainer>> EpochTrainer::Create(
    torch::jit::Module& model, const std::vector<at::Tensor>& parameters, const Dataset& data,
    const Recipe& recipe) {
  ASSIGN_OR_RETURN(std::unique_ptr<torch::optim::Optimizer> optimizer,
                   MakeOptimizer(recipe, parameters));
  ASSIGN_OR_RETURN(Batcher batcher, MakeBatcher(model, data, recipe, /*training=*/true));
  return std::unique_ptr<EpochTrainer>(
      new EpochTrainer(model, data, recipe, std::move(batcher), std::move(optimizer)));
}

absl::StatusOr<EpochStats> EpochTrainer::RunEpoch(int64_t epoch, const StepHooks& hooks,
                                                  const TrainingObserver& observer) {
  EpochStats stats;
  DeviceSum loss_sum;
  torch::jit::Module& model = *model_;
  RETURN_IF_ERROR(CatchTorch(absl::StrCat(data_->name(), ": training epoch ", epoch), [&] {
    return batcher_.ForEach(
        epoch, [&](const torch::Tensor& inputs, const torch::Tensor& labels) -> absl::Status {
          optimizer_->zero_grad();
          if (observer.before_forward) observer.before_forward(model, inputs);
          ASSIGN_OR_RETURN(torch::Tensor outputs, Forward(model, *data_, inputs));
          ASSIGN_OR_RETURN(torch::Tensor loss,
                           BatchLoss(recipe_.criterion, *data_, outputs, labels));
          loss.backward();
          RETURN_IF_ERROR(Call(hooks.before_step));
          optimizer_->step();
          if (observer.after_optimizer_step) observer.after_optimizer_step(model);
          RETURN_IF_ERROR(Call(hooks.after_step));
          ++stats.batches;
          stats.examples += labels.size(0);
          loss_sum.Add(loss * labels.size(0));
          return absl::OkStatus();
        });
  }));
  RETURN_IF_ERROR(CatchTorch(absl::StrCat(data_->name(), ": training epoch ", epoch), [&] {
    stats.mean_loss = stats.examples > 0 ? loss_sum.Read() / stats.examples : 0;
    return absl::OkStatus();
  }));
  if (observer.after_epoch) observer.after_epoch(model);
  return stats;
}

void EpochTrainer::SetLearningRate(double lr) {
  for (torch::optim::OptimizerParamGroup& group : optimizer_->param_groups()) {
    group.options().set_lr(lr);
  }
}

absl::StatusOr<Evaluation> Evaluate(torch::jit::Module& model, const Dataset& data,
                                    const Recipe& recipe) {
  RETURN_IF_ERROR(ValidateRecipe(recipe));
  ASSIGN_OR_RETURN(Batcher batcher, MakeBatcher(model, data, recipe, /*training=*/false));
  Evaluation result;
  DeviceSum loss_sum, correct, correct_top5;
  const compression::ModeScope eval_mode(model, /*training=*/false);
  const absl::Status status = CatchTorch(absl::StrCat(data.name(), ": evaluating"), [&] {
    torch::NoGradGuard no_grad;
    return batcher.ForEach(
        0, [&](const torch::Tensor& inputs, const torch::Tensor& labels) -> absl::Status {
          ASSIGN_OR_RETURN(torch::Tensor outputs, Forward(model, data, inputs));
          ASSIGN_OR_RETURN(torch::Tensor loss, BatchLoss(recipe.criterion, data, outputs, labels));
          result.examples += labels.size(0);
          correct.Add(outputs.argmax(1).eq(labels).sum());
          const int64_t k = std::min<int64_t>(5, outputs.size(1));
          correct_top5.Add(std::get<1>(outputs.topk(k, 1)).eq(labels.unsqueeze(1)).any(1).sum());
          loss_sum.Add(loss * labels.size(0));
          return absl::OkStatus();
        });
  });
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(CatchTorch(absl::StrCat(data.name(), ": evaluating"), [&] {
    result.correct = static_cast<int64_t>(correct.Read());
    result.correct_top5 = static_cast<int64_t>(correct_top5.Read());
    result.mean_loss = loss_sum.Read() / result.examples;
    return absl::OkStatus();
  }));
  result.accuracy = static_cast<double>(result.correct) / result.examples;
  result.top5_accuracy = static_cast<double>(result.correct_top5) / result.examples;
  return result;
}

}  // namespace autocompress::training
