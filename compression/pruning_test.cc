// Pruning masks and kernels against independent float64 references on random weights.
#include "compression/pruning.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "compression/kernels/prune_kernels.h"
#include "gtest/gtest.h"

namespace autocompress::compression {
namespace {

// Random, never-zero weights.
torch::Tensor RandomWeight(std::vector<int64_t> shape, uint64_t seed,
                           torch::Dtype dtype = torch::kFloat) {
  torch::manual_seed(seed);
  torch::Tensor w = torch::randn(shape, torch::TensorOptions().dtype(dtype));
  return w + torch::where(w >= 0, 1e-3, -1e-3).to(dtype);
}

std::vector<double> Values(const torch::Tensor& t) {
  torch::Tensor flat = t.to(torch::kDouble).contiguous().reshape({-1});
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

// Float64 references, written as plain loops.
std::vector<double> RefNorms(const torch::Tensor& w, int p) {
  const std::vector<double> v = Values(w);
  const int64_t c = w.size(0), k = w.numel() / c;
  std::vector<double> out(c, 0);
  for (int64_t i = 0; i < c; ++i) {
    for (int64_t j = 0; j < k; ++j)
      out[i] += p == 1 ? std::fabs(v[i * k + j]) : v[i * k + j] * v[i * k + j];
    if (p == 2) out[i] = std::sqrt(out[i]);
  }
  return out;
}

std::vector<double> RefFpgm(const torch::Tensor& w) {
  const std::vector<double> v = Values(w);
  const int64_t c = w.size(0), k = w.numel() / c;
  std::vector<double> out(c, 0);
  for (int64_t a = 0; a < c; ++a) {
    for (int64_t b = 0; b < c; ++b) {
      double d = 0;
      for (int64_t j = 0; j < k; ++j)
        d += (v[a * k + j] - v[b * k + j]) * (v[a * k + j] - v[b * k + j]);
      out[a] += std::sqrt(d);
    }
  }
  return out;
}

// Threshold style: keep scores strictly above the k-th smallest.
std::vector<double> RefThresholdKeep(const std::vector<double>& scores, int64_t k) {
  std::vector<double> keep(scores.size(), 1);
  if (k < 1) return keep;
  std::vector<double> sorted = scores;
  std::sort(sorted.begin(), sorted.end());
  const double t = sorted[k - 1];
  for (size_t i = 0; i < scores.size(); ++i) keep[i] = scores[i] > t ? 1 : 0;
  return keep;
}

// Index style: prune exactly k lowest, ties to the lower index.
std::vector<double> RefIndexKeep(const std::vector<double>& scores, int64_t k) {
  std::vector<int> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return scores[a] < scores[b]; });
  std::vector<double> keep(scores.size(), 1);
  for (int64_t i = 0; i < k; ++i) keep[order[i]] = 0;
  return keep;
}

TEST(PruningTest, CountsUseNnisFloorArithmetic) {
  EXPECT_EQ(FiltersToPrune(100, 0.29), 28);  // 100 * 0.29 = 28.999999999999996 in doubles
  EXPECT_EQ(FiltersToPrune(10, 0.3), 3);
  EXPECT_EQ(FiltersToPrune(10, 0.7), 7);
  EXPECT_EQ(FiltersToPrune(1, 0.9), 0);  // a single filter is never pruned
  EXPECT_EQ(FiltersToPrune(3, 0.3), 0);
  EXPECT_EQ(ElementsToPrune(9, 0.1), 0);
  EXPECT_EQ(ElementsToPrune(10, 0.1), 1);
}

TEST(PruningTest, LevelMaskMatchesReferenceOnRandomWeights) {
  for (double s : {0.05, 0.3, 0.5, 0.77, 0.99}) {
    for (uint64_t seed : {1, 2, 3}) {
      torch::Tensor w = RandomWeight({16, 8, 3, 3}, seed);
      std::vector<double> magnitude = Values(w.abs());
      const std::vector<double> expected =
          RefThresholdKeep(magnitude, ElementsToPrune(w.numel(), s));
      EXPECT_EQ(Values(LevelMask(w, s)), expected) << "s=" << s << " seed=" << seed;
    }
  }
}

TEST(PruningTest, LevelMaskPrunesEveryTieAtTheThreshold) {
  torch::Tensor w = torch::tensor({0.5f, -0.5f, 0.5f, 2.0f, -3.0f, 0.1f});
  // k = floor(6 * 0.4) = 2: t = 0.5 (2nd smallest |w|), so all three 0.5s go.
  EXPECT_EQ(Values(LevelMask(w, 0.4)), (std::vector<double>{0, 0, 0, 1, 1, 0}));
  EXPECT_EQ(Values(LevelMask(w, 0.1)), std::vector<double>(6, 1));  // k = 0
}

TEST(PruningTest, FilterKernelsMatchFloat64References) {
  for (auto shape :
       std::vector<std::vector<int64_t>>{{16, 8, 3, 3}, {33, 5}, {2, 1, 1, 1}, {64, 32, 3, 3}}) {
    for (torch::Dtype dtype : {torch::kFloat, torch::kDouble}) {
      torch::Tensor w = RandomWeight(shape, 7, dtype);
      const double tol = dtype == torch::kFloat ? 1e-5 : 1e-12;
      for (int p : {1, 2}) {
        std::vector<double> got = Values(kernels::FilterNorms(w, p)), want = RefNorms(w, p);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, want[i]));
        std::vector<double> composite = Values(kernels::FilterNormsComposite(w, p));
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_NEAR(composite[i], want[i], 1e-4 * std::max(1.0, want[i]));
      }
      std::vector<double> got = Values(kernels::FpgmDistanceSums(w)), want = RefFpgm(w);
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, want[i]));
    }
  }
}

