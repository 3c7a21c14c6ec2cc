// What becomes of a trial whose attempt ended without success, decided by the failure's
// code (the rules documented on FailureCode in common.proto), in one table.
// Pure logic, thread-safe.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_RETRY_POLICY_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_RETRY_POLICY_H_

#include <cstdint>

#include "autocompress/v1/common.pb.h"

namespace autocompress::scheduler {

enum class AttemptOutcome {
  // Re-queue as a new attempt (counts against max_retries).
  kRetry,
  // Re-queue only on a device with more free memory than the failed attempt had.
  kRetryWithMoreMemory,
  // The trial ends FAILED.
  kFail,
  // The trial ends EARLY_STOPPED (ran past its duration limit).
  kEarlyStop,
  // The trial ends CANCELED (stopped on purpose).
  kCancel,
};

// The table's rule for `code` (UNSPECIFIED is read as CRASH).
AttemptOutcome OutcomeOf(v1::FailureCode code);

// Retries a trial may use: `max_retries`, or the default (3) when it is 0.
int32_t EffectiveMaxRetries(int32_t max_retries);

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_RETRY_POLICY_H_
