#include "tuner_service/objective.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace autocompress::tuner {
namespace {

absl::Status CheckObjective(const v1::Objective& objective, const std::string& path) {
  if (objective.metric().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".metric: must name a metric"));
  }
  if (objective.mode() != v1::OPTIMIZE_MODE_MAXIMIZE &&
      objective.mode() != v1::OPTIMIZE_MODE_MINIMIZE) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ".mode: must be MAXIMIZE or MINIMIZE for metric '", objective.metric(), "'"));
  }
  return absl::OkStatus();
}

absl::Status CheckConstraint(const v1::MetricConstraint& constraint, const std::string& path) {
  if (constraint.metric().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".metric: must name a metric"));
  }
  if (constraint.comparison() != v1::COMPARISON_LESS_EQUAL &&
      constraint.comparison() != v1::COMPARISON_GREATER_EQUAL) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".comparison: must be LESS_EQUAL or GREATER_EQUAL for metric '",
                     constraint.metric(), "'"));
  }
  if (!std::isfinite(constraint.bound())) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".bound: ", constraint.bound(), " is not a finite number"));
  }
  return absl::OkStatus();
}

absl::Status CheckCallerVerdict(const v1::Observation& observation) {
  const double violation = observation.constraint_violation();
  if (!std::isfinite(violation) || violation < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("constraint_violation: ", violation, " must be a finite number >= 0"));
  }
  switch (observation.feasibility()) {
    case v1::FEASIBILITY_UNSPECIFIED:
      if (violation != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("constraint_violation: ", violation,
                         " given without a verdict; set feasibility to INFEASIBLE, or leave "
                         "both unset for the study to judge"));
      }
      return absl::OkStatus();
    case v1::FEASIBILITY_FEASIBLE:
      if (violation != 0) {
        return absl::InvalidArgumentError(absl::StrCat("constraint_violation: ", violation,
                                                       " must be 0 for a FEASIBLE observation"));
      }
      return absl::OkStatus();
    case v1::FEASIBILITY_INFEASIBLE:
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("feasibility: unknown value ", observation.feasibility()));
  }
}

}  // namespace

absl::Status ValidateObjective(const v1::ObjectiveSpec& objective, absl::string_view path) {
  if (!objective.has_primary()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".primary: must be set (the metric the tuner optimizes)"));
  }
  if (absl::Status s = CheckObjective(objective.primary(), absl::StrCat(path, ".primary"));
      !s.ok()) {
    return s;
  }
  for (int i = 0; i < objective.secondary_size(); ++i) {
    if (absl::Status s =
            CheckObjective(objective.secondary(i), absl::StrCat(path, ".secondary[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  for (int i = 0; i < objective.constraints_size(); ++i) {
    if (absl::Status s =
            CheckConstraint(objective.constraints(i), absl::StrCat(path, ".constraints[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<FeasibilityVerdict> JudgeFeasibility(const v1::ObjectiveSpec& objective,
                                                    const v1::Observation& observation) {
  if (absl::Status s = CheckCallerVerdict(observation); !s.ok()) return s;
  if (observation.feasibility() != v1::FEASIBILITY_UNSPECIFIED) {
    return FeasibilityVerdict{observation.feasibility() == v1::FEASIBILITY_FEASIBLE,
                              observation.constraint_violation()};
  }
  if (objective.constraints().empty()) return FeasibilityVerdict{};
  absl::flat_hash_map<std::string, int> index;
  for (int k = 0; k < observation.metrics_size(); ++k) {
    if (!index.emplace(observation.metrics(k).name(), k).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "metrics[", k, "].name: '", observation.metrics(k).name(), "' appears twice"));
    }
  }
  double violation = 0;
  for (int i = 0; i < objective.constraints_size(); ++i) {
    const v1::MetricConstraint& constraint = objective.constraints(i);
    auto it = index.find(constraint.metric());
    if (it == index.end()) {
      return absl::InvalidArgumentError(absl::StrCat("metrics: no metric '", constraint.metric(),
                                                     "', which config.objective.constraints[", i,
                                                     "] needs (or set feasibility explicitly)"));
    }
    const double value = observation.metrics(it->second).value();
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(absl::StrCat("metrics[", it->second, "].value: ", value,
                                                     " ('", constraint.metric(),
                                                     "') is not a finite number"));
    }
    violation += constraint.comparison() == v1::COMPARISON_LESS_EQUAL
                     ? std::max(0.0, value - constraint.bound())
                     : std::max(0.0, constraint.bound() - value);
  }
  return FeasibilityVerdict{violation == 0, violation};
}

absl::StatusOr<std::vector<double>> SecondaryLosses(const v1::ObjectiveSpec& objective,
                                                    const v1::Observation& observation) {
  std::vector<double> losses;
  for (int i = 0; i < objective.secondary_size(); ++i) {
    const v1::Objective& secondary = objective.secondary(i);
    int found = -1;
    for (int k = 0; k < observation.metrics_size() && found < 0; ++k) {
      if (observation.metrics(k).name() == secondary.metric()) found = k;
    }
    if (found < 0) {
      return absl::InvalidArgumentError(absl::StrCat("metrics: no metric '", secondary.metric(),
                                                     "', which config.objective.secondary[", i,
                                                     "] needs"));
    }
    const double value = observation.metrics(found).value();
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(absl::StrCat("metrics[", found, "].value: ", value, " ('",
                                                     secondary.metric(),
                                                     "') is not a finite number"));
    }
    losses.push_back(secondary.mode() == v1::OPTIMIZE_MODE_MAXIMIZE ? -value : value);
  }
  return losses;
}

}  // namespace autocompress::tuner
