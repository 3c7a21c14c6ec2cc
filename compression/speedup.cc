#include "compression/speedup.h"

#include <ATen/record_function.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "compression/script_graph.h"
#include "compression/torch_status.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

bool IsTensor(const Value* v) { return v->type()->kind() == c10::TypeKind::TensorType; }

std::string Kind(const Node* n) { return n->kind().toQualString(); }

// Ops whose output channel c depends only on input channel c (evaluation mode), with
// the function they apply to a channel that is constant (nullopt: not constant).
const std::set<std::string>& ChannelwiseOps() {
  static const std::set<std::string> ops = {
      "aten::relu",
      "aten::relu_",
      "aten::relu6",
      "aten::hardtanh",
      "aten::hardtanh_",
      "aten::sigmoid",
      "aten::sigmoid_",
      "aten::tanh",
      "aten::tanh_",
      "aten::leaky_relu",
      "aten::leaky_relu_",
      "aten::hardswish",
      "aten::hardswish_",
      "aten::silu",
      "aten::silu_",
      "aten::gelu",
      "aten::elu",
      "aten::elu_",
      "aten::dropout",
      "aten::dropout_",
      "aten::feature_dropout",
      "aten::feature_dropout_",
      "aten::contiguous",
      "aten::clone",
      "aten::detach",
      "aten::max_pool2d",
      "aten::max_pool1d",
      "aten::avg_pool2d",
      "aten::adaptive_avg_pool2d",
      "aten::adaptive_avg_pool1d",
      "aten::mean",
  };
  return ops;
}

// Ops that reduce over spatial positions: a Linear layer's output has its channels
// last, so only the element-wise ops apply to it.
bool IsSpatial(const std::string& kind) {
  return absl::StrContains(kind, "pool") || kind == "aten::mean";
}

double Scalar(const Value* v, double fallback) {
  const c10::optional<c10::IValue> iv = torch::jit::toIValue(v);
  if (!iv.has_value() || iv->isNone()) return fallback;
  if (iv->isDouble()) return iv->toDouble();
  if (iv->isInt()) return static_cast<double>(iv->toInt());
  if (iv->isBool()) return iv->toBool() ? 1 : 0;
  return kUnknown;
}

// An int[] argument: a constant, or (in traced graphs) a list of constants.
std::optional<std::vector<int64_t>> IntList(const Value* v) {
  if (const c10::optional<c10::IValue> iv = torch::jit::toIValue(v)) {
    if (iv->isIntList()) return iv->toIntVector();
    if (iv->isInt()) return std::vector<int64_t>{iv->toInt()};
    return std::nullopt;
  }
  if (v->node()->kind() != c10::prim::ListConstruct) return std::nullopt;
  std::vector<int64_t> out;
  for (const Value* item : v->node()->inputs()) {
    const c10::optional<int64_t> x = torch::jit::constant_as<int64_t>(item);
    if (!x.has_value()) return std::nullopt;
    out.push_back(*x);
  }
  return out;
}

bool AllZero(const std::vector<int64_t>& v) {
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x == 0; });
}

// f(k) for a channel that is the constant k before a channel-wise op.
double ApplyChannelwise(const Node* n, double k) {
  const std::string kind = Kind(n);
  if (absl::StartsWith(kind, "aten::relu6")) return std::clamp(k, 0.0, 6.0);
  if (absl::StartsWith(kind, "aten::relu")) return std::max(k, 0.0);
  if (absl::StartsWith(kind, "aten::hardtanh")) {
    return std::clamp(k, Scalar(n->input(1), -1), Scalar(n->input(2), 1));
  }
  if (absl::StartsWith(kind, "aten::sigmoid")) return 1 / (1 + std::exp(-k));
  if (absl::StartsWith(kind, "aten::tanh")) return std::tanh(k);
  if (absl::StartsWith(kind, "aten::leaky_relu")) return k >= 0 ? k : k * Scalar(n->input(1), 0.01);
  if (absl::StartsWith(kind, "aten::hardswish")) return k * std::clamp(k + 3, 0.0, 6.0) / 6;
  if (absl::StartsWith(kind, "aten::silu")) return k / (1 + std::exp(-k));
  if (kind == "aten::gelu") return 0.5 * k * (1 + std::erf(k / std::sqrt(2.0)));
  if (absl::StartsWith(kind, "aten::elu")) return k > 0 ? k : (k == 0 ? 0 : kUnknown);
  if (kind == "aten::avg_pool2d") {
    // Zero padding counted in the average changes a constant at the border.
    const std::optional<std::vector<int64_t>> padding = IntList(n->input(3));
    if (k != 0 && (!padding.has_value() || !AllZero(*padding))) return kUnknown;
    return k;
  }
  return k;  // dropout (evaluation), copies, max pools, averages
}

enum class Role { kConvOut, kConvIn, kLinearOut, kLinearIn, kDepthwise, kBatchNorm };

// One place a layer meets a channel space.
struct Use {
  Use(Role r, std::string l, Value* v) : role(r), layer(std::move(l)), value(v) {}
  Role role;
  std::string layer;
  Value* value = nullptr;  // the tensor the layer reads or writes
  int space = -1;
  int64_t groups = 1;
  bool zero_padding = true;
  bool flat = false;  // Linear reading a flattened [N, C, ...] tensor
  // Readers without a bias: the BatchNorm that alone normalizes their output, whose
  // running mean can absorb a constant instead (BN(y + d) = BN'(y), mean' = mean - d).
  std::string batch_norm_after;
};

struct Space {
  int64_t channels = -1;
  std::string pinned;   // why every channel stays; empty = free
  bool linear = false;  // holds a Linear layer's output (channels last)
};

class Analysis {
 public:
  explicit Analysis(torch::jit::Module& model) : model_(model) {
    for (const auto& item : model.named_modules()) modules_.emplace(item.name, item.value);
  }

  void Run() {
    graph_ = InlinedForward(model_);
    Visit(graph_->block());
    for (Value* out : graph_->outputs()) PinTensors(out, "it is the model's output");
    SizeSpaces();
    Propagate(graph_->block());
  }

  torch::Tensor Tensor(const std::string& layer, const std::string& name) const {
    const torch::jit::Module& m = modules_.at(layer);
    if (!m.hasattr(name)) return {};
    const c10::IValue v = m.attr(name);
    return v.isTensor() ? v.toTensor() : torch::Tensor();
  }

