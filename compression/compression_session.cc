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
#include "compression/quantization.h"
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

// A quantized weight: the float shadow the optimizer trains and what was computed from it.
struct QuantState {
  int bits = 8;
  std::string scheme;
  std::string dtype;
  int quant_start_step = 0;
  torch::Tensor shadow;
  torch::Tensor ste_mask;       // undefined: gradients pass unchanged
  torch::Tensor scale;          // qat, naive
  torch::Tensor zero_point;     // qat
  torch::Tensor running_scale;  // naive
};

std::vector<double> ToVector(const torch::Tensor& t) {
  torch::Tensor flat = t.detach().to(torch::kDouble).cpu().contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
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
  std::map<std::string, LayerState> states;  // pruned layers, by name
  std::map<std::string, QuantState> quant;   // quantized layers, by name
  int64_t steps = 1;                         // QAT's step counter, as NNI's buffer

  bool quantizer() const {
    return algorithm == "naive" || algorithm == "qat" || algorithm == "dorefa" ||
           algorithm == "bnn";
  }

  // Writes the quantized value of every quantized weight, computed from its shadow.
  void Quantize() {
    torch::NoGradGuard no_grad;
    for (auto& [name, q] : quant) {
      torch::Tensor weight = Attr(modules.at(name), "weight");
      torch::Tensor value;
      if (algorithm == "naive") {
        value = NaiveQuantizeWeight(q.shadow, q.running_scale);
        q.scale = q.running_scale;
      } else if (algorithm == "dorefa") {
        value = DorefaQuantizeWeight(q.shadow, q.bits);
      } else if (algorithm == "bnn") {
        value = BnnQuantizeWeight(q.shadow);
      } else if (q.quant_start_step > steps) {
        value = q.shadow;  // QAT before quant_start_step: float weights
        q.ste_mask = torch::Tensor();
      } else {
        value = QatQuantizeWeight(q.shadow, q.bits, q.scheme, q.dtype, &q.scale, &q.zero_point,
                                  &q.ste_mask);
      }
      weight.copy_(value);
    }
  }

  absl::Status StartQuantization(const std::vector<LayerAssignment>& assignments) {
    for (const LayerAssignment& a : assignments) {
      for (const std::string& type : a.config.quant_types) {
        if (type != "weight") {
          return absl::UnimplementedError(
              absl::StrCat("quantizing ", type, "s (layer ", layers[a.layer].name,
                           ") needs the TorchScript graph rewrite, which is not implemented yet; "
                           "quant_types [\"weight\"] works"));
        }
      }
    }
    torch::NoGradGuard no_grad;
    for (const LayerAssignment& a : assignments) {
      const std::string& name = layers[a.layer].name;
      QuantState q;
      q.bits = a.config.quant_bits.at("weight");
      q.scheme = a.config.quant_scheme.count("weight") ? a.config.quant_scheme.at("weight") : "";
      q.dtype = a.config.quant_dtype.count("weight") ? a.config.quant_dtype.at("weight") : "uint";
      q.quant_start_step = a.config.quant_start_step;
      q.shadow = Attr(modules.at(name), "weight").detach().clone().requires_grad_(true);
      quant[name] = std::move(q);
    }
    Quantize();
    return absl::OkStatus();
  }

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
  const bool weight_quantizer =
      algorithm == "naive" || algorithm == "qat" || algorithm == "dorefa" || algorithm == "bnn";
  if (!one_shot && !weight_quantizer) {
    return absl::UnimplementedError(
        absl::StrCat(algorithm,
                     " is not implemented yet; available: level, l1, l2, fpgm, naive, qat, "
                     "dorefa, bnn (weights)"));
  }
  for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
    if (one_shot && algorithm != "level" && it.key() == "dependency_aware") {
      if (it.value() == true) {
        return absl::UnimplementedError("kwargs.dependency_aware: not implemented yet");
      }
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("kwargs.", it.key(), ": unknown argument for ", algorithm));
  }
  impl_->algorithm = algorithm;
  if (weight_quantizer) {
    return CatchTorch(absl::StrCat("quantizing with ", algorithm),
                      [&] { return impl_->StartQuantization(assignments); });
  }
  return CatchTorch(absl::StrCat("pruning with ", algorithm),
                    [&] { return impl_->Prune(assignments); });
}

