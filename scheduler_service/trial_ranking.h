// How the scheduler judges and orders trials by the experiment's objective: the check
// of a final report (the metrics the objective needs are there and finite), the score of
// a succeeded trial (feasibility by the constraints, the primary value), "better than",
// and ListTrials' `order_by`. Feasibility is the tuner's own rule (tuner_service/
// objective.h), so the scheduler's best trial and the tuner's ranking agree.
// Pure logic, thread-safe.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_TRIAL_RANKING_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_TRIAL_RANKING_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "autocompress/v1/scheduler.pb.h"

namespace autocompress::scheduler {

// InvalidArgument when `report` lacks the primary metric, a secondary objective's or a
// constrained one, or one of them is not finite; the message names the metric and
// lists what was reported.
absl::Status CheckFinalReport(const v1::ObjectiveSpec& objective, const v1::MetricReport& report);

// The value of `name` in `report`, if present.
std::optional<double> MetricValue(const v1::MetricReport& report, const std::string& name);

// Metrics that describe the model or the run rather than the evaluator's verdict
// (sparsity, parameters, model_bytes, effective_bytes, dense_bytes, compression_ratio,
// latency_ms, peak_rss_bytes, train_images_per_second, seconds_*, *_zero_shot, *_drop):
// no `_drop` is derived from them.
bool IsModelMetric(const std::string& name);

// Adds `<m>_drop` = baseline - trial to `report` for every evaluator metric m of the
// baseline's final report that `report` also has (and has no `<m>_drop` of its own).
void AddRelativeMetrics(const v1::MetricReport& baseline, v1::MetricReport& report);

// The objectives of a final report as losses (negated where maximized), primary first.
std::vector<double> ObjectiveLosses(const v1::ObjectiveSpec& objective,
                                    const v1::MetricReport& report);

// The Pareto front of `trials`: the scored (succeeded, non-baseline), feasible trials
// no other such trial dominates on the primary and secondary objectives, best primary
// first. Counts the scored trials and the infeasible ones among them.
std::vector<const v1::Trial*> ParetoTrials(const v1::ObjectiveSpec& objective,
                                           const std::vector<const v1::Trial*>& trials,
                                           int* succeeded, int* infeasible);

struct TrialScore {
  bool feasible = true;
  // Total constraint violation, 0 when feasible.
  double violation = 0;
  // The primary metric.
  double value = 0;
};

// The score of a SUCCEEDED, non-baseline trial whose final report passes
// CheckFinalReport; nullopt for any other trial.
std::optional<TrialScore> ScoreOf(const v1::ObjectiveSpec& objective, const v1::Trial& trial);

// True when `a` ranks strictly before `b`: feasible before infeasible, infeasible by
// smaller violation, then by the primary objective's direction.
bool RanksBefore(const v1::ObjectiveSpec& objective, const TrialScore& a, const TrialScore& b);

// ListTrials' order: "sequence" (default, ""), "objective" (best first), or a final
// metric "<name>" optionally followed by " asc" or " desc" (default desc). Trials without
// the metric (or without a score) come last, by sequence.
struct TrialOrder {
  enum class Kind { kSequence, kObjective, kMetric };
  Kind kind = Kind::kSequence;
  std::string metric;
  bool descending = true;
};
absl::StatusOr<TrialOrder> ParseTrialOrder(const std::string& order_by);

// Sorts `trials` in place by `order` (stable; ties by sequence).
void SortTrials(const v1::ObjectiveSpec& objective, const TrialOrder& order,
                std::vector<const v1::Trial*>& trials);

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_TRIAL_RANKING_H_