  torch::jit::Module& Module(const std::string& layer) { return modules_.at(layer); }

  int Find(int s) {
    while (parent_[s] != s) s = parent_[s] = parent_[parent_[s]];
    return s;
  }
  Space& SpaceAt(int s) { return spaces_[Find(s)]; }
  int SpaceCount() const { return static_cast<int>(spaces_.size()); }

  void Pin(int s, const std::string& reason) {
    Space& space = SpaceAt(s);
    if (space.pinned.empty()) space.pinned = reason;
  }

  const std::vector<Use>& uses() const { return uses_; }

  // Per channel of v: its constant value, or NaN.
  const std::vector<double>& Constants(const Value* v) {
    static const std::vector<double> none;
    auto it = constants_.find(v);
    return it == constants_.end() ? none : it->second;
  }

  int SpaceOf(Value* v) {
    auto flat = flat_base_.find(v);
    if (flat != flat_base_.end()) return SpaceOf(flat->second);
    auto it = space_of_.find(v);
    if (it != space_of_.end()) return Find(it->second);
    const int s = static_cast<int>(spaces_.size());
    spaces_.emplace_back();
    parent_.push_back(s);
    space_of_[v] = s;
    const Node* n = v->node();
    if (n->kind() == c10::prim::Param) Pin(s, "it is computed from the model's input");
    if (n->kind() == c10::prim::GetAttr || n->kind() == c10::prim::Constant) {
      Pin(s, "it meets a tensor attribute of the model");
    }
    return s;
  }

 private:
  void Unite(Value* a, Value* b) {
    int x = SpaceOf(a), y = SpaceOf(b);
    if (x == y) return;
    Space merged = spaces_[x];
    const Space& other = spaces_[y];
    if (merged.pinned.empty()) merged.pinned = other.pinned;
    merged.linear = merged.linear || other.linear;
    if (merged.channels < 0) merged.channels = other.channels;
    if (other.channels >= 0 && merged.channels != other.channels && merged.pinned.empty()) {
      merged.pinned = "layers tied by an add disagree on its channel count";
    }
    parent_[y] = x;
    spaces_[x] = merged;
  }

  void PinTensors(Value* v, const std::string& reason) {
    if (IsTensor(v)) Pin(SpaceOf(v), reason);
  }

  void PinNode(Node* n, const std::string& reason) {
    for (Value* v : n->inputs()) PinTensors(v, reason);
    for (Value* v : n->outputs()) PinTensors(v, reason);
  }

  void Record(Use use) {
    use.space = SpaceOf(use.value);
    uses_.push_back(std::move(use));
  }

  // The ops that read a tensor without depending on its channel layout.
  static bool Harmless(const Node* n) {
    const std::string kind = Kind(n);
    // Sizes only reach ops that take tensors too (view, zeros, ...), which pin them.
    return kind == "aten::size" || kind == "aten::dim" || kind == "aten::len" ||
           kind == "prim::device" || kind == "prim::dtype" || kind == "aten::__is__" ||
           kind == "aten::__isnot__" || kind == "prim::is_cuda";
  }

  // The BatchNorm layer that is the only op reading n's output (besides shape checks).
  static std::string OnlyBatchNormAfter(const Node* n) {
    std::string found;
    for (const torch::jit::Use& u : n->output()->uses()) {
      if (Harmless(u.user)) continue;
      if (Kind(u.user) != "aten::batch_norm" || u.offset != 0 || !found.empty()) return "";
      found = LayerName(u.user->input(1));
      if (found.empty()) return "";
    }
    return found;
  }

  void VisitConvolution(Node* n) {
    const std::string kind = Kind(n);
    const bool generic = kind == "aten::_convolution";
    if (generic && torch::jit::constant_as<bool>(n->input(6)).value_or(true)) {
      return PinNode(n, "it meets a transposed convolution");
    }
    const std::string layer = LayerName(n->input(1));
    const c10::optional<int64_t> groups =
        torch::jit::constant_as<int64_t>(n->input(generic ? 8 : 6));
    const std::optional<std::vector<int64_t>> padding = IntList(n->input(4));
    if (layer.empty() || !groups.has_value() || !padding.has_value() ||
        !Tensor(layer, "weight").defined()) {
      return PinNode(n, "it meets a convolution whose weight, groups or padding is not static");
    }
    const torch::Tensor w = Tensor(layer, "weight");
    Use use(Role::kConvIn, layer, n->input(0));
    use.groups = *groups;
    use.zero_padding = AllZero(*padding);
    use.batch_norm_after = OnlyBatchNormAfter(n);
    if (*groups > 1 && w.size(0) == *groups && w.size(1) == 1) {
      use.role = Role::kDepthwise;
      Record(use);
      Unite(n->input(0), n->output());
      return;
    }
    Record(use);
    use.role = Role::kConvOut;
    use.value = n->output();
    Record(use);
  }

