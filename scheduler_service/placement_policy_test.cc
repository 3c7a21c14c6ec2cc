#include "scheduler_service/placement_policy.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/distributions.h"
#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// Every registered policy; the contract tests run against each.
const char* const kPolicies[] = {"fair_least_loaded"};

WorkerView CpuWorker(const std::string& id, int slots, int threads = 8) {
  WorkerView worker;
  worker.worker_id = id;
  worker.cpu_threads = threads;
  worker.devices.push_back({"cpu", slots, 0, 0});
  return worker;
}

// One GPU per entry of `free_memory`, each with `slots` slots; no CPU device.
WorkerView GpuWorker(const std::string& id, const std::vector<int64_t>& free_memory, int slots = 1,
                     int threads = 16) {
  WorkerView worker;
  worker.worker_id = id;
  worker.cpu_threads = threads;
  for (size_t i = 0; i < free_memory.size(); ++i) {
    worker.devices.push_back({"cuda:" + std::to_string(i), slots, 0, free_memory[i]});
  }
  return worker;
}

v1::ResourceSpec Gpus(int gpus, int64_t min_memory = 0) {
  v1::ResourceSpec resources;
  resources.set_gpus(gpus);
  resources.set_min_gpu_memory_bytes(min_memory);
  return resources;
}

v1::ResourceSpec Threads(int threads) {
  v1::ResourceSpec resources;
  resources.set_cpu_threads(threads);
  return resources;
}

ExperimentQueue Queue(const std::string& id, int waiting, const v1::ResourceSpec& resources = {}) {
  ExperimentQueue queue;
  queue.experiment_id = id;
  for (int i = 0; i < waiting; ++i) {
    queue.waiting.push_back({id + "-" + std::to_string(i), resources, -1});
  }
  return queue;
}

std::unique_ptr<PlacementPolicy> Policy(const std::string& name = "fair_least_loaded") {
  absl::StatusOr<std::unique_ptr<PlacementPolicy>> policy = CreatePlacementPolicy(name);
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? std::move(*policy) : nullptr;
}

std::vector<std::string> Experiments(const std::vector<Placement>& placements) {
  std::vector<std::string> ids;
  for (const Placement& p : placements) ids.push_back(p.experiment_id);
  return ids;
}

std::vector<std::string> Workers(const std::vector<Placement>& placements) {
  std::vector<std::string> ids;
  for (const Placement& p : placements) ids.push_back(p.worker_id);
  return ids;
}

std::vector<std::string> Trials(const std::vector<Placement>& placements) {
  std::vector<std::string> ids;
  for (const Placement& p : placements) ids.push_back(p.trial_id);
  return ids;
}

// ---- Registry and shared rules ---------------------------------------------------------

TEST(CreatePlacementPolicyTest, KnowsFairLeastLoaded) {
  EXPECT_TRUE(CreatePlacementPolicy("fair_least_loaded").ok());
}

TEST(CreatePlacementPolicyTest, UnknownNameListsTheKnownOnes) {
  absl::StatusOr<std::unique_ptr<PlacementPolicy>> policy = CreatePlacementPolicy("fifo");
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(policy.status().message(), HasSubstr("\"fifo\""));
  EXPECT_THAT(policy.status().message(), HasSubstr("known: fair_least_loaded"));
}

TEST(PlacementRulesTest, GpuDevicesAreTheCudaOnes) {
  EXPECT_TRUE(IsGpuDevice("cuda:0"));
  EXPECT_TRUE(IsGpuDevice("cuda"));
  EXPECT_FALSE(IsGpuDevice("cpu"));
  EXPECT_FALSE(IsGpuDevice("mps"));
}

TEST(PlacementRulesTest, SelectorNeedsEveryKeyWithItsValue) {
  WorkerView worker = CpuWorker("w", 1);
  worker.labels = {{"pool", "a100"}, {"zone", "eu"}};
  v1::ResourceSpec resources;
  EXPECT_TRUE(SelectorMatches(worker, resources));  // no selector
  (*resources.mutable_worker_selector())["pool"] = "a100";
  EXPECT_TRUE(SelectorMatches(worker, resources));
  (*resources.mutable_worker_selector())["zone"] = "us";
  EXPECT_FALSE(SelectorMatches(worker, resources));  // wrong value
  (*resources.mutable_worker_selector())["zone"] = "eu";
  (*resources.mutable_worker_selector())["rack"] = "3";
  EXPECT_FALSE(SelectorMatches(worker, resources));  // missing key
}

TEST(PlacementRulesTest, CpuThreadsAreTheSpecsOrAnEvenShareOfAtLeastOne) {
  WorkerView worker = GpuWorker("w", {1, 1}, /*slots=*/1, /*threads=*/16);
  worker.devices.push_back({"cpu", 2, 0, 0});
  EXPECT_EQ(CpuThreadsFor(worker, Threads(3)), 3);
  EXPECT_EQ(CpuThreadsFor(worker, Threads(0)), 4);  // 16 threads / (1 + 1 + 2) slots
  worker.cpu_threads = 2;
  EXPECT_EQ(CpuThreadsFor(worker, Threads(0)), 1);  // 2 / 4 rounds down to 0, at least 1
  worker.cpu_threads = 0;
  EXPECT_EQ(CpuThreadsFor(worker, Threads(0)), 1);
  EXPECT_EQ(CpuThreadsFor(CpuWorker("none", 0, 8), Threads(0)), 1);  // no slots at all
}

