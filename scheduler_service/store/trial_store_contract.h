// The contract test suite of TrialStore (trial_store.h): one set of tests that every
// implementation passes (the pattern of Ray's gcs/store_client/tests/
// store_client_test_base.h). An implementation's test instantiates it with a factory:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Sqlite, TrialStoreContractTest,
//       ::testing::Values(TrialStoreContractParam{"Full", OpenFull, PoisonEvents}),
//       TrialStoreContractParamName);
//
// Each test gets a fresh, empty directory, opens the store on it through the factory,
// and may close and reopen it there to check what survived.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_TRIAL_STORE_CONTRACT_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_TRIAL_STORE_CONTRACT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "scheduler_service/store/trial_store.h"

namespace autocompress::scheduler {

// The event sequence that `poison_events` makes unwritable.
inline constexpr int64_t kPoisonEventSequence = 6660666;

struct TrialStoreContractParam {
  // Names the instantiation in test names, e.g. "Full".
  std::string name;
  // Opens the store kept under `dir`: empty the first time, the same directory again to
  // reopen after the previous store was destroyed.
  std::function<absl::StatusOr<std::unique_ptr<TrialStore>>(const std::string& dir)> open;
  // Makes every later write of an event with sequence kPoisonEventSequence to the store
  // under `dir` fail inside the transaction, after the batch's other rows were written
  // (e.g. a trigger), while the store is open. Null: the atomicity tests skip.
  std::function<absl::Status(const std::string& dir)> poison_events;
};

// gtest prints the parameter by its name.
void PrintTo(const TrialStoreContractParam& param, std::ostream* os);

std::string TrialStoreContractParamName(
    const ::testing::TestParamInfo<TrialStoreContractParam>& info);

class TrialStoreContractTest : public ::testing::TestWithParam<TrialStoreContractParam> {
 protected:
  // Creates the directory and opens the store.
  void SetUp() override;
  // Closes the store and removes the directory.
  void TearDown() override;

  // Destroys the store, then opens it again on the same directory.
  void Reopen();

  TrialStore& store() { return *store_; }

  std::string dir_;
  std::unique_ptr<TrialStore> store_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_TRIAL_STORE_CONTRACT_H_