  void Visit(Block* block) {
    for (Node* n : block->nodes()) {
      const std::vector<Block*> live = LiveBlocks(n, model_);
      for (Block* inner : live) Visit(inner);
      const std::string kind = Kind(n);
      if (IsConvolution(n)) {
        VisitConvolution(n);
      } else if (kind == "aten::linear") {
        const std::string layer = LayerName(n->input(1));
        if (layer.empty() || !Tensor(layer, "weight").defined()) {
          PinNode(n, "it meets a linear op whose weight is not a layer's parameter");
          continue;
        }
        Use use(Role::kLinearIn, layer, n->input(0));
        use.flat = flat_base_.count(n->input(0)) > 0;
        use.batch_norm_after = OnlyBatchNormAfter(n);
        Record(use);
        use.role = Role::kLinearOut;
        use.value = n->output();
        use.flat = false;
        Record(use);
        SpaceAt(SpaceOf(n->output())).linear = true;
      } else if (kind == "aten::batch_norm") {
        const std::string layer = LayerName(n->input(1));
        if (layer.empty() || !Tensor(layer, "running_mean").defined()) {
          PinNode(n, "it meets a BatchNorm without affine parameters or running statistics");
          continue;
        }
        Record(Use(Role::kBatchNorm, layer, n->input(0)));
        Unite(n->input(0), n->output());
      } else if (ChannelwiseOps().count(kind)) {
        Value* in = n->input(0);
        if (kind == "aten::mean") {
          const std::optional<std::vector<int64_t>> dims = IntList(n->input(1));
          bool keeps_channels = dims.has_value() && !dims->empty();
          for (int64_t d : dims.value_or(std::vector<int64_t>())) {
            keeps_channels = keeps_channels && d >= 2;
          }
          if (!keeps_channels) {
            PinNode(n, "it feeds a mean over its channels");
            continue;
          }
        }
        auto flat = flat_base_.find(in);
        if (flat != flat_base_.end()) {
          if (IsSpatial(kind)) {
            PinNode(n, absl::StrCat("it is flattened and then feeds ", kind));
          } else {
            flat_base_[n->output()] = flat->second;
          }
          continue;
        }
        Unite(in, n->output());
        if (IsSpatial(kind) && SpaceAt(SpaceOf(in)).linear) {
          Pin(SpaceOf(in), absl::StrCat("a Linear layer's output feeds ", kind));
        }
      } else if (kind == "aten::add" || kind == "aten::add_" || kind == "aten::sub" ||
                 kind == "aten::sub_") {
        if (flat_base_.count(n->input(0)) || flat_base_.count(n->input(1))) {
          PinNode(n, absl::StrCat("it is flattened and then feeds ", kind));
          continue;
        }
        Unite(n->input(0), n->output());
        if (IsTensor(n->input(1))) Unite(n->input(0), n->input(1));
      } else if ((kind == "aten::mul" || kind == "aten::div" || kind == "aten::mul_" ||
                  kind == "aten::div_") &&
                 !IsTensor(n->input(1)) && !flat_base_.count(n->input(0))) {
        Unite(n->input(0), n->output());
      } else if (kind == "aten::flatten") {
        const c10::optional<int64_t> start = torch::jit::constant_as<int64_t>(n->input(1));
        const c10::optional<int64_t> end = torch::jit::constant_as<int64_t>(n->input(2));
        if (start != 1 || end != -1 || flat_base_.count(n->input(0)) ||
            SpaceAt(SpaceOf(n->input(0))).linear) {
          PinNode(n, "it feeds a flatten other than flatten(x, 1)");
          continue;
        }
        flat_base_[n->output()] = n->input(0);
      } else if (n->kind() == c10::prim::If) {
        for (size_t i = 0; i < n->outputs().size(); ++i) {
          if (!IsTensor(n->output(i))) continue;
          // A flattened tensor stays flattened (with one source) through the if.
          std::set<Value*> bases;
          for (Block* b : live) {
            auto flat = flat_base_.find(b->outputs()[i]);
            bases.insert(flat == flat_base_.end() ? nullptr : flat->second);
          }
          if (bases.size() == 1 && *bases.begin() != nullptr) {
            flat_base_[n->output(i)] = *bases.begin();
            continue;
          }
          for (Block* b : live) {
            if (flat_base_.count(b->outputs()[i])) {
              Pin(SpaceOf(b->outputs()[i]), "a flattened tensor leaves an if");
            } else {
              Unite(n->output(i), b->outputs()[i]);
            }
          }
        }
      } else if (n->kind() == c10::prim::Constant || n->kind() == c10::prim::GetAttr ||
                 Harmless(n)) {
        // reads no channels
      } else {
        // A list or tuple is named by the op that takes it (torch.cat([...])).
        std::string op = kind;
        if ((n->kind() == c10::prim::ListConstruct || n->kind() == c10::prim::TupleConstruct) &&
            !n->output()->uses().empty()) {
          op = Kind(n->output()->uses()[0].user);
        }
        for (Value* v : n->inputs()) {
          if (!IsTensor(v)) continue;
          // A parameter read by an op we do not model is not a channel tensor.
          if (v->node()->kind() == c10::prim::GetAttr) continue;
          Pin(SpaceOf(v), absl::StrCat("it feeds ", op, ", which the pass has no rule for"));
        }
        for (Value* v : n->outputs()) {
          if (IsTensor(v)) Pin(SpaceOf(v), absl::StrCat("it comes out of ", kind));
        }
      }
    }
  }

  void SetChannels(int s, int64_t channels, const std::string& layer) {
    Space& space = SpaceAt(s);
    if (space.channels < 0) space.channels = channels;
    if (space.channels != channels) {
      Pin(s,
          absl::StrCat(layer, " sees ", channels, " channels where others see ", space.channels));
    }
  }

  void SizeSpaces() {
    for (Use& use : uses_) {
      const torch::Tensor w = Tensor(use.layer, "weight");
      switch (use.role) {
        case Role::kConvOut:
        case Role::kLinearOut:
        case Role::kDepthwise:
          SetChannels(use.space, w.size(0), use.layer);
          break;
        case Role::kConvIn:
          SetChannels(use.space, w.size(1) * use.groups, use.layer);
          break;
        case Role::kBatchNorm:
          SetChannels(use.space, Tensor(use.layer, "running_mean").size(0), use.layer);
          break;
        case Role::kLinearIn:
          if (!use.flat) SetChannels(use.space, w.size(1), use.layer);
          break;
      }
    }
    for (const Use& use : uses_) {
      const Space& space = SpaceAt(use.space);
      if (use.role == Role::kLinearIn && use.flat &&
          (space.channels <= 0 || Tensor(use.layer, "weight").size(1) % space.channels != 0)) {
        Pin(use.space, absl::StrCat(use.layer, "'s inputs are not a multiple of the channels"));
      }
    }
  }

  // Per-channel constants of one layer's output: a filter of zeros gives its bias.
  std::vector<double> ZeroFilters(const std::string& layer) {
    const torch::Tensor w = Tensor(layer, "weight").detach().cpu();
    const torch::Tensor bias = Tensor(layer, "bias");
    const torch::Tensor zero = w.reshape({w.size(0), -1}).eq(0).all(1);
    const torch::Tensor b = bias.defined() ? bias.detach().cpu().to(torch::kDouble)
                                           : torch::zeros({w.size(0)}, torch::kDouble);
    std::vector<double> out(w.size(0), kUnknown);
    for (int64_t o = 0; o < w.size(0); ++o) {
      if (zero[o].item<bool>()) out[o] = b[o].item<double>();
    }
    return out;
  }