TEST(WorkerCanEverFitTest, CountsOfferedDevicesIgnoringUsageAndMemory) {
  WorkerView worker = GpuWorker("w", {0, 0, 0});
  worker.devices[2].slots = 0;  // not offered
  for (DeviceView& device : worker.devices) device.used_slots = device.slots;
  EXPECT_TRUE(WorkerCanEverFit(worker, Gpus(2, /*min_memory=*/1 << 30)));
  EXPECT_FALSE(WorkerCanEverFit(worker, Gpus(3)));
  EXPECT_FALSE(WorkerCanEverFit(worker, Gpus(0)));  // no CPU device
  EXPECT_FALSE(WorkerCanEverFit(worker, Gpus(-1)));
  EXPECT_TRUE(WorkerCanEverFit(CpuWorker("c", 1), Gpus(0)));
  EXPECT_FALSE(WorkerCanEverFit(CpuWorker("c", 0), Gpus(0)));
  EXPECT_FALSE(WorkerCanEverFit(CpuWorker("c", 1), Gpus(1)));
}

TEST(WorkerCanEverFitTest, NeedsTheSelectorAndTheThreads) {
  WorkerView worker = CpuWorker("w", 4, /*threads=*/8);
  v1::ResourceSpec resources = Threads(8);
  EXPECT_TRUE(WorkerCanEverFit(worker, resources));
  (*resources.mutable_worker_selector())["pool"] = "big";
  EXPECT_FALSE(WorkerCanEverFit(worker, resources));
  worker.labels["pool"] = "big";
  EXPECT_TRUE(WorkerCanEverFit(worker, resources));
  EXPECT_FALSE(WorkerCanEverFit(worker, Threads(9)));
  worker.cpu_threads = 0;  // did not say: unlimited
  EXPECT_TRUE(WorkerCanEverFit(worker, Threads(64)));
}

// ---- Fairness ---------------------------------------------------------------------------

TEST(FairLeastLoadedPolicyTest, TwoExperimentsAlternateAcrossCalls) {
  auto policy = Policy();
  std::vector<std::string> order;
  for (int call = 0; call < 6; ++call) {
    std::vector<Placement> placed =
        policy->Place({Queue("a", 100), Queue("b", 100)}, {CpuWorker("w", 1)});
    ASSERT_THAT(placed, SizeIs(1));
    order.push_back(placed[0].experiment_id);
  }
  EXPECT_THAT(order, ElementsAre("a", "b", "a", "b", "a", "b"));
}

TEST(FairLeastLoadedPolicyTest, ThreeExperimentsTakeTurnsAcrossCalls) {
  auto policy = Policy();
  std::vector<std::string> order;
  for (int call = 0; call < 7; ++call) {
    std::vector<Placement> placed =
        policy->Place({Queue("a", 1000), Queue("b", 20), Queue("c", 30)}, {CpuWorker("w", 1)});
    ASSERT_THAT(placed, SizeIs(1));
    order.push_back(placed[0].experiment_id);
  }
  EXPECT_THAT(order, ElementsAre("a", "b", "c", "a", "b", "c", "a"));
}

TEST(FairLeastLoadedPolicyTest, TurnsWithinACallAndTheCursorCarriesOver) {
  auto policy = Policy();
  const std::vector<ExperimentQueue> queues = {Queue("a", 10), Queue("b", 10), Queue("c", 10)};
  std::vector<Placement> placed = policy->Place(queues, {CpuWorker("w", 7)});
  EXPECT_THAT(Experiments(placed), ElementsAre("a", "b", "c", "a", "b", "c", "a"));
  // Each experiment places its attempts in queue order.
  EXPECT_THAT(Trials(placed), ElementsAre("a-0", "b-0", "c-0", "a-1", "b-1", "c-1", "a-2"));
  // "a" got the last slot, so "b" goes first next time.
  placed = policy->Place(queues, {CpuWorker("w", 2)});
  EXPECT_THAT(Experiments(placed), ElementsAre("b", "c"));
}

TEST(FairLeastLoadedPolicyTest, AnExperimentOutOfAttemptsLeavesTheRestToOthers) {
  auto policy = Policy();
  std::vector<Placement> placed =
      policy->Place({Queue("a", 1), Queue("b", 5), Queue("c", 2)}, {CpuWorker("w", 6)});
  EXPECT_THAT(Experiments(placed), ElementsAre("a", "b", "c", "b", "c", "b"));
}

