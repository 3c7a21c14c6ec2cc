#include "compression/module_modes.h"

#include <torch/script.h>

#include <utility>
#include <vector>

namespace autocompress::compression {

struct ModuleModes::Record {
  std::vector<std::pair<torch::jit::Module, bool>> modes;
};

ModuleModes::ModuleModes(const torch::jit::Module& model) : record_(std::make_unique<Record>()) {
  for (const torch::jit::Module& m : model.modules()) {
    record_->modes.emplace_back(m, m.is_training());
  }
}

ModuleModes::~ModuleModes() = default;
ModuleModes::ModuleModes(ModuleModes&&) noexcept = default;
ModuleModes& ModuleModes::operator=(ModuleModes&&) noexcept = default;

void ModuleModes::Restore() const {
  // Each module's own "training" attribute, not Module::train, which recurses.
  for (const auto& [module, training] : record_->modes) {
    module._ivalue()->setAttr("training", training);
  }
}

ModeScope::ModeScope(torch::jit::Module& model, bool training) : modes_(model) {
  model.train(training);
}

}  // namespace autocompress::compression
