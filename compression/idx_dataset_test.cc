#include "compression/idx_dataset.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::compression {
namespace {

TEST(IdxDatasetTest, ReadsTheGzippedSplit) {
  auto data = IdxDataset::LoadSplit(testing::RunfilePath("compression/testdata/tiny_idx"), "train");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->size(), 256);
  EXPECT_EQ((*data)->images().sizes(), (std::vector<int64_t>{256, 1, 28, 28}));
  EXPECT_LE((*data)->images().max().item<float>(), 1.0f);
  EXPECT_GE((*data)->labels().min().item<int64_t>(), 0);
  EXPECT_LE((*data)->labels().max().item<int64_t>(), 9);
  // The generator brightens row band 2k+4 for label k: the data carries its labels.
  for (int i = 0; i < 8; ++i) {
    const int64_t k = (*data)->labels()[i].item<int64_t>();
    EXPECT_NEAR((*data)->images()[i][0][2 * k + 4][0].item<float>(), 250.0f / 255, 1e-6);
  }
}

TEST(IdxDatasetTest, WrongFilesAreClearErrors) {
  EXPECT_EQ(IdxDataset::LoadSplit("/nonexistent", "train").status().code(),
            absl::StatusCode::kNotFound);
  const std::string bogus = testing::TempPath("bogus");
  FILE* f = std::fopen(bogus.c_str(), "wb");
  std::fputs("definitely not idx", f);
  std::fclose(f);
  auto bad = IdxDataset::Load(bogus, bogus);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("magic 0x803"));
}

}  // namespace
}  // namespace autocompress::compression
