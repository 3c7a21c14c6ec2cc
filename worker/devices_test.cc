#include "worker/devices.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::worker {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(DevicesTest, ParsesNvidiaSmiGpuQuery) {
  auto gpus = ParseGpuQuery(
      "0, NVIDIA H100 80GB HBM3, 81559, 80000, GPU-aaaa\n"
      "1, NVIDIA H100 80GB HBM3, 81559, 1024, GPU-bbbb\n");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].index, 1);
  EXPECT_EQ((*gpus)[1].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ((*gpus)[1].total_bytes, 81559 * kMiB);
  EXPECT_EQ((*gpus)[1].free_bytes, 1024 * kMiB);
  EXPECT_EQ((*gpus)[1].uuid, "GPU-bbbb");
  auto bad = ParseGpuQuery("0, name, lots, 1, GPU-x\n");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("nvidia-smi line 1"));
}

TEST(DevicesTest, ParsesComputeApps) {
  EXPECT_EQ(ParseComputeApps("GPU-aaaa\nGPU-aaaa\n GPU-cccc \n"),
            (std::set<std::string>{"GPU-aaaa", "GPU-cccc"}));
  EXPECT_TRUE(ParseComputeApps("").empty());
  // One process on two GPUs sums; junk lines are skipped.
  EXPECT_EQ(ParseComputeAppMemory("123, 500\n456, 20\n123, 100\nnot, a number\n"),
            (std::map<int, int64_t>{{123, 600 * kMiB}, {456, 20 * kMiB}}));
}

TEST(DevicesTest, WithoutGpusTheCpuIsOffered) {
  // This machine has no nvidia-smi, or a CPU-only LibTorch: GPUs are never offered.
  DeviceOptions options;
  options.cpu_slots = 3;
  const std::vector<v1::Device> devices = DiscoverDevices(options);
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices.back().name(), "cpu");
  EXPECT_EQ(devices.back().slots(), 3);
  options.cpu_slots = -1;
  if (CudaDeviceCount() == 0) {
    ASSERT_EQ(DiscoverDevices(options).size(), 1u);
    EXPECT_EQ(DiscoverDevices(options)[0].slots(), 1);
  }
}

}  // namespace
}  // namespace autocompress::worker
