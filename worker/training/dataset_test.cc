#include "worker/training/dataset.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/training/idx_dataset.h"

namespace autocompress::training {
namespace {

using ::testing::HasSubstr;

std::string TinyIdx() {
  return autocompress::testing::RunfilePath("compression/testdata/tiny_idx");
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A plain (not gzipped) IDX split of `n` images of rows x cols, image i all of value i
// and labelled i % 10; `image_bytes` < 0 writes every pixel, else only that many.
std::string WritePlainSplit(const std::string& name, uint32_t n, uint32_t rows, uint32_t cols,
                            int64_t image_bytes = -1) {
  const std::string dir = autocompress::testing::TempPath(name);
  std::filesystem::create_directories(dir);
  std::string images = BigEndian(0x803) + BigEndian(n) + BigEndian(rows) + BigEndian(cols);
  std::string labels = BigEndian(0x801) + BigEndian(n);
  for (uint32_t i = 0; i < n; ++i) {
    images += std::string(rows * cols, static_cast<char>(i));
    labels += static_cast<char>(i % 10);
  }
  if (image_bytes >= 0) images.resize(image_bytes);
  WriteBytes(dir + "/train-images-idx3-ubyte", images);
  WriteBytes(dir + "/train-labels-idx1-ubyte", labels);
  return dir;
}

TEST(IdxDatasetTest, ReadsTheGzippedSplit) {
  auto data = LoadIdxSplit(TinyIdx(), "train");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->size(), 256);
  EXPECT_EQ((*data)->inputs().sizes(), (std::vector<int64_t>{256, 1, 28, 28}));
  EXPECT_EQ((*data)->example_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_LE((*data)->inputs().max().item<float>(), 1.0f);
  EXPECT_GE((*data)->labels().min().item<int64_t>(), 0);
  EXPECT_LE((*data)->labels().max().item<int64_t>(), 9);
  // The generator brightens row band 2k+4 for label k: the data carries its labels.
  for (int i = 0; i < 8; ++i) {
    const int64_t k = (*data)->labels()[i].item<int64_t>();
    EXPECT_NEAR((*data)->inputs()[i][0][2 * k + 4][0].item<float>(), 250.0f / 255, 1e-6);
  }
}

TEST(IdxDatasetTest, ReadsAPlainSplitThroughTheFormatTable) {
  const std::string dir = WritePlainSplit("plain", 12, 4, 3);
  auto data = LoadDataset("idx", dir, "train");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->inputs().sizes(), (std::vector<int64_t>{12, 1, 4, 3}));
  for (int i = 0; i < 12; ++i) {
    EXPECT_FLOAT_EQ((*data)->inputs()[i].max().item<float>(), i / 255.0f);
    EXPECT_EQ((*data)->labels()[i].item<int64_t>(), i % 10);
  }
  EXPECT_EQ(DatasetFormats(), (std::vector<std::string>{"idx", "cifar10", "tensors"}));
}

TEST(IdxDatasetTest, ReadsDebiansFashionMnist) {
  // Debian's dataset-fashion-mnist (./dev setup installs it): 60000 + 10000 images,
  // every class exactly a tenth of each split.
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  for (const auto& [split, size] : {std::pair{"train", 60000}, {"test", 10000}}) {
    auto data = LoadDataset("idx", dir, split);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ((*data)->size(), size) << split;
    EXPECT_EQ((*data)->example_shape(), (std::vector<int64_t>{1, 28, 28}));
    const torch::Tensor histogram = torch::bincount((*data)->labels(), {}, 10);
    EXPECT_TRUE(torch::equal(histogram, torch::full({10}, size / 10, torch::kLong)))
        << split << ": " << histogram;
    // Images are scaled to [0, 1] and not blank.
    EXPECT_LE((*data)->inputs().max().item<float>(), 1.0f);
    EXPECT_GT((*data)->inputs().mean().item<float>(), 0.1f);
  }
}

TEST(IdxDatasetTest, OneSplitDirectoryIsThatSplitWhateverItsPrefix) {
  const std::string dir = WritePlainSplit("one_split", 5, 2, 2);  // prefix "train"
  auto data = LoadDataset("idx", dir, "test");  // "t10k" is absent: the one split present
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->size(), 5);
}

TEST(SavedTensorsDatasetTest, ReadsWhatPythonSaved) {
  auto reference = LoadDataset("idx", "/usr/share/datasets/fashion-mnist", "test");
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const char* file : {"tensors_tuple.pt", "tensors_dict.pt"}) {
    auto data = LoadDataset(
        "tensors", autocompress::testing::RunfilePath(std::string("worker/testdata/") + file),
        "train");
    ASSERT_TRUE(data.ok()) << file << ": " << data.status();
    EXPECT_EQ((*data)->size(), 64) << file;
    EXPECT_TRUE(torch::equal((*data)->labels(), (*reference)->labels().slice(0, 0, 64))) << file;
    EXPECT_TRUE(torch::allclose((*data)->inputs(), (*reference)->inputs().slice(0, 0, 64))) << file;
  }
  const std::string bogus = autocompress::testing::TempPath("bogus.pt");
  WriteBytes(bogus, "not a torch.save file");
  auto bad = LoadDataset("tensors", bogus, "train");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("bogus.pt: not a torch.save file"));
  EXPECT_EQ(LoadDataset("tensors", "/nonexistent.pt", "train").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(Cifar10DatasetTest, ReadsBinaryBatchesInNameOrder) {
  // Two training batches of 3 records each in a sub-folder, as the archive extracts;
  // record i has label i % 10 and every pixel of its channel c equal to 10 * i + c.
  const std::string dir = autocompress::testing::TempPath("cifar");
  std::filesystem::create_directories(dir + "/cifar-10-batches-bin");
  auto batch = [](int first) {
    std::string bytes;
    for (int i = first; i < first + 3; ++i) {
      bytes += static_cast<char>(i % 10);
      for (int c = 0; c < 3; ++c) bytes += std::string(1024, static_cast<char>(10 * i + c));
    }
    return bytes;
  };
  WriteBytes(dir + "/cifar-10-batches-bin/data_batch_2.bin", batch(3));
  WriteBytes(dir + "/cifar-10-batches-bin/data_batch_1.bin", batch(0));
  WriteBytes(dir + "/cifar-10-batches-bin/test_batch.bin", batch(10));
  auto train = LoadDataset("cifar10", dir, "train");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ((*train)->inputs().sizes(), (std::vector<int64_t>{6, 3, 32, 32}));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ((*train)->labels()[i].item<int64_t>(), i % 10);
    for (int c = 0; c < 3; ++c) {
      EXPECT_FLOAT_EQ((*train)->inputs()[i][c][31][31].item<float>(), (10 * i + c) / 255.0f);
    }
  }
  auto test = LoadDataset("cifar10", dir, "test");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ((*test)->size(), 3);
  WriteBytes(dir + "/cifar-10-batches-bin/data_batch_3.bin", "short");
  EXPECT_THAT(std::string(LoadDataset("cifar10", dir, "train").status().message()),
              HasSubstr("data_batch_3.bin: 5 bytes is not a whole number of 3073-byte"));
  EXPECT_EQ(
      LoadDataset("cifar10", autocompress::testing::TempPath("empty"), "train").status().code(),
      absl::StatusCode::kNotFound);
}

