// Median stopping rule (NNI's Medianstop): at step s, a trial whose best value so far is
// worse than the median of the running averages of completed trials at step s is
// stopped. Maximize uses the lower median (index (n-1)/2), minimize the upper (n/2), as
// NNI does. Trials with fewer than `start_step` values are left alone.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_MEDIAN_STOP_ASSESSOR_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_MEDIAN_STOP_ASSESSOR_H_

#include <map>
#include <vector>

#include "tuner_service/assessors/assessor.h"

namespace autocompress::tuner {

class MedianStopAssessor final : public Assessor {
 public:
  MedianStopAssessor(bool maximize, int start_step)
      : maximize_(maximize), start_step_(start_step) {}
  AssessorDecision Assess(int64_t trial_id, const std::vector<double>& values) override;
  void OnTrialEnd(int64_t trial_id, bool success, const std::vector<double>& values,
                  double final_value) override;

 private:
  bool maximize_;
  int start_step_;
  // Running averages of each successfully completed trial: avg[s-1] = mean of first s.
  std::map<int64_t, std::vector<double>> completed_averages_;
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_MEDIAN_STOP_ASSESSOR_H_
