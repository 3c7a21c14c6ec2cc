// Tree-structured Parzen Estimator (hyperopt's tpe.suggest as NNI 2.5 uses it, with
// Optuna's refinements available as options).
//
// After `n_startup_jobs` completed trials, observations are split by rank (RankOf: loss,
// with infeasible trials after every feasible one, by violation) into a good set (the
// best n_below, never an infeasible one while some trial is feasible) and the rest, so
// infeasible results push proposals away from their region (Optuna 3.1's constrained
// TPE). For every active parameter, a density l(x) is fit
// to the good set and g(x) to the rest (truncated Gaussian mixtures with one component
// per observation plus a prior component; categorical counts plus a prior pseudo-count),
// `n_ei_candidates` values are drawn from l, and the one maximizing log l - log g wins.
// Parameters inside nested choices are conditional: only trials in which a parameter was
// active contribute, and it is sampled only when its branch is chosen.
//
// Defaults differ from NNI 2.5 (hyperopt: 20 startup jobs, gamma 0.25 with sqrt, g_weight
// 1) because these measured better on Branin and Hartmann6 at 100 trials over 100 seeds
// (tuner_service/README.md has the table); NNI's behaviour is one argument set away:
// {"n_startup_jobs": 20, "gamma": 0.25, "gamma_mode": "sqrt", "g_weight": 1}.
//
// With several objectives (TrialRecord.losses), the good set is chosen by
// non-domination rank and hypervolume instead of by loss (Optuna 3.1's MOTPE; the
// tuner README says how).
//
// Options beyond NNI:
// - g_weight: candidates maximize log l(x) - g_weight * log g(x); below 1 this tempers
//   the penalty for revisiting well-explored regions, i.e. exploits the good set more.
// - multivariate: numeric parameters that share a branch are modelled jointly (one
//   product kernel per observation, Scott-rule bandwidths), as Optuna's multivariate TPE.
// - gamma_mode "linear": n_below = ceil(gamma * n) instead of hyperopt's ceil(gamma*sqrt(n)).
// - constant_liar: pending trials count as observations with the worst / best / mean
//   loss so that concurrent suggestions spread out (NNI's parallel_optimize).
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_TPE_ALGORITHM_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_TPE_ALGORITHM_H_

#include <memory>
#include <string>
#include <vector>

#include "tuner_service/algorithms/suggestion_algorithm.h"

namespace autocompress::tuner {

struct TpeOptions {
  // Random draws while fewer trials than this have completed.
  int n_startup_jobs = 10;
  // Size of the good set: min(ceil(gamma * sqrt(n)), max_below) ("sqrt", hyperopt) or
  // min(ceil(gamma * n), max_below) ("linear", Optuna).
  double gamma = 0.1;
  std::string gamma_mode = "linear";
  int max_below = 25;
  // Candidates drawn from l(x) per parameter (or per group when multivariate).
  int n_ei_candidates = 24;
  // Weight of log g(x) in the candidate score (1 = classic TPE).
  double g_weight = 0.25;
  // Weight of the prior component / pseudo-count.
  double prior_weight = 1.0;
  // Observations beyond the newest `linear_forgetting` get linearly smaller weights.
  int linear_forgetting = 25;
  // gamma and g_weight of a study with several objectives (chosen on ZDT1; the tuner
  // README has the table).
  double multi_objective_gamma = 0.2;
  double multi_objective_g_weight = 0.5;
  // Model numeric parameters of one branch jointly.
  // On by default: it measured better on Hartmann6 (the tuner README has the table).
  bool multivariate = true;
  // Lie for pending trials: "none", "worst", "best" or "mean".
  std::string constant_liar = "worst";
};

class TpeAlgorithm final : public SuggestionAlgorithm {
 public:
  TpeAlgorithm(std::shared_ptr<const SearchSpace> space, TpeOptions options);
  SuggestOutcome Suggest(const History& history, absl::BitGenRef gen) override;

 private:
  std::shared_ptr<const SearchSpace> space_;
  TpeOptions options_;
};

// hyperopt's linear forgetting weights for n observations in time order: 1 for the
// newest `lf`, a ramp from 1/n up to 1 for the older ones.
std::vector<double> LinearForgettingWeights(int n, int lf);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_TPE_ALGORITHM_H_
