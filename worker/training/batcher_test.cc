#include "worker/training/batcher.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::training {
namespace {

// Example i has input value i (feature 0) and label i % 7.
std::unique_ptr<Dataset> Numbered(int64_t n) {
  return std::move(Dataset::FromTensors("numbered", torch::arange(n, torch::kFloat).reshape({n, 1}),
                                        torch::arange(n, torch::kLong).remainder(7))
                       .value());
}

// Every batch of `epoch` as the example indices it holds (read back from the inputs).
std::vector<std::vector<int64_t>> Batches(const Batcher& batcher, int64_t epoch) {
  std::vector<std::vector<int64_t>> batches;
  const absl::Status status =
      batcher.ForEach(epoch, [&](const at::Tensor& inputs, const at::Tensor& labels) {
        std::vector<int64_t> ids;
        for (int64_t i = 0; i < inputs.size(0); ++i) {
          ids.push_back(static_cast<int64_t>(inputs[i][0].item<float>()));
          EXPECT_EQ(labels[i].item<int64_t>(), ids.back() % 7);  // labels travel along
        }
        batches.push_back(ids);
        return absl::OkStatus();
      });
  EXPECT_TRUE(status.ok()) << status;
  return batches;
}

TEST(BatcherTest, AnEpochCoversEveryExampleOnceInBatchSizedPieces) {
  auto data = Numbered(10);
  auto batcher = Batcher::Create(*data, {.batch_size = 4, .seed = 3});
  ASSERT_TRUE(batcher.ok()) << batcher.status();
  EXPECT_EQ(batcher->batches_per_epoch(), 3);
  const auto batches = Batches(*batcher, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].size(), 4u);
  EXPECT_EQ(batches[2].size(), 2u);  // the last batch is short
  std::vector<int64_t> all;
  for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
  EXPECT_EQ(all, batcher->Order(0).value());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(10);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
}

TEST(BatcherTest, ShuffleDependsOnlyOnSeedAndEpoch) {
  auto data = Numbered(64);
  auto a = Batcher::Create(*data, {.batch_size = 8, .seed = 11}).value();
  auto b = Batcher::Create(*data, {.batch_size = 8, .seed = 11}).value();
  auto other_seed = Batcher::Create(*data, {.batch_size = 8, .seed = 12}).value();
  // The same (seed, epoch) gives the same batches whatever ran before.
  const auto first = Batches(a, 1);
  Batches(b, 0);
  EXPECT_EQ(Batches(b, 1), first);
  EXPECT_EQ(Batches(a, 1), first);
  EXPECT_NE(Batches(a, 2), first);
  EXPECT_NE(Batches(other_seed, 1), first);
  std::vector<int64_t> in_order(64);
  std::iota(in_order.begin(), in_order.end(), 0);
  EXPECT_NE(a.Order(1).value(), in_order);  // shuffled
  auto plain = Batcher::Create(*data, {.batch_size = 8, .shuffle = false}).value();
  EXPECT_EQ(plain.Order(5).value(), in_order);
}

TEST(BatcherTest, MaxBatchesCapsTheEpoch) {
  auto data = Numbered(100);
  auto batcher = Batcher::Create(*data, {.batch_size = 8, .max_batches = 3}).value();
  EXPECT_EQ(batcher.batches_per_epoch(), 3);
  EXPECT_EQ(Batches(batcher, 0).size(), 3u);
  EXPECT_EQ(batcher.Order(0).value().size(), 24u);
  auto more = Batcher::Create(*data, {.batch_size = 8, .max_batches = 1000}).value();
  EXPECT_EQ(more.batches_per_epoch(), 13);
}

TEST(BatcherTest, BatchesGoToTheDeviceAndErrorsStopTheEpoch) {
  auto data = Numbered(10);
  auto batcher = Batcher::Create(*data, {.batch_size = 2, .device = "cpu"}).value();
  int calls = 0;
  const absl::Status status = batcher.ForEach(0, [&](const at::Tensor& inputs, const at::Tensor&) {
    EXPECT_TRUE(inputs.device().is_cpu());
    return ++calls == 2 ? absl::AbortedError("stop") : absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(calls, 2);
  if (torch::cuda::is_available()) {
    auto gpu = Batcher::Create(*data, {.batch_size = 2, .device = "cuda:0"}).value();
    ASSERT_TRUE(gpu.ForEach(0,
                            [](const at::Tensor& inputs, const at::Tensor& labels) {
                              EXPECT_TRUE(inputs.is_cuda() && labels.is_cuda());
                              return absl::OkStatus();
                            })
                    .ok());
  }
}

TEST(BatcherTest, BadOptionsAreInvalidArgument) {
  auto data = Numbered(4);
  EXPECT_EQ(Batcher::Create(*data, {.batch_size = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Batcher::Create(*data, {.max_batches = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto device = Batcher::Create(*data, {.device = "tpu:0"});
  EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(device.status().message()), ::testing::HasSubstr("tpu:0"));
}

}  // namespace
}  // namespace autocompress::training
