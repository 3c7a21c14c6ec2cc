// Train/eval mode of a TorchScript model, module by module. Module::train(flag) sets
// every submodule to `flag`, so saving only the root's mode and putting it back turns a
// BatchNorm the caller froze in eval mode back to training. ModuleModes records each
// module's own flag; ModeScope sets a mode for a scope and restores the record on every
// path out. Used by the session's rollback, the pruners' training epochs and the
// training library's fine-tuning and evaluation.
#ifndef AUTOCOMPRESS_COMPRESSION_MODULE_MODES_H_
#define AUTOCOMPRESS_COMPRESSION_MODULE_MODES_H_

#include <memory>

namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

class ModuleModes {
 public:
  // Records the mode of `model` and of each of its submodules.
  explicit ModuleModes(const torch::jit::Module& model);
  ~ModuleModes();
  ModuleModes(ModuleModes&&) noexcept;
  ModuleModes& operator=(ModuleModes&&) noexcept;

  // Puts every recorded module back in its recorded mode.
  void Restore() const;

 private:
  struct Record;
  std::unique_ptr<Record> record_;
};

class ModeScope {
 public:
  // Sets `model` (recursively) to train mode when `training`, else eval mode.
  ModeScope(torch::jit::Module& model, bool training);
  ~ModeScope() { modes_.Restore(); }
  ModeScope(const ModeScope&) = delete;
  ModeScope& operator=(const ModeScope&) = delete;

 private:
  ModuleModes modes_;
};

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_MODULE_MODES_H_
