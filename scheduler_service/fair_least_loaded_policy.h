// FairLeastLoadedPolicy ("fair_least_loaded"): experiments take turns, one placement per
// turn, round robin from the experiment after the one served last (kept between calls),
// so a long experiment cannot starve one submitted later. In its turn an experiment
// places the first of its waiting attempts that fits anywhere now; an experiment with
// nothing that fits gives up its turn. An attempt goes to the least-loaded worker that
// fits (lowest fraction of slots in use; ties: most free slots, then worker id), and on
// it to the devices with the most free slots, then the most free memory.
//
// Fit: gpus == 0 needs a free slot on the worker's "cpu" device; gpus == N needs N
// distinct GPUs on one worker, each with a free slot and the free memory the attempt
// asks for. Every worker_selector label must match. CPU threads (the even share when
// the spec says 0) must fit in what the worker offers; a worker that offers 0 threads
// is not limited by threads (it did not say).
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
  // The experiment served last; the next call starts after it.
  std::string last_served_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_FAIR_LEAST_LOADED_POLICY_H_
