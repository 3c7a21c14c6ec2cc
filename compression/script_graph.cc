#include "compression/script_graph.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/script.h>

#include <algorithm>

#include "absl/strings/str_join.h"

namespace autocompress::compression {

using torch::jit::Node;
using torch::jit::Value;

namespace {

// Inlines every call in `block` once; true when it inlined any. Uses each callee's
// graph(), never optimized_graph(): torch::jit::Inline would build and cache the
// optimized graphs, which a method's executor then runs, so graph hooks added after an
// analysis (apoz, mean_activation, qat) would never run.
bool InlineCalls(torch::jit::Block* block) {
  bool inlined = false;
  for (auto it = block->nodes().begin(), end = block->nodes().end(); it != end;) {
    Node* n = *it++;
    torch::jit::GraphFunction* callee = nullptr;
    if (n->kind() == c10::prim::CallMethod) {
      if (auto type = n->input(0)->type()->cast<c10::ClassType>()) {
        callee = torch::jit::tryToGraphFunction(type->getMethod(n->s(c10::attr::name)));
      }
    } else if (n->kind() == c10::prim::CallFunction &&
               n->input(0)->node()->kind() == c10::prim::Constant) {
      auto type = n->input(0)->type()->cast<c10::FunctionType>();
      if (type) {
        callee = torch::jit::tryToGraphFunction(*type->function());
        if (callee != nullptr) n->removeInput(0);
      }
    }
    if (callee != nullptr) {
      torch::jit::inlineCallTo(n, callee, callee->graph().get());
      inlined = true;
      continue;
    }
    for (torch::jit::Block* inner : n->blocks()) inlined = InlineCalls(inner) || inlined;
  }
  return inlined;
}

}  // namespace

std::shared_ptr<torch::jit::Graph> InlinedForward(const torch::jit::Module& model) {
  std::shared_ptr<torch::jit::Graph> graph = model.get_method("forward").graph()->copy();
  while (InlineCalls(graph->block())) {
  }
  return graph;
}

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

std::vector<torch::jit::Block*> LiveBlocks(Node* n, const torch::jit::Module& model) {
  std::vector<torch::jit::Block*> blocks(n->blocks().begin(), n->blocks().end());
  if (n->kind() != c10::prim::If) return blocks;
  const std::optional<bool> taken = StaticCondition(n->input(0), model);
  if (!taken.has_value()) return blocks;
  return {blocks[*taken ? 0 : 1]};
}

bool IsConvolution(const Node* n) {
  const std::string kind = n->kind().toQualString();
  return kind == "aten::conv2d" || kind == "aten::conv1d" || kind == "aten::_convolution";
}

namespace {

void FindBatchNorms(torch::jit::Block* block, const torch::jit::Module& model,
                    std::map<std::string, std::vector<std::string>>& found) {
  for (Node* n : block->nodes()) {
    for (torch::jit::Block* inner : LiveBlocks(n, model)) FindBatchNorms(inner, model, found);
    if (std::string(n->kind().toQualString()) != "aten::batch_norm") continue;
    const Node* producer = n->input(0)->node();
    if (!IsConvolution(producer)) continue;
    const std::string conv = LayerName(producer->input(1));
    const std::string bn = LayerName(n->input(1));
    if (conv.empty() || bn.empty()) continue;
    std::vector<std::string>& list = found[conv];
    if (std::find(list.begin(), list.end(), bn) == list.end()) list.push_back(bn);
  }
}

}  // namespace

std::map<std::string, std::vector<std::string>> BatchNormsAfterConvolutions(
    const torch::jit::Module& model) {
  std::map<std::string, std::vector<std::string>> found;
  FindBatchNorms(InlinedForward(model)->block(), model, found);
  return found;
}

}  // namespace autocompress::compression
