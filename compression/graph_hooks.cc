#include "compression/graph_hooks.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"

namespace autocompress::compression {
namespace {

// Process-wide: the operator has nothing but the id to find its handler.
class Registry {
 public:
  static Registry& Get() {
    static auto* registry = new Registry();
    return *registry;
  }
  int64_t Add(std::shared_ptr<ActivationHandler> handler) {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t id = next_++;
    handlers_[id] = std::move(handler);
    return id;
  }
  void Erase(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    handlers_.erase(id);
  }
  std::shared_ptr<ActivationHandler> Find(int64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = handlers_.find(id);
    return it == handlers_.end() ? nullptr : it->second;
  }

 private:
  std::mutex mu_;
  int64_t next_ = 0;
  std::map<int64_t, std::shared_ptr<ActivationHandler>> handlers_;
};

class ObserveFunction : public torch::autograd::Function<ObserveFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                               ActivationHandler* handler, bool training) {
    torch::Tensor mask;
    torch::Tensor y = handler->Forward(x, training, &mask);
    ctx->saved_data["masked"] = mask.defined();
    if (mask.defined()) ctx->save_for_backward({mask});
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    torch::Tensor grad = grads[0];
    if (ctx->saved_data["masked"].toBool()) grad = grad * ctx->get_saved_variables()[0];
    return {grad, torch::Tensor(), torch::Tensor()};
  }
};

torch::Tensor Observe(const torch::Tensor& x, int64_t id, bool training) {
  if (id < 0) return x;
  std::shared_ptr<ActivationHandler> handler = Registry::Get().Find(id);
  if (handler == nullptr) return x;
  // Observers see the tensor without recording autograd history.
  {
    torch::NoGradGuard no_grad;
    torch::Tensor probe;
    if (!x.requires_grad()) return handler->Forward(x, training, &probe);
  }
  return ObserveFunction::apply(x, handler.get(), training);
}

TORCH_LIBRARY(autocompress, m) {
  // Not a pure function (it collects statistics, may return its input): the JIT must not
  // move, merge or drop calls.
  m.def(torch::schema("observe(Tensor x, int id, bool training) -> Tensor",
                      c10::AliasAnalysisKind::CONSERVATIVE),
        Observe);
}

std::string AttributeName(HookSite site) {
  return site == HookSite::kInput ? "_autocompress_input_hook" : "_autocompress_output_hook";
}

}  // namespace

struct GraphHooks::Impl {
  torch::jit::Module model;
  std::vector<int64_t> ids;
  // Rewritten (class, site) pairs and the nodes inserted into their graphs.
  std::set<std::pair<std::string, HookSite>> rewritten;
  std::vector<torch::jit::Node*> inserted;

  // Inserts observe(...) at `site` of the class's forward graph, once per class.
  void Rewrite(const torch::jit::Module& layer, HookSite site) {
    const std::string type = layer.type()->str();
    if (!rewritten.insert({type, site}).second) return;
    torch::jit::Function& function = layer.get_method("forward").function();
    std::shared_ptr<torch::jit::Graph> graph = torch::jit::toGraphFunction(function).graph();
    torch::jit::Value* self = graph->inputs()[0];
    if (site == HookSite::kOutput) {
      torch::jit::Node* ret = graph->return_node();
      torch::jit::WithInsertPoint guard(ret);
      torch::jit::Value* id = graph->insertGetAttr(self, AttributeName(site));
      torch::jit::Value* training = graph->insertGetAttr(self, "training");
      torch::jit::Value* hooked = graph->insert(
          c10::Symbol::fromQualString("autocompress::observe"), {ret->input(0), id, training});
      ret->replaceInput(0, hooked);
      inserted.push_back(hooked->node());
    } else {
      torch::jit::Value* input = graph->inputs()[1];
      torch::jit::WithInsertPoint guard(graph->nodes().front());
      torch::jit::Value* id = graph->insertGetAttr(self, AttributeName(site));
      torch::jit::Value* training = graph->insertGetAttr(self, "training");
      torch::jit::Value* hooked = graph->insert(
          c10::Symbol::fromQualString("autocompress::observe"), {input, id, training});
      input->replaceAllUsesWith(hooked);
      hooked->node()->replaceInput(0, input);
      inserted.push_back(hooked->node());
    }
  }
};

GraphHooks::GraphHooks(torch::jit::Module& model) : impl_(std::make_unique<Impl>()) {
  impl_->model = model;
}

GraphHooks::~GraphHooks() { Remove(); }

absl::Status GraphHooks::Add(const std::string& layer, HookSite site,
                             std::shared_ptr<ActivationHandler> handler) {
  torch::jit::Module target;
  bool found = false;
  for (const auto& item : impl_->model.named_modules()) {
    if (item.name == layer) {
      target = item.value;
      found = true;
    }
  }
  if (!found) return absl::InvalidArgumentError(absl::StrCat("no layer named ", layer));
  const std::string attribute = AttributeName(site);
  // Every instance of the class gets the attribute (-1: not hooked), this one its id.
  // The attribute lives on the shared class type, but each object needs its own slot.
  for (auto item : impl_->model.named_modules()) {
    if (item.value.type() != target.type()) continue;
    const c10::optional<size_t> slot = item.value.type()->findAttributeSlot(attribute);
    if (!slot.has_value() || *slot >= item.value._ivalue()->slots().size()) {
      item.value.register_attribute(attribute, c10::IntType::get(), int64_t{-1});
    }
  }
  const int64_t id = Registry::Get().Add(std::move(handler));
  impl_->ids.push_back(id);
  target.register_attribute(attribute, c10::IntType::get(), id);
  impl_->Rewrite(target, site);
  return absl::OkStatus();
}

void GraphHooks::Remove() {
  for (torch::jit::Node* node : impl_->inserted) {
    node->output()->replaceAllUsesWith(node->input(0));
    torch::jit::Node* id = node->input(1)->node();
    torch::jit::Node* training = node->input(2)->node();
    node->destroy();
    if (!id->hasUses()) id->destroy();
    if (!training->hasUses()) training->destroy();
  }
  impl_->inserted.clear();
  for (int64_t id : impl_->ids) Registry::Get().Erase(id);
  impl_->ids.clear();
}

}  // namespace autocompress::compression
