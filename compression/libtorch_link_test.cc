// LibTorch links and computes: a magnitude mask against a float64 loop on random data.
#include <torch/torch.h>

#include <cmath>

#include "gtest/gtest.h"

TEST(LibTorchLinkTest, MagnitudeMaskMatchesALoop) {
  torch::manual_seed(7);
  torch::Tensor w = torch::randn({64, 32});
  const double threshold = 0.5;
  torch::Tensor mask = (w.abs() > threshold).to(torch::kFloat);
  auto accessor = w.accessor<float, 2>();
  int64_t expected = 0;
  for (int64_t i = 0; i < w.size(0); ++i) {
    for (int64_t j = 0; j < w.size(1); ++j) {
      expected += std::abs(static_cast<double>(accessor[i][j])) > threshold ? 1 : 0;
    }
  }
  EXPECT_EQ(mask.sum().item<double>(), static_cast<double>(expected));
  EXPECT_GT(expected, 0);
}
