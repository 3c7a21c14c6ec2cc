#include "worker/training/random_dataset.h"

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>

namespace autocompress::training::testing {

std::unique_ptr<Dataset> RandomImages(int64_t size, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto data = Dataset::FromTensors("random images",
                                   torch::randn({size, 1, 28, 28}, generator, torch::kFloat),
                                   torch::randint(0, 10, {size}, generator, torch::kLong));
  if (!data.ok()) {
    std::fprintf(stderr, "RandomImages: %s\n", std::string(data.status().message()).c_str());
    std::abort();
  }
  return std::move(*data);
}

Recipe SmallBatches(int64_t batches, double lr, double momentum) {
  Recipe recipe;
  recipe.lr = lr;
  recipe.momentum = momentum;
  recipe.batch_size = 8;
  recipe.max_batches = batches;
  return recipe;
}

}  // namespace autocompress::training::testing