// A 1000-trial experiment holds the whole cluster; one submitted later gets every other
// slot that frees up.
TEST(FairLeastLoadedPolicyTest, ALongExperimentDoesNotStarveALaterOne) {
  auto policy = Policy();
  ExperimentQueue big = Queue("big", 1000);
  WorkerView worker = CpuWorker("w", 4);
  std::vector<Placement> running = policy->Place({big}, {worker});
  ASSERT_THAT(running, SizeIs(4));
  big.waiting.erase(big.waiting.begin(), big.waiting.begin() + 4);
  worker.devices[0].used_slots = 4;

  ExperimentQueue late = Queue("late", 5);
  std::vector<std::string> order;
  for (int freed = 0; freed < 12; ++freed) {
    --worker.devices[0].used_slots;  // a running trial ends
    std::vector<ExperimentQueue> queues = {big};
    if (!late.waiting.empty()) queues.push_back(late);
    std::vector<Placement> placed = policy->Place(queues, {worker});
    ASSERT_THAT(placed, SizeIs(1));
    ++worker.devices[0].used_slots;
    order.push_back(placed[0].experiment_id);
    ExperimentQueue& from = placed[0].experiment_id == "big" ? big : late;
    ASSERT_EQ(from.waiting.front().trial_id, placed[0].trial_id);
    from.waiting.erase(from.waiting.begin());
  }
  EXPECT_THAT(order, ElementsAre("late", "big", "late", "big", "late", "big", "late", "big", "late",
                                 "big", "big", "big"));
}

TEST(FairLeastLoadedPolicyTest, ALongExperimentSharesAFreeClusterInOneCall) {
  auto policy = Policy();
  std::vector<Placement> placed = policy->Place({Queue("big", 1000), Queue("late", 4)},
                                                {CpuWorker("w1", 4), CpuWorker("w2", 4)});
  ASSERT_THAT(placed, SizeIs(8));
  std::map<std::string, int> per_experiment;
  for (const Placement& p : placed) ++per_experiment[p.experiment_id];
  EXPECT_EQ(per_experiment["big"], 4);
  EXPECT_EQ(per_experiment["late"], 4);
}

TEST(FairLeastLoadedPolicyTest, WhenTheServedExperimentLeavesTheNextInOrderGoesFirst) {
  auto policy = Policy();
  std::vector<Placement> placed =
      policy->Place({Queue("a", 5), Queue("b", 5), Queue("c", 5)}, {CpuWorker("w", 2)});
  ASSERT_THAT(Experiments(placed), ElementsAre("a", "b"));
  // "b" got the last slot and then ended: "c" comes after it, not "a".
  placed = policy->Place({Queue("a", 5), Queue("c", 5)}, {CpuWorker("w", 1)});
  EXPECT_THAT(Experiments(placed), ElementsAre("c"));
  // "c" left; "d" was submitted since, so it comes after "c".
  placed = policy->Place({Queue("a", 5), Queue("d", 5)}, {CpuWorker("w", 1)});
  EXPECT_THAT(Experiments(placed), ElementsAre("d"));
}

TEST(FairLeastLoadedPolicyTest, WhenTheNewestServedExperimentLeavesTheOldestGoesFirst) {
  auto policy = Policy();
  std::vector<Placement> placed =
      policy->Place({Queue("a", 5), Queue("b", 5), Queue("c", 5)}, {CpuWorker("w", 3)});
  ASSERT_THAT(Experiments(placed), ElementsAre("a", "b", "c"));
  placed = policy->Place({Queue("a", 5), Queue("b", 5)}, {CpuWorker("w", 1)});
  EXPECT_THAT(Experiments(placed), ElementsAre("a"));
}

TEST(FairLeastLoadedPolicyTest, ACallWithoutPlacementsKeepsTheCursor) {
  auto policy = Policy();
  ASSERT_THAT(Experiments(policy->Place({Queue("a", 5), Queue("b", 5)}, {CpuWorker("w", 1)})),
              ElementsAre("a"));
  EXPECT_THAT(policy->Place({Queue("a", 5), Queue("b", 5)}, {CpuWorker("w", 0)}), IsEmpty());
  EXPECT_THAT(policy->Place({Queue("b", 5)}, {}), IsEmpty());
  EXPECT_THAT(Experiments(policy->Place({Queue("a", 5), Queue("b", 5)}, {CpuWorker("w", 1)})),
              ElementsAre("b"));
}

TEST(FairLeastLoadedPolicyTest, AnExperimentThatFitsNowhereDoesNotBlockOthers) {
  auto policy = Policy();
  std::vector<Placement> placed =
      policy->Place({Queue("gpu", 10, Gpus(1)), Queue("cpu", 10)}, {CpuWorker("w", 3)});
  EXPECT_THAT(Experiments(placed), ElementsAre("cpu", "cpu", "cpu"));
}

TEST(FairLeastLoadedPolicyTest, AnAttemptThatCannotFitNowIsSkippedForTheNextOne) {
  auto policy = Policy();
  ExperimentQueue queue = Queue("e", 3, Gpus(1));
  queue.waiting[0].min_free_memory_exclusive = 500;  // an out-of-memory retry
  std::vector<Placement> placed = policy->Place({queue}, {GpuWorker("w", {400}, /*slots=*/2)});
  EXPECT_THAT(Trials(placed), ElementsAre("e-1", "e-2"));
}

