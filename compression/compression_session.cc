#include "compression/compression_session.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "compression/kernels/prune_kernels.h"
#include "compression/pruning.h"
#include "compression/torch_status.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using Json = nlohmann::ordered_json;

// Masks of one layer and what the report says about it.
struct LayerState {
  torch::Tensor weight_mask;
  torch::Tensor bias_mask;  // undefined when the layer has no bias
  double config_sparsity = 0;
  int64_t filters_total = 0;
  std::vector<int64_t> kept_filters;  // filter pruners only
};

torch::Tensor Attr(const torch::jit::Module& module, const std::string& name) {
  if (!module.hasattr(name)) return {};
  torch::IValue value = module.attr(name);
  return value.isTensor() ? value.toTensor() : torch::Tensor();
}

absl::StatusOr<torch::Device> ParseDevice(const std::string& device) {
  try {
    torch::Device parsed(device);
    if (parsed.is_cuda() && !torch::cuda::is_available()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "device ", device, " requested but CUDA is not available to this LibTorch build"));
    }
    if (parsed.is_cuda() && parsed.has_index() &&
        parsed.index() >= static_cast<int>(torch::cuda::device_count())) {
      return absl::FailedPreconditionError(absl::StrCat("device ", device, " requested but only ",
                                                        torch::cuda::device_count(),
                                                        " CUDA device(s) exist"));
    }
    return parsed;
  } catch (...) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", device, "' is not 'cpu' or 'cuda:N'"));
  }
}

}  // namespace

struct CompressionSession::Impl {
  torch::jit::Module model;
  torch::Device device = torch::kCPU;
  std::vector<LayerInfo> layers;
  std::map<std::string, torch::jit::Module> modules;  // by layer name
  std::string algorithm;
  std::map<std::string, LayerState> states;  // compressed layers, by name

  // Each masked parameter next to its mask, in layer order.
  void MaskedTensors(std::vector<torch::Tensor>& params, std::vector<torch::Tensor>& masks) {
    for (auto& [name, state] : states) {
      const torch::jit::Module& m = modules.at(name);
      params.push_back(Attr(m, "weight"));
      masks.push_back(state.weight_mask);
      if (state.bias_mask.defined()) {
        params.push_back(Attr(m, "bias"));
        masks.push_back(state.bias_mask);
      }
    }
  }

  absl::Status Prune(const std::vector<LayerAssignment>& assignments) {
    torch::NoGradGuard no_grad;
    for (const LayerAssignment& a : assignments) {
      const LayerInfo& layer = layers[a.layer];
      const torch::jit::Module& m = modules.at(layer.name);
      torch::Tensor weight = Attr(m, "weight");
      torch::Tensor bias = layer.has_bias ? Attr(m, "bias") : torch::Tensor();
      LayerState state;
      state.config_sparsity = *a.config.sparsity;
      if (algorithm == "level") {
        state.weight_mask = LevelMask(weight, state.config_sparsity);
      } else {
        torch::Tensor scores = algorithm == "fpgm"
                                   ? kernels::FpgmDistanceSums(weight)
                                   : kernels::FilterNorms(weight, algorithm == "l1" ? 1 : 2);
        torch::Tensor keep = algorithm == "fpgm"
                                 ? IndexFilterKeep(scores, state.config_sparsity)
                                 : ThresholdFilterKeep(scores, state.config_sparsity);
        state.weight_mask = ExpandFilterKeep(keep, weight);
        if (bias.defined()) state.bias_mask = keep.to(bias.scalar_type()).contiguous();
        state.filters_total = keep.size(0);
        torch::Tensor kept = keep.nonzero().reshape({-1}).cpu();
        for (int64_t i = 0; i < kept.size(0); ++i)
          state.kept_filters.push_back(kept[i].item<int64_t>());
      }
      states[layer.name] = std::move(state);
    }
    std::vector<torch::Tensor> params, masks;
    MaskedTensors(params, masks);
    kernels::ApplyMasks(params, masks);
    return absl::OkStatus();
  }
};

CompressionSession::CompressionSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompressionSession::~CompressionSession() = default;

absl::StatusOr<std::unique_ptr<CompressionSession>> CompressionSession::Load(
    const std::string& model_path, const std::string& device) {
  if (!std::filesystem::exists(model_path)) {
    return absl::NotFoundError(absl::StrCat("model file ", model_path, " does not exist"));
  }
  ASSIGN_OR_RETURN(torch::Device parsed, ParseDevice(device));
  auto impl = std::make_unique<Impl>();
  impl->device = parsed;
  RETURN_IF_ERROR(CatchTorch(absl::StrCat("loading ", model_path), [&]() -> absl::Status {
    impl->model = torch::jit::load(model_path, parsed);
    for (const auto& item : impl->model.named_modules()) {
      if (item.name.empty()) continue;
      LayerInfo info;
      info.name = item.name;
      auto type_name = item.value.type()->name();
      info.type = type_name.has_value() ? type_name->name() : "?";
      torch::Tensor weight = Attr(item.value, "weight");
      if (weight.defined()) info.weight_shape = weight.sizes().vec();
      info.has_bias = Attr(item.value, "bias").defined();
      impl->modules.emplace(info.name, item.value);
      impl->layers.push_back(std::move(info));
    }
    return absl::OkStatus();
  }));
  return std::unique_ptr<CompressionSession>(new CompressionSession(std::move(impl)));
}

