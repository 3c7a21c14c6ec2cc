#include "scheduler_service/placement_policy.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

WorkerView Cpu(const std::string& id, int slots, int threads = 8) {
  WorkerView worker;
  worker.worker_id = id;
  worker.cpu_threads = threads;
  worker.devices.push_back({"cpu", slots, 0, 0});
  return worker;
}

WorkerView Gpus(const std::string& id, std::vector<int64_t> free_memory, int slots = 1) {
  WorkerView worker;
  worker.worker_id = id;
  worker.cpu_threads = 16;
  for (size_t i = 0; i < free_memory.size(); ++i) {
    worker.devices.push_back({"cuda:" + std::to_string(i), slots, 0, free_memory[i]});
  }
  return worker;
}

ExperimentQueue Queue(const std::string& id, int waiting, v1::ResourceSpec resources = {}) {
  ExperimentQueue queue;
  queue.experiment_id = id;
  for (int i = 0; i < waiting; ++i) {
    queue.waiting.push_back({id + "-" + std::to_string(i), resources, -1});
  }
  return queue;
}

std::unique_ptr<PlacementPolicy> Policy() {
  auto policy = CreatePlacementPolicy("fair_least_loaded");
  EXPECT_TRUE(policy.ok());
  return std::move(*policy);
}

TEST(PlacementPolicyTest, UnknownNameListsTheKnownOnes) {
  auto policy = CreatePlacementPolicy("fifo");
  ASSERT_FALSE(policy.ok());
  EXPECT_THAT(policy.status().message(), HasSubstr("fair_least_loaded"));
}

TEST(PlacementPolicyTest, ExperimentsTakeTurnsAcrossCalls) {
  auto policy = Policy();
  // One slot per call: A was first, so B gets the next one, then A, ...
  std::vector<std::string> order;
  for (int call = 0; call < 6; ++call) {
    std::vector<Placement> placed =
        policy->Place({Queue("a", 1000), Queue("b", 2), Queue("c", 3)}, {Cpu("w", 1)});
    ASSERT_EQ(placed.size(), 1u);
    order.push_back(placed[0].experiment_id);
  }
  EXPECT_THAT(order, ElementsAre("a", "b", "c", "a", "b", "c"));
}

TEST(PlacementPolicyTest, ALongExperimentDoesNotStarveALaterOne) {
  auto policy = Policy();
  std::vector<Placement> placed =
      policy->Place({Queue("big", 1000), Queue("late", 4)}, {Cpu("w1", 4), Cpu("w2", 4)});
  ASSERT_EQ(placed.size(), 8u);
  std::map<std::string, int> per_experiment;
  for (const Placement& p : placed) ++per_experiment[p.experiment_id];
  EXPECT_EQ(per_experiment["big"], 4);
  EXPECT_EQ(per_experiment["late"], 4);
}

TEST(PlacementPolicyTest, LeastLoadedWorkerFirst) {
  auto policy = Policy();
  WorkerView busy = Cpu("a-busy", 4);
  busy.devices[0].used_slots = 3;
  std::vector<Placement> placed = policy->Place({Queue("e", 2)}, {busy, Cpu("b-idle", 4)});
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[0].worker_id, "b-idle");
  EXPECT_EQ(placed[1].worker_id, "b-idle");  // 1/4 used beats 3/4
}

TEST(PlacementPolicyTest, GpuTrialsNeedEnoughGpusMemoryAndLabels) {
  auto policy = Policy();
  v1::ResourceSpec two_gpus;
  two_gpus.set_gpus(2);
  two_gpus.set_min_gpu_memory_bytes(10);
  (*two_gpus.mutable_worker_selector())["pool"] = "a100";
  WorkerView small = Gpus("small", {100, 5});    // one GPU lacks memory
  WorkerView wrong = Gpus("wrong", {100, 100});  // no label
  WorkerView right = Gpus("right", {50, 100, 70});
  right.labels["pool"] = "a100";
  std::vector<Placement> placed = policy->Place({Queue("e", 3, two_gpus)}, {small, wrong, right});
  ASSERT_EQ(placed.size(), 1u);  // three GPUs of one slot each hold one 2-GPU trial
  EXPECT_EQ(placed[0].worker_id, "right");
  EXPECT_THAT(placed[0].devices, ElementsAre("cuda:1", "cuda:2"));  // most free memory
  EXPECT_EQ(placed[0].free_memory_bytes, 70);
  EXPECT_TRUE(WorkerCanEverFit(right, two_gpus));
  EXPECT_FALSE(WorkerCanEverFit(wrong, two_gpus));
}

