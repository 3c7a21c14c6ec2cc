// FakeClock: a Clock that moves only when the test says so.
#ifndef AUTOCOMPRESS_COMMON_TESTING_FAKE_CLOCK_H_
#define AUTOCOMPRESS_COMMON_TESTING_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace autocompress::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}

  absl::Time Now() override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration by) {
    absl::MutexLock lock(&mu_);
    now_ += by;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_;
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_FAKE_CLOCK_H_
