#include "tuner_service/assessors/curve_fitting_assessor.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"

namespace autocompress::tuner {
namespace {

using CurveFn = double (*)(double x, const double* p);

struct Family {
  const char* name;
  CurveFn fn;
  std::vector<double> init;
};

// NNI's curve families and starting points (model_factory.py), x = step (1-based).
const std::vector<Family>& Families() {
  static const auto* families = new std::vector<Family>{
      {"vap",
       [](double x, const double* p) { return std::exp(p[0] + p[1] / x + p[2] * std::log(x)); },
       {-0.622, -0.470, 0.042}},
      {"pow3",
       [](double x, const double* p) { return p[0] - p[1] * std::pow(x, -p[2]); },
       {0.84, 0.52, 0.01}},
      {"linear", [](double x, const double* p) { return p[0] * x + p[1]; }, {1.0, 0.0}},
      {"logx_linear",
       [](double x, const double* p) { return p[0] * std::log(x) + p[1]; },
       {0.378, 0.237}},
      {"dr_hill_zero_background",
       [](double x, const double* p) {
         return p[0] * std::pow(x, p[1]) / (std::pow(p[2], p[1]) + std::pow(x, p[1]));
       },
       {0.772, 5.869, 2.46}},
      {"log_power",
       [](double x, const double* p) { return p[0] / (1 + std::pow(x / std::exp(p[1]), p[2])); },
       {0.77, 2.98, -0.51}},
      {"pow4",
       [](double x, const double* p) { return p[3] - std::pow(p[1] * x + p[2], -p[0]); },
       {0.1, 200, 0.0, 0.8}},
      {"mmf",
       [](double x, const double* p) {
         return p[0] - (p[0] - p[1]) / (1 + std::pow(p[2] * x, p[3]));
       },
       {0.7, 0.1, 0.01, 5}},
      {"exp4",
       [](double x, const double* p) { return p[0] - std::exp(-p[1] * std::pow(x, p[3]) + p[2]); },
       {0.7, 0.8, -0.8, 0.3}},
      {"ilog2",
       [](double x, const double* p) { return p[0] - p[1] / std::log(x + 1); },
       {0.78, 0.1}},
      {"weibull",
       [](double x, const double* p) {
         return p[0] - (p[0] - p[1]) * std::exp(-std::pow(p[2] * x, p[3]));
       },
       {0.7, 0.1, 0.01, 1}},
      {"janoschek",
       [](double x, const double* p) {
         return p[0] - (p[0] - p[1]) * std::exp(-p[2] * std::pow(x, p[3]));
       },
       {0.73, 0.07, 0.355, 0.46}},
  };
  return *families;
}

double SumSquares(const Family& f, const std::vector<double>& p, const std::vector<double>& y) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double r = f.fn(i + 1.0, p.data()) - y[i];
    s += r * r;
  }
  return std::isfinite(s) ? s : INFINITY;
}

// Levenberg-Marquardt with a central-difference Jacobian; small problems (<= 4 params).
bool FitLm(const Family& f, const std::vector<double>& y, std::vector<double>& p) {
  const int m = static_cast<int>(p.size()), n = static_cast<int>(y.size());
  double lambda = 1e-3;
  double cost = SumSquares(f, p, y);
  if (!std::isfinite(cost)) return false;
  for (int iter = 0; iter < 200; ++iter) {
    std::vector<double> jac(n * m), r(n);
    for (int i = 0; i < n; ++i) r[i] = f.fn(i + 1.0, p.data()) - y[i];
    for (int k = 0; k < m; ++k) {
      const double h = 1e-6 * std::max(1.0, std::fabs(p[k]));
      std::vector<double> hi = p, lo = p;
      hi[k] += h;
      lo[k] -= h;
      for (int i = 0; i < n; ++i) {
        jac[i * m + k] = (f.fn(i + 1.0, hi.data()) - f.fn(i + 1.0, lo.data())) / (2 * h);
      }
    }
    double a[16] = {0}, g[4] = {0};
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < m; ++k) {
        g[k] += jac[i * m + k] * r[i];
        for (int l = 0; l < m; ++l) a[k * m + l] += jac[i * m + k] * jac[i * m + l];
      }
    }
    bool improved = false;
    for (int attempt = 0; attempt < 10 && !improved; ++attempt) {
      // Solve (A + lambda diag(A)) delta = -g by Gaussian elimination.
      double aug[4][5];
      for (int k = 0; k < m; ++k) {
        for (int l = 0; l < m; ++l)
          aug[k][l] = a[k * m + l] + (k == l ? lambda * (a[k * m + k] + 1e-12) : 0);
        aug[k][m] = -g[k];
      }
      bool singular = false;
      for (int c = 0; c < m && !singular; ++c) {
        int pivot = c;
        for (int rr = c + 1; rr < m; ++rr) {
          if (std::fabs(aug[rr][c]) > std::fabs(aug[pivot][c])) pivot = rr;
        }
        if (std::fabs(aug[pivot][c]) < 1e-300) singular = true;
        std::swap(aug[c], aug[pivot]);
        for (int rr = 0; rr < m && !singular; ++rr) {
          if (rr == c) continue;
          const double factor = aug[rr][c] / aug[c][c];
          for (int l = c; l <= m; ++l) aug[rr][l] -= factor * aug[c][l];
        }
      }
      if (singular) {
        lambda *= 10;
        continue;
      }
      std::vector<double> trial = p;
      for (int k = 0; k < m; ++k) trial[k] += aug[k][m] / aug[k][k];
      const double trial_cost = SumSquares(f, trial, y);
      if (trial_cost < cost) {
        improved = true;
        const double gain = cost - trial_cost;
        p = trial;
        cost = trial_cost;
        lambda = std::max(lambda / 10, 1e-12);
        if (gain < 1e-14 * (1 + cost)) return true;
      } else {
        lambda *= 10;
      }
    }
    if (!improved) break;
  }
  return std::isfinite(cost);
}

}  // namespace