TEST(PruningTest, L1L2AndFpgmSelectTheReferenceFilters) {
  for (double s : {0.1, 0.25, 0.5, 0.9}) {
    for (uint64_t seed : {11, 12}) {
      torch::Tensor w = RandomWeight({20, 6, 3, 3}, seed);
      const int64_t k = FiltersToPrune(20, s);
      for (int p : {1, 2}) {
        EXPECT_EQ(Values(ThresholdFilterKeep(kernels::FilterNorms(w, p), s)),
                  RefThresholdKeep(RefNorms(w, p), k));
      }
      EXPECT_EQ(Values(IndexFilterKeep(kernels::FpgmDistanceSums(w), s)),
                RefIndexKeep(RefFpgm(w), k));
    }
  }
}

TEST(PruningTest, ThresholdAndIndexStylesDifferOnTies) {
  torch::Tensor scores = torch::tensor({3.0f, 1.0f, 1.0f, 2.0f});
  // k = floor(4 * 0.25) = 1. Threshold: both 1.0 pruned. Index: only the first 1.0.
  EXPECT_EQ(Values(ThresholdFilterKeep(scores, 0.25)), (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(Values(IndexFilterKeep(scores, 0.25)), (std::vector<double>{1, 0, 1, 1}));
}

TEST(PruningTest, ExpandedFilterMaskZeroesWholeFilters) {
  torch::Tensor w = RandomWeight({4, 2, 3, 3}, 5);
  torch::Tensor keep = torch::tensor({1.0f, 0.0f, 1.0f, 0.0f});
  torch::Tensor mask = ExpandFilterKeep(keep, w);
  EXPECT_EQ(mask.sizes(), w.sizes());
  EXPECT_EQ(mask[1].sum().item<float>(), 0);
  EXPECT_EQ(mask[2].sum().item<float>(), 18);
}

TEST(PruningTest, ActivationStatisticsMatchAFloat64Loop) {
  for (bool relu6 : {false, true}) {
    torch::Tensor x = RandomWeight({5, 7, 6, 9}, 13) * 4;  // [N, C, H, W], many values > 6
    auto [zeros, sums] = kernels::ActivationStatistics(x, relu6);
    const std::vector<double> v = Values(x);
    for (int64_t c = 0; c < 7; ++c) {
      double z = 0, total = 0;
      for (int64_t n = 0; n < 5; ++n) {
        for (int64_t k = 0; k < 54; ++k) {
          double a = std::max(0.0, v[(n * 7 + c) * 54 + k]);
          if (relu6) a = std::min(a, 6.0);
          z += a == 0 ? 1 : 0;
          total += a;
        }
      }
      EXPECT_EQ(zeros[c].item<double>(), z) << c;
      EXPECT_NEAR(sums[c].item<double>(), total, 1e-4 * std::max(1.0, total)) << c;
    }
    auto [cz, cs] = kernels::ActivationStatisticsComposite(x, relu6);
    EXPECT_TRUE(torch::equal(zeros, cz));
    EXPECT_TRUE(torch::allclose(sums, cs, 1e-5, 1e-4));
  }
}

// Reference for MaskSet: v * m computed in float64 element by element, with masked
// values +0 even where v is not finite.
torch::Tensor MaskedReference(const torch::Tensor& v, const torch::Tensor& m) {
  torch::Tensor out = v.detach().to(torch::kDouble).clone().reshape({-1});
  const torch::Tensor flat = m.to(torch::kDouble).reshape({-1});
  auto o = out.accessor<double, 1>();
  auto f = flat.accessor<double, 1>();
  for (int64_t k = 0; k < out.numel(); ++k) {
    if (f[k] == 0) o[k] = 0;
  }
  return out.reshape(v.sizes()).to(v.scalar_type());
}

// Element masks (level), filter masks (whole rows), sizes that end in a partial 64-value
// word, a double tensor and a non-contiguous one (mask tensor kept, masked fill).
TEST(PruningTest, MaskSetMatchesReferenceOnWeightsAndGrads) {
  struct Case {
    torch::Tensor param;
    torch::Tensor mask;
  };
  std::vector<Case> cases;
  cases.push_back({RandomWeight({100003}, 3), (torch::rand({100003}) > 0.5).to(torch::kFloat)});
  cases.push_back({RandomWeight({64, 32, 3, 3}, 4),
                   (torch::rand({64, 1, 1, 1}) > 0.3).to(torch::kFloat).expand({64, 32, 3, 3})});
  cases.push_back({RandomWeight({7, 3}, 5), (torch::rand({7, 3}) > 0.5).to(torch::kFloat)});
  cases.push_back(
      {RandomWeight({130}, 6, torch::kDouble), (torch::rand({130}) > 0.5).to(torch::kDouble)});
  cases.push_back({RandomWeight({40, 30}, 7).t(), (torch::rand({30, 40}) > 0.5).to(torch::kFloat)});
  // A pruned NaN or infinity becomes 0 on every path (packed, double, non-contiguous).
  for (size_t i : {0, 3, 4}) {
    auto first_row = [](const torch::Tensor& t) { return t.dim() == 1 ? t : t[0]; };
    first_row(cases[i].param)[17] = std::nan("");
    first_row(cases[i].mask)[17] = 0;
  }
  for (Case& c : cases) {
    c.param.requires_grad_(true);
    c.param.mutable_grad() = RandomWeight(c.param.sizes().vec(), 9, c.param.scalar_type());
  }
  kernels::MaskSet set;
  std::vector<torch::Tensor> values_before, grads_before;
  for (const Case& c : cases) {
    set.Add(c.param, c.mask);
    values_before.push_back(c.param.detach().clone());
    grads_before.push_back(c.param.grad().clone());
  }
  torch::NoGradGuard no_grad;
  set.MaskGradients();
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_TRUE(
        torch::allclose(cases[i].param.detach(), values_before[i], 0, 0, /*equal_nan=*/true))
        << "case " << i;
    EXPECT_TRUE(
        torch::equal(cases[i].param.grad(), MaskedReference(grads_before[i], cases[i].mask)))
        << "case " << i;
  }
  set.ApplyWithGradients();
  for (size_t i = 0; i < cases.size(); ++i) {
    const torch::Tensor expected = MaskedReference(values_before[i], cases[i].mask);
    EXPECT_TRUE(torch::equal(cases[i].param.detach(), expected)) << "case " << i;
    EXPECT_EQ(cases[i].param.detach().isnan().sum().item<int64_t>(), 0) << "case " << i;
  }
}

TEST(PruningTest, MaskSetReplacesTheMaskOfATensorAddedAgain) {
  torch::Tensor p = RandomWeight({200}, 12);
  const torch::Tensor first = (torch::rand({200}) > 0.5).to(torch::kFloat);
  const torch::Tensor second = 1 - first;
  kernels::MaskSet set;
  set.Add(p, first);
  set.Add(p, second);
  EXPECT_EQ(set.size(), 1);
  const torch::Tensor before = p.clone();
  set.Apply();
  EXPECT_TRUE(torch::equal(p, MaskedReference(before, second)));
}

TEST(PruningTest, MaskSetPacksCpuMasksABitPerValue) {
  kernels::MaskSet set;
  set.Add(torch::randn({1000, 64}), (torch::rand({1000, 64}) > 0.5).to(torch::kFloat));
  EXPECT_EQ(set.mask_bytes(), 1000 * 64 / 8);
  set.Add(torch::randn({10}, torch::kDouble), torch::ones({10}, torch::kDouble));
  EXPECT_EQ(set.mask_bytes(), 1000 * 64 / 8 + 10 * 8);  // not float32: kept as a tensor
  EXPECT_EQ(set.size(), 2);
}

TEST(PruningTest, MaskSetFollowsAParameterWhoseDtypeChanged) {
  torch::Tensor p = RandomWeight({300}, 11);
  const torch::Tensor mask = (torch::rand({300}) > 0.5).to(torch::kFloat);
  kernels::MaskSet set;
  set.Add(p, mask);
  p.set_data(p.to(torch::kDouble));  // as module.to(...) does: same tensor, new storage
  p.add_(1);
  const torch::Tensor before = p.clone();
  set.Apply();
  EXPECT_TRUE(torch::equal(p, MaskedReference(before, mask)));
}

TEST(PruningTest, MaskSetRejectsBadMasks) {
  kernels::MaskSet set;
  EXPECT_THROW(set.Add(torch::randn({4, 4}), torch::ones({4, 5})), c10::Error);
  EXPECT_THROW(set.Add(torch::randn({4}), torch::tensor({0.0f, 1.0f, 0.5f, 1.0f})), c10::Error);
  EXPECT_EQ(set.size(), 0);
  torch::Tensor p = torch::randn({8});
  set.Add(p, torch::ones({8}));
  p.resize_({9});
  EXPECT_THROW(set.Apply(), c10::Error);
}

}  // namespace
}  // namespace autocompress::compression
