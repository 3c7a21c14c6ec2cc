#include "compression/compression_session.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compression/algorithm_registry.h"
#include "compression/compressors.h"
#include "compression/graph_hooks.h"
#include "compression/module_modes.h"
#include "compression/pruner.h"
#include "compression/quantizers.h"
#include "compression/script_graph.h"
#include "compression/torch_status.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using Json = nlohmann::ordered_json;

torch::Tensor Attr(const torch::jit::Module& module, const std::string& name) {
  if (!module.hasattr(name)) return {};
  torch::IValue value = module.attr(name);
  return value.isTensor() ? value.toTensor() : torch::Tensor();
}

// A quantized weight: the model's tensor, the float shadow the optimizer trains and what
// was computed from it.
struct QuantState {
  WeightQuantConfig config;
  torch::Tensor weight;  // the model's parameter at Compress time
  torch::Tensor shadow;
  torch::Tensor ste_mask;    // undefined: gradients pass unchanged
  torch::Tensor scale;       // qat, naive
  torch::Tensor zero_point;  // qat
};

// Everything a quantizer's Compress sets up; committed to the session as a whole.
struct QuantizationState {
  std::unique_ptr<Quantizer> quantizer;
  std::map<std::string, QuantState> weights;     // by layer name
  std::unique_ptr<GraphHooks> activation_hooks;  // input/output quantization
  // By "layer/input" or "layer/output", for the calibration table.
  std::map<std::string, std::shared_ptr<CalibratedActivation>> calibrated;
};

// The model's parameters, buffers, gradients and mode before a Compress, put back when
// it fails (data-driven pruners train; every algorithm writes masked or quantized values).
class ModelSnapshot {
 public:
  explicit ModelSnapshot(torch::jit::Module& model) : modes_(model) {
    torch::NoGradGuard no_grad;
    for (const auto& p : model.named_parameters()) {
      params_.push_back(
          {p.value, p.value.detach().clone(),
           p.value.grad().defined() ? p.value.grad().detach().clone() : torch::Tensor()});
    }
    for (const auto& b : model.named_buffers()) {
      if (b.value.defined()) buffers_.push_back({b.value, b.value.detach().clone(), {}});
    }
  }

  void Restore() {
    torch::NoGradGuard no_grad;
    for (Saved& s : params_) {
      s.tensor.copy_(s.value);
      s.tensor.mutable_grad() = s.grad;
    }
    for (Saved& s : buffers_) s.tensor.copy_(s.value);
    modes_.Restore();
  }

 private:
  struct Saved {
    torch::Tensor tensor, value, grad;
  };
  ModuleModes modes_;
  std::vector<Saved> params_, buffers_;
};