  void Propagate(Block* block) {
    for (Node* n : block->nodes()) {
      const std::vector<Block*> live = LiveBlocks(n, model_);
      for (Block* inner : live) Propagate(inner);
      const std::string kind = Kind(n);
      const auto in = [&](size_t i) { return Constants(n->input(i)); };
      if (IsConvolution(n)) {
        const std::string layer = LayerName(n->input(1));
        if (layer.empty() || !Tensor(layer, "weight").defined()) continue;
        std::vector<double> out = ZeroFilters(layer);
        const torch::Tensor w = Tensor(layer, "weight").detach().cpu().to(torch::kDouble);
        const std::vector<double>& x = in(0);
        const std::optional<std::vector<int64_t>> padding = IntList(n->input(4));
        const bool zero_padding = padding.has_value() && AllZero(*padding);
        const c10::optional<int64_t> groups =
            torch::jit::constant_as<int64_t>(n->input(Kind(n) == "aten::_convolution" ? 8 : 6));
        const bool depthwise = groups.has_value() && *groups == w.size(0) && w.size(1) == 1 &&
                               static_cast<int64_t>(x.size()) == w.size(0);
        if (depthwise) {
          const torch::Tensor bias = Tensor(layer, "bias");
          for (int64_t c = 0; c < w.size(0); ++c) {
            if (!std::isnan(out[c]) || std::isnan(x[c])) continue;
            const double b = bias.defined() ? bias[c].item<double>() : 0;
            // Zero padding keeps a zero channel zero; another constant changes at borders.
            if (x[c] == 0) out[c] = b;
            if (x[c] != 0 && zero_padding) out[c] = b + x[c] * w[c].sum().item<double>();
          }
        }
        constants_[n->output()] = std::move(out);
      } else if (kind == "aten::linear") {
        const std::string layer = LayerName(n->input(1));
        if (!layer.empty() && Tensor(layer, "weight").defined()) {
          constants_[n->output()] = ZeroFilters(layer);
        }
      } else if (kind == "aten::batch_norm") {
        const std::string layer = LayerName(n->input(1));
        if (layer.empty() || !Tensor(layer, "running_mean").defined()) continue;
        const torch::Tensor gamma = Tensor(layer, "weight").detach().cpu().to(torch::kDouble);
        const torch::Tensor beta = Tensor(layer, "bias").detach().cpu().to(torch::kDouble);
        const torch::Tensor mean = Tensor(layer, "running_mean").cpu().to(torch::kDouble);
        const torch::Tensor var = Tensor(layer, "running_var").cpu().to(torch::kDouble);
        const double eps = Scalar(n->input(7), 1e-5);
        std::vector<double> out(mean.size(0), kUnknown);
        const std::vector<double>& x = in(0);
        for (int64_t c = 0; c < mean.size(0); ++c) {
          const double g = gamma.defined() ? gamma[c].item<double>() : 1;
          const double b = beta.defined() ? beta[c].item<double>() : 0;
          if (g == 0) {
            out[c] = b;
          } else if (c < static_cast<int64_t>(x.size()) && !std::isnan(x[c])) {
            out[c] =
                (x[c] - mean[c].item<double>()) / std::sqrt(var[c].item<double>() + eps) * g + b;
          }
        }
        constants_[n->output()] = std::move(out);
      } else if (ChannelwiseOps().count(kind) || kind == "aten::flatten") {
        std::vector<double> out = in(0);
        if (kind != "aten::flatten") {
          for (double& k : out)
            if (!std::isnan(k)) k = ApplyChannelwise(n, k);
        }
        constants_[n->output()] = std::move(out);
      } else if (absl::StartsWith(kind, "aten::add") || absl::StartsWith(kind, "aten::sub") ||
                 absl::StartsWith(kind, "aten::mul") || absl::StartsWith(kind, "aten::div")) {
        const std::vector<double>& a = in(0);
        if (a.empty()) continue;
        const bool tensor = IsTensor(n->input(1));
        const std::vector<double>& b = tensor ? in(1) : a;
        if (tensor && b.size() != a.size()) continue;
        const double scalar = tensor ? 0 : Scalar(n->input(1), kUnknown);
        const double alpha = n->inputs().size() > 2 ? Scalar(n->input(2), 1) : 1;
        std::vector<double> out(a.size());
        for (size_t c = 0; c < a.size(); ++c) {
          const double y = tensor ? b[c] : scalar;
          if (absl::StartsWith(kind, "aten::add")) out[c] = a[c] + alpha * y;
          if (absl::StartsWith(kind, "aten::sub")) out[c] = a[c] - alpha * y;
          if (absl::StartsWith(kind, "aten::mul")) out[c] = a[c] * y;
          if (absl::StartsWith(kind, "aten::div")) out[c] = a[c] / y;
        }
        constants_[n->output()] = std::move(out);
      } else if (n->kind() == c10::prim::If) {
        for (size_t i = 0; i < n->outputs().size(); ++i) {
          std::vector<double> out;
          for (Block* b : live) {
            const std::vector<double>& branch = Constants(b->outputs()[i]);
            if (out.empty()) {
              out = branch;
            } else if (branch.size() != out.size()) {
              out.clear();
              break;
            } else {
              for (size_t c = 0; c < out.size(); ++c)
                if (!(out[c] == branch[c])) out[c] = kUnknown;
            }
          }
          if (!out.empty()) constants_[n->output(i)] = std::move(out);
        }
      }
    }
  }

  torch::jit::Module& model_;
  std::shared_ptr<torch::jit::Graph> graph_;
  std::map<std::string, torch::jit::Module> modules_;
  std::vector<Space> spaces_;
  std::vector<int> parent_;
  std::map<const Value*, int> space_of_;
  std::map<const Value*, Value*> flat_base_;  // flattened tensor -> its [N, C, ...] source
  std::map<const Value*, std::vector<double>> constants_;
  std::vector<Use> uses_;
};

// What a space keeps, and why pruned channels stayed.
struct Plan {
  std::vector<int64_t> kept;
  std::vector<bool> pruned;  // a producing layer's filter of zeros, or a BN channel of zeros
  std::string reason;        // why some pruned channels were kept
};

std::string RoleKind(Role role) {
  switch (role) {
    case Role::kConvOut:
    case Role::kConvIn:
      return "conv";
    case Role::kDepthwise:
      return "depthwise_conv";
    case Role::kLinearOut:
    case Role::kLinearIn:
      return "linear";
    case Role::kBatchNorm:
      return "batch_norm";
  }
  return "";
}

