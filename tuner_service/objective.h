// The experiment's objective as the tuner reads it: validation of an ObjectiveSpec, and
// the feasibility verdict of a final observation against its constraints.
//
// A constraint `metric <= bound` is violated by max(0, metric - bound), `metric >= bound`
// by max(0, bound - metric); a result is feasible when the total violation is 0 (Optuna
// 3.1's convention, with the violation measured in the metric's units). Pure functions,
// thread-safe.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_OBJECTIVE_H_
#define AUTOCOMPRESS_TUNER_SERVICE_OBJECTIVE_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "autocompress/v1/tuner.pb.h"

namespace autocompress::tuner {

// Checks that every objective names a metric and a direction and every constraint names a
// metric, a comparison and a finite bound. InvalidArgument naming the field under
// `path` (e.g. "config.objective.constraints[1].bound: ...").
absl::Status ValidateObjective(const v1::ObjectiveSpec& objective, absl::string_view path);

struct FeasibilityVerdict {
  bool feasible = true;
  // Total violation, >= 0; 0 when feasible.
  double violation = 0;
};

// The verdict on a FINAL observation: the caller's when it set one (checked for
// consistency), else computed from its metrics (feasible without constraints).
// InvalidArgument naming the observation's field (a constrained metric missing from
// `metrics`, a non-finite one, a negative violation) and, for a missing metric, the
// constraint that needs it.
absl::StatusOr<FeasibilityVerdict> JudgeFeasibility(const v1::ObjectiveSpec& objective,
                                                    const v1::Observation& observation);

// The losses of a FINAL observation's secondary objectives, in order: each metric's value
// from `metrics`, negated when it is maximized (empty without secondary objectives).
// InvalidArgument naming the objective that needs a metric missing from `metrics`, or a
// non-finite one.
absl::StatusOr<std::vector<double>> SecondaryLosses(const v1::ObjectiveSpec& objective,
                                                    const v1::Observation& observation);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_OBJECTIVE_H_