// ---- Least loaded -----------------------------------------------------------------------

TEST(FairLeastLoadedPolicyTest, LowestFractionOfUsedSlotsThenMostFreeSlots) {
  auto policy = Policy();
  WorkerView big = CpuWorker("big", 8);
  big.devices[0].used_slots = 4;  // 1/2 used, 4 free
  WorkerView small = CpuWorker("small", 2);
  // small 0/2 < big 4/8; then 1/2 ties 4/8 and big has more free slots; then
  // small 1/2 < big 5/8; then small is full.
  std::vector<Placement> placed = policy->Place({Queue("e", 4)}, {big, small});
  EXPECT_THAT(Workers(placed), ElementsAre("small", "big", "small", "big"));
}

TEST(FairLeastLoadedPolicyTest, FullTiesGoToTheSmallerWorkerIdWhateverTheInputOrder) {
  std::vector<Placement> forward =
      Policy()->Place({Queue("e", 1)}, {CpuWorker("w2", 2), CpuWorker("w1", 2)});
  std::vector<Placement> backward =
      Policy()->Place({Queue("e", 1)}, {CpuWorker("w1", 2), CpuWorker("w2", 2)});
  EXPECT_THAT(Workers(forward), ElementsAre("w1"));
  EXPECT_THAT(Workers(backward), ElementsAre("w1"));
}

TEST(FairLeastLoadedPolicyTest, DevicesWithMostFreeSlotsThenMostFreeMemory) {
  auto policy = Policy();
  WorkerView worker = GpuWorker("w", {500, 100, 300}, /*slots=*/2);
  worker.devices[0].used_slots = 1;
  std::vector<Placement> placed = policy->Place({Queue("e", 3, Gpus(1))}, {worker});
  ASSERT_THAT(placed, SizeIs(3));
  EXPECT_THAT(placed[0].devices, ElementsAre("cuda:2"));  // 2 free slots, 300 > 100
  EXPECT_THAT(placed[1].devices, ElementsAre("cuda:1"));  // the only one with 2 free
  EXPECT_THAT(placed[2].devices, ElementsAre("cuda:0"));  // 1 free each; 500 is most
  EXPECT_EQ(placed[0].free_memory_bytes, 300);
}

// ---- GPUs and memory ----------------------------------------------------------------------

TEST(FairLeastLoadedPolicyTest, MultiGpuTrialsTakeDistinctGpusOfOneWorker) {
  auto policy = Policy();
  // One free GPU on each of two workers does not make a 2-GPU placement.
  EXPECT_THAT(policy->Place({Queue("e", 1, Gpus(2))}, {GpuWorker("a", {9}), GpuWorker("b", {9})}),
              IsEmpty());
  std::vector<Placement> placed =
      policy->Place({Queue("e", 3, Gpus(2))}, {GpuWorker("w", {40, 10, 30, 20}, /*slots=*/1)});
  ASSERT_THAT(placed, SizeIs(2));
  EXPECT_THAT(placed[0].devices, ElementsAre("cuda:0", "cuda:2"));  // most free memory
  EXPECT_THAT(placed[1].devices, ElementsAre("cuda:3", "cuda:1"));
  EXPECT_EQ(placed[0].free_memory_bytes, 30);  // the smaller of the two
  EXPECT_EQ(placed[1].free_memory_bytes, 10);
}

TEST(FairLeastLoadedPolicyTest, CpuTrialsTakeTheCpuDeviceAndGpuTrialsOnlyGpus) {
  auto policy = Policy();
  WorkerView mixed = GpuWorker("w", {100});
  mixed.devices.push_back({"cpu", 1, 0, 0});
  std::vector<Placement> placed =
      policy->Place({Queue("cpu", 2), Queue("gpu", 2, Gpus(1))}, {mixed});
  ASSERT_THAT(placed, SizeIs(2));
  EXPECT_THAT(placed[0].devices, ElementsAre("cpu"));
  EXPECT_EQ(placed[0].free_memory_bytes, 0);
  EXPECT_THAT(placed[1].devices, ElementsAre("cuda:0"));
  EXPECT_THAT(policy->Place({Queue("cpu", 1)}, {GpuWorker("g", {100})}), IsEmpty());
}

TEST(FairLeastLoadedPolicyTest, MinGpuMemoryIsInclusiveAndZeroMeansAny) {
  auto policy = Policy();
  EXPECT_THAT(policy->Place({Queue("e", 1, Gpus(1, 100))}, {GpuWorker("w", {99})}), IsEmpty());
  EXPECT_THAT(policy->Place({Queue("e", 1, Gpus(1, 100))}, {GpuWorker("w", {100})}), SizeIs(1));
  EXPECT_THAT(policy->Place({Queue("e", 1, Gpus(1, 0))}, {GpuWorker("w", {0})}), SizeIs(1));
}

