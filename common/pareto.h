// Pareto dominance, non-domination ranks and hypervolume of points that are minimized in
// every coordinate. Shared by the tuner (multi-objective TPE splits its observations by
// rank and hypervolume contribution, as Optuna 3.1's MOTPE) and the scheduler (the Pareto
// front of an experiment). Pure functions, thread-safe.
//
// A point a dominates b when a <= b in every coordinate and a < b in at least one.
// Hypervolume is the Lebesgue measure of the region dominated by a set of points and
// bounded by a reference point; coordinates at or beyond the reference contribute
// nothing.
#ifndef AUTOCOMPRESS_COMMON_PARETO_H_
#define AUTOCOMPRESS_COMMON_PARETO_H_

#include <vector>

namespace autocompress {

using Point = std::vector<double>;

// True when `a` dominates `b` (same size, minimized).
bool Dominates(const Point& a, const Point& b);

// Non-domination rank of every point: 0 for the non-dominated ones, 1 for those
// non-dominated once rank 0 is removed, and so on (Deb's fast non-dominated sort,
// O(n^2 m)). Equal points share a rank.
std::vector<int> NonDominationRanks(const std::vector<Point>& points);

// Indices of the rank-0 points, in input order.
std::vector<int> ParetoFront(const std::vector<Point>& points);

// Hypervolume of `points` against `reference` (every point the same size as it).
// Exact: a sweep for 2 coordinates, recursive slicing along the last coordinate above.
double Hypervolume(const std::vector<Point>& points, const Point& reference);

// For each point, the hypervolume lost when it alone is removed (0 for a dominated
// point or one beyond the reference).
std::vector<double> HypervolumeContributions(const std::vector<Point>& points,
                                             const Point& reference);

// Greedy hypervolume subset selection: `k` indices of `points` chosen one at a time,
// each maximizing the hypervolume gained over those chosen before (Optuna 3.1's
// _solve_hssp). k >= points.size() returns every index.
std::vector<int> SelectByHypervolume(const std::vector<Point>& points, const Point& reference,
                                     int k);

// A reference point just beyond the worst value of each coordinate: worst + 10% of its
// magnitude (and at least a small epsilon), as Optuna 3.1's MOTPE chooses it.
Point ReferencePointBeyond(const std::vector<Point>& points);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_PARETO_H_
