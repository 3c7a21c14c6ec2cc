#include "scheduler_service/fair_least_loaded_policy.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace autocompress::scheduler {
namespace {

int32_t FreeSlots(const DeviceView& device) {
  return std::max(0, device.slots - std::max(device.used_slots, 0));
}

struct Load {
  int64_t total = 0;
  int64_t used = 0;
};

Load LoadOf(const WorkerView& worker) {
  Load load;
  for (const DeviceView& device : worker.devices) {
    const int32_t slots = std::max(device.slots, 0);
    load.total += slots;
    load.used += std::clamp(device.used_slots, 0, slots);
  }
  return load;
}

// True when `a` is less loaded than `b`: a lower fraction of slots in use, then more free
// slots, then the smaller worker id (so the order of the workers does not matter).
bool LessLoaded(const WorkerView& a, const WorkerView& b) {
  const Load la = LoadOf(a), lb = LoadOf(b);
  // la.used / la.total < lb.used / lb.total without division (a worker that fits has
  // total > 0).
  const int64_t lhs = la.used * lb.total, rhs = lb.used * la.total;
  if (lhs != rhs) return lhs < rhs;
  const int64_t free_a = la.total - la.used, free_b = lb.total - lb.used;
  if (free_a != free_b) return free_a > free_b;
  return a.worker_id < b.worker_id;
}

// The memory an attempt takes on each of its GPUs for the rest of the call.
int64_t MemoryToReserve(const WaitingAttempt& attempt) {
  int64_t bytes = std::max<int64_t>(0, attempt.resources.min_gpu_memory_bytes());
  const int64_t exclusive = attempt.min_free_memory_exclusive;
  if (exclusive >= 0) {
    bytes = std::max(bytes,
                     exclusive < std::numeric_limits<int64_t>::max() ? exclusive + 1 : exclusive);
  }
  return bytes;
}

bool GpuHasRoom(const DeviceView& device, const WaitingAttempt& attempt) {
  if (!IsGpuDevice(device.name) || FreeSlots(device) == 0) return false;
  const int64_t min_bytes = attempt.resources.min_gpu_memory_bytes();
  if (min_bytes > 0 && device.free_memory_bytes < min_bytes) return false;
  return attempt.min_free_memory_exclusive < 0 ||
         device.free_memory_bytes > attempt.min_free_memory_exclusive;
}

// Where an attempt fits: a worker and the indices of the devices it takes there.
struct Fit {
  size_t worker = 0;
  std::vector<size_t> devices;
  int32_t cpu_threads = 1;
};

std::optional<Fit> FitOn(const std::vector<WorkerView>& cluster, size_t w,
                         const WaitingAttempt& attempt) {
  const WorkerView& worker = cluster[w];
  const v1::ResourceSpec& resources = attempt.resources;
  if (resources.gpus() < 0 || !SelectorMatches(worker, resources)) return std::nullopt;
  const int32_t threads = CpuThreadsFor(worker, resources);
  if (worker.cpu_threads > 0 &&
      static_cast<int64_t>(worker.used_cpu_threads) + threads > worker.cpu_threads) {
    return std::nullopt;
  }
  std::vector<size_t> candidates;
  for (size_t i = 0; i < worker.devices.size(); ++i) {
    const DeviceView& device = worker.devices[i];
    const bool room = resources.gpus() == 0 ? device.name == "cpu" && FreeSlots(device) > 0
                                            : GpuHasRoom(device, attempt);
    if (room) candidates.push_back(i);
  }
  const size_t needed = resources.gpus() == 0 ? 1 : static_cast<size_t>(resources.gpus());
  if (candidates.size() < needed) return std::nullopt;
  std::stable_sort(candidates.begin(), candidates.end(), [&worker](size_t a, size_t b) {
    const DeviceView& da = worker.devices[a];
    const DeviceView& db = worker.devices[b];
    if (FreeSlots(da) != FreeSlots(db)) return FreeSlots(da) > FreeSlots(db);
    return da.free_memory_bytes > db.free_memory_bytes;
  });
  candidates.resize(needed);
  return Fit{w, std::move(candidates), threads};
}

// `attempt` on the least-loaded worker where it fits now; nullopt when none.
std::optional<Fit> BestFit(const std::vector<WorkerView>& cluster, const WaitingAttempt& attempt) {
  std::optional<Fit> best;
  for (size_t w = 0; w < cluster.size(); ++w) {
    std::optional<Fit> fit = FitOn(cluster, w, attempt);
    if (fit.has_value() && (!best.has_value() || LessLoaded(cluster[w], cluster[best->worker]))) {
      best = std::move(fit);
    }
  }
  return best;
}

// Takes what `fit` uses out of `cluster` and describes it as a placement.
Placement Take(const Fit& fit, const ExperimentQueue& queue, const WaitingAttempt& attempt,
               std::vector<WorkerView>& cluster) {
  WorkerView& worker = cluster[fit.worker];
  Placement placement;
  placement.experiment_id = queue.experiment_id;
  placement.trial_id = attempt.trial_id;
  placement.worker_id = worker.worker_id;
  placement.cpu_threads = fit.cpu_threads;
  const bool gpu = attempt.resources.gpus() > 0;
  const int64_t reserve = gpu ? MemoryToReserve(attempt) : 0;
  for (size_t k = 0; k < fit.devices.size(); ++k) {
    DeviceView& device = worker.devices[fit.devices[k]];
    placement.devices.push_back(device.name);
    if (gpu) {
      placement.free_memory_bytes =
          k == 0 ? device.free_memory_bytes
                 : std::min(placement.free_memory_bytes, device.free_memory_bytes);
      device.free_memory_bytes -= reserve;
    }
    ++device.used_slots;
  }
  worker.used_cpu_threads += fit.cpu_threads;
  return placement;
}

// One turn of `queue`: the first of its attempts from `next` on that fits, placed.
// Within a call usage only grows, so an attempt that does not fit now will not fit later
// in it: `next` moves past every attempt tried.
std::optional<Placement> TakeTurn(const ExperimentQueue& queue, std::vector<WorkerView>& cluster,
                                  size_t& next) {
  for (; next < queue.waiting.size(); ++next) {
    const WaitingAttempt& attempt = queue.waiting[next];
    if (std::optional<Fit> fit = BestFit(cluster, attempt); fit.has_value()) {
      ++next;
      return Take(*fit, queue, attempt, cluster);
    }
  }
  return std::nullopt;
}

}  // namespace

