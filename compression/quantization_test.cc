// Quantizers against independent float64 references on random weights.
#include "compression/quantization.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "compression/kernels/quant_kernels.h"
#include "gtest/gtest.h"

namespace autocompress::compression {
namespace {

torch::Tensor Random(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor w = torch::randn(shape);
  return w + torch::where(w >= 0, 1e-3, -1e-3);
}

std::vector<double> Values(const torch::Tensor& t) {
  torch::Tensor flat = t.to(torch::kDouble).contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

TEST(QuantKernelTest, FakeQuantizeMatchesAFloat64LoopPerTensorAndPerChannel) {
  torch::Tensor x = Random({16, 8, 3, 3}, 1) * 3;
  for (bool per_channel : {false, true}) {
    const int64_t n = per_channel ? 16 : 1;
    torch::Tensor scale = torch::rand({n}) * 0.05 + 0.01;
    torch::Tensor zero = torch::randint(0, 256, {n}).to(torch::kFloat);
    auto [out, mask] = kernels::FakeQuantize(x, scale, zero, 0, 255);
    const std::vector<double> xv = Values(x), ov = Values(out), mv = Values(mask);
    const std::vector<double> sv = Values(scale), zv = Values(zero);
    const int64_t span = x.numel() / 16;
    int clipped = 0;
    for (int64_t k = 0; k < x.numel(); ++k) {
      const int64_t c = per_channel ? k / span : 0;
      // The kernel works in float; replay its float arithmetic, decide in double.
      const float shifted =
          static_cast<float>(zv[c]) + static_cast<float>(xv[k]) / static_cast<float>(sv[c]);
      const double q = std::nearbyint(std::min(std::max(static_cast<double>(shifted), 0.0), 255.0));
      EXPECT_NEAR(ov[k], sv[c] * (q - zv[c]), 1e-6) << k;
      const double unclamped = std::nearbyint(shifted);
      EXPECT_EQ(mv[k], unclamped >= 0 && unclamped <= 255 ? 1 : 0) << k;
      clipped += mv[k] == 0;
    }
    EXPECT_GT(clipped, 0) << "the test data must exercise the STE clipping";
    auto [composite_out, composite_mask] = kernels::FakeQuantizeComposite(x, scale, zero, 0, 255);
    EXPECT_TRUE(torch::allclose(out, composite_out, 0, 1e-6));
    EXPECT_TRUE(torch::equal(mask, composite_mask));
  }
}

// Exact halves round to even (as torch.round), NaN stays NaN with a 0 STE mask, huge
// values clamp; checked past the 8-lane vector body and in its scalar tail.
TEST(QuantKernelTest, FakeQuantizeRoundsHalfToEvenKeepsNaNAndClamps) {
  std::vector<float> x, expected_out, expected_mask;
  for (int k = 0; k < 37; ++k) {
    const float half = (k - 18) + 0.5f;  // scale 1, zero point 0: shifted = x
    x.push_back(half);
    expected_out.push_back(std::nearbyint(std::min(std::max(half, -8.0f), 7.0f)));
    expected_mask.push_back(std::nearbyint(half) >= -8 && std::nearbyint(half) <= 7);
  }
  x[5] = std::nanf("");
  x[30] = 3e9f;  // beyond 2^23 and above qmax
  torch::Tensor in = torch::tensor(x);
  auto [out, mask] = kernels::FakeQuantize(in, torch::ones({1}), torch::zeros({1}), -8, 7);
  for (int k = 0; k < 37; ++k) {
    if (k == 5) {
      EXPECT_TRUE(std::isnan(out[k].item<float>()));
      EXPECT_EQ(mask[k].item<float>(), 0);
    } else if (k == 30) {
      EXPECT_EQ(out[k].item<float>(), 7);
      EXPECT_EQ(mask[k].item<float>(), 0);
    } else {
      EXPECT_EQ(out[k].item<float>(), expected_out[k]) << "value " << x[k];
      EXPECT_EQ(mask[k].item<float>(), expected_mask[k]) << "value " << x[k];
    }
  }
  EXPECT_EQ(out[18].item<float>(), 0);  // 0.5 -> 0
  EXPECT_EQ(out[19].item<float>(), 2);  // 1.5 -> 2
  EXPECT_EQ(out[20].item<float>(), 2);  // 2.5 -> 2
  EXPECT_THROW(kernels::FakeQuantize(in, torch::ones({0}), torch::zeros({0}), -8, 7), c10::Error);
}

TEST(QuantizationTest, RangesForUintAndSymmetricInt) {
  EXPECT_EQ(RangeFor(8, "uint").qmin, 0);
  EXPECT_EQ(RangeFor(8, "uint").qmax, 255);
  EXPECT_EQ(RangeFor(8, "int").qmin, -127);
  EXPECT_EQ(RangeFor(8, "int").qmax, 127);
  EXPECT_EQ(RangeFor(1, "uint").qmax, 1);
}

TEST(QuantizationTest, QatScaleAndZeroPointFollowTheReference) {
  for (const char* scheme : {"per_tensor_affine", "per_tensor_symmetric", "per_channel_affine",
                             "per_channel_symmetric"}) {
    for (const char* dtype : {"uint", "int"}) {
      for (int bits : {2, 4, 8}) {
        torch::Tensor w = Random({6, 4, 3, 3}, bits);
        torch::Tensor scale, zero, mask;
        torch::Tensor q = QatQuantizeWeight(w, bits, scheme, dtype, &scale, &zero, &mask);
        const bool per_channel = std::string(scheme).rfind("per_channel", 0) == 0;
        const bool symmetric = std::string(scheme).find("symmetric") != std::string::npos;
        const IntegerRange r = RangeFor(bits, dtype);
        ASSERT_EQ(scale.numel(), per_channel ? 6 : 1);
        const std::vector<double> wv = Values(w), sv = Values(scale), zv = Values(zero);
        const int64_t groups = per_channel ? 6 : 1, span = w.numel() / groups;
        for (int64_t g = 0; g < groups; ++g) {
          double lo = 0, hi = 0;  // the range always includes 0
          for (int64_t k = g * span; k < (g + 1) * span; ++k)
            lo = std::min(lo, wv[k]), hi = std::max(hi, wv[k]);
          double s, z;
          if (symmetric) {
            s = std::max(std::fabs(lo), std::fabs(hi)) / ((r.qmax - r.qmin) / 2);
            z = std::string(dtype) == "int" ? 0 : std::floor((r.qmin + r.qmax) / 2);
          } else {
            s = (hi - lo) / (r.qmax - r.qmin);
            z = r.qmin - std::nearbyint(lo / s);
          }
          z = std::min(std::max(z, r.qmin), r.qmax);
          EXPECT_NEAR(sv[g], s, 1e-6 * s) << scheme << dtype << bits;
          EXPECT_EQ(zv[g], z) << scheme << dtype << bits;
        }
        // Every quantized value sits on the grid scale * (k - zero).
        const std::vector<double> qv = Values(q);
        for (int64_t k = 0; k < q.numel(); ++k) {
          const int64_t g = per_channel ? k / span : 0;
          const double level = qv[k] / sv[g] + zv[g];
          EXPECT_NEAR(level, std::nearbyint(level), 1e-3);
          EXPECT_GE(std::nearbyint(level), r.qmin);
          EXPECT_LE(std::nearbyint(level), r.qmax);
        }
      }
    }
  }
}

TEST(QuantizationTest, AllZeroWeightsQuantizeToZerosNotNan) {
  torch::Tensor scale, zero, mask;
  torch::Tensor q =
      QatQuantizeWeight(torch::zeros({4, 4}), 8, "per_tensor_affine", "uint", &scale, &zero, &mask);
  EXPECT_TRUE(q.eq(0).all().item<bool>());
}

TEST(QuantizationTest, NaiveTruncatesTowardZeroWithARunningMaxScale) {
  torch::Tensor w = Random({32, 16}, 3);
  torch::Tensor running;
  torch::Tensor q = NaiveQuantizeWeight(w, running);
  const double s = w.abs().max().item<double>() / 127;
  EXPECT_NEAR(running.item<double>(), s, 1e-9);
  const std::vector<double> wv = Values(w), qv = Values(q);
  for (size_t k = 0; k < wv.size(); ++k) {
    EXPECT_NEAR(qv[k], std::trunc(static_cast<float>(wv[k]) / static_cast<float>(s)) * s, 1e-6);
  }
  // A smaller tensor later keeps the larger scale.
  NaiveQuantizeWeight(w * 0.1, running);
  EXPECT_NEAR(running.item<double>(), s, 1e-9);
}

TEST(QuantizationTest, DorefaAndBnnFollowTheirFormulas) {
  torch::Tensor w = Random({10, 10}, 4);
  for (int bits : {1, 2, 4}) {
    const std::vector<double> wv = Values(w), qv = Values(DorefaQuantizeWeight(w, bits));
    double max_tanh = 0;
    for (double v : wv) max_tanh = std::max(max_tanh, std::fabs(std::tanh(v)));
    const double levels = std::ldexp(1.0, bits) - 1;
    for (size_t k = 0; k < wv.size(); ++k) {
      const double u = std::tanh(wv[k]) / (2 * max_tanh) + 0.5;
      EXPECT_NEAR(qv[k], 2 * std::nearbyint(u * levels) / levels - 1, 1e-5);
    }
  }
  torch::Tensor b = BnnQuantizeWeight(torch::tensor({-2.0f, 0.0f, 0.3f}));
  EXPECT_EQ(Values(b), (std::vector<double>{-1, 1, 1}));
}

}  // namespace
}  // namespace autocompress::compression
