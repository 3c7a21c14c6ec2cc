#include "common/pareto.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace autocompress {
namespace {

// The points strictly inside the reference box in every coordinate (the others dominate
// nothing there).
std::vector<Point> InsideReference(const std::vector<Point>& points, const Point& reference) {
  std::vector<Point> inside;
  for (const Point& p : points) {
    bool ok = p.size() == reference.size();
    for (size_t j = 0; ok && j < p.size(); ++j) ok = p[j] < reference[j];
    if (ok) inside.push_back(p);
  }
  return inside;
}

// Hypervolume over the first `dims` coordinates of `points`, all inside the reference.
double SliceVolume(std::vector<Point> points, const Point& reference, size_t dims) {
  if (points.empty()) return 0;
  if (dims == 1) {
    double best = reference[0];
    for (const Point& p : points) best = std::min(best, p[0]);
    return reference[0] - best;
  }
  if (dims == 2) {
    std::sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
      return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]);
    });
    // The staircase of the non-dominated points in x order.
    double volume = 0, lowest = reference[1];
    std::vector<const Point*> stairs;
    for (const Point& p : points) {
      if (p[1] < lowest) {
        stairs.push_back(&p);
        lowest = p[1];
      }
    }
    for (size_t i = 0; i < stairs.size(); ++i) {
      const double right = i + 1 < stairs.size() ? (*stairs[i + 1])[0] : reference[0];
      volume += (right - (*stairs[i])[0]) * (reference[1] - (*stairs[i])[1]);
    }
    return volume;
  }
  // Slice along the last coordinate: between consecutive values of it, the points below
  // the slice project onto a (dims - 1)-dimensional problem.
  const size_t last = dims - 1;
  std::sort(points.begin(), points.end(),
            [last](const Point& a, const Point& b) { return a[last] < b[last]; });
  double volume = 0;
  std::vector<Point> below;
  for (size_t i = 0; i < points.size(); ++i) {
    below.push_back(points[i]);
    const double top = i + 1 < points.size() ? points[i + 1][last] : reference[last];
    if (top > points[i][last])
      volume += SliceVolume(below, reference, last) * (top - points[i][last]);
  }
  return volume;
}

bool WeaklyDominates(const Point& a, const Point& b) {
  for (size_t j = 0; j < a.size(); ++j) {
    if (a[j] > b[j]) return false;
  }
  return a.size() == b.size();
}

}  // namespace

bool Dominates(const Point& a, const Point& b) {
  if (a.size() != b.size()) return false;
  bool strictly = false;
  for (size_t j = 0; j < a.size(); ++j) {
    if (a[j] > b[j]) return false;
    if (a[j] < b[j]) strictly = true;
  }
  return strictly;
}

std::vector<int> NonDominationRanks(const std::vector<Point>& points) {
  const int n = static_cast<int>(points.size());
  std::vector<std::vector<int>> dominated(n);
  std::vector<int> dominators(n, 0), rank(n, 0), current;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      if (Dominates(points[i], points[j])) {
        dominated[i].push_back(j);
      } else if (Dominates(points[j], points[i])) {
        ++dominators[i];
      }
    }
    if (dominators[i] == 0) current.push_back(i);
  }
  for (int level = 0; !current.empty(); ++level) {
    std::vector<int> next;
    for (int i : current) {
      rank[i] = level;
      for (int j : dominated[i]) {
        if (--dominators[j] == 0) next.push_back(j);
      }
    }
    current = std::move(next);
  }
  return rank;
}

std::vector<int> ParetoFront(const std::vector<Point>& points) {
  const std::vector<int> rank = NonDominationRanks(points);
  std::vector<int> front;
  for (int i = 0; i < static_cast<int>(rank.size()); ++i) {
    if (rank[i] == 0) front.push_back(i);
  }
  return front;
}

double Hypervolume(const std::vector<Point>& points, const Point& reference) {
  if (reference.empty()) return 0;
  return SliceVolume(InsideReference(points, reference), reference, reference.size());
}

std::vector<double> HypervolumeContributions(const std::vector<Point>& points,
                                             const Point& reference) {
  const double total = Hypervolume(points, reference);
  std::vector<double> contributions(points.size());
  std::vector<Point> others;
  for (size_t i = 0; i < points.size(); ++i) {
    others.clear();
    bool covered = false;  // another point is at least as good everywhere
    for (size_t j = 0; j < points.size(); ++j) {
      if (j == i) continue;
      others.push_back(points[j]);
      covered = covered || WeaklyDominates(points[j], points[i]);
    }
    if (covered) continue;
    contributions[i] = std::max(0.0, total - Hypervolume(others, reference));
  }
  return contributions;
}

std::vector<int> SelectByHypervolume(const std::vector<Point>& points, const Point& reference,
                                     int k) {
  const int n = static_cast<int>(points.size());
  std::vector<int> chosen;
  if (k >= n) {
    chosen.resize(n);
    std::iota(chosen.begin(), chosen.end(), 0);
    return chosen;
  }
  std::vector<bool> taken(n, false);
  std::vector<Point> selected;
  while (static_cast<int>(chosen.size()) < k) {
    int best = -1;
    double best_volume = -1;
    for (int i = 0; i < n; ++i) {
      if (taken[i]) continue;
      selected.push_back(points[i]);
      const double v = Hypervolume(selected, reference);
      selected.pop_back();
      if (v > best_volume) {
        best_volume = v;
        best = i;
      }
    }
    taken[best] = true;
    chosen.push_back(best);
    selected.push_back(points[best]);
  }
  return chosen;
}

Point ReferencePointBeyond(const std::vector<Point>& points) {
  if (points.empty()) return {};
  Point worst(points[0].size(), -std::numeric_limits<double>::infinity());
  for (const Point& p : points) {
    for (size_t j = 0; j < worst.size() && j < p.size(); ++j) worst[j] = std::max(worst[j], p[j]);
  }
  for (double& w : worst) {
    w = w + 0.1 * std::fabs(w);
    if (w == 0) w = 1e-12;
  }
  return worst;
}

}  // namespace autocompress
