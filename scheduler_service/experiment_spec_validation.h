// Validation of an ExperimentSpec by the scheduler alone (the search space's content is
// the tuner's to judge): every problem at once, each with its field path under "spec.".
// Pure logic, thread-safe.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SPEC_VALIDATION_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SPEC_VALIDATION_H_

#include <functional>
#include <string>
#include <vector>

#include "autocompress/v1/common.pb.h"

namespace autocompress::scheduler {

struct SpecIssue {
  std::string path;
  std::string message;
};

// Every problem of `spec`, e.g. {"spec.limits.trial_concurrency", "must be >= 1, got 0"}.
// `artifact_present` tells whether a referenced artifact is stored.
std::vector<SpecIssue> ValidateExperimentSpec(
    const v1::ExperimentSpec& spec,
    const std::function<bool(const v1::ArtifactRef&)>& artifact_present);

// "2 problems: spec.a: ...; spec.b: ..." for an INVALID_ARGUMENT status.
std::string FormatIssues(const std::vector<SpecIssue>& issues);

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SPEC_VALIDATION_H_
