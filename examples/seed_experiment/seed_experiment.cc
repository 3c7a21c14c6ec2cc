// The seed's auto-compression experiment (NNI 2.5's auto_compress_torch.py) written with
// the C++ SDK, against a running scheduler: the README's C++ example, compiled by the
// build so that it stays true.
//
// usage: seed_experiment SCHEDULER_ADDRESS MODEL.pt DATA_PREFIX_TRAIN DATA_PREFIX_EVAL
#include <cstdio>

#include "client/client.h"
#include "client/experiment.h"
#include "client/search_space_generator.h"
#include "nlohmann/json.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s SCHEDULER MODEL.pt TRAIN EVAL\n", argv[0]);
    return 2;
  }
  using nlohmann::json;
  using namespace autocompress;
  SearchSpaceGenerator generator;
  generator
      .AddConfig("level", json::parse(R"([{"sparsity": {"_type": "uniform", "_value": [0.01, 0.99]},
                                                "op_types": ["default"]}])"))
      .IgnoreError();
  generator
      .AddConfig("qat", json::parse(R"([{"quant_types": ["weight", "output"],
                                              "quant_bits": {"weight": 8, "output": 8},
                                              "op_types": ["Conv2d", "Linear"]}])"))
      .IgnoreError();
  Experiment experiment;
  experiment.set_name("auto compression torch example")
      .set_trial_concurrency(1)
      .set_max_trial_number(10)
      .set_search_space(generator)
      .set_tuner("TPE")
      .set_objective("accuracy", v1::OPTIMIZE_MODE_MAXIMIZE)
      .set_model(argv[2])
      .set_data(v1::DATASET_FORMAT_IDX, argv[3], argv[4]);
  experiment.spec().mutable_recipe()->set_finetune_epochs(2);

  ClientOptions options;
  options.address = argv[1];
  auto client = Client::Connect(options);
  if (!client.ok()) return 1;
  auto done = experiment.Run(**client);  // uploads, creates, follows to the end
  if (!done.ok()) {
    std::fprintf(stderr, "%s\n", done.status().ToString().c_str());
    return 1;
  }
  std::printf("%s: best trial %s\n", done->id().c_str(), done->best_trial_id().c_str());
  return 0;
}
