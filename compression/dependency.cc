#include "compression/dependency.h"

#include <torch/csrc/jit/passes/inliner.h>
#include <torch/script.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "absl/strings/str_join.h"
#include "compression/torch_status.h"

namespace autocompress::compression {
namespace {

using torch::jit::Node;
using torch::jit::Value;

bool IsLayerOp(const Node* n) {
  const std::string kind = n->kind().toQualString();
  // The reference stops at Conv2d, Linear and ConvTranspose2d.
  return kind == "aten::conv2d" || kind == "aten::_convolution" ||
         kind == "aten::conv_transpose2d" || kind == "aten::linear";
}

bool EndsPath(const Node* n) {
  const std::string kind = n->kind().toQualString();
  return kind == "aten::view" || kind == "aten::reshape" || kind == "aten::flatten" ||
         kind == "aten::permute" || kind == "aten::transpose" || kind == "aten::t" ||
         kind == "prim::GetAttr" || kind == "prim::Constant" || kind == "prim::Param";
}

// "block1.conv_b" from the chain of GetAttr nodes that produced a weight value.
std::string LayerName(const Value* weight) {
  std::vector<std::string> parts;
  const Node* n = weight->node();
  if (n->kind() != c10::prim::GetAttr) return "";
  for (n = n->input(0)->node(); n->kind() == c10::prim::GetAttr; n = n->input(0)->node()) {
    parts.push_back(n->s(c10::attr::name));
  }
  std::reverse(parts.begin(), parts.end());
  return absl::StrJoin(parts, ".");
}

// The value of an `if` condition that is a constant or a module attribute (a flag set in
// __init__, like MobileNetV2's use_res_connect; TorchScript keeps both branches in the
// graph). Only the branch this model takes carries dependencies: the other may even be
// impossible (a skip add between different channel counts). nullopt when the condition
// depends on the input.
std::optional<bool> StaticCondition(const Value* condition, const torch::jit::Module& model) {
  if (const c10::optional<bool> c = torch::jit::constant_as<bool>(condition)) return *c;
  std::vector<std::string> names;
  const Value* v = condition;
  for (; v->node()->kind() == c10::prim::GetAttr; v = v->node()->input(0)) {
    names.push_back(v->node()->s(c10::attr::name));
  }
  // The chain must start at the graph's `self`.
  if (names.empty() || v->node()->kind() != c10::prim::Param || v->offset() != 0) {
    return std::nullopt;
  }
  c10::IValue value = model._ivalue();
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    if (!value.isObject() || !value.toObject()->type()->hasAttribute(*it)) return std::nullopt;
    value = value.toObject()->getAttr(*it);
  }
  return value.isBool() ? std::optional<bool>(value.toBool()) : std::nullopt;
}

// The blocks of an `if` that this model can run: the taken one when the condition is
// static, else both.
std::vector<torch::jit::Block*> LiveBlocks(Node* n, const torch::jit::Module& model) {
  std::vector<torch::jit::Block*> blocks(n->blocks().begin(), n->blocks().end());
  if (n->kind() != c10::prim::If) return blocks;
  const std::optional<bool> taken = StaticCondition(n->input(0), model);
  if (!taken.has_value()) return blocks;
  return {blocks[*taken ? 0 : 1]};
}

// The nearest layers upstream of `start` on every path.
std::set<std::string> NearestLayers(Value* start, const torch::jit::Module& model) {
  std::set<std::string> found;
  std::set<const Value*> seen;
  std::vector<Value*> stack = {start};
  while (!stack.empty()) {
    Value* v = stack.back();
    stack.pop_back();
    if (!seen.insert(v).second) continue;
    Node* n = v->node();
    if (IsLayerOp(n)) {
      const std::string name = LayerName(n->input(1));
      if (!name.empty()) found.insert(name);
      continue;
    }
    if (EndsPath(n)) continue;
    if (n->kind() == c10::prim::If) {
      for (torch::jit::Block* block : LiveBlocks(n, model)) {
        stack.push_back(block->outputs()[v->offset()]);
      }
      continue;
    }
    for (Value* input : n->inputs()) {
      if (input->type()->kind() == c10::TypeKind::TensorType) stack.push_back(input);
    }
  }
  return found;
}

int64_t Lcm(int64_t a, int64_t b) { return a / std::gcd(a, b) * b; }

void Visit(torch::jit::Block* block, const torch::jit::Module& model,
           std::vector<std::set<std::string>>& groups,
           std::map<std::string, int64_t>& constraints) {
  for (Node* n : block->nodes()) {
    for (torch::jit::Block* inner : LiveBlocks(n, model)) Visit(inner, model, groups, constraints);
    const std::string kind = n->kind().toQualString();
    if (kind == "aten::conv2d" || kind == "aten::_convolution" ||
        kind == "aten::conv_transpose2d") {
      // groups: input 6 of conv2d and conv_transpose2d, 8 of _convolution (whose input
      // 6 says whether it is transposed).
      const c10::optional<int64_t> conv_groups =
          torch::jit::constant_as<int64_t>(n->input(kind == "aten::_convolution" ? 8 : 6));
      bool transposed = kind == "aten::conv_transpose2d";
      if (kind == "aten::_convolution") {
        transposed = torch::jit::constant_as<bool>(n->input(6)).value_or(false);
      }
      const std::string name = LayerName(n->input(1));
      if (conv_groups.has_value() && *conv_groups > 1 && !name.empty()) {
        int64_t filters = 0;
        for (const auto& item : model.named_modules()) {
          if (item.name != name) continue;
          const at::Tensor weight = item.value.attr("weight").toTensor();
          // A transposed convolution's weight is [in, out / groups, ...].
          filters = transposed ? weight.size(1) * *conv_groups : weight.size(0);
        }
        if (filters != *conv_groups) {  // depthwise convolutions constrain nothing
          std::set<std::string> affected = NearestLayers(n->input(0), model);
          affected.insert(name);
          for (const std::string& layer : affected) {
            auto [it, inserted] = constraints.emplace(layer, *conv_groups);
            if (!inserted) it->second = Lcm(it->second, *conv_groups);
          }
        }
      }
    }
    std::vector<Value*> operands;
    if (kind == "aten::add" || kind == "aten::add_") {
      operands = {n->input(0), n->input(1)};
    } else if (kind == "aten::cat") {
      const c10::optional<int64_t> dim = torch::jit::constant_as<int64_t>(n->input(1));
      Node* list = n->input(0)->node();
      if (dim.has_value() && *dim != 1 && list->kind() == c10::prim::ListConstruct) {
        operands.assign(list->inputs().begin(), list->inputs().end());
      }
    }
    std::set<std::string> layers;
    for (Value* operand : operands) {
      if (operand->type()->kind() != c10::TypeKind::TensorType) continue;
      for (const std::string& name : NearestLayers(operand, model)) layers.insert(name);
    }
    if (layers.size() >= 2) groups.push_back(std::move(layers));
  }
}

}  // namespace

absl::StatusOr<ChannelDependencies> AnalyzeChannelDependencies(const torch::jit::Module& model) {
  std::vector<std::set<std::string>> groups;
  ChannelDependencies result;
  absl::Status status = CatchTorch("analysing channel dependencies", [&] {
    std::shared_ptr<torch::jit::Graph> graph = model.get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);
    Visit(graph->block(), model, groups, result.group_constraints);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  // Merge groups that share a layer.
  bool merged = true;
  while (merged) {
    merged = false;
    for (size_t i = 0; i < groups.size() && !merged; ++i) {
      for (size_t j = i + 1; j < groups.size() && !merged; ++j) {
        const bool overlap =
            std::any_of(groups[j].begin(), groups[j].end(),
                        [&](const std::string& n) { return groups[i].count(n) > 0; });
        if (overlap) {
          groups[i].insert(groups[j].begin(), groups[j].end());
          groups.erase(groups.begin() + j);
          merged = true;
        }
      }
    }
  }
  for (const auto& g : groups) result.sets.emplace_back(g.begin(), g.end());
  return result;
}

}  // namespace autocompress::compression
