// Median wall time of a host callable, for the benchmark tables (kernels_bench and the
// GPU check's CPU column). Header-only so the GPU check, built without Bazel, can use it.
#ifndef AUTOCOMPRESS_COMPRESSION_BENCH_MEDIAN_TIME_H_
#define AUTOCOMPRESS_COMPRESSION_BENCH_MEDIAN_TIME_H_

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace autocompress::compression::bench {

// The median of `ms` (the mean of the middle two for an even count).
inline double Median(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  return n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
}

// Runs `f` once to warm up, then `reps` timed times; returns the median in ms.
inline double MedianCpuMs(const std::function<void()>& f, int reps) {
  f();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace autocompress::compression::bench

#endif  // AUTOCOMPRESS_COMPRESSION_BENCH_MEDIAN_TIME_H_
