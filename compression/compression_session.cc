#include "compression/compression_session.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compression/dependency.h"
#include "compression/graph_hooks.h"
#include "compression/kernels/prune_kernels.h"
#include "compression/kernels/quant_kernels.h"
#include "compression/pruning.h"
#include "compression/quantization.h"
#include "compression/torch_status.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using Json = nlohmann::ordered_json;

// What the report says about one pruned layer (its masks are in Impl::masks).
struct LayerState {
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
  torch::Tensor ste_mask;    // undefined: gradients pass unchanged
  torch::Tensor scale;       // qat, naive
  torch::Tensor zero_point;  // qat
};

// Per-channel statistics of act(conv output) over the first `max_batches` forwards in
// training mode (APoZ: share of zeros; mean activation: mean), for apoz and
// mean_activation (reference §2.3).
class ActivationStatistics final : public ActivationHandler {
 public:
  ActivationStatistics(bool relu6, int max_batches) : relu6_(relu6), max_batches_(max_batches) {}

  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    if (!training || batches_ >= max_batches_ || x.dim() < 2) return x;
    torch::NoGradGuard no_grad;
    auto [zeros, sums] = kernels::ActivationStatistics(x.detach(), relu6_);
    zeros = zeros.cpu();
    sums = sums.cpu();
    zeros_ = zeros_.defined() ? zeros_ + zeros : zeros;
    sums_ = sums_.defined() ? sums_ + sums : sums;
    elements_ += x.numel() / x.size(1);
    ++batches_;
    return x;
  }

  int batches() const { return batches_; }
  // Higher = more important: 1 - APoZ, or the mean activation.
  torch::Tensor Scores(bool apoz) const {
    return apoz ? 1 - zeros_ / static_cast<double>(elements_)
                : sums_ / static_cast<double>(elements_);
  }

 private:
  bool relu6_;
  int max_batches_;
  int batches_ = 0;
  int64_t elements_ = 0;
  torch::Tensor zeros_, sums_;
};

// QAT input/output quantization (reference §3.3): in training, the tensor's range
// (per tensor, or per channel along dim 1) updates an EMA (decay 0.99; overwritten
// before the first optimizer step); from quant_start_step on, the tracked range gives
// scale and zero point and the tensor is fake-quantized, gradients passing only inside
// the range. In eval mode the stored scale and zero point are used; before any training
// the tensor passes unquantized (NNI produced NaN there).
class QatActivationQuantizer final : public ActivationHandler {
 public:
  QatActivationQuantizer(int bits, std::string scheme, std::string dtype, int quant_start_step,
                         const int64_t* steps, bool linear)
      : linear_(linear),
        bits_(bits),
        per_channel_(scheme.rfind("per_channel", 0) == 0),
        symmetric_(scheme.find("symmetric") != std::string::npos),
        dtype_(std::move(dtype)),
        range_(RangeFor(bits, dtype_)),
        quant_start_step_(quant_start_step),
        steps_(steps) {}

  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    const bool per_channel = per_channel_ && x.dim() >= 2;
    // NNI quantizes a Linear's input/output per channel only when it is 2-D.
    if (per_channel && linear_ && x.dim() != 2) return x;
    // Channels first, so the kernel's per-channel axis (dim 0) is dim 1 of x.
    const torch::Tensor channels_first =
        per_channel ? x.detach().transpose(0, 1).contiguous() : x.detach();
    if (training) {
      torch::NoGradGuard no_grad;
      torch::Tensor lo, hi;
      RangeOf(channels_first, per_channel, &lo, &hi);
      if (*steps_ == 1 || !tracked_min_.defined()) {
        tracked_min_ = lo.clone();
        tracked_max_ = hi.clone();
      }
      tracked_min_ = 0.99 * tracked_min_ + 0.01 * lo;
      tracked_max_ = 0.99 * tracked_max_ + 0.01 * hi;
      if (quant_start_step_ > *steps_) return x;
      ComputeScaleZeroPoint(tracked_min_, tracked_max_, range_, symmetric_, dtype_, &scale_,
                            &zero_point_);
    }
    if (!scale_.defined()) return x;
    auto [value, mask] =
        kernels::FakeQuantize(channels_first, scale_, zero_point_, range_.qmin, range_.qmax);
    if (per_channel) {
      value = value.transpose(0, 1).contiguous();
      mask = mask.transpose(0, 1).contiguous();
    }
    *ste_mask = mask;
    return value;
  }

  int bits() const { return bits_; }
  const torch::Tensor& tracked_min() const { return tracked_min_; }
  const torch::Tensor& tracked_max() const { return tracked_max_; }

 private:
  bool linear_;
  int bits_;
  bool per_channel_, symmetric_;  // from the scheme
  std::string dtype_;
  IntegerRange range_;
  int quant_start_step_;
  const int64_t* steps_;
  torch::Tensor tracked_min_, tracked_max_, scale_, zero_point_;
};

