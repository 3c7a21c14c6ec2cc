// Dataset: a labelled data set held in memory (inputs [N, ...] as float, labels [N] as
// int64), and LoadDataset, which reads one split of a data set in a named on-disk
// format (one table of formats, dataset.cc). The readers (idx_dataset.h) return it.
//
// LibTorch stays behind this header (pimpl). Immutable after construction, so one
// Dataset may be read by several trainers at once.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_DATASET_H_
#define AUTOCOMPRESS_WORKER_TRAINING_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace at {
class Tensor;
}

namespace autocompress::training {

class Dataset {
 public:
  // Takes `inputs` [N, ...] (converted to float) and `labels` [N] (integer, converted to
  // int64). `name` says where the data came from and starts every error about it.
  // InvalidArgument (naming it) for no examples, inputs without an example axis,
  // labels that are not a vector of integers, or counts that differ.
  static absl::StatusOr<std::unique_ptr<Dataset>> FromTensors(std::string name,
                                                              const at::Tensor& inputs,
                                                              const at::Tensor& labels);
  ~Dataset();

  const std::string& name() const;
  int64_t size() const;
  // One example's shape ([1, 28, 28] for Fashion-MNIST).
  std::vector<int64_t> example_shape() const;
  const at::Tensor& inputs() const;  // float [N, ...]
  const at::Tensor& labels() const;  // int64 [N]

 private:
  struct Impl;
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The formats LoadDataset knows, in table order ("idx", "cifar10", "tensors").
std::vector<std::string> DatasetFormats();

// Reads split `split` ("train", "test") of the data set at `path`, stored in `format`:
// a directory for idx (idx_dataset.h) and cifar10 (cifar10_dataset.h), the file itself
// for tensors (saved_tensors_dataset.h). InvalidArgument for an unknown format (listing
// the known ones) or bad data (naming the file), NotFound for missing files.
absl::StatusOr<std::unique_ptr<Dataset>> LoadDataset(const std::string& format,
                                                     const std::string& path,
                                                     const std::string& split);

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_DATASET_H_