TEST(PlacementPolicyTest, OutOfMemoryRetryNeedsStrictlyMoreFreeMemory) {
  auto policy = Policy();
  v1::ResourceSpec gpu;
  gpu.set_gpus(1);
  ExperimentQueue queue = Queue("e", 1, gpu);
  queue.waiting[0].min_free_memory_exclusive = 100;
  EXPECT_TRUE(policy->Place({queue}, {Gpus("same", {100})}).empty());
  std::vector<Placement> placed =
      policy->Place({queue}, {Gpus("same", {100}), Gpus("more", {101})});
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].worker_id, "more");
}

TEST(PlacementPolicyTest, CpuThreadsAreAnEvenShareAndNeverOversubscribed) {
  auto policy = Policy();
  std::vector<Placement> placed = policy->Place({Queue("e", 5)}, {Cpu("w", 4, /*threads=*/8)});
  ASSERT_EQ(placed.size(), 4u);
  for (const Placement& p : placed) EXPECT_EQ(p.cpu_threads, 2);
  v1::ResourceSpec six;
  six.set_cpu_threads(6);
  placed = policy->Place({Queue("f", 3, six)}, {Cpu("w", 4, /*threads=*/8)});
  EXPECT_EQ(placed.size(), 1u);  // 6 + 6 > 8
}

// Random clusters and queues: whatever is placed fits the capacity left.
TEST(PlacementPolicyTest, NeverOversubscribesOnRandomInputs) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    auto policy = Policy();
    std::vector<WorkerView> workers;
    const int n_workers = 1 + rng() % 5;
    for (int w = 0; w < n_workers; ++w) {
      WorkerView worker = rng() % 2
                              ? Cpu("w" + std::to_string(w), rng() % 4, rng() % 12)
                              : Gpus("w" + std::to_string(w),
                                     {int64_t(rng() % 200), int64_t(rng() % 200)}, 1 + rng() % 2);
      for (DeviceView& d : worker.devices) d.used_slots = d.slots > 0 ? rng() % (d.slots + 1) : 0;
      workers.push_back(worker);
    }
    std::vector<ExperimentQueue> queues;
    for (int q = 0; q < 1 + static_cast<int>(rng() % 3); ++q) {
      v1::ResourceSpec resources;
      resources.set_gpus(rng() % 3);
      resources.set_cpu_threads(rng() % 3);
      if (resources.gpus() > 0) resources.set_min_gpu_memory_bytes(rng() % 150);
      queues.push_back(Queue("q" + std::to_string(q), rng() % 6, resources));
    }
    std::map<std::string, std::map<std::string, int>> slots;
    std::map<std::string, int> threads;
    for (const Placement& p : policy->Place(queues, workers)) {
      for (const std::string& d : p.devices) ++slots[p.worker_id][d];
      threads[p.worker_id] += p.cpu_threads;
    }
    for (const WorkerView& worker : workers) {
      for (const DeviceView& d : worker.devices) {
        EXPECT_LE(d.used_slots + slots[worker.worker_id][d.name], std::max(d.slots, d.used_slots))
            << "round " << round;
      }
      if (worker.cpu_threads > 0) {
        EXPECT_LE(threads[worker.worker_id], worker.cpu_threads) << "round " << round;
      }
    }
  }
}

}  // namespace
}  // namespace autocompress::scheduler
