#include "scheduler_service/trial_ranking.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "autocompress/v1/tuner.pb.h"
#include "common/pareto.h"
#include "tuner_service/objective.h"

namespace autocompress::scheduler {
namespace {

std::string ReportedNames(const v1::MetricReport& report) {
  std::vector<std::string> names;
  for (const v1::Metric& metric : report.metrics()) names.push_back(metric.name());
  return names.empty() ? "nothing" : absl::StrJoin(names, ", ");
}

absl::Status CheckMetric(const v1::MetricReport& report, const std::string& name,
                         absl::string_view role) {
  const std::optional<double> value = MetricValue(report, name);
  if (!value.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("final report has no metric '", name, "' (",
                                                   role,
                                                   "); it reported: ", ReportedNames(report)));
  }
  if (!std::isfinite(*value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("final report's metric '", name, "' (", role, ") is ", *value));
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<double> MetricValue(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& metric : report.metrics()) {
    if (metric.name() == name) return metric.value();
  }
  return std::nullopt;
}

absl::Status CheckFinalReport(const v1::ObjectiveSpec& objective, const v1::MetricReport& report) {
  if (absl::Status s = CheckMetric(report, objective.primary().metric(), "the objective");
      !s.ok()) {
    return s;
  }
  for (const v1::Objective& secondary : objective.secondary()) {
    if (absl::Status s = CheckMetric(report, secondary.metric(), "a secondary objective");
        !s.ok()) {
      return s;
    }
  }
  for (const v1::MetricConstraint& constraint : objective.constraints()) {
    if (absl::Status s = CheckMetric(report, constraint.metric(), "a constraint"); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool IsModelMetric(const std::string& name) {
  static const char* const kModel[] = {"sparsity",           "parameters",
                                       "nonzero_parameters", "model_bytes",
                                       "latency_ms",         "effective_bytes",
                                       "dense_bytes",        "compression_ratio",
                                       "peak_rss_bytes",     "train_images_per_second"};
  for (const char* model : kModel) {
    if (name == model) return true;
  }
  return absl::StartsWith(name, "seconds_") || absl::EndsWith(name, "_zero_shot") ||
         absl::EndsWith(name, "_drop");
}

void AddRelativeMetrics(const v1::MetricReport& baseline, v1::MetricReport& report) {
  for (const v1::Metric& base : baseline.metrics()) {
    if (IsModelMetric(base.name())) continue;
    const std::optional<double> value = MetricValue(report, base.name());
    const std::string drop = absl::StrCat(base.name(), "_drop");
    if (!value.has_value() || MetricValue(report, drop).has_value()) continue;
    v1::Metric* added = report.add_metrics();
    added->set_name(drop);
    added->set_value(base.value() - *value);
  }
}

std::vector<double> ObjectiveLosses(const v1::ObjectiveSpec& objective,
                                    const v1::MetricReport& report) {
  std::vector<double> losses;
  auto add = [&](const v1::Objective& o) {
    const double value = MetricValue(report, o.metric()).value_or(NAN);
    losses.push_back(o.mode() == v1::OPTIMIZE_MODE_MAXIMIZE ? -value : value);
  };
  add(objective.primary());
  for (const v1::Objective& secondary : objective.secondary()) add(secondary);
  return losses;
}

std::vector<const v1::Trial*> ParetoTrials(const v1::ObjectiveSpec& objective,
                                           const std::vector<const v1::Trial*>& trials,
                                           int* succeeded, int* infeasible) {
  std::vector<const v1::Trial*> candidates;
  std::vector<Point> points;
  *succeeded = *infeasible = 0;
  for (const v1::Trial* trial : trials) {
    const std::optional<TrialScore> score = ScoreOf(objective, *trial);
    if (!score.has_value()) continue;
    ++*succeeded;
    if (!score->feasible) {
      ++*infeasible;
      continue;
    }
    candidates.push_back(trial);
    points.push_back(ObjectiveLosses(objective, trial->final_report()));
  }
  // Best primary first (losses compared lexicographically), from the points computed above.
  std::vector<int> order = ParetoFront(points);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return points[a] < points[b]; });
  std::vector<const v1::Trial*> front;
  for (int i : order) front.push_back(candidates[i]);
  return front;
}

std::optional<TrialScore> ScoreOf(const v1::ObjectiveSpec& objective, const v1::Trial& trial) {
  if (trial.baseline() || trial.state() != v1::TRIAL_STATE_SUCCEEDED || !trial.has_final_report()) {
    return std::nullopt;
  }
  if (!CheckFinalReport(objective, trial.final_report()).ok()) return std::nullopt;
  v1::Observation observation;
  observation.set_kind(v1::OBSERVATION_KIND_FINAL);
  *observation.mutable_metrics() = trial.final_report().metrics();
  absl::StatusOr<tuner::FeasibilityVerdict> verdict =
      tuner::JudgeFeasibility(objective, observation);
  if (!verdict.ok()) return std::nullopt;
  TrialScore score;
  score.feasible = verdict->feasible;
  score.violation = verdict->violation;
  score.value = *MetricValue(trial.final_report(), objective.primary().metric());
  return score;
}

bool RanksBefore(const v1::ObjectiveSpec& objective, const TrialScore& a, const TrialScore& b) {
  if (a.feasible != b.feasible) return a.feasible;
  if (!a.feasible && a.violation != b.violation) return a.violation < b.violation;
  return objective.primary().mode() == v1::OPTIMIZE_MODE_MINIMIZE ? a.value < b.value
                                                                  : a.value > b.value;
}

absl::StatusOr<TrialOrder> ParseTrialOrder(const std::string& order_by) {
  TrialOrder order;
  std::vector<std::string> words = absl::StrSplit(order_by, ' ', absl::SkipWhitespace());
  if (words.empty() || (words.size() == 1 && words[0] == "sequence")) return order;
  if (words.size() == 1 && words[0] == "objective") {
    order.kind = TrialOrder::Kind::kObjective;
    return order;
  }
  const bool direction_ok = words.size() == 2 && (words[1] == "asc" || words[1] == "desc");
  if (words.size() > 2 || (words.size() == 2 && !direction_ok)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "order_by: expected \"sequence\", \"objective\" or \"<metric> [asc|desc]\", got \"",
        order_by, "\""));
  }
  order.kind = TrialOrder::Kind::kMetric;
  order.metric = words[0];
  order.descending = words.size() == 1 || words[1] == "desc";
  return order;
}

void SortTrials(const v1::ObjectiveSpec& objective, const TrialOrder& order,
                std::vector<const v1::Trial*>& trials) {
  auto by_sequence = [](const v1::Trial* a, const v1::Trial* b) {
    return a->sequence() < b->sequence();
  };
  std::stable_sort(trials.begin(), trials.end(), by_sequence);
  if (order.kind == TrialOrder::Kind::kSequence) return;
  if (order.kind == TrialOrder::Kind::kObjective) {
    std::vector<std::pair<std::optional<TrialScore>, const v1::Trial*>> scored;
    for (const v1::Trial* trial : trials) scored.push_back({ScoreOf(objective, *trial), trial});
    std::stable_sort(scored.begin(), scored.end(), [&](const auto& a, const auto& b) {
      if (a.first.has_value() != b.first.has_value()) return a.first.has_value();
      return a.first.has_value() && RanksBefore(objective, *a.first, *b.first);
    });
    for (size_t i = 0; i < scored.size(); ++i) trials[i] = scored[i].second;
    return;
  }
  auto value = [&](const v1::Trial* trial) -> std::optional<double> {
    if (!trial->has_final_report()) return std::nullopt;
    std::optional<double> v = MetricValue(trial->final_report(), order.metric);
    if (v.has_value() && std::isnan(*v)) return std::nullopt;
    return v;
  };
  std::stable_sort(trials.begin(), trials.end(), [&](const v1::Trial* a, const v1::Trial* b) {
    const std::optional<double> va = value(a), vb = value(b);
    if (va.has_value() != vb.has_value()) return va.has_value();
    if (!va.has_value()) return false;
    return order.descending ? *va > *vb : *va < *vb;
  });
}

}  // namespace autocompress::scheduler