bool HasBias(Analysis& a, const std::string& layer) { return a.Tensor(layer, "bias").defined(); }

// Decides each space's kept channels (Plan) without touching the model.
std::map<int, Plan> PlanSpaces(Analysis& a) {
  std::map<int, Plan> plans;
  for (const Use& use : a.uses()) {
    const int s = a.Find(use.space);
    const Space& space = a.SpaceAt(s);
    if (space.channels <= 0) continue;
    Plan& plan = plans[s];
    if (plan.pruned.empty()) plan.pruned.assign(space.channels, false);
    if (use.role == Role::kConvOut || use.role == Role::kLinearOut ||
        use.role == Role::kBatchNorm) {
      const torch::Tensor w = a.Tensor(use.layer, "weight");
      if (!w.defined()) continue;
      const torch::Tensor zero = w.detach().cpu().reshape({w.size(0), -1}).eq(0).all(1);
      for (int64_t c = 0; c < space.channels && c < zero.size(0); ++c) {
        if (zero[c].item<bool>()) plan.pruned[c] = true;
      }
    }
  }
  for (auto& [s, plan] : plans) {
    const Space& space = a.SpaceAt(s);
    std::vector<bool> needed(space.channels, !space.pinned.empty());
    if (!space.pinned.empty()) plan.reason = space.pinned;
    for (const Use& use : a.uses()) {
      if (a.Find(use.space) != s || (use.role != Role::kConvIn && use.role != Role::kLinearIn)) {
        continue;
      }
      const std::vector<double>& k = a.Constants(use.value);
      const bool absorbs = (HasBias(a, use.layer) || !use.batch_norm_after.empty()) &&
                           (use.role == Role::kLinearIn || use.zero_padding);
      for (int64_t c = 0; c < space.channels; ++c) {
        if (needed[c]) continue;
        const double value = c < static_cast<int64_t>(k.size()) ? k[c] : kUnknown;
        if (std::isnan(value)) {
          needed[c] = true;
          if (plan.pruned[c] && plan.reason.empty()) {
            plan.reason = absl::StrCat(
                "channel ", c, " is not constant where ", use.layer,
                " reads it (a layer tied to it by an add computes it; dependency_aware: true "
                "prunes such layers together)");
          }
        } else if (value != 0 && !absorbs) {
          needed[c] = true;
          if (plan.reason.empty()) {
            plan.reason = absl::StrFormat(
                "channel %d is the constant %.4g where %s reads it, which cannot be folded "
                "into %s (%s); mask the BatchNorm channel too to remove it",
                c, value, use.layer, use.layer,
                use.zero_padding ? "it has no bias and no BatchNorm of its own after it"
                                 : "its zero padding changes the constant at the border");
          }
        }
      }
    }
    for (int64_t c = 0; c < space.channels; ++c)
      if (needed[c]) plan.kept.push_back(c);
    if (plan.kept.empty()) plan.kept.push_back(0);  // a layer keeps at least one channel
  }
  // Grouped convolutions need the same number of channels in every group: top groups up.
  bool changed = true;
  while (changed) {
    changed = false;
    for (const Use& use : a.uses()) {
      if (use.groups <= 1 || use.role == Role::kDepthwise) continue;
      if (use.role != Role::kConvIn && use.role != Role::kConvOut) continue;
      Plan& plan = plans[a.Find(use.space)];
      const int64_t channels = static_cast<int64_t>(plan.pruned.size());
      if (channels % use.groups != 0) continue;
      const int64_t per_group = channels / use.groups;
      std::vector<std::vector<int64_t>> in_group(use.groups);
      for (int64_t c : plan.kept) in_group[c / per_group].push_back(c);
      size_t most = 1;
      for (const auto& g : in_group) most = std::max(most, g.size());
      for (int64_t g = 0; g < use.groups; ++g) {
        for (int64_t c = g * per_group; in_group[g].size() < most; ++c) {
          if (std::find(in_group[g].begin(), in_group[g].end(), c) != in_group[g].end()) continue;
          in_group[g].push_back(c);
          plan.kept.push_back(c);
          changed = true;
          if (plan.reason.empty()) {
            plan.reason = absl::StrCat("grouped convolution ", use.layer,
                                       " needs the same number of channels in each of its ",
                                       use.groups, " groups");
          }
        }
      }
      std::sort(plan.kept.begin(), plan.kept.end());
    }
  }
  return plans;
}

// A depthwise convolution's groups constant lives in its TorchScript type's method
// graph, which every instance of the type shares: all of them must agree on it.
// Returns whether it pinned a space (the plans must then be made again).
bool CheckDepthwiseTypes(Analysis& a, torch::jit::Module& model, const std::map<int, Plan>& plans) {
  bool repinned = false;
  std::map<std::string, int64_t> new_groups;
  for (const Use& use : a.uses()) {
    if (use.role != Role::kDepthwise) continue;
    new_groups[use.layer] = static_cast<int64_t>(plans.at(a.Find(use.space)).kept.size());
  }
  std::map<const c10::ClassType*, std::map<int64_t, std::string>> by_type;
  for (const auto& item : model.named_modules()) {
    const c10::ClassType* type = item.value.type().get();
    auto it = new_groups.find(item.name);
    if (it != new_groups.end()) {
      by_type[type][it->second] = item.name;
    } else if (item.value.hasattr("weight") && item.value.attr("weight").isTensor()) {
      by_type[type][item.value.attr("weight").toTensor().size(0)] = item.name;
    }
  }
  for (const Use& use : a.uses()) {
    if (use.role != Role::kDepthwise) continue;
    const auto& seen = by_type[a.Module(use.layer).type().get()];
    if (seen.size() > 1) {
      std::vector<std::string> names;
      for (const auto& [groups, name] : seen) names.push_back(absl::StrCat(name, ":", groups));
      a.Pin(use.space, absl::StrCat("depthwise ", use.layer,
                                    " shares its TorchScript type (and groups) with layers "
                                    "that keep other channel counts (",
                                    absl::StrJoin(names, ", "), ")"));
      repinned = true;
    }
  }
  return repinned;
}

torch::Tensor Index(const std::vector<int64_t>& kept, const torch::Device& device) {
  return torch::tensor(kept, torch::kLong).to(device);
}

