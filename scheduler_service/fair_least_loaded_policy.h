// FairLeastLoadedPolicy ("fair_least_loaded"): experiments take turns, one placement per
// turn, round robin, starting from the experiment after the one served last (kept between
// calls; when that one has left the queues, the next one in submission order), so a long
// experiment cannot starve one submitted later. In its turn an experiment places the
// first of its waiting attempts that fits anywhere now; an experiment with nothing that
// fits sits out the rest of the call and does not block the others. Keeping queue order
// while skipping what cannot fit means a large head attempt of an experiment can be
// overtaken by smaller ones of the same experiment; that trades its start for the
// cluster's use.
//
// An attempt goes to the least-loaded worker that fits (lowest fraction of slots in use;
// ties: most free slots, then worker id), and on it to the devices with the most free
// slots, then the most free memory (then the worker's device order).
//
// Fit: gpus == 0 needs a free slot on the worker's "cpu" device; gpus == N needs N
// distinct GPUs on one worker, each with a free slot, free memory >= min_gpu_memory_bytes
// (when > 0) and > min_free_memory_exclusive (when >= 0). Every worker_selector label must
// match. The attempt's CPU threads (CpuThreadsFor) must fit in what the worker offers; a
// worker that offers 0 threads is not limited by threads (it did not say).
//
// Within one call, each placement takes its slots and threads and, on each of its GPUs,
// the memory it asked for (the larger of min_gpu_memory_bytes and
// min_free_memory_exclusive + 1), so later placements of the same call cannot count on
// memory an earlier one was promised.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_FAIR_LEAST_LOADED_POLICY_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_FAIR_LEAST_LOADED_POLICY_H_

#include <string>
#include <vector>

#include "scheduler_service/placement_policy.h"

namespace autocompress::scheduler {

class FairLeastLoadedPolicy final : public PlacementPolicy {
 public:
  std::vector<Placement> Place(const std::vector<ExperimentQueue>& queues,
                               const std::vector<WorkerView>& workers) override;

 private:
  // Index in `queues` of the experiment that takes the first turn.
  size_t FirstTurn(const std::vector<ExperimentQueue>& queues) const;

  // The experiment served last, and the experiment ids of the call that served it (in
  // submission order), to find its successor once it has left the queues.
  std::string last_served_;
  std::vector<std::string> last_order_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_FAIR_LEAST_LOADED_POLICY_H_