TEST(FairLeastLoadedPolicyTest, OutOfMemoryRetryNeedsStrictlyMoreFreeMemory) {
  auto policy = Policy();
  ExperimentQueue queue = Queue("e", 1, Gpus(1));
  queue.waiting[0].min_free_memory_exclusive = 100;
  EXPECT_THAT(policy->Place({queue}, {GpuWorker("same", {100})}), IsEmpty());
  std::vector<Placement> placed =
      policy->Place({queue}, {GpuWorker("same", {100}), GpuWorker("more", {101})});
  EXPECT_THAT(Workers(placed), ElementsAre("more"));
  queue.waiting[0].min_free_memory_exclusive = 0;  // the failed attempt saw 0 bytes free
  EXPECT_THAT(policy->Place({queue}, {GpuWorker("w", {0})}), IsEmpty());
}

TEST(FairLeastLoadedPolicyTest, BothMemoryRulesMustHold) {
  auto policy = Policy();
  ExperimentQueue queue = Queue("e", 1, Gpus(1, /*min_memory=*/200));
  queue.waiting[0].min_free_memory_exclusive = 100;
  EXPECT_THAT(policy->Place({queue}, {GpuWorker("w", {150})}), IsEmpty());
  EXPECT_THAT(policy->Place({queue}, {GpuWorker("w", {200})}), SizeIs(1));
}

TEST(FairLeastLoadedPolicyTest, MemoryPromisedEarlierInTheCallIsCounted) {
  auto policy = Policy();
  // Two slots on one GPU with 10 bytes free: two trials of >= 6 do not both fit.
  EXPECT_THAT(policy->Place({Queue("e", 2, Gpus(1, 6))}, {GpuWorker("w", {10}, /*slots=*/2)}),
              SizeIs(1));
  std::vector<Placement> placed =
      policy->Place({Queue("e", 2, Gpus(1, 5))}, {GpuWorker("w", {10}, /*slots=*/2)});
  ASSERT_THAT(placed, SizeIs(2));
  EXPECT_EQ(placed[0].free_memory_bytes, 10);
  EXPECT_EQ(placed[1].free_memory_bytes, 5);
  // A retry that needs more than 4 takes 5.
  ExperimentQueue retries = Queue("r", 3, Gpus(1));
  for (WaitingAttempt& attempt : retries.waiting) attempt.min_free_memory_exclusive = 4;
  EXPECT_THAT(policy->Place({retries}, {GpuWorker("w", {9}, /*slots=*/3)}), SizeIs(1));
  EXPECT_THAT(policy->Place({retries}, {GpuWorker("w", {10}, /*slots=*/3)}), SizeIs(2));
}

// ---- Selectors, threads and existing usage ----------------------------------------------

TEST(FairLeastLoadedPolicyTest, WorkerSelectorPicksLabelledWorkers) {
  auto policy = Policy();
  v1::ResourceSpec two_gpus = Gpus(2, /*min_memory=*/10);
  (*two_gpus.mutable_worker_selector())["pool"] = "a100";
  WorkerView small = GpuWorker("small", {100, 5});  // one GPU lacks memory
  small.labels["pool"] = "a100";
  WorkerView unlabelled = GpuWorker("unlabelled", {100, 100});
  WorkerView other = GpuWorker("other", {100, 100});
  other.labels["pool"] = "v100";
  WorkerView right = GpuWorker("right", {50, 100, 70});
  right.labels = {{"pool", "a100"}, {"zone", "eu"}};
  std::vector<Placement> placed =
      policy->Place({Queue("e", 3, two_gpus)}, {small, unlabelled, other, right});
  ASSERT_THAT(placed, SizeIs(1));  // three GPUs of one slot each hold one 2-GPU trial
  EXPECT_EQ(placed[0].worker_id, "right");
  EXPECT_THAT(placed[0].devices, ElementsAre("cuda:1", "cuda:2"));
}

TEST(FairLeastLoadedPolicyTest, CpuThreadsAreAnEvenShareAndNeverOversubscribed) {
  auto policy = Policy();
  std::vector<Placement> placed = policy->Place({Queue("e", 5)}, {CpuWorker("w", 4, 8)});
  ASSERT_THAT(placed, SizeIs(4));
  for (const Placement& p : placed) EXPECT_EQ(p.cpu_threads, 2);
  EXPECT_THAT(policy->Place({Queue("f", 3, Threads(6))}, {CpuWorker("w", 4, 8)}),
              SizeIs(1));  // 6 + 6 > 8
  WorkerView busy = CpuWorker("w", 4, 8);
  busy.used_cpu_threads = 6;
  EXPECT_THAT(policy->Place({Queue("g", 3, Threads(2))}, {busy}), SizeIs(1));
  EXPECT_THAT(policy->Place({Queue("g", 3, Threads(3))}, {busy}), IsEmpty());
}

