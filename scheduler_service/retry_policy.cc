#include "scheduler_service/retry_policy.h"

#include <iterator>

namespace autocompress::scheduler {
namespace {

constexpr int32_t kDefaultMaxRetries = 3;

struct Rule {
  v1::FailureCode code;
  AttemptOutcome outcome;
};

// The retry rule of every failure code (common.proto, FailureCode).
constexpr Rule kRules[] = {
    {v1::FAILURE_CODE_UNSPECIFIED, AttemptOutcome::kRetry},
    {v1::FAILURE_CODE_INVALID_INPUT, AttemptOutcome::kFail},
    {v1::FAILURE_CODE_OUT_OF_MEMORY, AttemptOutcome::kRetryWithMoreMemory},
    {v1::FAILURE_CODE_TIMEOUT, AttemptOutcome::kEarlyStop},
    {v1::FAILURE_CODE_CRASH, AttemptOutcome::kRetry},
    {v1::FAILURE_CODE_INFRASTRUCTURE, AttemptOutcome::kRetry},
    {v1::FAILURE_CODE_INTERNAL, AttemptOutcome::kFail},
    {v1::FAILURE_CODE_STOPPED, AttemptOutcome::kCancel},
};

}  // namespace

AttemptOutcome OutcomeOf(v1::FailureCode code) {
  for (const Rule& rule : kRules) {
    if (rule.code == code) return rule.outcome;
  }
  // A code from a newer worker: treat it like a crash, which is retried and bounded.
  return AttemptOutcome::kRetry;
}

int32_t EffectiveMaxRetries(int32_t max_retries) {
  return max_retries > 0 ? max_retries : kDefaultMaxRetries;
}

}  // namespace autocompress::scheduler
