#include "worker/training/cifar10_dataset.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/torch_status.h"

namespace autocompress::training {
namespace {

constexpr int64_t kPixels = 3 * 32 * 32;
constexpr int64_t kRecord = 1 + kPixels;

}  // namespace

absl::StatusOr<std::unique_ptr<Dataset>> LoadCifar10(const std::string& directory,
                                                     const std::string& split) {
  const std::regex pattern(split == "train" ? R"(data_batch_\d+\.bin)" : R"(test_batch\.bin)");
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(directory, error)) {
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), pattern)) {
      files.push_back(entry.path());
    }
  }
  if (files.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no CIFAR-10 ", split, " batches (",
        split == "train" ? "data_batch_N.bin" : "test_batch.bin", ") under ", directory));
  }
  std::sort(files.begin(), files.end());
  std::string bytes;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (content.empty() || content.size() % kRecord != 0) {
      return absl::InvalidArgumentError(absl::StrCat(file.string(), ": ", content.size(),
                                                     " bytes is not a whole number of ", kRecord,
                                                     "-byte CIFAR-10 records"));
    }
    bytes += content;
  }
  const int64_t n = static_cast<int64_t>(bytes.size()) / kRecord;
  std::unique_ptr<Dataset> data;
  absl::Status status = compression::CatchTorch(files[0].string(), [&]() -> absl::Status {
    const torch::Tensor records =
        torch::from_blob(bytes.data(), {n, kRecord}, torch::kUInt8).clone();
    const torch::Tensor labels = records.select(1, 0).to(torch::kLong);
    if (labels.max().item<int64_t>() > 9) {
      return absl::InvalidArgumentError(absl::StrCat(
          files[0].string(), ": label ", labels.max().item<int64_t>(), " is not a CIFAR-10 class"));
    }
    const torch::Tensor images =
        records.slice(1, 1).reshape({n, 3, 32, 32}).to(torch::kFloat).div_(255);
    absl::StatusOr<std::unique_ptr<Dataset>> made =
        Dataset::FromTensors(files[0].string(), images, labels);
    if (!made.ok()) return made.status();
    data = std::move(*made);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return data;
}

}  // namespace autocompress::training
