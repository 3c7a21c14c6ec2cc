// Experiment: the seed's AutoCompressionExperiment for C++ users. It holds a spec with
// local files for the model and data, set field by field (as the seed's config object
// is) or read from an experiment file; Start() uploads the files and creates the
// experiment, Run() also follows it to the end.
//
//   autocompress::SearchSpaceGenerator generator;
//   generator.AddConfig("level", R"([{"sparsity": {"_type": "uniform", "_value": [0.01, 0.99]},
//                                     "op_types": ["default"]}])"_json);
//   autocompress::Experiment experiment;
//   experiment.set_name("auto compression torch example")
//       .set_search_space(generator).set_trial_concurrency(1).set_max_trial_number(10)
//       .set_tuner("TPE").set_objective("accuracy", v1::OPTIMIZE_MODE_MAXIMIZE)
//       .set_model("model.pt").set_data(v1::DATASET_FORMAT_IDX, "data/train", "data/t10k");
//   auto done = experiment.Run(*client);
//
// Not thread-safe (a builder); Run blocks.
#ifndef AUTOCOMPRESS_CLIENT_EXPERIMENT_H_
#define AUTOCOMPRESS_CLIENT_EXPERIMENT_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "autocompress/v1/scheduler.pb.h"
#include "client/client.h"
#include "client/experiment_file.h"
#include "client/search_space_generator.h"

namespace autocompress {

class Experiment {
 public:
  // Defaults as an experiment file without those fields: TPE, accuracy maximized, one
  // trial at a time, SGD lr 0.01, cross-entropy, top-1 accuracy, every export.
  Experiment();
  explicit Experiment(ExperimentFile file) : file_(std::move(file)) {}

  Experiment& set_name(const std::string& name);
  Experiment& set_search_space(const SearchSpaceGenerator& generator);
  Experiment& set_trial_concurrency(int n);
  Experiment& set_max_trial_number(int n);
  Experiment& set_tuner(const std::string& name, const std::string& class_args_json = "{}");
  Experiment& set_objective(const std::string& metric, v1::OptimizeMode mode);
  // Local files; relative paths are taken from the current directory.
  Experiment& set_model(const std::string& path);
  Experiment& set_data(v1::DatasetFormat format, const std::string& train, const std::string& eval);
  // Everything else (recipe, limits, resources, export) directly.
  v1::ExperimentSpec& spec() { return file_.spec; }
  const ExperimentFile& file() const { return file_; }

  // Uploads the model and data (folders and IDX prefixes as tar archives) and fills in
  // the spec's artifact references; files already stored are not sent twice.
  absl::Status Upload(Client& client);
  // Upload, then CreateExperiment (idempotent by `request_id` when given).
  absl::StatusOr<v1::Experiment> Start(Client& client, const std::string& request_id = "");
  // Follows an experiment to its end: `on_event` sees every event; returns the
  // experiment in its final state. Cancelled when client.CancelWatches() interrupts it.
  static absl::StatusOr<v1::Experiment> Follow(
      Client& client, const std::string& experiment_id,
      const std::function<void(const v1::ExperimentEvent&)>& on_event = nullptr);
  // Start, then Follow.
  absl::StatusOr<v1::Experiment> Run(
      Client& client, const std::function<void(const v1::ExperimentEvent&)>& on_event = nullptr);

 private:
  ExperimentFile file_;
};

// Uploads one dataset path (file, folder or IDX prefix) as a DATASET artifact.
absl::StatusOr<v1::ArtifactRef> UploadDataset(Client& client, const std::string& path);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_EXPERIMENT_H_
