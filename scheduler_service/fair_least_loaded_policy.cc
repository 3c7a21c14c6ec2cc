#include "scheduler_service/fair_least_loaded_policy.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"

namespace autocompress::scheduler {
namespace {

bool IsGpu(const DeviceView& device) { return absl::StartsWith(device.name, "cuda"); }

int TotalSlots(const WorkerView& worker) {
  int total = 0;
  for (const DeviceView& device : worker.devices) total += device.slots;
  return total;
}

int UsedSlots(const WorkerView& worker) {
  int used = 0;
  for (const DeviceView& device : worker.devices) used += std::min(device.used_slots, device.slots);
  return used;
}

bool LabelsMatch(const WorkerView& worker, const v1::ResourceSpec& resources) {
  for (const auto& [key, value] : resources.worker_selector()) {
    auto it = worker.labels.find(key);
    if (it == worker.labels.end() || it->second != value) return false;
  }
  return true;
}

int32_t ThreadsFor(const WorkerView& worker, const v1::ResourceSpec& resources) {
  if (resources.cpu_threads() > 0) return resources.cpu_threads();
  const int slots = TotalSlots(worker);
  return std::max(1, slots > 0 ? worker.cpu_threads / slots : 1);
}

// The devices `attempt` would take on `worker` now, best first; nullopt if it does not fit.
std::optional<Placement> FitOn(const WorkerView& worker, const WaitingAttempt& attempt) {
  const v1::ResourceSpec& resources = attempt.resources;
  if (!LabelsMatch(worker, resources)) return std::nullopt;
  const int32_t threads = ThreadsFor(worker, resources);
  if (worker.cpu_threads > 0 && worker.used_cpu_threads + threads > worker.cpu_threads) {
    return std::nullopt;
  }
  std::vector<const DeviceView*> candidates;
  for (const DeviceView& device : worker.devices) {
    if (device.used_slots >= device.slots) continue;
    if (resources.gpus() == 0) {
      if (device.name == "cpu") candidates.push_back(&device);
      continue;
    }
    if (!IsGpu(device)) continue;
    if (resources.min_gpu_memory_bytes() > 0 &&
        device.free_memory_bytes < resources.min_gpu_memory_bytes()) {
      continue;
    }
    if (attempt.min_free_memory_exclusive >= 0 &&
        device.free_memory_bytes <= attempt.min_free_memory_exclusive) {
      continue;
    }
    candidates.push_back(&device);
  }
  const size_t needed = resources.gpus() == 0 ? 1 : static_cast<size_t>(resources.gpus());
  if (candidates.size() < needed) return std::nullopt;
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const DeviceView* a, const DeviceView* b) {
                     const int free_a = a->slots - a->used_slots, free_b = b->slots - b->used_slots;
                     if (free_a != free_b) return free_a > free_b;
                     return a->free_memory_bytes > b->free_memory_bytes;
                   });
  Placement placement;
  placement.worker_id = worker.worker_id;
  placement.cpu_threads = threads;
  for (size_t i = 0; i < needed; ++i) placement.devices.push_back(candidates[i]->name);
  if (resources.gpus() > 0) {
    placement.free_memory_bytes = candidates[0]->free_memory_bytes;
    for (size_t i = 0; i < needed; ++i) {
      placement.free_memory_bytes =
          std::min(placement.free_memory_bytes, candidates[i]->free_memory_bytes);
    }
  }
  return placement;
}

// True when `a` is less loaded than `b`.
bool LessLoaded(const WorkerView& a, const WorkerView& b) {
  const int total_a = TotalSlots(a), total_b = TotalSlots(b);
  const int used_a = UsedSlots(a), used_b = UsedSlots(b);
  // used_a / total_a < used_b / total_b without division.
  const long long lhs = static_cast<long long>(used_a) * total_b;
  const long long rhs = static_cast<long long>(used_b) * total_a;
  if (lhs != rhs) return lhs < rhs;
  if (total_a - used_a != total_b - used_b) return total_a - used_a > total_b - used_b;
  return a.worker_id < b.worker_id;
}

}  // namespace

std::vector<Placement> FairLeastLoadedPolicy::Place(const std::vector<ExperimentQueue>& queues,
                                                    const std::vector<WorkerView>& workers) {
  std::vector<Placement> placements;
  if (queues.empty() || workers.empty()) return placements;
  std::vector<WorkerView> cluster = workers;   // usage grows as this call places
  std::vector<size_t> next(queues.size(), 0);  // first unplaced attempt per experiment
  std::vector<std::vector<bool>> placed(queues.size());
  for (size_t q = 0; q < queues.size(); ++q) placed[q].assign(queues[q].waiting.size(), false);
  // Start after the experiment served last.
  size_t start = 0;
  for (size_t q = 0; q < queues.size(); ++q) {
    if (queues[q].experiment_id == last_served_) start = (q + 1) % queues.size();
  }
  std::vector<bool> done(queues.size(), false);
  size_t remaining = queues.size();
  for (size_t turn = start; remaining > 0; turn = (turn + 1) % queues.size()) {
    if (done[turn]) continue;
    const ExperimentQueue& queue = queues[turn];
    std::optional<Placement> chosen;
    size_t chosen_index = 0;
    size_t chosen_worker = 0;
    for (size_t i = next[turn]; i < queue.waiting.size() && !chosen.has_value(); ++i) {
      if (placed[turn][i]) continue;
      for (size_t w = 0; w < cluster.size(); ++w) {
        std::optional<Placement> fit = FitOn(cluster[w], queue.waiting[i]);
        if (!fit.has_value()) continue;
        if (!chosen.has_value() || LessLoaded(cluster[w], cluster[chosen_worker])) {
          chosen = std::move(fit);
          chosen_worker = w;
          chosen_index = i;
        }
      }
    }
    if (!chosen.has_value()) {
      done[turn] = true;
      --remaining;
      continue;
    }
    placed[turn][chosen_index] = true;
    while (next[turn] < queue.waiting.size() && placed[turn][next[turn]]) ++next[turn];
    WorkerView& worker = cluster[chosen_worker];
    for (const std::string& name : chosen->devices) {
      for (DeviceView& device : worker.devices) {
        if (device.name == name) ++device.used_slots;
      }
    }
    worker.used_cpu_threads += chosen->cpu_threads;
    chosen->experiment_id = queue.experiment_id;
    chosen->trial_id = queue.waiting[chosen_index].trial_id;
    last_served_ = queue.experiment_id;
    placements.push_back(std::move(*chosen));
  }
  return placements;
}

}  // namespace autocompress::scheduler