TEST(FairLeastLoadedPolicyTest, AWorkerOfferingNoThreadsIsNotLimitedByThem) {
  auto policy = Policy();
  std::vector<Placement> placed =
      policy->Place({Queue("e", 2, Threads(100)), Queue("f", 2)}, {CpuWorker("w", 4, 0)});
  ASSERT_THAT(placed, SizeIs(4));
  EXPECT_EQ(placed[0].cpu_threads, 100);
  EXPECT_EQ(placed[1].cpu_threads, 1);  // the even share of nothing is 1
}

TEST(FairLeastLoadedPolicyTest, AThreadShortWorkerIsPassedOver) {
  auto policy = Policy();
  WorkerView idle = CpuWorker("a-idle", 4, /*threads=*/2);
  WorkerView busy = CpuWorker("b-busy", 4, /*threads=*/16);
  busy.devices[0].used_slots = 2;
  std::vector<Placement> placed = policy->Place({Queue("e", 1, Threads(4))}, {idle, busy});
  EXPECT_THAT(Workers(placed), ElementsAre("b-busy"));
}

TEST(FairLeastLoadedPolicyTest, ExistingLeasesAndEarlierPlacementsCount) {
  auto policy = Policy();
  WorkerView full = CpuWorker("w", 2);
  full.devices[0].used_slots = 2;
  EXPECT_THAT(policy->Place({Queue("e", 1)}, {full}), IsEmpty());
  WorkerView over = CpuWorker("w", 2);
  over.devices[0].used_slots = 3;  // more leases than slots (the worker shrank)
  EXPECT_THAT(policy->Place({Queue("e", 1)}, {over}), IsEmpty());
  std::vector<Placement> placed =
      policy->Place({Queue("a", 3), Queue("b", 3)}, {CpuWorker("w", 1)});
  EXPECT_THAT(placed, SizeIs(1));
}

TEST(FairLeastLoadedPolicyTest, NothingToPlaceOrNowhereToPlaceIt) {
  auto policy = Policy();
  EXPECT_THAT(policy->Place({}, {CpuWorker("w", 1)}), IsEmpty());
  EXPECT_THAT(policy->Place({Queue("e", 0)}, {CpuWorker("w", 1)}), IsEmpty());
  EXPECT_THAT(policy->Place({Queue("e", 1)}, {}), IsEmpty());
}

// ---- Properties on random inputs ----------------------------------------------------------

// The memory a placement of `attempt` takes on each GPU (the policy's documented rule).
int64_t Reservation(const WaitingAttempt& attempt) {
  int64_t bytes = std::max<int64_t>(0, attempt.resources.min_gpu_memory_bytes());
  if (attempt.min_free_memory_exclusive >= 0) {
    bytes = std::max(bytes, attempt.min_free_memory_exclusive + 1);
  }
  return bytes;
}

bool MemoryFits(int64_t free_bytes, const WaitingAttempt& attempt) {
  const int64_t min_bytes = attempt.resources.min_gpu_memory_bytes();
  return (min_bytes <= 0 || free_bytes >= min_bytes) &&
         (attempt.min_free_memory_exclusive < 0 || free_bytes > attempt.min_free_memory_exclusive);
}

// An independent statement of "fits now", for the maximality check.
bool FitsNow(const WorkerView& worker, const WaitingAttempt& attempt) {
  const v1::ResourceSpec& resources = attempt.resources;
  for (const auto& [key, value] : resources.worker_selector()) {
    auto it = worker.labels.find(key);
    if (it == worker.labels.end() || it->second != value) return false;
  }
  int slots = 0;
  for (const DeviceView& device : worker.devices) slots += std::max(0, device.slots);
  const int threads = resources.cpu_threads() > 0
                          ? resources.cpu_threads()
                          : std::max(1, slots ? worker.cpu_threads / slots : 1);
  if (worker.cpu_threads > 0 && worker.used_cpu_threads + threads > worker.cpu_threads) {
    return false;
  }
  int usable = 0;
  for (const DeviceView& device : worker.devices) {
    if (device.used_slots >= device.slots) continue;
    if (resources.gpus() == 0
            ? device.name == "cpu"
            : device.name.rfind("cuda", 0) == 0 && MemoryFits(device.free_memory_bytes, attempt)) {
      ++usable;
    }
  }
  return usable >= std::max(1, resources.gpus());
}

struct RandomCase {
  std::vector<WorkerView> workers;
  std::vector<ExperimentQueue> queues;
};

WorkerView RandomWorker(std::mt19937& rng, int index) {
  WorkerView worker;
  worker.worker_id = "w" + std::to_string(index);
  if (absl::Bernoulli(rng, 0.5)) worker.labels["pool"] = absl::Bernoulli(rng, 0.5) ? "a" : "b";
  if (absl::Bernoulli(rng, 0.7)) {
    const int slots = absl::Uniform(absl::IntervalClosed, rng, 0, 3);
    worker.devices.push_back({"cpu", slots, absl::Uniform(absl::IntervalClosed, rng, 0, slots), 0});
  }
  const int gpus = absl::Uniform(absl::IntervalClosed, rng, 0, 4);
  for (int g = 0; g < gpus; ++g) {
    const int slots = absl::Uniform(absl::IntervalClosed, rng, 0, 2);
    worker.devices.push_back({"cuda:" + std::to_string(g), slots,
                              absl::Uniform(absl::IntervalClosed, rng, 0, slots + 1),
                              absl::Uniform<int64_t>(absl::IntervalClosed, rng, 0, 200)});
  }
  worker.cpu_threads = absl::Uniform(absl::IntervalClosed, rng, 0, 16);
  worker.used_cpu_threads = absl::Uniform(absl::IntervalClosed, rng, 0, worker.cpu_threads);
  return worker;
}

