// PlacementPolicy: decides which waiting trial attempts go to which worker slots. Pure
// logic over a snapshot of the cluster (no gRPC, no clock): the scheduler calls it under
// its lock whenever trials wait and slots may be free, then sends the assignments.
//
// Implementations are selected by name through CreatePlacementPolicy; the first one is
// "fair_least_loaded" (fair_least_loaded_policy.h).
//
// Thread-safety: a policy may keep state between calls (a fairness cursor); callers
// serialize calls.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_PLACEMENT_POLICY_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_PLACEMENT_POLICY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "autocompress/v1/common.pb.h"

namespace autocompress::scheduler {

// One device of a worker as the scheduler knows it now.
struct DeviceView {
  // "cpu" or "cuda:N" (a name starting with "cuda" is a GPU).
  std::string name;
  // Slots the device offers and slots held by leases now.
  int32_t slots = 0;
  int32_t used_slots = 0;
  // Latest reported free memory (GPUs; 0 for CPUs).
  int64_t free_memory_bytes = 0;
};

// One connected worker.
struct WorkerView {
  std::string worker_id;
  std::map<std::string, std::string> labels;
  std::vector<DeviceView> devices;
  // CPU threads offered in all (WorkerHello.cpu_threads) and held by leases now. 0 = the
  // worker did not say: threads do not limit it.
  int32_t cpu_threads = 0;
  int32_t used_cpu_threads = 0;
};

// A trial attempt that waits for a slot.
struct WaitingAttempt {
  std::string trial_id;
  v1::ResourceSpec resources;
  // Each GPU must report strictly more free memory than this (the out-of-memory retry
  // rule); -1 = no such requirement.
  int64_t min_free_memory_exclusive = -1;
};

// The waiting attempts of one RUNNING experiment, in the order they should start.
struct ExperimentQueue {
  std::string experiment_id;
  std::vector<WaitingAttempt> waiting;
};

// One decision: start `trial_id` on `worker_id` with these devices.
struct Placement {
  std::string experiment_id;
  std::string trial_id;
  std::string worker_id;
  // One entry per GPU (ResourceSpec.gpus of them), or {"cpu"} for a CPU trial.
  std::vector<std::string> devices;
  // Resolved CPU threads (>= 1): ResourceSpec.cpu_threads, or the worker's even share.
  int32_t cpu_threads = 1;
  // Smallest free memory among the chosen GPUs when placed (0 for CPU trials).
  int64_t free_memory_bytes = 0;
};

class PlacementPolicy {
 public:
  virtual ~PlacementPolicy() = default;

  // Chooses placements for as many waiting attempts as fit. `queues` lists experiments
  // in submission order (oldest first). The result never gives a device more leases
  // than its slots, nor a worker more CPU threads than it offers, counting the usage
  // already in `workers` and the placements made earlier in the same call; an attempt
  // that fits nowhere now is left out (it waits). The order of `workers` does not matter
  // (ties are broken by worker_id), so the same inputs and state give the same result.
  virtual std::vector<Placement> Place(const std::vector<ExperimentQueue>& queues,
                                       const std::vector<WorkerView>& workers) = 0;
};

// The policy registered under `name`; InvalidArgument listing the known names otherwise.
absl::StatusOr<std::unique_ptr<PlacementPolicy>> CreatePlacementPolicy(absl::string_view name);

// True when `worker` could ever run `resources`: the selector matches, it offers enough
// GPUs (or a "cpu" device for gpus == 0) and at least resources.cpu_threads threads;
// current usage and free memory (which change) are ignored. The scheduler uses it to
// tell "waits" from "can never run here".
bool WorkerCanEverFit(const WorkerView& worker, const v1::ResourceSpec& resources);

// The rules every policy shares, so that they agree with WorkerCanEverFit:

// True for a GPU device name ("cuda", "cuda:0", ...).
bool IsGpuDevice(absl::string_view device_name);

// True when every worker_selector key=value is among the worker's labels.
bool SelectorMatches(const WorkerView& worker, const v1::ResourceSpec& resources);

// The CPU threads an attempt takes on `worker` (Placement.cpu_threads): resources.cpu_threads
// when > 0, else the even share, cpu_threads / (sum of the worker's device slots), at least 1.
int32_t CpuThreadsFor(const WorkerView& worker, const v1::ResourceSpec& resources);

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_PLACEMENT_POLICY_H_
