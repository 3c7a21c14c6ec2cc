// IDX files (the MNIST / Fashion-MNIST format, optionally gzipped): images
// [N, rows, cols] of uint8 and labels [N] of uint8, as float images scaled to [0, 1]
// with a channel axis ([N, 1, rows, cols]) and int64 labels.
#ifndef AUTOCOMPRESS_COMPRESSION_IDX_DATASET_H_
#define AUTOCOMPRESS_COMPRESSION_IDX_DATASET_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace at {
class Tensor;
}

namespace autocompress::compression {

class IdxDataset {
 public:
  // Reads `images_path` and `labels_path` (".gz" or plain). InvalidArgument (naming the
  // file) for a wrong magic number, truncated data or mismatched counts.
  static absl::StatusOr<std::unique_ptr<IdxDataset>> Load(const std::string& images_path,
                                                          const std::string& labels_path);
  // The split in `directory`: <prefix>-images-idx3-ubyte[.gz] and
  // <prefix>-labels-idx1-ubyte[.gz], prefix "train" or "t10k".
  static absl::StatusOr<std::unique_ptr<IdxDataset>> LoadSplit(const std::string& directory,
                                                               const std::string& prefix);
  ~IdxDataset();

  int64_t size() const;
  const at::Tensor& images() const;  // float [N, 1, rows, cols] in [0, 1]
  const at::Tensor& labels() const;  // int64 [N]

 private:
  struct Impl;
  explicit IdxDataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_IDX_DATASET_H_