size_t FairLeastLoadedPolicy::FirstTurn(const std::vector<ExperimentQueue>& queues) const {
  if (last_served_.empty()) return 0;
  for (size_t q = 0; q < queues.size(); ++q) {
    if (queues[q].experiment_id == last_served_) return (q + 1) % queues.size();
  }
  // It has left: the first experiment after it in submission order. One missing from
  // last_order_ came (or was resumed) since, which puts it after.
  absl::flat_hash_map<std::string, size_t> rank;
  for (size_t k = 0; k < last_order_.size(); ++k) rank.emplace(last_order_[k], k);
  const size_t served_rank = rank[last_served_];
  for (size_t q = 0; q < queues.size(); ++q) {
    auto it = rank.find(queues[q].experiment_id);
    if (it == rank.end() || it->second > served_rank) return q;
  }
  return 0;
}

std::vector<Placement> FairLeastLoadedPolicy::Place(const std::vector<ExperimentQueue>& queues,
                                                    const std::vector<WorkerView>& workers) {
  std::vector<Placement> placements;
  if (queues.empty() || workers.empty()) return placements;
  std::vector<WorkerView> cluster = workers;  // usage grows as this call places
  std::vector<size_t> next(queues.size(), 0);
  std::vector<bool> open(queues.size(), true);
  size_t open_count = queues.size();
  for (size_t turn = FirstTurn(queues); open_count > 0; turn = (turn + 1) % queues.size()) {
    if (!open[turn]) continue;
    std::optional<Placement> placed = TakeTurn(queues[turn], cluster, next[turn]);
    if (!placed.has_value()) {
      open[turn] = false;
      --open_count;
      continue;
    }
    placements.push_back(std::move(*placed));
  }
  if (!placements.empty()) {
    last_served_ = placements.back().experiment_id;
    last_order_.clear();
    for (const ExperimentQueue& queue : queues) last_order_.push_back(queue.experiment_id);
  }
  return placements;
}

}  // namespace autocompress::scheduler
