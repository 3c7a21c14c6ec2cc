// IDX files (the MNIST / Fashion-MNIST format, gzipped or plain): images
// [N, rows, cols] of uint8 and labels [N] of uint8, read as a Dataset of float images
// scaled to [0, 1] with a channel axis ([N, 1, rows, cols]) and int64 labels.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_IDX_DATASET_H_
#define AUTOCOMPRESS_WORKER_TRAINING_IDX_DATASET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "worker/training/dataset.h"

namespace autocompress::training {

// Reads `images_path` and `labels_path` (".gz" or plain). NotFound for a missing file;
// InvalidArgument (naming the file) for corrupt gzip data, a wrong magic number,
// truncated data or mismatched counts. The data set is named after `images_path`.
absl::StatusOr<std::unique_ptr<Dataset>> LoadIdx(const std::string& images_path,
                                                 const std::string& labels_path);

// The split in `directory`: <prefix>-images-idx3-ubyte[.gz] and
// <prefix>-labels-idx1-ubyte[.gz]; MNIST names its splits "train" and "t10k". A
// directory without that prefix but with exactly one images file reads that pair.
absl::StatusOr<std::unique_ptr<Dataset>> LoadIdxSplit(const std::string& directory,
                                                      const std::string& prefix);

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_IDX_DATASET_H_