void SetTensor(torch::jit::Module& m, const std::string& name, const torch::Tensor& value) {
  const torch::Tensor old = m.attr(name).toTensor();
  torch::Tensor t = value.detach().contiguous();
  if (old.requires_grad()) t.set_requires_grad(true);
  m.setattr(name, t);
}

void SelectRows(Analysis& a, const std::string& layer, const std::vector<int64_t>& kept,
                const std::vector<std::string>& names) {
  torch::jit::Module& m = a.Module(layer);
  for (const std::string& name : names) {
    const torch::Tensor t = a.Tensor(layer, name);
    if (t.defined()) SetTensor(m, name, t.index_select(0, Index(kept, t.device())));
  }
}

// Removes input channels of a reader (convolution, grouped convolution or Linear),
// first folding removed constant channels into its bias.
void ShrinkReader(Analysis& a, const Use& use, const Plan& plan) {
  torch::jit::Module& m = a.Module(use.layer);
  torch::Tensor w = a.Tensor(use.layer, "weight");
  torch::Tensor bias = a.Tensor(use.layer, "bias");
  const int64_t channels = static_cast<int64_t>(plan.pruned.size());
  const std::vector<double>& k = a.Constants(use.value);
  std::vector<bool> keep(channels, false);
  for (int64_t c : plan.kept) keep[c] = true;
  const int64_t per_channel = use.role == Role::kLinearIn ? w.size(1) / channels : 1;
  const int64_t per_group = channels / use.groups;  // input channels per group
  const int64_t out_per_group = w.size(0) / use.groups;
  // The constant's contribution goes into the bias, or with the opposite sign into the
  // running mean of the BatchNorm after a reader that has none.
  torch::jit::Module* target = &m;
  std::string target_name = "bias";
  double sign = 1;
  if (!bias.defined() && !use.batch_norm_after.empty()) {
    target = &a.Module(use.batch_norm_after);
    target_name = "running_mean";
    bias = a.Tensor(use.batch_norm_after, "running_mean");
    sign = -1;
  }
  if (bias.defined()) {
    torch::Tensor folded = bias.detach().clone().to(torch::kDouble);
    const torch::Tensor wd = w.detach().to(torch::kDouble);
    for (int64_t c = 0; c < channels; ++c) {
      if (keep[c] || c >= static_cast<int64_t>(k.size()) || std::isnan(k[c]) || k[c] == 0) {
        continue;
      }
      if (use.role == Role::kLinearIn) {
        folded += sign * k[c] * wd.slice(1, c * per_channel, (c + 1) * per_channel).sum(1);
      } else {
        const int64_t g = c / per_group;
        torch::Tensor rows = wd.slice(0, g * out_per_group, (g + 1) * out_per_group);
        folded.slice(0, g * out_per_group, (g + 1) * out_per_group) +=
            sign * k[c] * rows.select(1, c % per_group).reshape({out_per_group, -1}).sum(1);
      }
    }
    SetTensor(*target, target_name, folded.to(bias.scalar_type()));
  }
  std::vector<int64_t> columns;
  if (use.role == Role::kLinearIn) {
    for (int64_t c : plan.kept)
      for (int64_t j = 0; j < per_channel; ++j) columns.push_back(c * per_channel + j);
    SetTensor(m, "weight", w.index_select(1, Index(columns, w.device())));
    return;
  }
  std::vector<torch::Tensor> parts;
  for (int64_t g = 0; g < use.groups; ++g) {
    std::vector<int64_t> local;
    for (int64_t c : plan.kept)
      if (c / per_group == g) local.push_back(c % per_group);
    parts.push_back(w.slice(0, g * out_per_group, (g + 1) * out_per_group)
                        .index_select(1, Index(local, w.device())));
  }
  SetTensor(m, "weight", torch::cat(parts, 0));
}

// Rewrites the groups constant of a depthwise convolution's method graph.
void SetGroups(torch::jit::Module& m, int64_t old_groups, int64_t new_groups) {
  for (const torch::jit::Method& method : m.get_methods()) {
    std::shared_ptr<torch::jit::Graph> graph = method.graph();
    std::vector<Block*> stack = {graph->block()};
    while (!stack.empty()) {
      Block* b = stack.back();
      stack.pop_back();
      for (Node* n : b->nodes()) {
        for (Block* inner : n->blocks()) stack.push_back(inner);
        if (!IsConvolution(n)) continue;
        const size_t index = Kind(n) == "aten::_convolution" ? 8 : 6;
        if (torch::jit::constant_as<int64_t>(n->input(index)) != old_groups) continue;
        torch::jit::WithInsertPoint guard(n);
        n->replaceInput(index, graph->insertConstant(new_groups));
      }
    }
  }
}

std::vector<int64_t> Shape(const torch::Tensor& t) { return t.sizes().vec(); }