const std::vector<LayerInfo>& CompressionSession::layers() const { return impl_->layers; }

torch::jit::Module& CompressionSession::module() { return impl_->model; }

absl::Status CompressionSession::Compress(const CompressOptions& options) {
  if (!impl_->algorithm.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("this model was already compressed with ", impl_->algorithm));
  }
  ASSIGN_OR_RETURN(std::vector<LayerConfig> configs,
                   ParseConfigList(options.algorithm, options.config_list_json));
  ASSIGN_OR_RETURN(std::vector<LayerAssignment> assignments,
                   MatchLayers(options.algorithm, configs, impl_->layers));
  Json kwargs = Json::object();
  if (!options.kwargs_json.empty()) {
    try {
      kwargs = Json::parse(options.kwargs_json);
    } catch (const Json::parse_error& e) {
      return absl::InvalidArgumentError(absl::StrCat("kwargs: not valid JSON: ", e.what()));
    }
    if (!kwargs.is_object()) return absl::InvalidArgumentError("kwargs: must be a JSON object");
  }
  const std::string& algorithm = options.algorithm;
  const bool one_shot =
      algorithm == "level" || algorithm == "l1" || algorithm == "l2" || algorithm == "fpgm";
  if (!one_shot) {
    return absl::UnimplementedError(
        absl::StrCat(algorithm, " is not implemented yet; available: level, l1, l2, fpgm"));
  }
  for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
    if (algorithm != "level" && it.key() == "dependency_aware") {
      if (it.value() == true) {
        return absl::UnimplementedError("kwargs.dependency_aware: not implemented yet");
      }
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("kwargs.", it.key(), ": unknown argument for ", algorithm));
  }
  impl_->algorithm = algorithm;
  return CatchTorch(absl::StrCat("pruning with ", algorithm),
                    [&] { return impl_->Prune(assignments); });
}

absl::Status CompressionSession::BeforeOptimizerStep() {
  return CatchTorch("masking gradients", [&] {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> params, masks;
    impl_->MaskedTensors(params, masks);
    kernels::MaskGradients(params, masks);
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::OnOptimizerStep() {
  return CatchTorch("re-applying masks", [&] {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> params, masks;
    impl_->MaskedTensors(params, masks);
    kernels::ApplyMasksAndGrads(params, masks);
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::Save(const std::string& path) {
  return CatchTorch(absl::StrCat("saving ", path), [&] {
    RETURN_IF_ERROR(OnOptimizerStep());
    impl_->model.save(path);
    return absl::OkStatus();
  });
}

std::string CompressionSession::ReportJson() const {
  torch::NoGradGuard no_grad;
  Json report;
  report["algorithm"] = impl_->algorithm;
  report["device"] = impl_->device.str();
  Json layers = Json::array();
  int64_t total = 0, zeros = 0;
  for (const LayerInfo& info : impl_->layers) {
    const torch::jit::Module& m = impl_->modules.at(info.name);
    torch::Tensor weight = Attr(m, "weight");
    if (!weight.defined()) continue;
    auto it = impl_->states.find(info.name);
    const int64_t layer_zeros = weight.eq(0).sum().item<int64_t>();
    total += weight.numel();
    zeros += layer_zeros;
    if (it == impl_->states.end()) continue;
    const LayerState& state = it->second;
    Json layer;
    layer["name"] = info.name;
    layer["type"] = info.type;
    layer["config_sparsity"] = state.config_sparsity;
    layer["weight_sparsity"] = static_cast<double>(layer_zeros) / weight.numel();
    layer["weight_elements"] = weight.numel();
    if (state.filters_total > 0) {
      layer["filters_total"] = state.filters_total;
      layer["filters_kept"] = state.kept_filters.size();
      layer["kept_filter_indices"] = state.kept_filters;
    }
    layers.push_back(std::move(layer));
  }
  report["layers"] = std::move(layers);
  report["weight_elements"] = total;
  report["zero_weight_elements"] = zeros;
  report["model_sparsity"] = total == 0 ? 0.0 : static_cast<double>(zeros) / total;
  return report.dump(2);
}

}  // namespace autocompress::compression