std::vector<torch::Tensor> CompressionSession::TrainableParameters() {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : impl_->model.parameters()) {
    torch::Tensor chosen = p;
    for (auto& [name, q] : impl_->quant) {
      if (Attr(impl_->modules.at(name), "weight").is_same(p)) chosen = q.shadow;
    }
    out.push_back(chosen);
  }
  return out;
}

absl::Status CompressionSession::BeforeOptimizerStep() {
  return CatchTorch("masking gradients", [&] {
    torch::NoGradGuard no_grad;
    for (auto& [name, q] : impl_->quant) {
      torch::Tensor weight = Attr(impl_->modules.at(name), "weight");
      if (!weight.grad().defined()) continue;
      torch::Tensor grad = weight.grad().detach().clone();
      if (q.ste_mask.defined()) grad.mul_(q.ste_mask);
      q.shadow.mutable_grad() = grad;
      weight.mutable_grad().zero_();  // the optimizer never sees the quantized weight
    }
    std::vector<torch::Tensor> params, masks;
    impl_->MaskedTensors(params, masks);
    kernels::MaskGradients(params, masks);
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::OnOptimizerStep() {
  return CatchTorch("re-applying masks", [&] {
    torch::NoGradGuard no_grad;
    if (impl_->quantizer()) {
      ++impl_->steps;
      impl_->Quantize();
      return absl::OkStatus();
    }
    std::vector<torch::Tensor> params, masks;
    impl_->MaskedTensors(params, masks);
    kernels::ApplyMasksAndGrads(params, masks);
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::Save(const std::string& path) {
  return CatchTorch(absl::StrCat("saving ", path), [&] {
    torch::NoGradGuard no_grad;
    // Pruned weights are folded (exactly zero); quantized weights already hold their
    // fake-quantized values.
    std::vector<torch::Tensor> params, masks;
    impl_->MaskedTensors(params, masks);
    kernels::ApplyMasks(params, masks);
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
  for (const auto& [name, q] : impl_->quant) {
    Json layer;
    layer["name"] = name;
    for (const LayerInfo& info : impl_->layers) {
      if (info.name == name) layer["type"] = info.type;
    }
    layer["weight_bits"] = impl_->algorithm == "bnn" ? 1 : q.bits;
    if (!q.scheme.empty() && impl_->algorithm == "qat") layer["quant_scheme"] = q.scheme;
    if (q.scale.defined()) layer["weight_scale"] = ToVector(q.scale);
    if (q.zero_point.defined()) layer["weight_zero_point"] = ToVector(q.zero_point);
    layer["distinct_weight_values"] =
        std::get<0>(at::_unique(Attr(impl_->modules.at(name), "weight").detach().cpu())).numel();
    layers.push_back(std::move(layer));
  }
  report["layers"] = std::move(layers);
  report["weight_elements"] = total;
  report["zero_weight_elements"] = zeros;
  report["model_sparsity"] = total == 0 ? 0.0 : static_cast<double>(zeros) / total;
  return report.dump(2);
}

std::string CompressionSession::CalibrationJson() const {
  Json calibration = Json::object();
  for (const auto& [name, q] : impl_->quant) {
    Json layer;
    layer["weight_bits"] = impl_->algorithm == "bnn" ? 1 : q.bits;
    if (q.scale.defined()) layer["weight_scale"] = ToVector(q.scale);
    if (q.zero_point.defined()) layer["weight_zero_point"] = ToVector(q.zero_point);
    calibration[name] = std::move(layer);
  }
  return calibration.dump(2);
}

}  // namespace autocompress::compression