ExperimentQueue RandomQueue(std::mt19937& rng, const std::string& id) {
  v1::ResourceSpec resources;
  resources.set_gpus(absl::Uniform(absl::IntervalClosed, rng, 0, 3));
  resources.set_cpu_threads(absl::Uniform(absl::IntervalClosed, rng, 0, 4));
  if (resources.gpus() > 0 && absl::Bernoulli(rng, 0.6)) {
    resources.set_min_gpu_memory_bytes(absl::Uniform(absl::IntervalClosed, rng, 0, 150));
  }
  if (absl::Bernoulli(rng, 0.3)) (*resources.mutable_worker_selector())["pool"] = "a";
  ExperimentQueue queue = Queue(id, absl::Uniform(absl::IntervalClosed, rng, 0, 8), resources);
  for (WaitingAttempt& attempt : queue.waiting) {
    if (attempt.resources.gpus() > 0 && absl::Bernoulli(rng, 0.3)) {
      attempt.min_free_memory_exclusive = absl::Uniform(absl::IntervalClosed, rng, 0, 150);
    }
  }
  return queue;
}

// Checks one call's result against its inputs; `after` gets the cluster with the
// placements applied (slots, threads, reserved memory).
void CheckPlacements(const RandomCase& c, const std::vector<Placement>& placed,
                     const std::string& where, std::vector<WorkerView>* after) {
  std::map<std::string, WorkerView> cluster;
  for (const WorkerView& worker : c.workers) cluster[worker.worker_id] = worker;
  std::map<std::string, std::map<std::string, int>> attempt_index;  // experiment -> trial -> i
  for (const ExperimentQueue& queue : c.queues) {
    for (size_t i = 0; i < queue.waiting.size(); ++i) {
      attempt_index[queue.experiment_id][queue.waiting[i].trial_id] = static_cast<int>(i);
    }
  }
  std::set<std::string> trials;
  std::map<std::string, int> last_index;
  for (const Placement& p : placed) {
    SCOPED_TRACE(where + " trial " + p.trial_id);
    ASSERT_TRUE(trials.insert(p.trial_id).second) << "placed twice";
    ASSERT_TRUE(attempt_index[p.experiment_id].count(p.trial_id)) << "not in its experiment";
    const int index = attempt_index[p.experiment_id][p.trial_id];
    EXPECT_TRUE(!last_index.count(p.experiment_id) || last_index[p.experiment_id] < index)
        << "out of queue order";
    last_index[p.experiment_id] = index;
    const WaitingAttempt* attempt = nullptr;
    for (const ExperimentQueue& queue : c.queues) {
      if (queue.experiment_id == p.experiment_id) attempt = &queue.waiting[index];
    }
    ASSERT_TRUE(cluster.count(p.worker_id)) << "unknown worker";
    WorkerView& worker = cluster[p.worker_id];
    ASSERT_TRUE(FitsNow(worker, *attempt)) << "does not fit on " << p.worker_id;
    EXPECT_TRUE(SelectorMatches(worker, attempt->resources));
    const std::set<std::string> distinct(p.devices.begin(), p.devices.end());
    EXPECT_EQ(distinct.size(), p.devices.size());
    if (attempt->resources.gpus() == 0) {
      EXPECT_THAT(p.devices, ElementsAre("cpu"));
      EXPECT_EQ(p.free_memory_bytes, 0);
    } else {
      EXPECT_EQ(static_cast<int>(p.devices.size()), attempt->resources.gpus());
    }
    EXPECT_EQ(p.cpu_threads, CpuThreadsFor(worker, attempt->resources));
    EXPECT_GE(p.cpu_threads, 1);
    int64_t smallest_free = INT64_MAX;
    for (const std::string& name : p.devices) {
      auto device = std::find_if(worker.devices.begin(), worker.devices.end(),
                                 [&name](const DeviceView& d) { return d.name == name; });
      ASSERT_NE(device, worker.devices.end()) << name;
      EXPECT_LT(device->used_slots, device->slots) << name << " oversubscribed";
      ++device->used_slots;
      if (attempt->resources.gpus() > 0) {
        EXPECT_TRUE(IsGpuDevice(name));
        EXPECT_TRUE(MemoryFits(device->free_memory_bytes, *attempt)) << name;
        smallest_free = std::min(smallest_free, device->free_memory_bytes);
        device->free_memory_bytes -= Reservation(*attempt);
      }
    }
    if (attempt->resources.gpus() > 0) {
      EXPECT_EQ(p.free_memory_bytes, smallest_free);
    }
    worker.used_cpu_threads += p.cpu_threads;
    if (worker.cpu_threads > 0) {
      EXPECT_LE(worker.used_cpu_threads, worker.cpu_threads);
    }
  }
  // Maximal: whatever was left out fits nowhere on what is left.
  for (const ExperimentQueue& queue : c.queues) {
    for (const WaitingAttempt& attempt : queue.waiting) {
      if (trials.count(attempt.trial_id)) continue;
      for (const auto& [id, worker] : cluster) {
        EXPECT_FALSE(FitsNow(worker, attempt))
            << where << ": " << attempt.trial_id << " left out but fits on " << id;
      }
    }
  }
  after->clear();
  for (auto& [id, worker] : cluster) after->push_back(std::move(worker));
}