TEST(IdxDatasetTest, BadFilesAreErrorsNamingTheFile) {
  EXPECT_EQ(LoadIdxSplit("/nonexistent", "train").status().code(), absl::StatusCode::kNotFound);
  const std::string bogus = autocompress::testing::TempPath("bogus");
  WriteBytes(bogus, "definitely not idx");
  auto bad = LoadIdx(bogus, bogus);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr(bogus + ": not an IDX image file"));

  const std::string truncated = WritePlainSplit("truncated", 5, 28, 28, 16 + 100);
  auto short_images = LoadIdxSplit(truncated, "train");
  EXPECT_EQ(short_images.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(short_images.status().message()),
              HasSubstr("train-images-idx3-ubyte: expected 5 images of 28x28"));

  const std::string empty = WritePlainSplit("empty", 0, 28, 28);
  auto no_examples = LoadIdxSplit(empty, "train");
  EXPECT_EQ(no_examples.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_examples.status().message()), HasSubstr("no examples"));

  // A header whose dimensions multiply past 2^64 (2^21 x 2^21 x 2^22) over a 16-byte file,
  // and a file with more pixels than its header says: both refused, nothing inflated.
  const std::string huge = autocompress::testing::TempPath("huge-images");
  WriteBytes(huge,
             std::string("\x00\x00\x08\x03\x00\x20\x00\x00\x00\x20\x00\x00\x00\x40\x00\x00", 16));
  auto overflow = LoadIdx(huge, huge);
  EXPECT_EQ(overflow.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(overflow.status().message()), HasSubstr("describe more than"));
  const std::string longer = autocompress::testing::TempPath("longer-images");
  WriteBytes(longer,
             std::string("\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02", 16) +
                 std::string(64, '\x07'));
  auto too_long = LoadIdx(longer, longer);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_long.status().message()),
              HasSubstr("expected 1 images of 2x2 but the file has more than 20 bytes"));

  auto format = LoadDataset("csv", empty, "train");
  EXPECT_EQ(format.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(format.status().message()), HasSubstr("known formats: idx"));
}

TEST(DatasetTest, FromTensorsChecksShapesAndTypes) {
  auto ok = Dataset::FromTensors("d", torch::zeros({3, 2}, torch::kDouble),
                                 torch::tensor({0, 1, 2}, torch::kInt));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->inputs().scalar_type(), torch::kFloat);
  EXPECT_EQ((*ok)->labels().scalar_type(), torch::kLong);
  auto counts = Dataset::FromTensors("d", torch::zeros({3, 2}), torch::zeros({2}, torch::kLong));
  EXPECT_THAT(std::string(counts.status().message()), HasSubstr("d: 3 inputs but 2 labels"));
  auto float_labels = Dataset::FromTensors("d", torch::zeros({3, 2}), torch::zeros({3}));
  EXPECT_THAT(std::string(float_labels.status().message()), HasSubstr("vector of integers"));
  auto flat = Dataset::FromTensors("d", torch::zeros({3}), torch::zeros({3}, torch::kLong));
  EXPECT_EQ(flat.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace autocompress::training
