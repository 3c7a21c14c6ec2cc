#include "common/pareto.h"

#include <algorithm>
#include <random>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

std::vector<Point> RandomPoints(std::mt19937& gen, int n, int m, bool ties) {
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> grid(0, 4);
  std::vector<Point> points(n, Point(m));
  for (Point& p : points) {
    for (double& v : p) v = ties ? grid(gen) / 4.0 : u(gen);
  }
  return points;
}

// Reference ranks by peeling: the points no remaining point dominates get the next rank.
std::vector<int> PeeledRanks(const std::vector<Point>& points) {
  std::vector<int> rank(points.size(), -1);
  for (int level = 0;; ++level) {
    std::vector<int> layer;
    for (size_t i = 0; i < points.size(); ++i) {
      if (rank[i] >= 0) continue;
      bool dominated = false;
      for (size_t j = 0; j < points.size() && !dominated; ++j) {
        if (j == i || (rank[j] >= 0 && rank[j] < level)) continue;
        bool le = true, lt = false;
        for (size_t k = 0; k < points[i].size(); ++k) {
          le = le && points[j][k] <= points[i][k];
          lt = lt || points[j][k] < points[i][k];
        }
        dominated = le && lt;
      }
      if (!dominated) layer.push_back(static_cast<int>(i));
    }
    if (layer.empty()) return rank;
    for (int i : layer) rank[i] = level;
  }
}

// Reference hypervolume: the grid spanned by every point's coordinates and the reference
// point, summing the cells some point dominates (O(n^m * n m)).
double GridHypervolume(const std::vector<Point>& points, const Point& reference) {
  const size_t m = reference.size();
  std::vector<std::vector<double>> cuts(m);
  for (size_t k = 0; k < m; ++k) {
    std::set<double> values = {reference[k]};
    for (const Point& p : points) values.insert(std::min(p[k], reference[k]));
    cuts[k].assign(values.begin(), values.end());
  }
  double volume = 0;
  std::vector<size_t> cell(m, 0);
  for (;;) {
    bool inside = true;
    double cell_volume = 1;
    Point corner(m);
    for (size_t k = 0; k < m; ++k) {
      if (cell[k] + 1 >= cuts[k].size()) inside = false;
      if (!inside) break;
      corner[k] = cuts[k][cell[k]];
      cell_volume *= cuts[k][cell[k] + 1] - cuts[k][cell[k]];
    }
    if (inside) {
      for (const Point& p : points) {
        bool covers = true;
        for (size_t k = 0; k < m && covers; ++k) covers = p[k] <= corner[k];
        if (covers) {
          volume += cell_volume;
          break;
        }
      }
    }
    size_t k = 0;
    while (k < m && ++cell[k] + 1 >= cuts[k].size()) cell[k++] = 0;
    if (k == m) return volume;
  }
}

TEST(ParetoTest, DominanceNeedsOneStrictlyBetterCoordinate) {
  EXPECT_TRUE(Dominates({1, 2}, {1, 3}));
  EXPECT_FALSE(Dominates({1, 2}, {1, 2}));
  EXPECT_FALSE(Dominates({1, 3}, {2, 2}));
  EXPECT_FALSE(Dominates({1}, {2, 2}));
}

TEST(ParetoTest, RanksEqualPeelingOnRandomPoints) {
  std::mt19937 gen(7);
  for (int round = 0; round < 200; ++round) {
    const int m = 1 + round % 4;
    const auto points = RandomPoints(gen, 1 + round % 40, m, /*ties=*/round % 3 == 0);
    EXPECT_EQ(NonDominationRanks(points), PeeledRanks(points)) << "round " << round;
  }
}

TEST(ParetoTest, FrontIsRankZeroInInputOrder) {
  EXPECT_THAT(ParetoFront({{3, 1}, {2, 2}, {3, 3}, {1, 3}, {2, 2}}),
              testing::ElementsAre(0, 1, 3, 4));
}

TEST(ParetoTest, HypervolumeEqualsGridCountOnRandomPoints) {
  std::mt19937 gen(11);
  for (int round = 0; round < 300; ++round) {
    const int m = 1 + round % 4;
    const int n = 1 + round % (m == 4 ? 8 : 14);
    const auto points = RandomPoints(gen, n, m, /*ties=*/round % 4 == 0);
    // Some points lie beyond the reference in some coordinate.
    const Point reference(m, round % 2 == 0 ? 1.1 : 0.8);
    EXPECT_NEAR(Hypervolume(points, reference), GridHypervolume(points, reference), 1e-9)
        << "round " << round << " m=" << m << " n=" << n;
  }
}

TEST(ParetoTest, ContributionsAreLeaveOneOutDifferences) {
  std::mt19937 gen(5);
  for (int round = 0; round < 50; ++round) {
    const int m = 2 + round % 2;
    const auto points = RandomPoints(gen, 2 + round % 9, m, /*ties=*/false);
    const Point reference(m, 1.0);
    const std::vector<double> contributions = HypervolumeContributions(points, reference);
    const std::vector<int> rank = NonDominationRanks(points);
    for (size_t i = 0; i < points.size(); ++i) {
      std::vector<Point> others = points;
      others.erase(others.begin() + i);
      EXPECT_NEAR(contributions[i],
                  GridHypervolume(points, reference) - GridHypervolume(others, reference), 1e-9);
      if (rank[i] > 0) {
        EXPECT_EQ(contributions[i], 0);
      }
    }
  }
}

TEST(ParetoTest, GreedySelectionTakesTheLargestGainFirst) {
  // In 2-D the first pick is the point with the largest own box; then the largest gain.
  const std::vector<Point> points = {{0.1, 0.9}, {0.5, 0.5}, {0.9, 0.1}, {0.45, 0.55}};
  EXPECT_THAT(SelectByHypervolume(points, {1, 1}, 1), testing::ElementsAre(1));
  const std::vector<int> two = SelectByHypervolume(points, {1, 1}, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], 1);
  // Each later pick maximizes the hypervolume of the chosen set, checked by brute force.
  std::mt19937 gen(3);
  for (int round = 0; round < 30; ++round) {
    const auto random = RandomPoints(gen, 8, 2 + round % 2, false);
    const Point reference(random[0].size(), 1.0);
    const std::vector<int> chosen = SelectByHypervolume(random, reference, 4);
    std::vector<Point> so_far;
    for (int c : chosen) {
      double best = 0;
      for (const Point& p : random) {
        auto with = so_far;
        with.push_back(p);
        best = std::max(best, GridHypervolume(with, reference));
      }
      so_far.push_back(random[c]);
      EXPECT_NEAR(GridHypervolume(so_far, reference), best, 1e-9);
    }
  }
  EXPECT_EQ(SelectByHypervolume(points, {1, 1}, 9).size(), points.size());
}

TEST(ParetoTest, ReferencePointLiesBeyondTheWorstValue) {
  EXPECT_THAT(ReferencePointBeyond({{1, -2}, {3, -4}, {0, 0}}),
              testing::ElementsAre(testing::DoubleEq(3.3), testing::DoubleEq(1e-12)));
  EXPECT_THAT(ReferencePointBeyond({{-1, -2}}),
              testing::ElementsAre(testing::DoubleEq(-0.9), testing::DoubleEq(-1.8)));
}

}  // namespace
}  // namespace autocompress
