#include "tuner_service/algorithms/tpe_algorithm.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/random/distributions.h"
#include "common/pareto.h"

namespace autocompress::tuner {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kLogSqrt2Pi = 0.5 * std::log(2 * M_PI);

double NormCdf(double z) { return 0.5 * std::erfc(-z * M_SQRT1_2); }

// Inverse of the standard normal CDF (Acklam's rational approximation, relative error
// below 1.2e-9), enough for sampling.
double NormQuantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  p = std::clamp(p, 1e-300, 1 - 1e-16);
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - 0.02425) {
    const double q = std::sqrt(-2 * std::log1p(-p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// N(mu, sigma) truncated to [low, high], by inverting the CDF (mirrored in the upper
// tail so that probabilities near 1 keep their precision).
double SampleTruncated(double mu, double sigma, double low, double high, absl::BitGenRef gen) {
  double a = (low - mu) / sigma, b = (high - mu) / sigma;
  const bool mirror = a > 0;
  if (mirror) std::swap(a, b), a = -a, b = -b;
  const double pa = NormCdf(a), pb = NormCdf(b);
  double z;
  if (pb - pa < 1e-300) {
    z = a;
  } else {
    z = NormQuantile(absl::Uniform<double>(absl::IntervalOpenOpen, gen, pa, pb));
    z = std::clamp(z, a, b);
  }
  return mu + sigma * (mirror ? -z : z);
}

// log(sum(exp(v))); terms more than 30 below the maximum (relative weight < 1e-13)
// are skipped, which saves most exp() calls when kernels are narrow.
double LogSumExp(const std::vector<double>& v) {
  double m = -kInf;
  for (double x : v) m = std::max(m, x);
  if (!std::isfinite(m)) return m;
  double s = 0;
  for (double x : v) {
    if (x > m - 30) s += std::exp(x - m);
  }
  return m + std::log(s);
}

// How TPE sees a numeric dimension: in log space for log types, integers for randint.
struct NumericView {
  const Dimension* d;
  double low, high;  // truncation bounds in the internal space (may be infinite)
  double prior_mu, prior_sigma;
  bool discrete;

  explicit NumericView(const Dimension& dim) : d(&dim) {
    discrete = dim.quantized() || dim.type == ParamType::kRandint;
    if (dim.type == ParamType::kRandint) {
      low = dim.low - 0.5;
      high = dim.high - 0.5;
    } else if (dim.normal_family()) {
      low = -kInf;
      high = kInf;
    } else {
      low = Internal(dim.low);
      high = Internal(dim.high);
    }
    if (dim.normal_family()) {
      prior_mu = dim.low;
      prior_sigma = dim.high;
    } else {
      prior_mu = 0.5 * (low + high);
      prior_sigma = high - low;
    }
  }
  double Internal(double v) const { return d->ToModel(v); }
  double External(double v) const { return d->FromModel(v); }

  // The value a trial receives for an internal sample.
  double Finalize(double internal) const {
    double v = External(internal);
    if (d->type == ParamType::kRandint) return std::clamp(std::nearbyint(v), d->low, d->high - 1);
    if (d->quantized()) v = QRound(v, d->q);
    if (d->bounded()) v = std::clamp(v, d->low, d->high);
    return v;
  }
  // The internal interval of values that round to `value` (discrete dimensions).
  std::pair<double, double> Bin(double value) const {
    double lb, ub;
    if (d->type == ParamType::kRandint) {
      lb = value - 0.5;
      ub = value + 0.5;
    } else {
      lb = value - d->q / 2;
      ub = value + d->q / 2;
      if (d->log_scale()) {
        lb = lb <= 0 ? -kInf : std::log(lb);
        ub = std::log(std::max(ub, 1e-300));
      }
    }
    return {std::max(lb, low), std::min(ub, high)};
  }
};

// A Gaussian-mixture density over D numeric dimensions with diagonal kernels, each
// truncated to the dimension's bounds. D = 1 is the univariate case.
class Parzen {
 public:
  // `obs` holds n observations of D values in time order (row-major); `weights` (n of
  // them, or empty for hyperopt's linear forgetting) weighs their kernels.
  Parzen(const std::vector<const NumericView*>& views, const std::vector<double>& obs,
         const TpeOptions& options, const std::vector<double>& weights_in = {}) {
    const int d_count = static_cast<int>(views.size());
    const int n = d_count == 0 ? 0 : static_cast<int>(obs.size()) / d_count;
    dims_ = d_count;
    k_ = n + 1;  // observations + prior
    mu_.resize(k_ * dims_);
    sigma_.resize(k_ * dims_);
    std::vector<double> weights =
        weights_in.empty() ? LinearForgettingWeights(n, options.linear_forgetting) : weights_in;
    weights.push_back(options.prior_weight);
    const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
    log_weight_.resize(k_);
    for (int k = 0; k < k_; ++k) log_weight_[k] = std::log(weights[k] / total);

    for (int j = 0; j < dims_; ++j) {
      const NumericView& v = *views[j];
      const double max_sigma = v.prior_sigma;
      const double min_sigma = v.prior_sigma / std::min(100.0, 1.0 + k_);
      for (int i = 0; i < n; ++i) mu_[i * dims_ + j] = obs[i * dims_ + j];
      mu_[n * dims_ + j] = v.prior_mu;
      if (dims_ == 1) {
        AdaptiveBandwidths(n, v.prior_mu, v.prior_sigma);
      } else {
        // Scott's rule, as Optuna's multivariate TPE: one bandwidth per dimension.
        const double s = 0.2 * std::pow(std::max(n, 1), -1.0 / (dims_ + 4)) * v.prior_sigma;
        for (int i = 0; i < n; ++i) sigma_[i * dims_ + j] = s;
      }
      for (int i = 0; i < n; ++i) {
        sigma_[i * dims_ + j] = std::clamp(sigma_[i * dims_ + j], min_sigma, max_sigma);
      }
      sigma_[n * dims_ + j] = v.prior_sigma;
    }
    // log of each kernel's normalizer: sigma * (Phi(b) - Phi(a)); and, for continuous
    // dimensions, the constant part of each component's log density.
    log_norm_.resize(k_ * dims_);
    inv_sigma_.resize(k_ * dims_);
    constant_.assign(k_, 0);
    for (int k = 0; k < k_; ++k) {
      constant_[k] = log_weight_[k];
      for (int j = 0; j < dims_; ++j) {
        const NumericView& v = *views[j];
        const double m = mu_[k * dims_ + j], s = sigma_[k * dims_ + j];
        // Beyond 9 sigma the tail mass is below 1e-18: skip the erfc.
        const double a = (v.low - m) / s, b = (v.high - m) / s;
        const double z = (b > 9 ? 1.0 : NormCdf(b)) - (a < -9 ? 0.0 : NormCdf(a));
        log_norm_[k * dims_ + j] = std::log(s) + std::log(std::max(z, 1e-300));
        inv_sigma_[k * dims_ + j] = 1 / s;
        if (!v.discrete) constant_[k] -= kLogSqrt2Pi + log_norm_[k * dims_ + j];
      }
    }
  }

  void Sample(const std::vector<const NumericView*>& views, absl::BitGenRef gen,
              double* out) const {
    int k = k_ - 1;
    double u = absl::Uniform<double>(gen, 0.0, 1.0), acc = 0;
    for (int i = 0; i < k_; ++i) {
      acc += std::exp(log_weight_[i]);
      if (u < acc) {
        k = i;
        break;
      }
    }
    for (int j = 0; j < dims_; ++j) {
      out[j] = SampleTruncated(mu_[k * dims_ + j], sigma_[k * dims_ + j], views[j]->low,
                               views[j]->high, gen);
    }
  }

  // log density (continuous dimensions) or log probability mass of the rounding bin
  // (discrete ones) of a point given in final values and internal values.
  double LogDensity(const std::vector<const NumericView*>& views, const double* internal,
                    const double* final_values, std::vector<double>& scratch) const {
    scratch.resize(k_);
    if (dims_ == 1 && !views[0]->discrete) {
      // The common case, kept tight so the compiler can vectorize it.
      const double x = internal[0];
      const double* mu = mu_.data();
      const double* inv_sigma = inv_sigma_.data();
      const double* constant = constant_.data();
      double* out = scratch.data();
      for (int k = 0; k < k_; ++k) {
        const double z = (x - mu[k]) * inv_sigma[k];
        out[k] = constant[k] - 0.5 * z * z;
      }
      return LogSumExp(scratch);
    }
    for (int k = 0; k < k_; ++k) {
      double lp = constant_[k];
      for (int j = 0; j < dims_; ++j) {
        const NumericView& v = *views[j];
        const double m = mu_[k * dims_ + j];
        if (v.discrete) {
          const double s = sigma_[k * dims_ + j];
          auto [lb, ub] = v.Bin(final_values[j]);
          const double mass = NormCdf((ub - m) / s) - NormCdf((lb - m) / s);
          lp += std::log(std::max(mass, 1e-300)) - log_norm_[k * dims_ + j] + std::log(s);
        } else {
          const double z = (internal[j] - m) * inv_sigma_[k * dims_ + j];
          lp -= 0.5 * z * z;
        }
      }
      scratch[k] = lp;
    }
    return LogSumExp(scratch);
  }

 private:
  // hyperopt's adaptive_parzen_normal: each observation's bandwidth is the larger gap
  // to its neighbours once the prior mean is inserted among them.
  void AdaptiveBandwidths(int n, double prior_mu, double prior_sigma) {
    if (n == 0) return;
    if (n == 1) {
      sigma_[0] = prior_sigma * 0.5;
      return;
    }
    std::vector<int> order(n + 1);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return mu_[a] < mu_[b]; });
    for (int r = 0; r <= n; ++r) {
      const int i = order[r];
      if (i == n) continue;  // the prior keeps its own sigma
      const double left = r > 0 ? mu_[i] - mu_[order[r - 1]] : -kInf;
      const double right = r < n ? mu_[order[r + 1]] - mu_[i] : -kInf;
      sigma_[i] = std::max(left, right);
    }
  }

  int dims_ = 0;
  int k_ = 0;
  std::vector<double> mu_, sigma_, log_norm_, log_weight_, inv_sigma_, constant_;
};

// Categorical density: linearly forgotten counts plus prior_weight per category.
std::vector<double> CategoricalLogProbs(int categories, const std::vector<int>& obs,
                                        const TpeOptions& options,
                                        const std::vector<double>& weights = {}) {
  std::vector<double> counts(categories, options.prior_weight);
  std::vector<double> w = weights.empty() ? LinearForgettingWeights(static_cast<int>(obs.size()),
                                                                    options.linear_forgetting)
                                          : weights;
  for (size_t i = 0; i < obs.size(); ++i) counts[obs[i]] += w[i];
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  for (double& c : counts) c = std::log(c / total);
  return counts;
}

struct Observation {
  const Assignment* x;
  RankKey rank;
  // Every objective's loss of a completed trial in a multi-objective study, else null.
  const std::vector<double>* losses = nullptr;
  bool below = false;
  // Multi-objective good set: the kernel weight (hypervolume contribution); else unused.
  double weight = 1;
};

// The good set of a multi-objective study (Optuna 3.1's MOTPE): feasible observations
// by non-domination rank, whole ranks while they fit; of the rank that does not fit, the
// subset with the largest hypervolume (greedy, against a reference point beyond the
// worst feasible values). As in the single-objective split, infeasible observations
// join only while none is feasible, least violating first (`order` is sorted by rank).
void MarkBelowMultiObjective(std::vector<Observation>& obs, const std::vector<int>& order,
                             int n_below) {
  std::vector<int> feasible;
  std::vector<Point> points;
  for (int i : order) {
    if (obs[i].losses == nullptr || obs[i].rank.infeasible) continue;
    feasible.push_back(i);
    points.push_back(*obs[i].losses);
  }
  if (feasible.empty()) {
    int marked = 0;
    for (int i : order) {
      if (marked >= n_below) break;
      if (obs[i].losses == nullptr) continue;
      obs[i].below = true;
      ++marked;
    }
    return;
  }
  if (static_cast<int>(feasible.size()) <= n_below) {
    for (int i : feasible) obs[i].below = true;
    return;
  }
  const std::vector<int> rank = NonDominationRanks(points);
  const Point reference = ReferencePointBeyond(points);
  int marked = 0;
  for (int level = 0; marked < n_below; ++level) {
    std::vector<int> members;
    std::vector<Point> member_points;
    for (size_t k = 0; k < feasible.size(); ++k) {
      if (rank[k] != level) continue;
      members.push_back(feasible[k]);
      member_points.push_back(points[k]);
    }
    const int room = n_below - marked;
    if (static_cast<int>(members.size()) <= room) {
      for (int i : members) obs[i].below = true;
      marked += static_cast<int>(members.size());
      continue;
    }
    for (int k : SelectByHypervolume(member_points, reference, room)) obs[members[k]].below = true;
    marked = n_below;
  }
  // Kernel weights of the good set: each one's hypervolume contribution within it
  // (plus a tiny epsilon), over the largest, so dominated members barely count.
  std::vector<int> below;
  std::vector<Point> below_points;
  for (int i : feasible) {
    if (!obs[i].below) continue;
    below.push_back(i);
    below_points.push_back(*obs[i].losses);
  }
  if (below.size() < 2) return;
  std::vector<double> contribution =
      HypervolumeContributions(below_points, ReferencePointBeyond(below_points));
  double largest = 0;
  for (double& c : contribution) largest = std::max(largest, c += 1e-12);
  for (size_t k = 0; k < below.size(); ++k) obs[below[k]].weight = contribution[k] / largest;
}

// The rank a pending trial pretends to have under the constant liar: the worst or best
// completed rank, or the mean loss of the feasible trials (the mean violation when none
// is feasible); none = pending trials are left out.
std::optional<RankKey> Lie(const History& history, const std::string& liar) {
  RankKey worst{false, -kInf}, best{true, kInf};
  double feasible_sum = 0, violation_sum = 0;
  int feasible = 0, infeasible = 0;
  for (const TrialRecord& t : history.trials) {
    if (t.status != TrialStatus::kCompleted) continue;
    const RankKey rank = RankOf(t);
    if (worst < rank) worst = rank;
    if (rank < best) best = rank;
    if (t.feasible) {
      feasible_sum += t.loss;
      ++feasible;
    } else {
      violation_sum += t.violation;
      ++infeasible;
    }
  }
  if (liar == "worst") return worst;
  if (liar == "best") return best;
  if (liar == "mean") {
    return feasible > 0 ? RankKey{false, feasible_sum / feasible}
                        : RankKey{true, violation_sum / infeasible};
  }
  return std::nullopt;
}

// Distinct assignments of the sub-space below `siblings` (dimensions active together);
// infinity once a continuous dimension is in it.
double SubspaceSize(const SearchSpace& space, const std::vector<int>& siblings) {
  double size = 1;
  for (int dim : siblings) {
    const Dimension& d = space.dimensions()[dim];
    if (d.type == ParamType::kChoice) {
      double options = 0;
      for (int c = 0; c < d.num_categories; ++c) {
        options += SubspaceSize(space, space.Children(dim, c));
      }
      size *= options;
    } else if (d.type == ParamType::kRandint) {
      size *= d.num_categories;
    } else {
      return kInf;
    }
  }
  return size;
}

// Every dimension below `siblings`, depth first.
void SubspaceDims(const SearchSpace& space, const std::vector<int>& siblings,
                  std::vector<int>& out) {
  for (int dim : siblings) {
    out.push_back(dim);
    const Dimension& d = space.dimensions()[dim];
    if (d.type != ParamType::kChoice) continue;
    for (int c = 0; c < d.num_categories; ++c) SubspaceDims(space, space.Children(dim, c), out);
  }
}

// The options of choice `dim` whose whole sub-space is finite and already tried by some
// trial of the history (pending, ended or failed); none when that is every option. TPE
// leaves them out: the study refuses a duplicate and draws from the prior instead, so a
// knob-less branch (naive at fixed bits) leading the good set would turn every later
// suggestion into a random one.
std::vector<bool> TriedOptions(const SearchSpace& space, int dim, const History& history) {
  const int options = space.dimensions()[dim].num_categories;
  std::vector<bool> tried(options, false);
  int count = 0;
  for (int c = 0; c < options; ++c) {
    const std::vector<int>& children = space.Children(dim, c);
    const double size = SubspaceSize(space, children);
    if (std::isinf(size)) continue;
    std::vector<int> dims;
    SubspaceDims(space, children, dims);
    std::set<std::vector<double>> seen;
    for (const TrialRecord& t : history.trials) {
      if (t.x[dim] != c) continue;
      std::vector<double> point;
      // NaN (an inactive dimension) compares with nothing; -inf stands in for it.
      for (int d : dims) point.push_back(std::isnan(t.x[d]) ? -kInf : t.x[d]);
      seen.insert(std::move(point));
    }
    tried[c] = static_cast<double>(seen.size()) >= size;
    count += tried[c];
  }
  if (count == options) tried.assign(options, false);
  return tried;
}

}  // namespace

