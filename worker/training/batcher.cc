#include "worker/training/batcher.h"

#include <torch/torch.h>

#include <algorithm>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "compression/torch_status.h"

namespace autocompress::training {
namespace {

// Epoch e's generator seed: distinct epochs of one seed, and equal epochs of distinct
// seeds, get unrelated permutations (splitmix64's finalizer).
uint64_t EpochSeed(uint64_t seed, int64_t epoch) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(epoch) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The epoch's example indices (int64 [taken]) on the CPU.
torch::Tensor EpochIndices(int64_t size, int64_t taken, const BatchOptions& options,
                           int64_t epoch) {
  if (!options.shuffle) return torch::arange(taken, torch::kLong);
  at::Generator generator =
      at::make_generator<at::CPUGeneratorImpl>(EpochSeed(options.seed, epoch));
  return torch::randperm(size, generator, torch::kLong).slice(0, 0, taken);
}

}  // namespace

absl::StatusOr<Batcher> Batcher::Create(const Dataset& data, BatchOptions options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: ", options.batch_size, " is not a positive integer"));
  }
  if (options.max_batches < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_batches: ", options.max_batches, " is negative (0 = the whole epoch)"));
  }
  absl::Status device = compression::CatchTorch(absl::StrCat("device '", options.device, "'"), [&] {
    static_cast<void>(torch::Device(options.device));
    return absl::OkStatus();
  });
  if (!device.ok()) return device;
  return Batcher(data, std::move(options));
}

int64_t Batcher::batches_per_epoch() const {
  // Data sets are never empty (Dataset::FromTensors); this form cannot overflow.
  const int64_t all = (data_->size() - 1) / options_.batch_size + 1;
  return options_.max_batches == 0 ? all : std::min(all, options_.max_batches);
}

absl::StatusOr<std::vector<int64_t>> Batcher::Order(int64_t epoch) const {
  std::vector<int64_t> order;
  absl::Status status = compression::CatchTorch("batch order", [&] {
    const int64_t taken = std::min(data_->size(), batches_per_epoch() * options_.batch_size);
    const torch::Tensor indices = EpochIndices(data_->size(), taken, options_, epoch);
    order.assign(indices.data_ptr<int64_t>(), indices.data_ptr<int64_t>() + indices.numel());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return order;
}

absl::Status Batcher::ForEach(int64_t epoch, const BatchFunction& f) const {
  const torch::Device device(options_.device);
  const int64_t batches = batches_per_epoch();
  const int64_t taken = std::min(data_->size(), batches * options_.batch_size);
  torch::Tensor indices;
  RETURN_IF_ERROR(compression::CatchTorch(absl::StrCat(data_->name(), ": batching"), [&] {
    indices = EpochIndices(data_->size(), taken, options_, epoch);
    return absl::OkStatus();
  }));
  // A producer thread gathers (and moves to the device) the batch after the one `f`
  // works on, so the model never waits for its input. At most kAhead batches wait.
  constexpr size_t kAhead = 2;
  struct Batch {
    torch::Tensor inputs, labels;
  };
  absl::Mutex mu;
  std::deque<Batch> ready;
  bool stop = false;
  absl::Status produce_status;
  const bool pin = device.is_cuda();
  std::thread producer([&] {
    for (int64_t b = 0; b < batches; ++b) {
      Batch batch;
      absl::Status status = compression::CatchTorch(absl::StrCat(data_->name(), ": batching"), [&] {
        const torch::Tensor index =
            indices.slice(0, b * options_.batch_size, (b + 1) * options_.batch_size);
        torch::Tensor inputs = data_->inputs().index_select(0, index);
        torch::Tensor labels = data_->labels().index_select(0, index);
        if (pin) {
          inputs = inputs.pin_memory();
          labels = labels.pin_memory();
        }
        batch.inputs = inputs.to(device, /*non_blocking=*/pin);
        batch.labels = labels.to(device, /*non_blocking=*/pin);
        return absl::OkStatus();
      });
      absl::MutexLock lock(&mu);
      if (!status.ok()) {
        produce_status = status;
        stop = true;
        return;
      }
      auto room = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop || ready.size() < kAhead; };
      mu.Await(absl::Condition(&room));
      if (stop) return;
      ready.push_back(std::move(batch));
    }
  });
  absl::Status status;
  for (int64_t b = 0; b < batches && status.ok(); ++b) {
    Batch batch;
    {
      absl::MutexLock lock(&mu);
      auto have = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop || !ready.empty(); };
      mu.Await(absl::Condition(&have));
      if (ready.empty()) {
        status = produce_status;
        break;
      }
      batch = std::move(ready.front());
      ready.pop_front();
    }
    status = compression::CatchTorch(absl::StrCat(data_->name(), ": batching"),
                                     [&] { return f(batch.inputs, batch.labels); });
  }
  {
    absl::MutexLock lock(&mu);
    stop = true;
  }
  producer.join();
  return status;
}

}  // namespace autocompress::training
