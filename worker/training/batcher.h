// Batcher: a Dataset cut into batches for an epoch, optionally shuffled by a seeded
// generator, each batch moved to a device. The order of an epoch depends only on
// (seed, epoch), so two runs, or two sessions on different devices, see the same
// batches in the same order.
//
// Thread-compatible: ForEach is const and may run concurrently on one Batcher.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_BATCHER_H_
#define AUTOCOMPRESS_WORKER_TRAINING_BATCHER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/training/dataset.h"

namespace at {
class Tensor;
}

namespace autocompress::training {

struct BatchOptions {
  int64_t batch_size = 32;
  // Batches per epoch at most; 0 = every example once (the last batch may be short).
  int64_t max_batches = 0;
  bool shuffle = true;
  uint64_t seed = 1;
  // Where batches go: "cpu" or "cuda:N".
  std::string device = "cpu";
};

class Batcher {
 public:
  // InvalidArgument for a batch size below 1, negative max_batches or a device string
  // LibTorch does not parse. `data` must outlive the Batcher.
  static absl::StatusOr<Batcher> Create(const Dataset& data, BatchOptions options);

  // Batches in one epoch: ceil(size / batch_size), capped by max_batches.
  int64_t batches_per_epoch() const;

  // Example indices of epoch `epoch` in the order they are batched (a permutation of
  // 0..size-1 when shuffling, else 0..size-1), truncated to the batches taken.
  absl::StatusOr<std::vector<int64_t>> Order(int64_t epoch) const;

  // Calls `f(inputs, labels)` for every batch of epoch `epoch`, on the device; stops at
  // and returns the first error `f` returns. LibTorch errors become statuses. The next
  // batches are gathered on a background thread while `f` runs (pinned and copied
  // asynchronously for CUDA devices).
  using BatchFunction =
      std::function<absl::Status(const at::Tensor& inputs, const at::Tensor& labels)>;
  absl::Status ForEach(int64_t epoch, const BatchFunction& f) const;

 private:
  Batcher(const Dataset& data, BatchOptions options) : data_(&data), options_(options) {}
  const Dataset* data_;
  BatchOptions options_;
};

}  // namespace autocompress::training

#endif  // AUTOCOMPRESS_WORKER_TRAINING_BATCHER_H_
