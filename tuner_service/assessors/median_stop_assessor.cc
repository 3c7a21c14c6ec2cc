#include "tuner_service/assessors/median_stop_assessor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace autocompress::tuner {

AssessorDecision MedianStopAssessor::Assess(int64_t trial_id, const std::vector<double>& values) {
  const int step = static_cast<int>(values.size());
  if (step == 0 || step < start_step_) return {};
  const double best = maximize_ ? *std::max_element(values.begin(), values.end())
                                : *std::min_element(values.begin(), values.end());
  std::vector<double> averages;
  for (const auto& [id, avg] : completed_averages_) {
    if (static_cast<int>(avg.size()) >= step) averages.push_back(avg[step - 1]);
  }
  if (averages.empty()) return {};
  std::sort(averages.begin(), averages.end());
  const size_t n = averages.size();
  const double median = maximize_ ? averages[(n - 1) / 2] : averages[n / 2];
  const bool stop = maximize_ ? best < median : best > median;
  if (!stop) return {};
  return {true,
          absl::StrCat("medianstop: best value ", best, " after ", step,
                       " steps is worse than the median ", median, " of ", n, " completed trials")};
}

void MedianStopAssessor::OnTrialEnd(int64_t trial_id, bool success,
                                    const std::vector<double>& values, double final_value) {
  if (!success || values.empty()) return;
  std::vector<double> averages(values.size());
  double sum = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    sum += values[i];
    averages[i] = sum / (i + 1);
  }
  completed_averages_[trial_id] = std::move(averages);
}

}  // namespace autocompress::tuner
