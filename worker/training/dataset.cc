#include "worker/training/dataset.h"

#include <torch/torch.h>

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compression/torch_status.h"
#include "worker/training/cifar10_dataset.h"
#include "worker/training/idx_dataset.h"
#include "worker/training/saved_tensors_dataset.h"

namespace autocompress::training {
namespace {

using Loader = std::function<absl::StatusOr<std::unique_ptr<Dataset>>(const std::string& directory,
                                                                      const std::string& split)>;

struct Format {
  const char* name;
  Loader load;
};

// Every on-disk format, in the order error messages list them.
const std::vector<Format>& Formats() {
  static const auto* formats = new std::vector<Format>{
      {"idx",
       [](const std::string& directory, const std::string& split) {
         // MNIST calls its test split t10k.
         return LoadIdxSplit(directory, split == "test" ? "t10k" : split);
       }},
      {"cifar10", [](const std::string& directory,
                     const std::string& split) { return LoadCifar10(directory, split); }},
      // One file per split: the split name is the file's business.
      {"tensors",
       [](const std::string& file, const std::string&) { return LoadSavedTensors(file); }},
  };
  return *formats;
}

}  // namespace

struct Dataset::Impl {
  std::string name;
  torch::Tensor inputs;
  torch::Tensor labels;
};

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() = default;
const std::string& Dataset::name() const { return impl_->name; }
int64_t Dataset::size() const { return impl_->labels.size(0); }
const at::Tensor& Dataset::inputs() const { return impl_->inputs; }
const at::Tensor& Dataset::labels() const { return impl_->labels; }

std::vector<int64_t> Dataset::example_shape() const {
  const auto sizes = impl_->inputs.sizes();
  return std::vector<int64_t>(sizes.begin() + 1, sizes.end());
}

absl::StatusOr<std::unique_ptr<Dataset>> Dataset::FromTensors(std::string name,
                                                              const at::Tensor& inputs,
                                                              const at::Tensor& labels) {
  if (!inputs.defined() || !labels.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": inputs or labels missing"));
  }
  if (inputs.dim() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": inputs need an example axis and a feature axis, got ", inputs.dim(), "-D"));
  }
  if (labels.dim() != 1 || at::isFloatingType(labels.scalar_type()) ||
      labels.scalar_type() == torch::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": labels must be a vector of integers, got ", labels.dim(), "-D ",
                     std::string(c10::toString(labels.scalar_type()))));
  }
  if (inputs.size(0) != labels.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", inputs.size(0), " inputs but ", labels.size(0), " labels"));
  }
  if (inputs.size(0) == 0) return absl::InvalidArgumentError(absl::StrCat(name, ": no examples"));
  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  absl::Status converted = compression::CatchTorch(impl->name, [&] {
    impl->inputs = inputs.to(torch::kFloat).contiguous();
    impl->labels = labels.to(torch::kLong).contiguous();
    return absl::OkStatus();
  });
  if (!converted.ok()) return converted;
  return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
}

std::vector<std::string> DatasetFormats() {
  std::vector<std::string> names;
  for (const Format& f : Formats()) names.push_back(f.name);
  return names;
}

absl::StatusOr<std::unique_ptr<Dataset>> LoadDataset(const std::string& format,
                                                     const std::string& directory,
                                                     const std::string& split) {
  for (const Format& f : Formats()) {
    if (format == f.name) return f.load(directory, split);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("data format '", format,
                   "' is not known; known formats: ", absl::StrJoin(DatasetFormats(), ", ")));
}

}  // namespace autocompress::training
