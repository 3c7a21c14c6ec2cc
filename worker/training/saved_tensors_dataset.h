// A data set saved from Python as tensors: torch.save((inputs, targets), path), a list
// of the two, or a dict with "inputs" and "targets" (inputs [N, ...] of any numeric
// type, targets [N] of integers). Read as they are (no scaling).
#ifndef AUTOCOMPRESS_WORKER_TRAINING_SAVED_TENSORS_DATASET_H_
#define AUTOCOMPRESS_WORKER_TRAINING_SAVED_TENSORS_DATASET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/training/dataset.h"

namespace autocompress::training {

// NotFound for a missing file; InvalidArgument (naming the file) for one that is not a
// torch.save file or holds something else.
absl::StatusOr<std::unique_ptr<Dataset>> LoadSavedTensors(const std::string& path);

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_SAVED_TENSORS_DATASET_H_