std::vector<double> LinearForgettingWeights(int n, int lf) {
  if (n <= lf || lf <= 0) return std::vector<double>(n, 1.0);
  std::vector<double> w(n, 1.0);
  const int ramp = n - lf;
  for (int i = 0; i < ramp; ++i) {
    w[i] = ramp == 1 ? 1.0 / n : 1.0 / n + (1.0 - 1.0 / n) * i / (ramp - 1);
  }
  return w;
}

TpeAlgorithm::TpeAlgorithm(std::shared_ptr<const SearchSpace> space, TpeOptions options)
    : space_(std::move(space)), options_(std::move(options)) {}

SuggestOutcome TpeAlgorithm::Suggest(const History& history, absl::BitGenRef gen) {
  if (history.completed < std::max(1, options_.n_startup_jobs)) {
    return {SuggestOutcome::Kind::kSuggestion, space_->SamplePrior(gen)};
  }
  // Observations in time order; pending trials get the lie when one is configured.
  std::vector<Observation> obs;
  const std::optional<RankKey> lie = Lie(history, options_.constant_liar);
  int feasible = 0;
  bool multi_objective = false;
  for (const TrialRecord& t : history.trials) {
    if (t.status == TrialStatus::kCompleted) {
      obs.push_back({&t.x, RankOf(t), t.losses.size() > 1 ? &t.losses : nullptr});
      multi_objective = multi_objective || t.losses.size() > 1;
    } else if (t.status == TrialStatus::kPending && lie.has_value()) {
      obs.push_back({&t.x, *lie});
    } else {
      continue;
    }
    if (!obs.back().rank.infeasible) ++feasible;
  }
  // A front needs a wider good set, and a milder g(x), than a single optimum.
  const double gamma = multi_objective ? options_.multi_objective_gamma : options_.gamma;
  const double g_weight = multi_objective ? options_.multi_objective_g_weight : options_.g_weight;
  // Split by rank (ties: earlier first; lies for pending sort after equal real ranks
  // because they come later in time).
  std::vector<int> order(obs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return obs[a].rank < obs[b].rank; });
  const double n = static_cast<double>(obs.size());
  const double raw = options_.gamma_mode == "linear" ? gamma * n : gamma * std::sqrt(n);
  int n_below = std::min<int>(static_cast<int>(std::ceil(raw)), options_.max_below);
  if (multi_objective) {
    MarkBelowMultiObjective(obs, order, n_below);
  } else {
    // The good set holds infeasible observations only while there is no feasible one.
    if (feasible > 0) n_below = std::min(n_below, feasible);
    for (int r = 0; r < n_below && r < static_cast<int>(order.size()); ++r)
      obs[order[r]].below = true;
  }

  const auto& dims = space_->dimensions();
  Assignment x(dims.size(), kNaN);
  std::vector<double> scratch;

  // Chooses values for a list of sibling dimensions (all active together), then recurses
  // into the branches chosen by its categorical members.
  std::vector<std::vector<int>> work = {space_->Roots()};
  while (!work.empty()) {
    std::vector<int> siblings = std::move(work.back());
    work.pop_back();
    std::vector<int> numeric;
    for (int dim : siblings) {
      const Dimension& d = dims[dim];
      if (d.type != ParamType::kChoice) {
        numeric.push_back(dim);
        continue;
      }
      std::vector<int> below, above;
      std::vector<double> below_weights;
      for (const Observation& o : obs) {
        const double v = (*o.x)[dim];
        if (std::isnan(v)) continue;
        (o.below ? below : above).push_back(static_cast<int>(v));
        if (o.below && multi_objective) below_weights.push_back(o.weight);
      }
      const std::vector<double> l =
          CategoricalLogProbs(d.num_categories, below, options_, below_weights);
      const std::vector<double> g = CategoricalLogProbs(d.num_categories, above, options_);
      int chosen = 0;
      double best_score = -kInf;
      const std::vector<bool> tried = TriedOptions(*space_, dim, history);
      std::vector<double> pl(l.size());
      for (size_t c = 0; c < l.size(); ++c) pl[c] = tried[c] ? 0 : std::exp(l[c]);
      std::discrete_distribution<int> draw_l(pl.begin(), pl.end());
      for (int c = 0; c < options_.n_ei_candidates; ++c) {
        const int candidate = draw_l(gen);
        const double score = l[candidate] - g_weight * g[candidate];
        if (score > best_score) {
          best_score = score;
          chosen = candidate;
        }
      }
      x[dim] = chosen;
      work.push_back(space_->Children(dim, chosen));
    }
    if (numeric.empty()) continue;

    // Numeric dimensions: one joint group when multivariate, else one group each.
    std::vector<std::vector<int>> groups;
    if (options_.multivariate) {
      groups.push_back(numeric);
    } else {
      for (int dim : numeric) groups.push_back({dim});
    }
    for (const std::vector<int>& group : groups) {
      const int gd = static_cast<int>(group.size());
      std::vector<NumericView> view_storage;
      view_storage.reserve(gd);
      for (int dim : group) view_storage.emplace_back(dims[dim]);
      std::vector<const NumericView*> views;
      for (const NumericView& v : view_storage) views.push_back(&v);

      std::vector<double> below, above, below_weights;
      for (const Observation& o : obs) {
        if (std::isnan((*o.x)[group[0]])) continue;
        std::vector<double>& target = o.below ? below : above;
        for (int j = 0; j < gd; ++j) target.push_back(view_storage[j].Internal((*o.x)[group[j]]));
        if (o.below && multi_objective) below_weights.push_back(o.weight);
      }
      const Parzen l(views, below, options_, below_weights);
      const Parzen g(views, above, options_);
      std::vector<double> internal(gd), final_values(gd), best_final(gd);
      double best_score = -kInf;
      for (int c = 0; c < options_.n_ei_candidates; ++c) {
        l.Sample(views, gen, internal.data());
        for (int j = 0; j < gd; ++j) final_values[j] = view_storage[j].Finalize(internal[j]);
        const double score =
            l.LogDensity(views, internal.data(), final_values.data(), scratch) -
            g_weight * g.LogDensity(views, internal.data(), final_values.data(), scratch);
        if (score > best_score || c == 0) {
          best_score = score;
          best_final = final_values;
        }
      }
      for (int j = 0; j < gd; ++j) x[group[j]] = best_final[j];
    }
  }
  return {SuggestOutcome::Kind::kSuggestion, std::move(x)};
}

}  // namespace autocompress::tuner
