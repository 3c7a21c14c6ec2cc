// Learning-curve extrapolation (NNI's Curvefitting assessor). A running trial's
// intermediate values are fitted by twelve parametric learning-curve families (vap, pow3,
// linear, logx_linear, dr_hill_zero_background, log_power, pow4, mmf, exp4, ilog2,
// weibull, janoschek); families whose fit failed or fits badly are dropped; if at least
// `min_models` remain, their combination (weights sampled by a short seeded
// Metropolis-Hastings run: 10 chains x 20 steps, step 0.0005) predicts the value at
// `epoch_num`, and the trial is stopped unless prediction > threshold * best final value.
//
// Differences from NNI (documented in tuner_service/README.md): least squares by
// Levenberg-Marquardt on values scaled to unit magnitude; outliers are families whose
// residual RMS exceeds twice the median RMS; ilog2 uses log(x + 1) so step 1 is finite;
// minimize mode negates values, where NNI assumed maximization.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_CURVE_FITTING_ASSESSOR_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_CURVE_FITTING_ASSESSOR_H_

#include <map>
#include <optional>
#include <random>
#include <vector>

#include "tuner_service/assessors/assessor.h"

namespace autocompress::tuner {

struct CurveFittingOptions {
  int epoch_num = 20;
  int start_step = 6;
  double threshold = 0.95;
  int gap = 1;
  int min_models = 4;
};

class CurveFittingAssessor final : public Assessor {
 public:
  CurveFittingAssessor(bool maximize, CurveFittingOptions options, uint64_t seed)
      : maximize_(maximize), options_(options), gen_(seed) {}
  AssessorDecision Assess(int64_t trial_id, const std::vector<double>& values) override;
  void OnTrialEnd(int64_t trial_id, bool success, const std::vector<double>& values,
                  double final_value) override;
  void OnCurveRestart(int64_t trial_id) override { last_judged_.erase(trial_id); }

 private:
  bool maximize_;
  CurveFittingOptions options_;
  std::mt19937_64 gen_;
  std::optional<double> best_final_;  // in the "larger is better" scale
  std::map<int64_t, int> last_judged_;
};

// Predicts the value at step `target` (1-based) from `values` at steps 1..n, or nullopt
// when fewer than `min_models` families fit. Exposed for tests.
std::optional<double> PredictCurve(const std::vector<double>& values, int target, int min_models,
                                   std::mt19937_64& gen);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_CURVE_FITTING_ASSESSOR_H_