std::vector<double> ToVector(const torch::Tensor& t) {
  torch::Tensor flat = t.detach().to(torch::kDouble).cpu().contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

absl::StatusOr<torch::Device> ParseDevice(const std::string& device) {
  try {
    torch::Device parsed(device);
    if (!parsed.is_cpu() && !parsed.is_cuda()) throw std::invalid_argument(device);
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

// The size rule of compression/README.md "Effective bytes"; `quantized_weights` (by layer)
// take their bit widths.
ModelSize SizeOf(const torch::jit::Module& model,
                 const std::map<std::string, QuantState>& quantized_weights) {
  torch::NoGradGuard no_grad;
  ModelSize size;
  for (const auto& parameter : model.named_parameters(/*recurse=*/true)) {
    const torch::Tensor& p = parameter.value;
    const int64_t width = static_cast<int64_t>(p.element_size());
    const int64_t dense = p.numel() * width;
    size.dense_bytes += dense;
    const std::string& name = parameter.name;
    const size_t dot = name.rfind('.');
    auto quantized = dot != std::string::npos && name.substr(dot + 1) == "weight"
                         ? quantized_weights.find(name.substr(0, dot))
                         : quantized_weights.end();
    if (quantized != quantized_weights.end()) {
      const auto& q = quantized->second;
      int64_t bytes = (p.numel() * q.config.bits + 7) / 8;
      if (q.scale.defined()) bytes += 4 * q.scale.numel();
      if (q.zero_point.defined()) bytes += 4 * q.zero_point.numel();
      size.effective_bytes += bytes;
      continue;
    }
    const int64_t nonzero = p.count_nonzero().item<int64_t>();
    size.effective_bytes += std::min(dense, nonzero * width + (p.numel() + 7) / 8);
  }
  return size;
}

}  // namespace

struct CompressionSession::Impl {
  torch::jit::Module model;
  torch::Device device = torch::kCPU;
  std::vector<LayerInfo> layers;
  std::map<std::string, torch::jit::Module> modules;  // by layer name
  // Set together when Compress succeeds, never by a failed one.
  std::string algorithm;
  PruneResult pruned;       // pruners: masks and report state
  QuantizationState quant;  // quantizers
  int64_t steps = 1;        // QAT's step counter, as NNI's buffer

  bool quantizer() const { return quant.quantizer != nullptr; }

  CompressionTarget Target(std::vector<LayerAssignment> assignments,
                           const std::vector<LayerConfig>& configs, TrainingHooks* hooks) {
    CompressionTarget target;
    target.model = &model;
    target.layers = &layers;
    target.modules = &modules;
    target.assignments = std::move(assignments);
    target.global_sparsity = configs.front().sparsity.value_or(0);
    target.hooks = hooks;
    target.batch_norms_after = BatchNormsAfterConvolutions(model);
    return target;
  }

  absl::Status Compress(const CompressOptions& options);
  absl::Status Prune(const AlgorithmSpec& spec, const Kwargs& kwargs,
                     const std::vector<LayerConfig>& configs, CompressionTarget target);
  absl::Status StartQuantization(const AlgorithmSpec& spec, const Kwargs& kwargs,
                                 const CompressionTarget& target);
  absl::Status CheckQuantizedWeights() const;
  void Quantize(QuantizationState& state) const;
  std::vector<torch::Tensor> TrainableParameters() const;
  Json LayerReports() const;
  std::string ReportJson() const;
  std::string CalibrationJson() const;
  ModelSize Size() const;
};

// Parse and validate everything, then hand the algorithm a target; the session's state
// changes only when it succeeds.
absl::Status CompressionSession::Impl::Compress(const CompressOptions& options) {
  if (!algorithm.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("this model was already compressed with ", algorithm));
  }
  ASSIGN_OR_RETURN(const AlgorithmSpec* spec, FindAlgorithm(options.algorithm));
  ASSIGN_OR_RETURN(std::vector<LayerConfig> configs,
                   ParseConfigList(options.algorithm, options.config_list_json));
  ASSIGN_OR_RETURN(std::vector<LayerAssignment> assignments,
                   MatchLayers(options.algorithm, configs, layers));
  ASSIGN_OR_RETURN(Kwargs kwargs, ParseKwargs(*spec, options.kwargs_json));
  CompressionTarget target = Target(std::move(assignments), configs, options.hooks);
  if (spec->family == AlgorithmFamily::kQuantizer) {
    return StartQuantization(*spec, kwargs, target);
  }
  return Prune(*spec, kwargs, configs, std::move(target));
}

absl::Status CompressionSession::Impl::Prune(const AlgorithmSpec& spec, const Kwargs& kwargs,
                                             const std::vector<LayerConfig>& configs,
                                             CompressionTarget target) {
  ASSIGN_OR_RETURN(std::unique_ptr<Pruner> pruner, CreatePruner(spec, kwargs, configs));
  if (spec.trains_before_pruning && target.hooks == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(spec.name, " trains before pruning and needs training data (TrainingHooks)"));
  }
  ModelSnapshot snapshot(model);
  PruneResult result;
  absl::Status status = CatchTorch(absl::StrCat("pruning with ", spec.name),
                                   [&] { return pruner->Prune(target, result); });
  if (!status.ok()) {
    snapshot.Restore();
    return status;
  }
  pruned = std::move(result);
  algorithm = spec.name;
  return absl::OkStatus();
}

absl::Status CompressionSession::Impl::StartQuantization(const AlgorithmSpec& spec,
                                                         const Kwargs& kwargs,
                                                         const CompressionTarget& target) {
  QuantizationState state;
  ASSIGN_OR_RETURN(state.quantizer, CreateQuantizer(spec, kwargs));
  ModelSnapshot snapshot(model);
  absl::Status status = CatchTorch(absl::StrCat("quantizing with ", spec.name), [&] {
    for (const LayerAssignment& a : target.assignments) {
      const std::string& name = target.LayerName(a);
      for (const std::string& type : a.config.quant_types) {
        if (type == "weight") continue;
        if (state.activation_hooks == nullptr) {
          state.activation_hooks = std::make_unique<GraphHooks>(model);
        }
        ActivationQuantizer q = state.quantizer->ForActivation(a, layers[a.layer], type, &steps);
        if (q.calibration != nullptr) state.calibrated[name + "/" + type] = q.calibration;
        RETURN_IF_ERROR(state.activation_hooks->Add(
            name, type == "input" ? HookSite::kInput : HookSite::kOutput, q.handler));
      }
    }
    torch::NoGradGuard no_grad;
    for (const LayerAssignment& a : target.assignments) {
      if (a.config.quant_bits.count("weight") == 0) continue;  // activations only
      QuantState q;
      q.config.bits = state.quantizer->WeightBits(a.config.quant_bits.at("weight"));
      q.config.scheme =
          a.config.quant_scheme.count("weight") ? a.config.quant_scheme.at("weight") : "";
      q.config.dtype =
          a.config.quant_dtype.count("weight") ? a.config.quant_dtype.at("weight") : "uint";
      q.config.quant_start_step = a.config.quant_start_step;
      q.weight = target.Attribute(target.LayerName(a));
      q.shadow = q.weight.detach().clone().requires_grad_(true);
      state.weights[target.LayerName(a)] = std::move(q);
    }
    Quantize(state);
    return absl::OkStatus();
  });
  if (!status.ok()) {
    state.activation_hooks.reset();  // takes the operator calls out of the graphs again
    snapshot.Restore();
    return status;
  }
  quant = std::move(state);
  algorithm = spec.name;
  return absl::OkStatus();
}

