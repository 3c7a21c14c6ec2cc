#include "worker/training/saved_tensors_dataset.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/torch_status.h"

namespace autocompress::training {

absl::StatusOr<std::unique_ptr<Dataset>> LoadSavedTensors(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::Tensor inputs, targets;
  absl::Status status = compression::CatchTorch(path, [&]() -> absl::Status {
    c10::IValue value;
    try {
      value = torch::pickle_load(bytes);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a torch.save file (", e.what(), ")"));
    }
    if (value.isTuple() && value.toTupleRef().elements().size() == 2) {
      inputs = value.toTupleRef().elements()[0].isTensor()
                   ? value.toTupleRef().elements()[0].toTensor()
                   : torch::Tensor();
      targets = value.toTupleRef().elements()[1].isTensor()
                    ? value.toTupleRef().elements()[1].toTensor()
                    : torch::Tensor();
    } else if (value.isList() && value.toListRef().size() == 2) {
      const auto& list = value.toListRef();
      if (list[0].isTensor() && list[1].isTensor()) {
        inputs = list[0].toTensor();
        targets = list[1].toTensor();
      }
    } else if (value.isGenericDict()) {
      for (const auto& entry : value.toGenericDict()) {
        if (!entry.key().isString() || !entry.value().isTensor()) continue;
        if (entry.key().toStringRef() == "inputs") inputs = entry.value().toTensor();
        if (entry.key().toStringRef() == "targets") targets = entry.value().toTensor();
      }
    }
    if (!inputs.defined() || !targets.defined()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path,
                       ": expected (inputs, targets) tensors, a list of two, or a dict with "
                       "'inputs' and 'targets'; got ",
                       value.tagKind()));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return Dataset::FromTensors(path, inputs, targets);
}

}  // namespace autocompress::training
