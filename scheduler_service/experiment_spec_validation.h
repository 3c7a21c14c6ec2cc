// Validation of an ExperimentSpec by the scheduler alone: every problem at once, each
// with its field path under "spec.", so a user fixes a spec in one round trip. The search
// space's syntax and the tuner's and assessor's argument names are the tuner's to judge
// (the scheduler asks it separately), the algorithms it offers are checked here; names of
// optimizers, criteria and evaluators are the worker's. Pure logic, thread-safe.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SPEC_VALIDATION_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SPEC_VALIDATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autocompress/v1/common.pb.h"

namespace autocompress::scheduler {

// Most trials one experiment holds (max_trial_number; 0, "no limit", stops there too):
// the scheduler keeps every trial of a running experiment in memory.
inline constexpr int32_t kMaxTrialNumber = 1'000'000;
// The trial limit in effect: max_trial_number, or kMaxTrialNumber for 0.
inline int32_t MaxTrials(const v1::ExperimentLimits& limits) {
  return limits.max_trial_number() > 0 ? limits.max_trial_number() : kMaxTrialNumber;
}

// One problem: the field ("spec.limits.trial_concurrency") and what is wrong with it
// ("must be >= 1, got 0").
struct SpecIssue {
  std::string path;
  std::string message;
};

// Every problem of `spec` that the scheduler can judge alone, in the order of the spec's
// top-level fields; empty when there is none. `artifact_present` tells whether a referenced
// artifact is stored; it is asked only about well-formed references.
std::vector<SpecIssue> ValidateExperimentSpec(
    const v1::ExperimentSpec& spec,
    const std::function<bool(const v1::ArtifactRef&)>& artifact_present);

// "2 problems: spec.a: ...; spec.b: ..." (or "1 problem: ...") for an INVALID_ARGUMENT
// status.
std::string FormatIssues(const std::vector<SpecIssue>& issues);

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SPEC_VALIDATION_H_
