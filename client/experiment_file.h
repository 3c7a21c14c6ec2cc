// The experiment file: what a user writes to run or submit an experiment, in YAML or
// JSON (one parser, yaml-cpp; JSON is read as YAML's flow style). NNI v2's field names
// in snake_case (experiment_name, search_space, tuner.class_args, trial_concurrency,
// max_trial_number, max_experiment_duration, trial_gpu_number, ...) plus the seed's
// auto-compression module made declarative (model, data, training, export). The full
// schema with an example is in client/README.md.
//
// The search space is written as the seed's user calls add_config: a list of
// {algorithm, config_list, kwargs} entries whose config fields may hold `_type`
// distributions; they are encoded into NNI's flattened form (SearchSpaceGenerator).
// NNI's dumped form (an object with `algorithm_name`) is taken verbatim, and so is
// `search_space_file` (a JSON file in that form).
//
// Reading reports every problem at once, each with the field's path and the line and
// column it was found at ("experiment.yaml:12:7: search_space[1].config_list[0].sparsity:
// 1.5 is outside (0, 1)"): unknown keys (with the nearest known one), wrong types,
// values out of range, files that do not exist, and the search space checked the way
// the tuner and the worker will check it (distributions, config-list fields, kwargs).
// Paths of files are relative to the experiment file's folder.
#ifndef AUTOCOMPRESS_CLIENT_EXPERIMENT_FILE_H_
#define AUTOCOMPRESS_CLIENT_EXPERIMENT_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "autocompress/v1/common.pb.h"

namespace autocompress {

// One problem of an experiment file. `line` and `column` are 1-based; 0 when the problem
// has no position (the file cannot be read).
struct FileProblem {
  std::string path;  // "search_space[1].config_list[0].sparsity"; "" for the whole file
  int line = 0;
  int column = 0;
  std::string message;
};

// "FILE:LINE:COLUMN: PATH: MESSAGE" (parts without a value left out).
std::string FormatProblem(const std::string& file, const FileProblem& problem);

// An experiment file read into a spec. Artifacts are named by local paths; the spec's
// ArtifactRefs are filled in by uploading them (Experiment::Run, `submit`).
struct ExperimentFile {
  std::string file;      // the path it was read from
  std::string base_dir;  // folder that relative paths resolve against (absolute)
  // Everything but the artifact references.
  v1::ExperimentSpec spec;
  // Absolute local paths: the model (a file), the training and evaluation data (a file,
  // or a folder that is sent as a tar archive); empty when not given.
  std::string model_path;
  std::string train_path;
  std::string eval_path;
};

// Reads `path`. Every problem goes to `problems` (in file order); the returned file is
// complete only when none was found.
ExperimentFile ReadExperimentFile(const std::string& path, std::vector<FileProblem>& problems);

// The same from text (tests, stdin); `name` is used in messages, `base_dir` resolves
// relative paths.
ExperimentFile ParseExperimentText(const std::string& text, const std::string& name,
                                   const std::string& base_dir, std::vector<FileProblem>& problems);

// ReadExperimentFile, with the problems as one InvalidArgument status ("N problems in
// FILE:" then one formatted problem per line).
absl::StatusOr<ExperimentFile> LoadExperimentFile(const std::string& path);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_EXPERIMENT_FILE_H_