absl::StatusOr<SpeedupResult> Speedup(torch::jit::Module& model) {
  torch::NoGradGuard no_grad;
  Analysis a(model);
  a.Run();
  // A layer met in two spaces (called twice on different tensors) cannot be shrunk for
  // both: pin them.
  std::map<std::pair<std::string, bool>, int> seen;
  for (const Use& use : a.uses()) {
    const bool reads = use.role == Role::kConvIn || use.role == Role::kLinearIn;
    auto [it, inserted] = seen.emplace(std::make_pair(use.layer, reads), a.Find(use.space));
    if (!inserted && a.Find(it->second) != a.Find(use.space)) {
      const std::string reason = absl::StrCat(use.layer, " is called more than once");
      a.Pin(use.space, reason);
      a.Pin(it->second, reason);
    }
  }
  std::map<int, Plan> plans;
  for (int round = 0; round <= a.SpaceCount(); ++round) {
    plans = PlanSpaces(a);
    if (!CheckDepthwiseTypes(a, model, plans)) break;
  }
  SpeedupResult result;
  std::map<std::string, std::vector<int64_t>> before;
  for (const Use& use : a.uses()) {
    const torch::Tensor w =
        a.Tensor(use.layer, use.role == Role::kBatchNorm ? "running_mean" : "weight");
    before.emplace(use.layer, Shape(w));
  }
  std::map<std::string, std::string> kinds;
  bool groups_edited = false;
  for (const Use& use : a.uses()) {
    const Plan& plan = plans.at(a.Find(use.space));
    if (plan.kept.size() == plan.pruned.size()) continue;
    kinds[use.layer] = RoleKind(use.role);
    switch (use.role) {
      case Role::kConvOut:
      case Role::kLinearOut:
        SelectRows(a, use.layer, plan.kept, {"weight", "bias"});
        break;
      case Role::kBatchNorm:
        SelectRows(a, use.layer, plan.kept, {"weight", "bias", "running_mean", "running_var"});
        break;
      case Role::kDepthwise: {
        const int64_t old_groups = use.groups;
        SelectRows(a, use.layer, plan.kept, {"weight", "bias"});
        SetGroups(a.Module(use.layer), old_groups, static_cast<int64_t>(plan.kept.size()));
        groups_edited = true;
        break;
      }
      case Role::kConvIn:
      case Role::kLinearIn:
        ShrinkReader(a, use, plan);
        break;
    }
  }
  if (groups_edited) {
    // Executors compiled before the edit may have inlined the old constant: reload the
    // model from its own serialization, which compiles the edited graphs afresh.
    std::stringstream buffer;
    model.save(buffer);
    torch::Device device = torch::kCPU;
    for (const torch::Tensor& p : model.parameters()) {
      device = p.device();
      break;
    }
    const bool training = model.is_training();
    model = torch::jit::load(buffer, device);
    model.train(training);
  }
  for (const auto& [layer, kind] : kinds) {
    const torch::Tensor w = a.Tensor(layer, kind == "batch_norm" ? "running_mean" : "weight");
    result.layers.push_back({layer, kind, before.at(layer), Shape(w)});
  }
  for (const auto& [s, plan] : plans) {
    int64_t left = 0;
    std::vector<bool> kept(plan.pruned.size(), false);
    for (int64_t c : plan.kept) kept[c] = true;
    for (size_t c = 0; c < plan.pruned.size(); ++c) left += plan.pruned[c] && kept[c];
    if (left == 0) continue;
    // Named by the layers that make its channels (its BatchNorms when there are none).
    std::set<std::string> producers, batch_norms;
    for (const Use& use : a.uses()) {
      if (a.Find(use.space) != s) continue;
      if (use.role == Role::kConvOut || use.role == Role::kLinearOut) producers.insert(use.layer);
      if (use.role == Role::kBatchNorm) batch_norms.insert(use.layer);
    }
    if (producers.empty()) producers = batch_norms;
    result.left_masked.push_back(
        {absl::StrJoin(producers, "+"), left,
         plan.reason.empty() ? "a layer keeps at least one channel" : plan.reason});
  }
  return result;
}

// Multiply-adds of the convolutions and Linear layers a forward pass runs, observed
// through LibTorch's RecordFunction callbacks on this thread.
thread_local int64_t* counted_macs = nullptr;

std::unique_ptr<at::ObserverContext> CountMacs(const at::RecordFunction& fn) {
  if (counted_macs == nullptr) return nullptr;
  const std::string name = fn.name();
  if (name != "aten::_convolution" && name != "aten::linear") return nullptr;
  // The interpreter also opens a range per op without recording its inputs; there
  // inputs() is empty, or (built without NDEBUG) throws. The dispatcher's range counts.
  c10::ArrayRef<const c10::IValue> inputs;
  try {
    inputs = fn.inputs();
  } catch (const c10::Error&) {
    return nullptr;
  }
  if (name == "aten::_convolution" && inputs.size() >= 9 && inputs[0].isTensor() &&
      inputs[1].isTensor()) {
    const torch::Tensor x = inputs[0].toTensor();
    const torch::Tensor w = inputs[1].toTensor();
    if (inputs[6].isBool() && inputs[6].toBool()) return nullptr;  // transposed: not counted
    const std::vector<int64_t> stride = inputs[3].toIntVector();
    const std::vector<int64_t> padding = inputs[4].toIntVector();
    const std::vector<int64_t> dilation = inputs[5].toIntVector();
    int64_t outputs = x.size(0) * w.size(0);
    for (int64_t d = 2; d < x.dim(); ++d) {
      const size_t i = static_cast<size_t>(d - 2);
      const int64_t s = stride.size() > i ? stride[i] : stride.back();
      const int64_t p = padding.size() > i ? padding[i] : padding.back();
      const int64_t dl = dilation.size() > i ? dilation[i] : dilation.back();
      outputs *= (x.size(d) + 2 * p - dl * (w.size(d) - 1) - 1) / s + 1;
    }
    *counted_macs += outputs * (w.numel() / w.size(0));
  } else if (name == "aten::linear" && inputs.size() >= 2 && inputs[0].isTensor() &&
             inputs[1].isTensor()) {
    const torch::Tensor x = inputs[0].toTensor();
    const torch::Tensor w = inputs[1].toTensor();
    *counted_macs += x.numel() / x.size(-1) * w.size(0) * w.size(1);
  }
  return nullptr;
}

double MedianMs(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

nlohmann::ordered_json CostJson(const ModelCost& cost) {
  nlohmann::ordered_json j = {{"parameters", cost.parameters},
                              {"nonzero_parameters", cost.nonzero_parameters},
                              {"macs", cost.macs}};
  for (const auto& [batch, ms] : cost.latency_ms)
    j["latency_ms"][absl::StrCat("batch_", batch)] = ms;
  return j;
}

}  // namespace

