#include "client/experiment.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/archive.h"
#include "common/status_macros.h"

namespace autocompress {
namespace fs = std::filesystem;
namespace {

std::string Absolute(const std::string& path) {
  std::error_code error;
  return fs::absolute(path, error).lexically_normal().string();
}

bool IsFinal(v1::ExperimentState state) {
  return state == v1::EXPERIMENT_STATE_DONE || state == v1::EXPERIMENT_STATE_STOPPED ||
         state == v1::EXPERIMENT_STATE_FAILED;
}

}  // namespace

Experiment::Experiment() {
  std::vector<FileProblem> ignored;
  // The defaults of an experiment file, without its required parts.
  file_ = ParseExperimentText("{}", "<defaults>", ".", ignored);
  file_.spec.clear_search_space_json();
}

Experiment& Experiment::set_name(const std::string& name) {
  file_.spec.set_name(name);
  return *this;
}
Experiment& Experiment::set_search_space(const SearchSpaceGenerator& generator) {
  file_.spec.set_search_space_json(generator.Dumps());
  return *this;
}
Experiment& Experiment::set_trial_concurrency(int n) {
  file_.spec.mutable_limits()->set_trial_concurrency(n);
  return *this;
}
Experiment& Experiment::set_max_trial_number(int n) {
  file_.spec.mutable_limits()->set_max_trial_number(n);
  return *this;
}
Experiment& Experiment::set_tuner(const std::string& name, const std::string& class_args_json) {
  file_.spec.mutable_tuner()->set_name(name);
  file_.spec.mutable_tuner()->set_args_json(class_args_json);
  return *this;
}
Experiment& Experiment::set_objective(const std::string& metric, v1::OptimizeMode mode) {
  file_.spec.mutable_objective()->mutable_primary()->set_metric(metric);
  file_.spec.mutable_objective()->mutable_primary()->set_mode(mode);
  return *this;
}
Experiment& Experiment::set_model(const std::string& path) {
  file_.model_path = Absolute(path);
  return *this;
}
Experiment& Experiment::set_data(v1::DatasetFormat format, const std::string& train,
                                 const std::string& eval) {
  file_.spec.mutable_recipe()->mutable_dataset()->set_format(format);
  file_.train_path = train.empty() ? "" : Absolute(train);
  file_.eval_path = eval.empty() ? "" : Absolute(eval);
  return *this;
}

absl::StatusOr<v1::ArtifactRef> UploadDataset(Client& client, const std::string& path) {
  ASSIGN_OR_RETURN(auto members, DatasetMembers(path));
  if (members.empty()) {
    return client.Upload(path, fs::path(path).filename().string(), v1::ARTIFACT_KIND_DATASET);
  }
  const std::string tar =
      (fs::temp_directory_path() / absl::StrCat("autocompress-upload-", getpid(), "-",
                                                fs::path(path).filename().string(), ".tar"))
          .string();
  absl::Status written = WriteTar(std::move(members), tar);
  absl::StatusOr<v1::ArtifactRef> ref =
      written.ok() ? client.Upload(tar, fs::path(path).filename().string() + ".tar",
                                   v1::ARTIFACT_KIND_DATASET)
                   : absl::StatusOr<v1::ArtifactRef>(written);
  std::error_code error;
  fs::remove(tar, error);
  return ref;
}

absl::Status Experiment::Upload(Client& client) {
  if (file_.model_path.empty()) return absl::InvalidArgumentError("model: no file given");
  if (file_.eval_path.empty()) return absl::InvalidArgumentError("data.eval: no path given");
  ASSIGN_OR_RETURN(*file_.spec.mutable_model(),
                   client.Upload(file_.model_path, fs::path(file_.model_path).filename().string(),
                                 v1::ARTIFACT_KIND_MODEL));
  v1::DatasetSpec& data = *file_.spec.mutable_recipe()->mutable_dataset();
  ASSIGN_OR_RETURN(*data.mutable_eval(), UploadDataset(client, file_.eval_path));
  if (file_.train_path == file_.eval_path) {
    *data.mutable_train() = data.eval();
  } else if (!file_.train_path.empty()) {
    ASSIGN_OR_RETURN(*data.mutable_train(), UploadDataset(client, file_.train_path));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Experiment> Experiment::Start(Client& client, const std::string& request_id) {
  RETURN_IF_ERROR(Upload(client));
  return client.CreateExperiment(file_.spec, request_id);
}

absl::StatusOr<v1::Experiment> Experiment::Follow(
    Client& client, const std::string& experiment_id,
    const std::function<void(const v1::ExperimentEvent&)>& on_event) {
  RETURN_IF_ERROR(client.Watch(experiment_id, /*after_sequence=*/0, /*follow_resumes=*/false,
                               [&](const v1::ExperimentEvent& event) {
                                 if (on_event) on_event(event);
                                 return true;
                               }));
  ASSIGN_OR_RETURN(v1::Experiment experiment, client.GetExperiment(experiment_id));
  if (!IsFinal(experiment.state())) {
    return absl::InternalError(
        absl::StrCat("the watch of ", experiment_id, " ended while it is still running"));
  }
  return experiment;
}

absl::StatusOr<v1::Experiment> Experiment::Run(
    Client& client, const std::function<void(const v1::ExperimentEvent&)>& on_event) {
  ASSIGN_OR_RETURN(v1::Experiment started, Start(client));
  return Follow(client, started.id(), on_event);
}

}  // namespace autocompress
