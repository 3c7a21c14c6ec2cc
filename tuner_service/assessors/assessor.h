// Early-stopping rules fed by a trial's intermediate results (NNI's assessors), and the
// registry that creates one by name ("medianstop", "curvefitting").
//
// Values are in the objective's own scale; `maximize` says which direction is better.
// Driven under the owning study's lock; implementations need no locking.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_ASSESSOR_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_ASSESSOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace autocompress::tuner {

struct AssessorDecision {
  bool stop = false;
  std::string reason;
};

class Assessor {
 public:
  virtual ~Assessor() = default;
  // Judges a running trial from its intermediate values so far (in step order).
  virtual AssessorDecision Assess(int64_t trial_id, const std::vector<double>& values) = 0;
  // The trial ended; `success` when it completed with a final result.
  virtual void OnTrialEnd(int64_t trial_id, bool success, const std::vector<double>& values,
                          double final_value) = 0;
  // The trial was re-queued: its next values start a new curve from step 0, replacing
  // what Assess saw before.
  virtual void OnCurveRestart(int64_t trial_id) {}
};

// Creates an assessor; empty name -> nullptr (no early stopping). InvalidArgument for an
// unknown name or bad arguments.
absl::StatusOr<std::unique_ptr<Assessor>> CreateAssessor(absl::string_view name,
                                                         absl::string_view args_json, bool maximize,
                                                         uint64_t seed);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ASSESSORS_ASSESSOR_H_