absl::StatusOr<SpeedupResult> SpeedupModule(torch::jit::Module& model) {
  SpeedupResult result;
  RETURN_IF_ERROR(CatchTorch("speeding up the model", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(result, Speedup(model));
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<ModelCost> MeasureModel(torch::jit::Module& model, const MeasureOptions& options) {
  if (options.input_shape.empty()) {
    return absl::InvalidArgumentError("the input shape (one example, no batch) is needed");
  }
  ModelCost cost;
  RETURN_IF_ERROR(CatchTorch("measuring the model", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    model.eval();
    for (const torch::Tensor& p : model.parameters()) {
      cost.parameters += p.numel();
      cost.nonzero_parameters += p.count_nonzero().item<int64_t>();
    }
    const torch::Device device(options.device);
    std::vector<int64_t> shape = {1};
    shape.insert(shape.end(), options.input_shape.begin(), options.input_shape.end());
    {
      int64_t macs = 0;
      counted_macs = &macs;
      const at::CallbackHandle handle =
          at::addThreadLocalCallback(at::RecordFunctionCallback(CountMacs).needsInputs(true).scopes(
              {at::RecordScope::FUNCTION}));
      try {
        model.forward({torch::zeros(shape, device)});
      } catch (const std::exception& e) {
        at::removeCallback(handle);
        counted_macs = nullptr;
        // The shape is the caller's input: a model that cannot take it is bad input.
        return absl::InvalidArgumentError(
            absl::StrCat("the model does not run on an input of "
                         "shape [",
                         absl::StrJoin(shape, ", "), "]: ", e.what()));
      }
      at::removeCallback(handle);
      counted_macs = nullptr;
      cost.macs = macs;
    }
    if (!options.latency) return absl::OkStatus();
    for (int64_t batch : options.batch_sizes) {
      shape[0] = batch;
      const torch::Tensor x = torch::randn(shape, torch::TensorOptions(device));
      const auto sync = [&] {
        if (device.is_cuda()) torch::cuda::synchronize();
      };
      for (int i = 0; i < options.warmup; ++i) model.forward({x});
      sync();
      std::vector<double> times;
      for (int i = 0; i < std::max(1, options.runs); ++i) {
        const auto start = std::chrono::steady_clock::now();
        model.forward({x});
        sync();
        times.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      }
      cost.latency_ms[batch] = MedianMs(times);
    }
    return absl::OkStatus();
  }));
  return cost;
}

nlohmann::ordered_json ResultJson(const SpeedupResult& result) {
  nlohmann::ordered_json j;
  j["layers"] = nlohmann::ordered_json::array();
  for (const ShrunkLayer& l : result.layers) {
    j["layers"].push_back(
        {{"name", l.name}, {"kind", l.kind}, {"before", l.before}, {"after", l.after}});
  }
  j["left_masked"] = nlohmann::ordered_json::array();
  for (const LeftMasked& l : result.left_masked) {
    j["left_masked"].push_back(
        {{"layers", l.layers}, {"channels", l.channels}, {"reason", l.reason}});
  }
  return j;
}

std::string SpeedupResultJson(const SpeedupResult& result) { return ResultJson(result).dump(2); }

std::string SpeedupReport::ToJson() const {
  nlohmann::ordered_json j;
  j["input_shape"] = options.input_shape;
  j["device"] = options.device;
  j.update(ResultJson(result));
  if (original.has_value()) j["models"]["original"] = CostJson(*original);
  j["models"]["masked"] = CostJson(masked);
  j["models"]["sped_up"] = CostJson(sped_up);
  j["output_relative_difference"] = output_relative_difference;
  return j.dump(2);
}

std::string SpeedupTable(const SpeedupReport& report) {
  std::string out;
  for (const ShrunkLayer& l : report.result.layers) {
    absl::StrAppendFormat(&out, "  %-28s %-15s [%s] -> [%s]\n", l.name, l.kind,
                          absl::StrJoin(l.before, ", "), absl::StrJoin(l.after, ", "));
  }
  for (const LeftMasked& l : report.result.left_masked) {
    absl::StrAppendFormat(&out, "  left masked: %s, %d pruned channel(s): %s\n", l.layers,
                          l.channels, l.reason);
  }
  std::vector<std::pair<std::string, const ModelCost*>> rows;
  if (report.original.has_value()) rows.emplace_back("original", &*report.original);
  rows.emplace_back("masked", &report.masked);
  rows.emplace_back("sped_up", &report.sped_up);
  absl::StrAppendFormat(&out, "  %-9s %12s %12s %14s", "model", "parameters", "nonzero", "MACs");
  for (const auto& [batch, ms] : report.masked.latency_ms) {
    absl::StrAppendFormat(&out, " %12s", absl::StrCat("ms@batch", batch));
  }
  out += "\n";
  for (const auto& [name, cost] : rows) {
    absl::StrAppendFormat(&out, "  %-9s %12d %12d %14d", name, cost->parameters,
                          cost->nonzero_parameters, cost->macs);
    for (const auto& [batch, ms] : cost->latency_ms) absl::StrAppendFormat(&out, " %12.3f", ms);
    out += "\n";
  }
  return out;
}

absl::StatusOr<SpeedupReport> SpeedupFile(const std::string& masked_path,
                                          const std::string& output_path,
                                          const MeasureOptions& options,
                                          const std::string& original_path) {
  SpeedupReport report;
  report.options = options;
  const auto load = [&](const std::string& path) -> absl::StatusOr<torch::jit::Module> {
    torch::jit::Module m;
    RETURN_IF_ERROR(CatchTorch(absl::StrCat("loading ", path), [&] {
      m = torch::jit::load(path, torch::Device(options.device));
      return absl::OkStatus();
    }));
    return m;
  };
  if (!original_path.empty()) {
    ASSIGN_OR_RETURN(torch::jit::Module original, load(original_path));
    ASSIGN_OR_RETURN(report.original, MeasureModel(original, options));
  }
  ASSIGN_OR_RETURN(torch::jit::Module masked, load(masked_path));
  ASSIGN_OR_RETURN(report.masked, MeasureModel(masked, options));
  ASSIGN_OR_RETURN(torch::jit::Module small, load(masked_path));
  small.eval();
  ASSIGN_OR_RETURN(report.result, SpeedupModule(small));
  RETURN_IF_ERROR(CatchTorch("checking and saving the sped-up model", [&] {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> shape = {4};
    shape.insert(shape.end(), options.input_shape.begin(), options.input_shape.end());
    const torch::Tensor x =
        torch::randn(shape, torch::TensorOptions(torch::Device(options.device)));
    const torch::Tensor expected = masked.forward({x}).toTensor();
    const torch::Tensor actual = small.forward({x}).toTensor();
    report.output_relative_difference =
        ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item<double>();
    const std::string temporary = absl::StrCat(output_path, ".tmp.", getpid());
    small.save(temporary);
    if (std::rename(temporary.c_str(), output_path.c_str()) != 0) {
      std::remove(temporary.c_str());
      return absl::FailedPreconditionError(absl::StrCat("cannot write ", output_path));
    }
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(torch::jit::Module reloaded, load(output_path));
  ASSIGN_OR_RETURN(report.sped_up, MeasureModel(reloaded, options));
  return report;
}

}  // namespace autocompress::compression
