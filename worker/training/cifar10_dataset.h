// CIFAR-10's binary version: records of one label byte (0..9) and 3072 pixel bytes
// (red, green, blue planes of 32x32), in data_batch_1..5.bin (training) and
// test_batch.bin (test). Read as float images scaled to [0, 1], [N, 3, 32, 32].
#ifndef AUTOCOMPRESS_WORKER_TRAINING_CIFAR10_DATASET_H_
#define AUTOCOMPRESS_WORKER_TRAINING_CIFAR10_DATASET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/training/dataset.h"

namespace autocompress::training {

// The split's batch files found anywhere under `directory` (an extracted
// cifar-10-binary.tar.gz keeps them in cifar-10-batches-bin/), in name order. NotFound
// when there are none; InvalidArgument (naming the file) for a size that is not a
// whole number of records or a label above 9.
absl::StatusOr<std::unique_ptr<Dataset>> LoadCifar10(const std::string& directory,
                                                     const std::string& split);

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_CIFAR10_DATASET_H_
