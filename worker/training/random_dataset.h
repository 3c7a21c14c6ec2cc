// Seeded random data for tests and checks: Fashion-MNIST-shaped images ([N, 1, 28, 28],
// normal values) with uniform labels in 0..9, and a recipe of a few small SGD steps.
// Not for training to any accuracy: tests compute their references from the batches
// they observe.
#ifndef AUTOCOMPRESS_WORKER_TRAINING_RANDOM_DATASET_H_
#define AUTOCOMPRESS_WORKER_TRAINING_RANDOM_DATASET_H_

#include <cstdint>
#include <memory>

#include "worker/training/dataset.h"
#include "worker/training/recipe.h"

namespace autocompress::training::testing {

std::unique_ptr<Dataset> RandomImages(int64_t size, uint64_t seed);

// SGD (learning rate `lr`, momentum `momentum`) on batches of 8, `batches` per epoch.
Recipe SmallBatches(int64_t batches, double lr, double momentum = 0);

}  // namespace autocompress::training::testing

#endif  // AUTOCOMPRESS_WORKER_TRAINING_RANDOM_DATASET_H_
