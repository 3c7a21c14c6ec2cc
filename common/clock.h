// Clock: the source of "now" for code whose decisions depend on time (leases, limits,
// timestamps), so tests can move time by hand (common/testing/fake_clock.h) instead of
// sleeping. Real waits (condition variables, backoff) still use real time.
#ifndef AUTOCOMPRESS_COMMON_CLOCK_H_
#define AUTOCOMPRESS_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace autocompress {

class Clock {
 public:
  virtual ~Clock() = default;
  // The current time. Thread-safe.
  virtual absl::Time Now() = 0;

  // The process's wall clock (never destroyed).
  static Clock* Real();
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_CLOCK_H_
