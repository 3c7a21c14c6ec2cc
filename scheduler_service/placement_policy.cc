// The placement policy registry and the fit rules every policy shares.
#include "scheduler_service/placement_policy.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler_service/fair_least_loaded_policy.h"

namespace autocompress::scheduler {
namespace {

struct PolicyEntry {
  const char* name;
  std::function<std::unique_ptr<PlacementPolicy>()> make;
};

// Every placement policy, by name.
const std::vector<PolicyEntry>& Policies() {
  static const auto* const policies = new std::vector<PolicyEntry>{
      {"fair_least_loaded", [] { return std::make_unique<FairLeastLoadedPolicy>(); }},
  };
  return *policies;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PlacementPolicy>> CreatePlacementPolicy(absl::string_view name) {
  std::vector<std::string> known;
  for (const PolicyEntry& entry : Policies()) {
    if (name == entry.name) return entry.make();
    known.push_back(entry.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("placement_policy: unknown \"", name,
                                                 "\"; known: ", absl::StrJoin(known, ", ")));
}

bool IsGpuDevice(absl::string_view device_name) { return absl::StartsWith(device_name, "cuda"); }

bool SelectorMatches(const WorkerView& worker, const v1::ResourceSpec& resources) {
  for (const auto& [key, value] : resources.worker_selector()) {
    auto it = worker.labels.find(key);
    if (it == worker.labels.end() || it->second != value) return false;
  }
  return true;
}

int32_t CpuThreadsFor(const WorkerView& worker, const v1::ResourceSpec& resources) {
  if (resources.cpu_threads() > 0) return resources.cpu_threads();
  int64_t slots = 0;
  for (const DeviceView& device : worker.devices) slots += std::max(device.slots, 0);
  if (slots == 0) return 1;
  return static_cast<int32_t>(std::max<int64_t>(1, worker.cpu_threads / slots));
}

bool WorkerCanEverFit(const WorkerView& worker, const v1::ResourceSpec& resources) {
  if (resources.gpus() < 0 || !SelectorMatches(worker, resources)) return false;
  if (worker.cpu_threads > 0 && CpuThreadsFor(worker, resources) > worker.cpu_threads) {
    return false;
  }
  int gpus = 0;
  bool cpu = false;
  for (const DeviceView& device : worker.devices) {
    if (device.slots <= 0) continue;
    if (IsGpuDevice(device.name)) ++gpus;
    if (device.name == "cpu") cpu = true;
  }
  return resources.gpus() == 0 ? cpu : gpus >= resources.gpus();
}

}  // namespace autocompress::scheduler
