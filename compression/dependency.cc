#include "compression/dependency.h"

#include <torch/script.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>

#include "compression/script_graph.h"
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
    Visit(InlinedForward(model)->block(), model, groups, result.group_constraints);
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