// A caller that re-binds a quantized layer's weight (setattr) detaches it from its
// shadow: training would silently update a tensor the model no longer uses.
absl::Status CompressionSession::Impl::CheckQuantizedWeights() const {
  for (const auto& [name, q] : quant.weights) {
    if (!Attr(modules.at(name), "weight").is_same(q.weight)) {
      return absl::FailedPreconditionError(
          absl::StrCat(name,
                       ".weight was replaced after Compress; its float shadow (the tensor "
                       "TrainableParameters returns) no longer belongs to the model"));
    }
  }
  return absl::OkStatus();
}

// Writes the quantized value of every quantized weight, computed from its shadow.
void CompressionSession::Impl::Quantize(QuantizationState& state) const {
  torch::NoGradGuard no_grad;
  for (auto& [name, q] : state.weights) {
    q.weight.copy_(state.quantizer->QuantizeWeight(q.config, steps, q.shadow, &q.scale,
                                                   &q.zero_point, &q.ste_mask));
  }
}

CompressionSession::CompressionSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompressionSession::~CompressionSession() = default;

absl::StatusOr<std::unique_ptr<CompressionSession>> CompressionSession::Load(
    const std::string& model_path, const std::string& device) {
  std::error_code error;
  if (!std::filesystem::exists(model_path, error)) {
    return absl::NotFoundError(absl::StrCat("model file ", model_path, " does not exist"));
  }
  ASSIGN_OR_RETURN(torch::Device parsed, ParseDevice(device));
  std::unique_ptr<Impl> impl;
  RETURN_IF_ERROR(CatchTorch(absl::StrCat("loading ", model_path), [&]() -> absl::Status {
    impl = std::make_unique<Impl>();
    impl->device = parsed;
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
  return CatchTorch(absl::StrCat("compressing with ", options.algorithm),
                    [&] { return impl_->Compress(options); });
}

std::vector<torch::Tensor> CompressionSession::Impl::TrainableParameters() const {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : model.parameters()) {
    torch::Tensor chosen = p;
    for (const auto& [name, q] : quant.weights) {
      if (q.weight.is_same(p)) chosen = q.shadow;
    }
    out.push_back(chosen);
  }
  return out;
}

absl::StatusOr<std::vector<torch::Tensor>> CompressionSession::TrainableParameters() {
  return CatchTorch("listing trainable parameters",
                    [&]() -> absl::StatusOr<std::vector<torch::Tensor>> {
                      RETURN_IF_ERROR(impl_->CheckQuantizedWeights());
                      return impl_->TrainableParameters();
                    });
}

absl::Status CompressionSession::BeforeOptimizerStep() {
  return CatchTorch("masking gradients", [&] {
    RETURN_IF_ERROR(impl_->CheckQuantizedWeights());
    torch::NoGradGuard no_grad;
    for (auto& [name, q] : impl_->quant.weights) {
      if (!q.weight.grad().defined()) continue;
      torch::Tensor grad = q.weight.grad().detach().clone();
      if (q.ste_mask.defined()) grad.mul_(q.ste_mask);
      q.shadow.mutable_grad() = grad;
      q.weight.mutable_grad().zero_();  // the optimizer never sees the quantized weight
    }
    impl_->pruned.masks.MaskGradients();
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::OnOptimizerStep() {
  return CatchTorch("re-applying masks", [&] {
    RETURN_IF_ERROR(impl_->CheckQuantizedWeights());
    torch::NoGradGuard no_grad;
    if (impl_->quantizer()) {
      ++impl_->steps;
      impl_->Quantize(impl_->quant);
      return absl::OkStatus();
    }
    impl_->pruned.masks.ApplyWithGradients();
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::Save(const std::string& path) {
  return CatchTorch(absl::StrCat("saving ", path), [&] {
    torch::NoGradGuard no_grad;
    // Pruned weights are folded (exactly zero); quantized weights already hold their
    // fake-quantized values.
    impl_->pruned.masks.Apply();
    // Activation quantization ends here: the saved graphs must not call our operator.
    if (impl_->quant.activation_hooks != nullptr) impl_->quant.activation_hooks->Remove();
    impl_->model.save(path);
    return absl::OkStatus();
  });
}

// The pruned and quantized layers' entries of the report.
Json CompressionSession::Impl::LayerReports() const {
  Json out = Json::array();
  for (const LayerInfo& info : layers) {
    auto it = pruned.states.find(info.name);
    if (it == pruned.states.end()) continue;
    const torch::Tensor weight = Attr(modules.at(info.name), "weight");
    const LayerState& state = it->second;
    Json layer;
    layer["name"] = info.name;
    layer["type"] = info.type;
    layer["config_sparsity"] = state.config_sparsity;
    layer["weight_sparsity"] =
        static_cast<double>(weight.eq(0).sum().item<int64_t>()) / weight.numel();
    layer["weight_elements"] = weight.numel();
    if (state.filters_total > 0) {
      layer["filters_total"] = state.filters_total;
      layer["filters_kept"] = state.kept_filters.size();
      layer["kept_filter_indices"] = state.kept_filters;
    }
    out.push_back(std::move(layer));
  }
  for (const auto& [name, q] : quant.weights) {
    Json layer;
    layer["name"] = name;
    for (const LayerInfo& info : layers) {
      if (info.name == name) layer["type"] = info.type;
    }
    layer["weight_bits"] = q.config.bits;
    if (!q.config.scheme.empty() && quant.quantizer->ReportsScheme()) {
      layer["quant_scheme"] = q.config.scheme;
    }
    if (q.scale.defined()) layer["weight_scale"] = ToVector(q.scale);
    if (q.zero_point.defined()) layer["weight_zero_point"] = ToVector(q.zero_point);
    layer["distinct_weight_values"] =
        std::get<0>(at::_unique(Attr(modules.at(name), "weight").detach().cpu())).numel();
    out.push_back(std::move(layer));
  }
  return out;
}

std::string CompressionSession::Impl::ReportJson() const {
  torch::NoGradGuard no_grad;
  Json report;
  report["algorithm"] = algorithm;
  report["device"] = device.str();
  int64_t total = 0, zeros = 0;
  for (const LayerInfo& info : layers) {
    const torch::Tensor weight = Attr(modules.at(info.name), "weight");
    if (!weight.defined()) continue;
    total += weight.numel();
    zeros += weight.eq(0).sum().item<int64_t>();
  }
  report["layers"] = LayerReports();
  report["weight_elements"] = total;
  report["zero_weight_elements"] = zeros;
  report["model_sparsity"] = total == 0 ? 0.0 : static_cast<double>(zeros) / total;
  return report.dump(2);
}

absl::StatusOr<std::string> CompressionSession::ReportJson() const {
  return CatchTorch("writing the report",
                    [&]() -> absl::StatusOr<std::string> { return impl_->ReportJson(); });
}

ModelSize CompressionSession::Impl::Size() const { return SizeOf(model, quant.weights); }

absl::StatusOr<ModelSize> CompressionSession::Size() const {
  return CatchTorch("measuring the model size",
                    [&]() -> absl::StatusOr<ModelSize> { return impl_->Size(); });
}

absl::StatusOr<ModelSize> SizeOfModel(const torch::jit::Module& model) {
  return CatchTorch("measuring the model size",
                    [&]() -> absl::StatusOr<ModelSize> { return SizeOf(model, {}); });
}

std::string CompressionSession::Impl::CalibrationJson() const {
  Json calibration = Json::object();
  for (const auto& [name, q] : quant.weights) {
    Json layer;
    layer["weight_bits"] = q.config.bits;
    if (q.scale.defined()) layer["weight_scale"] = ToVector(q.scale);
    if (q.zero_point.defined()) layer["weight_zero_point"] = ToVector(q.zero_point);
    calibration[name] = std::move(layer);
  }
  for (const auto& [key, quantizer] : quant.calibrated) {
    const std::string layer = key.substr(0, key.rfind('/'));
    const std::string type = key.substr(key.rfind('/') + 1);
    Json& entry = calibration[layer];
    entry[type + "_bits"] = quantizer->bits();
    if (quantizer->tracked_min().defined()) {
      entry["tracked_min_" + type] = ToVector(quantizer->tracked_min());
      entry["tracked_max_" + type] = ToVector(quantizer->tracked_max());
    }
  }
  return calibration.dump(2);
}

absl::StatusOr<std::string> CompressionSession::CalibrationJson() const {
  return CatchTorch("writing the calibration table",
                    [&]() -> absl::StatusOr<std::string> { return impl_->CalibrationJson(); });
}

}  // namespace autocompress::compression