std::optional<double> PredictCurve(const std::vector<double>& values, int target, int min_models,
                                   std::mt19937_64& gen) {
  if (values.empty()) return std::nullopt;
  double scale = 0;
  for (double v : values) scale = std::max(scale, std::fabs(v));
  if (scale == 0 || !std::isfinite(scale)) scale = 1;
  std::vector<double> y(values.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = values[i] / scale;

  struct Fit {
    const Family* family;
    std::vector<double> params;
    double rms;
  };
  std::vector<Fit> fits;
  for (const Family& family : Families()) {
    std::vector<double> p = family.init;
    if (!FitLm(family, y, p)) continue;
    const double prediction = family.fn(target, p.data());
    if (!std::isfinite(prediction)) continue;
    fits.push_back({&family, p, std::sqrt(SumSquares(family, p, y) / y.size())});
  }
  if (fits.empty()) return std::nullopt;
  std::vector<double> rms;
  for (const Fit& f : fits) rms.push_back(f.rms);
  std::nth_element(rms.begin(), rms.begin() + rms.size() / 2, rms.end());
  const double median_rms = rms[rms.size() / 2];
  std::vector<Fit> kept;
  for (const Fit& f : fits) {
    if (f.rms <= 2 * median_rms + 1e-12) kept.push_back(f);
  }
  if (static_cast<int>(kept.size()) < min_models) return std::nullopt;

  // Metropolis-Hastings over model weights (positive, normalised), Gaussian noise with
  // the combined model's own residual spread; the prediction is the chains' mean.
  const int k = static_cast<int>(kept.size());
  auto combined = [&](const std::vector<double>& w, double x) {
    double s = 0, total = 0;
    for (int i = 0; i < k; ++i) {
      s += w[i] * kept[i].family->fn(x, kept[i].params.data());
      total += w[i];
    }
    return s / total;
  };
  auto log_likelihood = [&](const std::vector<double>& w) {
    double ss = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double r = combined(w, i + 1.0) - y[i];
      ss += r * r;
    }
    const double sigma2 = std::max(ss / y.size(), 1e-12);
    return -0.5 * y.size() * std::log(sigma2) - 0.5 * ss / sigma2;
  };
  std::normal_distribution<double> step(0.0, 0.0005);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double prediction_sum = 0;
  int samples = 0;
  for (int chain = 0; chain < 10; ++chain) {
    std::vector<double> w(k, 1.0 / k);
    double ll = log_likelihood(w);
    for (int s = 0; s < 20; ++s) {
      std::vector<double> proposal = w;
      bool valid = true;
      for (double& wi : proposal) {
        wi += step(gen);
        valid = valid && wi > 0;
      }
      if (valid) {
        const double proposal_ll = log_likelihood(proposal);
        if (std::log(unit(gen)) < proposal_ll - ll) {
          w = proposal;
          ll = proposal_ll;
        }
      }
      prediction_sum += combined(w, target);
      ++samples;
    }
  }
  return prediction_sum / samples * scale;
}

AssessorDecision CurveFittingAssessor::Assess(int64_t trial_id, const std::vector<double>& values) {
  const int n = static_cast<int>(values.size());
  if (!best_final_.has_value() || n < options_.start_step) return {};
  auto it = last_judged_.find(trial_id);
  if (it != last_judged_.end() && n - it->second < options_.gap) return {};
  last_judged_[trial_id] = n;
  std::vector<double> scaled(values);
  if (!maximize_) {
    for (double& v : scaled) v = -v;
  }
  std::optional<double> prediction =
      PredictCurve(scaled, options_.epoch_num, options_.min_models, gen_);
  if (!prediction.has_value()) return {};
  // threshold * best for a positive best; in the negated (minimize) scale the same
  // relative margin is best - (1 - threshold) * |best|.
  const double bar = *best_final_ - (1 - options_.threshold) * std::fabs(*best_final_);
  if (*prediction > bar) return {};
  const double shown = maximize_ ? *prediction : -*prediction;
  return {true,
          absl::StrCat("curvefitting: predicted value ", shown, " at step ", options_.epoch_num,
                       " does not beat ", options_.threshold, " x the best final result")};
}

void CurveFittingAssessor::OnTrialEnd(int64_t trial_id, bool success,
                                      const std::vector<double>& values, double final_value) {
  last_judged_.erase(trial_id);
  if (!success || !std::isfinite(final_value)) return;
  const double v = maximize_ ? final_value : -final_value;
  best_final_ = best_final_.has_value() ? std::max(*best_final_, v) : v;
}

}  // namespace autocompress::tuner