// BNN output binarization: sign(y) with sign(0) = +1; gradients pass where |y| <= 1.
class BnnOutputQuantizer final : public ActivationHandler {
 public:
  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    *ste_mask = x.detach().abs().le(1).to(x.scalar_type());
    return torch::where(x.detach().ge(0), torch::ones_like(x), -torch::ones_like(x));
  }
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
  std::map<std::string, LayerState> states;      // pruned layers, by name
  kernels::MaskSet masks;                        // their weight and bias masks
  std::map<std::string, QuantState> quant;       // quantized layers, by name
  std::unique_ptr<GraphHooks> activation_hooks;  // input/output quantization
  // Activation quantizers by "layer/input" or "layer/output", for the calibration table.
  std::map<std::string, std::shared_ptr<QatActivationQuantizer>> activation_quantizers;
  // Sparsity of config_list[0], which NNI's global rankings (slim, taylorfo's
  // global_sort) use for the total count.
  double global_sparsity = 0;
  int64_t steps = 1;              // QAT's step counter, as NNI's buffer
  bool dependency_aware = false;  // filter pruners: prune dependent layers jointly

  bool quantizer() const { return IsQuantizer(algorithm); }

  // Writes the quantized value of every quantized weight, computed from its shadow.
  void Quantize() {
    torch::NoGradGuard no_grad;
    for (auto& [name, q] : quant) {
      torch::Tensor weight = Attr(modules.at(name), "weight");
      torch::Tensor value;
      if (algorithm == "naive") {
        value = NaiveQuantizeWeight(q.shadow, q.scale);  // q.scale: naive's running scale
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
      const std::string& name = layers[a.layer].name;
      for (const std::string& type : a.config.quant_types) {
        if (type == "weight") continue;
        if (activation_hooks == nullptr) activation_hooks = std::make_unique<GraphHooks>(model);
        const HookSite site = type == "input" ? HookSite::kInput : HookSite::kOutput;
        std::shared_ptr<ActivationHandler> handler;
        if (algorithm == "bnn") {
          handler = std::make_shared<BnnOutputQuantizer>();
        } else {
          auto qat = std::make_shared<QatActivationQuantizer>(
              a.config.quant_bits.at(type), a.config.quant_scheme.at(type),
              a.config.quant_dtype.at(type), a.config.quant_start_step, &steps,
              layers[a.layer].type == "Linear");
          activation_quantizers[name + "/" + type] = qat;
          handler = qat;
        }
        RETURN_IF_ERROR(activation_hooks->Add(name, site, handler));
      }
    }
    torch::NoGradGuard no_grad;
    for (const LayerAssignment& a : assignments) {
      if (a.config.quant_bits.count("weight") == 0) continue;  // activations only
      const std::string& name = layers[a.layer].name;
      QuantState q;
      q.bits = algorithm == "bnn" ? 1 : a.config.quant_bits.at("weight");
      q.scheme = a.config.quant_scheme.count("weight") ? a.config.quant_scheme.at("weight") : "";
      q.dtype = a.config.quant_dtype.count("weight") ? a.config.quant_dtype.at("weight") : "uint";
      q.quant_start_step = a.config.quant_start_step;
      q.shadow = Attr(modules.at(name), "weight").detach().clone().requires_grad_(true);
      quant[name] = std::move(q);
    }
    Quantize();
    return absl::OkStatus();
  }

  // Records a filter/channel keep vector as the layer's masks.
  void SetFilterMasks(const std::string& name, double sparsity, const torch::Tensor& keep_in) {
    const torch::jit::Module& m = modules.at(name);
    torch::Tensor weight = Attr(m, "weight");
    torch::Tensor bias = Attr(m, "bias");
    // Scores may have been computed on the CPU; masks live with the weights.
    torch::Tensor keep = keep_in.to(weight.device(), weight.scalar_type()).contiguous();
    masks.Add(weight, ExpandFilterKeep(keep, weight));
    if (bias.defined()) masks.Add(bias, keep.to(bias.device(), bias.scalar_type()));
    LayerState state;
    state.config_sparsity = sparsity;
    state.filters_total = keep.size(0);
    torch::Tensor kept = keep.nonzero().reshape({-1}).cpu();
    for (int64_t i = 0; i < kept.size(0); ++i)
      state.kept_filters.push_back(kept[i].item<int64_t>());
    states[name] = std::move(state);
  }

  void ApplyAllMasks() { masks.Apply(); }

  // `epochs` training epochs of the caller's in train mode; the model's mode is restored
  // afterwards, also when an epoch fails.
  absl::Status TrainEpochs(TrainingHooks& hooks, int epochs, const StepCallbacks& callbacks) {
    std::vector<torch::Tensor> parameters;
    for (const torch::Tensor& p : model.parameters()) parameters.push_back(p);
    const bool was_training = model.is_training();
    model.train();
    absl::Status status = absl::OkStatus();
    for (int epoch = 0; epoch < epochs && status.ok(); ++epoch) {
      status = hooks.TrainEpoch(model, parameters, callbacks);
    }
    model.train(was_training);
    return status;
  }

  // Slim (reference §2.3): L1 sub-gradient on BN scales before every optimizer step for
  // `epochs` epochs, then one global threshold over |gamma| of all selected BN layers.
  absl::Status Slim(const std::vector<LayerAssignment>& assignments, int epochs, double scale,
                    TrainingHooks& hooks) {
    std::vector<torch::Tensor> gammas;
    for (const LayerAssignment& a : assignments)
      gammas.push_back(Attr(modules.at(layers[a.layer].name), "weight"));
    StepCallbacks callbacks;
    callbacks.before_step = [&] {
      torch::NoGradGuard no_grad;
      for (torch::Tensor& gamma : gammas) {
        if (gamma.grad().defined()) gamma.mutable_grad().add_(gamma.sign() * scale);
      }
    };
    RETURN_IF_ERROR(TrainEpochs(hooks, epochs, callbacks));
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> magnitudes;
    for (const torch::Tensor& gamma : gammas)
      magnitudes.push_back(gamma.detach().abs().reshape({-1}));
    const torch::Tensor all = torch::cat(magnitudes);
    // NNI takes the sparsity of the first config entry for the global count.
    const double sparsity = global_sparsity;
    const int64_t k = ElementsToPrune(all.numel(), sparsity);
    const torch::Tensor threshold = k >= 1 ? std::get<0>(all.kthvalue(k)) : torch::Tensor();
    for (size_t i = 0; i < assignments.size(); ++i) {
      const torch::Tensor& gamma = gammas[i];
      const double layer_sparsity = *assignments[i].config.sparsity;
      torch::Tensor keep = torch::ones_like(gamma);
      if (k >= 1 && FiltersToPrune(gamma.numel(), layer_sparsity) >= 1) {
        keep = gamma.detach().abs().gt(threshold).to(gamma.scalar_type());
      }
      SetFilterMasks(layers[assignments[i].layer].name, layer_sparsity, keep);
    }
    ApplyAllMasks();
    return absl::OkStatus();
  }

  // TaylorFO (reference §2.3): after each of the first `batches` optimizer steps of one
  // epoch, contribution[c] += sum over filter c of (w * grad)^2; then the lowest
  // contributions are pruned per layer, or against one pool (global_sort).
  // Chooses the filters of every assigned layer from its scores (higher = more
  // important, non-negative). With dependency_aware, layers of one channel-dependency set
  // first agree on common channels (reference §2.5): if every member is pruned, the
  // floor(C * min sparsity) channels with the lowest summed score go in all of them;
  // then each member prunes its own count, the common channels first.
  absl::Status SelectFilters(const std::vector<LayerAssignment>& assignments,
                             const std::map<std::string, torch::Tensor>& scores,
                             bool threshold_style) {
    std::map<std::string, double> sparsity;
    for (const LayerAssignment& a : assignments)
      sparsity[layers[a.layer].name] = *a.config.sparsity;
    ChannelDependencies dependencies;
    if (dependency_aware) {
      ASSIGN_OR_RETURN(dependencies, AnalyzeChannelDependencies(model));
    }
    const std::vector<std::vector<std::string>>& sets = dependencies.sets;
    std::set<std::string> done;
    for (const LayerAssignment& a : assignments) {
      const std::string& name = layers[a.layer].name;
      if (done.count(name)) continue;
      std::vector<std::string> members = {name};
      for (const std::vector<std::string>& set : sets) {
        if (std::find(set.begin(), set.end(), name) != set.end()) members = set;
      }
      std::vector<std::string> configured;
      for (const std::string& m : members) {
        if (sparsity.count(m)) configured.push_back(m);
      }
      double min_sparsity = 1;
      for (const std::string& m : configured) min_sparsity = std::min(min_sparsity, sparsity[m]);
      if (configured.size() != members.size()) min_sparsity = 0;  // someone keeps them all
      const int64_t channels = scores.at(name).size(0);
      torch::Tensor sum = torch::zeros({channels}, torch::kDouble);
      for (const std::string& m : configured) {
        if (scores.at(m).size(0) != channels) {
          return absl::InvalidArgumentError(absl::StrCat(
              "dependency_aware: ", name, " and ", m, " must keep the same channels but have ",
              channels, " and ", scores.at(m).size(0), " filters"));
        }
        sum += scores.at(m).to(torch::kDouble).cpu();
      }
      // Grouped convolutions: the common channels are chosen per contiguous chunk of
      // C / G channels, floor(target / G) in each, so counts stay multiples of G.
      int64_t group = 1;
      for (const std::string& m : configured) {
        auto it = dependencies.group_constraints.find(m);
        if (it != dependencies.group_constraints.end()) group = std::lcm(group, it->second);
      }
      if (channels % group != 0) group = 1;
      torch::Tensor common = torch::ones({channels}, torch::kDouble);
      const int64_t target = FiltersToPrune(channels, min_sparsity);
      const int64_t per_group = target / group;
      const int64_t chunk = channels / group;
      for (int64_t g = 0; g < group && per_group >= 1; ++g) {
        const torch::Tensor part = sum.slice(0, g * chunk, (g + 1) * chunk);
        common.slice(0, g * chunk, (g + 1) * chunk)
            .copy_(part.gt(std::get<0>(part.kthvalue(per_group))).to(torch::kDouble));
      }
      for (const std::string& m : configured) {
        const torch::Tensor s = scores.at(m).to(torch::kDouble).cpu() * common;
        SetFilterMasks(m, sparsity[m],
                       threshold_style ? ThresholdFilterKeep(s, sparsity[m])
                                       : IndexFilterKeep(s, sparsity[m]));
        done.insert(m);
      }
    }
    ApplyAllMasks();
    return absl::OkStatus();
  }

  absl::Status TaylorFo(const std::vector<LayerAssignment>& assignments, int batches,
                        bool global_sort, TrainingHooks& hooks) {
    std::vector<torch::Tensor> weights, contributions;
    for (const LayerAssignment& a : assignments) {
      weights.push_back(Attr(modules.at(layers[a.layer].name), "weight"));
      contributions.push_back(torch::zeros({weights.back().size(0)}, torch::kDouble));
    }
    int steps = 0;
    StepCallbacks callbacks;
    callbacks.after_step = [&] {
      if (steps++ >= batches) return;
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < weights.size(); ++i) {
        if (!weights[i].grad().defined()) continue;
        const torch::Tensor product = (weights[i].detach() * weights[i].grad()).pow(2);
        contributions[i] += product.reshape({product.size(0), -1}).sum(1).to(torch::kDouble).cpu();
      }
    };
    RETURN_IF_ERROR(TrainEpochs(hooks, 1, callbacks));
    if (steps == 0) {
      return absl::FailedPreconditionError(
          "taylorfo: the training epoch made no optimizer step, so no gradient statistics "
          "exist (is the training data empty?)");
    }
    torch::NoGradGuard no_grad;
    if (!global_sort) {
      std::map<std::string, torch::Tensor> scores;
      for (size_t i = 0; i < assignments.size(); ++i) {
        scores[layers[assignments[i].layer].name] = contributions[i];
      }
      return SelectFilters(assignments, scores, /*threshold_style=*/false);
    } else {
      // Each filter's contribution counts numel(W) / C times in one pool.
      std::vector<torch::Tensor> pool;
      for (size_t i = 0; i < weights.size(); ++i) {
        pool.push_back(contributions[i].repeat_interleave(weights[i].numel() / weights[i].size(0)));
      }
      const torch::Tensor all = torch::cat(pool);
      const int64_t k = ElementsToPrune(all.numel(), global_sparsity);
      const double threshold = k >= 1 ? std::get<0>(all.kthvalue(k)).item<double>() : -1;
      for (size_t i = 0; i < assignments.size(); ++i) {
        const int64_t filters = contributions[i].size(0);
        const int64_t count =
            std::min<int64_t>(contributions[i].lt(threshold).sum().item<int64_t>(), filters - 1);
        SetFilterMasks(layers[assignments[i].layer].name, *assignments[i].config.sparsity,
                       IndexFilterKeepCount(contributions[i], count));
      }
    }
    ApplyAllMasks();
    return absl::OkStatus();
  }

  // APoZ / mean activation (reference §2.3): statistics of act(conv output) over the
  // first `batches` training forwards of one epoch, then the least active filters go.
  absl::Status ActivationRank(const std::vector<LayerAssignment>& assignments, bool relu6,
                              int batches, TrainingHooks& hooks) {
    GraphHooks graph_hooks(model);
    std::vector<std::shared_ptr<ActivationStatistics>> statistics;
    for (const LayerAssignment& a : assignments) {
      statistics.push_back(std::make_shared<ActivationStatistics>(relu6, batches));
      RETURN_IF_ERROR(graph_hooks.Add(layers[a.layer].name, HookSite::kOutput, statistics.back()));
    }
    // As NNI: after every optimizer step, once every layer has seen `batches` forwards,
    // the masks are computed; the rest of the epoch trains with them applied.
    bool selected = false;
    absl::Status selection;
    StepCallbacks callbacks;
    callbacks.after_step = [&] {
      torch::NoGradGuard no_grad;
      if (selected) {
        ApplyAllMasks();
        return;
      }
      std::map<std::string, torch::Tensor> scores;
      for (size_t i = 0; i < assignments.size(); ++i) {
        if (statistics[i]->batches() < batches) return;
        scores[layers[assignments[i].layer].name] = statistics[i]->Scores(algorithm == "apoz");
      }
      selected = true;
      selection = SelectFilters(assignments, scores, /*threshold_style=*/false);
    };
    RETURN_IF_ERROR(TrainEpochs(hooks, 1, callbacks));
    graph_hooks.Remove();
    RETURN_IF_ERROR(selection);
    if (!selected) {
      // NNI leaves the layers silently unpruned here; an error says why instead.
      return absl::FailedPreconditionError(absl::StrCat(
          algorithm, ": the training epoch ran ", statistics.front()->batches(),
          " forward pass(es) through ", layers[assignments.front().layer].name, " but ", batches,
          " are needed before masks can be computed (sparsifying_training_batches)"));
    }
    return absl::OkStatus();
  }

  absl::Status Prune(const std::vector<LayerAssignment>& assignments) {
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> scores;
    for (const LayerAssignment& a : assignments) {
      const std::string& name = layers[a.layer].name;
      torch::Tensor weight = Attr(modules.at(name), "weight");
      if (algorithm == "level") {
        LayerState state;
        state.config_sparsity = *a.config.sparsity;
        masks.Add(weight, LevelMask(weight, state.config_sparsity));
        states[name] = std::move(state);
      } else {
        scores[name] = algorithm == "fpgm"
                           ? kernels::FpgmDistanceSums(weight)
                           : kernels::FilterNorms(weight, algorithm == "l1" ? 1 : 2);
      }
    }
    if (algorithm != "level") {
      return SelectFilters(assignments, scores, /*threshold_style=*/algorithm != "fpgm");
    }
    ApplyAllMasks();
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
  const bool weight_quantizer = IsQuantizer(algorithm);
  const bool activation_rank = algorithm == "apoz" || algorithm == "mean_activation";
  const bool data_driven = TrainsBeforePruning(algorithm);
  if (data_driven) {
    int epochs = 10, batches = 1;
    double scale = 1e-4;
    bool global_sort = false, relu6 = false;
    for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
      const std::string& key = it.key();
      const Json& v = it.value();
      auto bad = [&](absl::string_view what) {
        return absl::InvalidArgumentError(absl::StrCat("kwargs.", key, ": ", what));
      };
      if (key == "dependency_aware" && algorithm != "slim") {
        if (!v.is_boolean()) return bad("must be true or false");
        impl_->dependency_aware = v.get<bool>();
      } else if (algorithm == "slim" && key == "sparsifying_training_epochs") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 10000) {
          return bad("must be an integer in 1..10000");
        }
        epochs = v.get<int>();
      } else if (algorithm == "slim" && key == "scale") {
        if (!v.is_number() || !(v.get<double>() > 0)) return bad("must be a positive number");
        scale = v.get<double>();
      } else if (activation_rank && key == "activation") {
        if (v != "relu" && v != "relu6") return bad("must be \"relu\" or \"relu6\"");
        relu6 = v == "relu6";
      } else if ((algorithm == "taylorfo" || activation_rank) &&
                 key == "sparsifying_training_batches") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1000000) {
          return bad("must be an integer in 1..1000000");
        }
        batches = v.get<int>();
      } else if (algorithm == "taylorfo" && key == "global_sort") {
        if (!v.is_boolean()) return bad("must be true or false");
        global_sort = v.get<bool>();
      } else {
        return bad(absl::StrCat("unknown argument for ", algorithm));
      }
    }
    if (global_sort && impl_->dependency_aware) {
      return absl::InvalidArgumentError(
          "kwargs: taylorfo's global_sort and dependency_aware cannot be combined");
    }
    if (!configs.front().sparsity.has_value() && (algorithm == "slim" || global_sort)) {
      return absl::InvalidArgumentError(
          "config_list[0]: the global ranking takes its sparsity, so it cannot be an exclude "
          "entry");
    }
    impl_->global_sparsity = configs.front().sparsity.value_or(0);
    if (options.hooks == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          algorithm, " trains before pruning and needs training data (TrainingHooks)"));
    }
    impl_->algorithm = algorithm;
    return CatchTorch(absl::StrCat("pruning with ", algorithm), [&] {
      if (activation_rank)
        return impl_->ActivationRank(assignments, relu6, batches, *options.hooks);
      return algorithm == "slim"
                 ? impl_->Slim(assignments, epochs, scale, *options.hooks)
                 : impl_->TaylorFo(assignments, batches, global_sort, *options.hooks);
    });
  }
  for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
    if (one_shot && algorithm != "level" && it.key() == "dependency_aware") {
      if (!it.value().is_boolean()) {
        return absl::InvalidArgumentError("kwargs.dependency_aware: must be true or false");
      }
      impl_->dependency_aware = it.value().get<bool>();
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
    impl_->masks.MaskGradients();
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
    impl_->masks.ApplyWithGradients();
    return absl::OkStatus();
  });
}

absl::Status CompressionSession::Save(const std::string& path) {
  return CatchTorch(absl::StrCat("saving ", path), [&] {
    torch::NoGradGuard no_grad;
    // Pruned weights are folded (exactly zero); quantized weights already hold their
    // fake-quantized values.
    impl_->masks.Apply();
    // Activation quantization ends here: the saved graphs must not call our operator.
    if (impl_->activation_hooks != nullptr) impl_->activation_hooks->Remove();
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
    layer["weight_bits"] = q.bits;
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
    layer["weight_bits"] = q.bits;
    if (q.scale.defined()) layer["weight_scale"] = ToVector(q.scale);
    if (q.zero_point.defined()) layer["weight_zero_point"] = ToVector(q.zero_point);
    calibration[name] = std::move(layer);
  }
  for (const auto& [key, quantizer] : impl_->activation_quantizers) {
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

}  // namespace autocompress::compression
