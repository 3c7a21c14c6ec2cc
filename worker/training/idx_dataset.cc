#include "worker/training/idx_dataset.h"

#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/torch_status.h"

namespace autocompress::training {
namespace {

// The whole file, decompressed if gzipped (gzread reads plain files too).
absl::StatusOr<std::vector<uint8_t>> ReadAll(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<uint8_t> data;
  uint8_t buffer[1 << 16];
  int n;
  while ((n = gzread(file, buffer, sizeof(buffer))) > 0)
    data.insert(data.end(), buffer, buffer + n);
  const bool failed = n < 0;
  gzclose(file);
  if (failed) return absl::InvalidArgumentError(absl::StrCat(path, ": corrupt gzip data"));
  return data;
}

uint32_t BigEndian(const std::vector<uint8_t>& d, size_t at) {
  return (uint32_t{d[at]} << 24) | (uint32_t{d[at + 1]} << 16) | (uint32_t{d[at + 2]} << 8) |
         d[at + 3];
}

std::string WithGz(const std::string& path) {
  if (std::filesystem::exists(path)) return path;
  return path + ".gz";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dataset>> LoadIdx(const std::string& images_path,
                                                 const std::string& labels_path) {
  auto images = ReadAll(images_path);
  if (!images.ok()) return images.status();
  auto labels = ReadAll(labels_path);
  if (!labels.ok()) return labels.status();
  if (images->size() < 16 || BigEndian(*images, 0) != 0x803) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": not an IDX image file (magic 0x803)"));
  }
  if (labels->size() < 8 || BigEndian(*labels, 0) != 0x801) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": not an IDX label file (magic 0x801)"));
  }
  const int64_t n = BigEndian(*images, 4), rows = BigEndian(*images, 8),
                cols = BigEndian(*images, 12);
  if (static_cast<int64_t>(images->size()) != 16 + n * rows * cols) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, ": expected ", n, " images of ",
                                                   rows, "x", cols, " but the file has ",
                                                   images->size(), " bytes"));
  }
  const int64_t label_count = BigEndian(*labels, 4);
  if (label_count != n || static_cast<int64_t>(labels->size()) != 8 + n) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": ", label_count, " labels for ", n, " images"));
  }
  // from_blob borrows the buffers; the conversions copy out of them.
  absl::StatusOr<std::unique_ptr<Dataset>> dataset;
  const absl::Status converted = compression::CatchTorch(images_path, [&] {
    dataset = Dataset::FromTensors(
        images_path,
        torch::from_blob(images->data() + 16, {n, 1, rows, cols}, torch::kUInt8)
            .to(torch::kFloat)
            .div_(255),
        torch::from_blob(labels->data() + 8, {n}, torch::kUInt8).to(torch::kLong));
    return absl::OkStatus();
  });
  if (!converted.ok()) return converted;
  return dataset;
}

absl::StatusOr<std::unique_ptr<Dataset>> LoadIdxSplit(const std::string& directory,
                                                      const std::string& prefix) {
  return LoadIdx(WithGz(absl::StrCat(directory, "/", prefix, "-images-idx3-ubyte")),
                 WithGz(absl::StrCat(directory, "/", prefix, "-labels-idx1-ubyte")));
}

}  // namespace autocompress::training