// Round robin within a call: while an experiment still places later in the call, no
// other one is more than one placement ahead of it.
void CheckTurns(const std::vector<Placement>& placed, const std::string& where) {
  std::map<std::string, size_t> last;
  for (size_t k = 0; k < placed.size(); ++k) last[placed[k].experiment_id] = k;
  std::map<std::string, int> count;
  for (size_t k = 0; k < placed.size(); ++k) {
    ++count[placed[k].experiment_id];
    for (const auto& [x, nx] : count) {
      for (const auto& [y, last_y] : last) {
        const int ny = count.count(y) ? count.at(y) : 0;
        if (last_y > k) {
          EXPECT_LE(nx, ny + 1) << where << " at " << k << ": " << x << " vs " << y;
        }
      }
    }
  }
}

// Several calls per case with one policy: trials end, experiments leave and arrive.
void RunRandomCases(const std::string& policy_name, bool check_turns) {
  std::mt19937 rng(20261203);
  int placed_total = 0;
  for (int round = 0; round < 200; ++round) {
    std::unique_ptr<PlacementPolicy> policy = Policy(policy_name);
    ASSERT_NE(policy, nullptr);
    RandomCase c;
    const int n_workers = absl::Uniform(absl::IntervalClosed, rng, 0, 5);
    for (int w = 0; w < n_workers; ++w) c.workers.push_back(RandomWorker(rng, w));
    int next_experiment = 0;
    const int n_queues = absl::Uniform(absl::IntervalClosed, rng, 0, 4);
    for (int q = 0; q < n_queues; ++q) {
      c.queues.push_back(RandomQueue(rng, "e" + std::to_string(next_experiment++)));
    }
    for (int call = 0; call < 4; ++call) {
      const std::string where = "round " + std::to_string(round) + " call " + std::to_string(call);
      const std::vector<Placement> placed = policy->Place(c.queues, c.workers);
      placed_total += static_cast<int>(placed.size());
      std::vector<WorkerView> after;
      CheckPlacements(c, placed, where, &after);
      if (::testing::Test::HasFatalFailure()) return;
      if (check_turns) CheckTurns(placed, where);
      // Next call: placed attempts leave their queues, some leases end, an experiment
      // may leave and another arrive.
      std::set<std::string> gone;
      for (const Placement& p : placed) gone.insert(p.trial_id);
      for (ExperimentQueue& queue : c.queues) {
        queue.waiting.erase(
            std::remove_if(queue.waiting.begin(), queue.waiting.end(),
                           [&gone](const WaitingAttempt& a) { return gone.count(a.trial_id) > 0; }),
            queue.waiting.end());
      }
      if (!c.queues.empty() && absl::Bernoulli(rng, 0.3)) {
        c.queues.erase(c.queues.begin() + absl::Uniform<size_t>(rng, 0, c.queues.size()));
      }
      if (absl::Bernoulli(rng, 0.3)) {
        c.queues.push_back(RandomQueue(rng, "e" + std::to_string(next_experiment++)));
      }
      for (WorkerView& worker : after) {
        for (DeviceView& device : worker.devices) {
          if (device.used_slots > 0 && absl::Bernoulli(rng, 0.4)) --device.used_slots;
        }
        worker.used_cpu_threads =
            absl::Uniform(absl::IntervalClosed, rng, 0, std::max(0, worker.used_cpu_threads));
      }
      c.workers = std::move(after);
    }
  }
  EXPECT_GT(placed_total, 200);  // the cases exercise placement, not only refusals
}

class PlacementPolicyContractTest : public ::testing::TestWithParam<const char*> {};

TEST_P(PlacementPolicyContractTest, ValidMaximalAndNeverOversubscribedOnRandomInputs) {
  RunRandomCases(GetParam(), /*check_turns=*/false);
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, PlacementPolicyContractTest, ::testing::ValuesIn(kPolicies));

TEST(FairLeastLoadedPolicyTest, TakesTurnsOnRandomInputs) {
  RunRandomCases("fair_least_loaded", /*check_turns=*/true);
}

}  // namespace
}  // namespace autocompress::scheduler
