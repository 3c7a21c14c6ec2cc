#include "scheduler_service/experiment_spec_validation.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autocompress/v1/tuner.pb.h"
#include "nlohmann/json.hpp"
#include "tuner_service/objective.h"

namespace autocompress::scheduler {
namespace {

constexpr size_t kMaxNameLength = 256;
constexpr size_t kMaxLabelLength = 63;
constexpr int kMaxLabels = 64;
constexpr int kMaxRetries = 100;
constexpr int kMaxGpus = 64;
constexpr int kMaxEpochs = 10000;

class Issues {
 public:
  void Add(std::string path, std::string message) {
    issues_.push_back({std::move(path), std::move(message)});
  }
  std::vector<SpecIssue> Take() { return std::move(issues_); }

 private:
  std::vector<SpecIssue> issues_;
};

// Kubernetes' label rule: 1..63 of [A-Za-z0-9._-], alphanumeric at both ends.
bool IsLabelToken(const std::string& text) {
  if (text.empty() || text.size() > kMaxLabelLength) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return absl::ascii_isalnum(text.front()) && absl::ascii_isalnum(text.back());
}

void CheckLabels(const google::protobuf::Map<std::string, std::string>& labels,
                 const std::string& path, bool values_may_be_empty, Issues& issues) {
  if (labels.size() > kMaxLabels) {
    issues.Add(path, absl::StrCat("at most ", kMaxLabels, " labels, got ", labels.size()));
  }
  for (const auto& [key, value] : labels) {
    if (!IsLabelToken(key)) {
      issues.Add(absl::StrCat(path, "[\"", key, "\"]"),
                 "key must be 1-63 characters of [A-Za-z0-9._-], starting and ending "
                 "alphanumeric");
    }
    if (!(values_may_be_empty && value.empty()) && !IsLabelToken(value)) {
      issues.Add(absl::StrCat(path, "[\"", key, "\"]"),
                 absl::StrCat("value \"", value,
                              "\" must be 1-63 characters of [A-Za-z0-9._-], starting and "
                              "ending alphanumeric"));
    }
  }
}

void CheckArgsJson(const std::string& json, const std::string& path, Issues& issues) {
  if (json.empty()) return;
  nlohmann::json parsed = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    issues.Add(path, "not valid JSON");
  } else if (!parsed.is_object()) {
    issues.Add(path, "must be a JSON object, e.g. {\"start_step\": 2}");
  }
}

bool IsMetricName(const std::string& name) {
  if (name.empty() || !absl::ascii_islower(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') return false;
  }
  return true;
}

void CheckObjective(const v1::ObjectiveSpec& objective, Issues& issues) {
  if (absl::Status s = tuner::ValidateObjective(objective, "spec.objective"); !s.ok()) {
    // "spec.objective.primary.metric: ..." -> path and message.
    const std::string text(s.message());
    const size_t colon = text.find(": ");
    if (colon == std::string::npos) {
      issues.Add("spec.objective", text);
    } else {
      issues.Add(text.substr(0, colon), text.substr(colon + 2));
    }
  }
  std::set<std::string> objectives;
  auto check_objective = [&](const v1::Objective& o, const std::string& path) {
    if (!o.metric().empty() && !IsMetricName(o.metric())) {
      issues.Add(path + ".metric",
                 absl::StrCat("\"", o.metric(), "\" is not a metric name (lower snake_case)"));
    }
    if (!o.metric().empty() && !objectives.insert(o.metric()).second) {
      issues.Add(path + ".metric", absl::StrCat("\"", o.metric(), "\" is already an objective"));
    }
  };
  check_objective(objective.primary(), "spec.objective.primary");
  for (int i = 0; i < objective.secondary_size(); ++i) {
    check_objective(objective.secondary(i), absl::StrCat("spec.objective.secondary[", i, "]"));
  }
  for (int i = 0; i < objective.constraints_size(); ++i) {
    const std::string& metric = objective.constraints(i).metric();
    if (!metric.empty() && !IsMetricName(metric)) {
      issues.Add(absl::StrCat("spec.objective.constraints[", i, "].metric"),
                 absl::StrCat("\"", metric, "\" is not a metric name (lower snake_case)"));
    }
  }
}

void CheckDuration(const google::protobuf::Duration& duration, bool set, const std::string& path,
                   Issues& issues) {
  if (!set) return;
  if (duration.nanos() < 0 || duration.nanos() >= 1'000'000'000) {
    issues.Add(path, absl::StrCat("nanos must be in [0, 1e9), got ", duration.nanos()));
  } else if (duration.seconds() < 0 || (duration.seconds() == 0 && duration.nanos() == 0)) {
    issues.Add(path, "must be unset (no limit) or positive");
  }
}

void CheckLimits(const v1::ExperimentLimits& limits, Issues& issues) {
  if (limits.trial_concurrency() < 1) {
    issues.Add("spec.limits.trial_concurrency",
               absl::StrCat("must be >= 1, got ", limits.trial_concurrency()));
  }
  if (limits.max_trial_number() < 0) {
    issues.Add("spec.limits.max_trial_number",
               absl::StrCat("must be >= 0 (0 = no limit), got ", limits.max_trial_number()));
  }
  if (limits.max_retries() < 0 || limits.max_retries() > kMaxRetries) {
    issues.Add("spec.limits.max_retries",
               absl::StrCat("must be in [0, ", kMaxRetries, "] (0 = the default), got ",
                            limits.max_retries()));
  }
  CheckDuration(limits.max_experiment_duration(), limits.has_max_experiment_duration(),
                "spec.limits.max_experiment_duration", issues);
  CheckDuration(limits.max_trial_duration(), limits.has_max_trial_duration(),
                "spec.limits.max_trial_duration", issues);
}

void CheckResources(const v1::ResourceSpec& resources, Issues& issues) {
  if (resources.gpus() < 0 || resources.gpus() > kMaxGpus) {
    issues.Add("spec.trial_resources.gpus",
               absl::StrCat("must be in [0, ", kMaxGpus, "], got ", resources.gpus()));
  }
  if (resources.min_gpu_memory_bytes() < 0) {
    issues.Add("spec.trial_resources.min_gpu_memory_bytes",
               absl::StrCat("must be >= 0, got ", resources.min_gpu_memory_bytes()));
  }
  if (resources.min_gpu_memory_bytes() > 0 && resources.gpus() == 0) {
    issues.Add("spec.trial_resources.min_gpu_memory_bytes", "set, but the trial asks for no GPU");
  }
  if (resources.cpu_threads() < 0) {
    issues.Add("spec.trial_resources.cpu_threads",
               absl::StrCat("must be >= 0 (0 = an even share), got ", resources.cpu_threads()));
  }
  CheckLabels(resources.worker_selector(), "spec.trial_resources.worker_selector",
              /*values_may_be_empty=*/false, issues);
}

void CheckArtifact(const v1::ArtifactRef& ref, const std::string& path,
                   const std::function<bool(const v1::ArtifactRef&)>& artifact_present,
                   Issues& issues) {
  const std::string& sha = ref.sha256();
  bool hex = sha.size() == 64;
  for (char c : sha) hex = hex && (absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'));
  if (sha.empty()) {
    issues.Add(path, "required: the SHA-256 of an uploaded artifact");
  } else if (!hex) {
    issues.Add(path + ".sha256", "must be 64 lowercase hex characters");
  } else if (!artifact_present(ref)) {
    issues.Add(path, absl::StrCat("artifact ", sha, " not found; upload it first"));
  }
}

void CheckRecipe(const v1::TrainingRecipe& recipe,
                 const std::function<bool(const v1::ArtifactRef&)>& artifact_present,
                 Issues& issues) {
  const v1::DatasetSpec& dataset = recipe.dataset();
  const bool custom = !recipe.module().empty();
  if (dataset.format() == v1::DATASET_FORMAT_UNSPECIFIED && !custom) {
    issues.Add("spec.recipe.dataset.format", "required (e.g. DATASET_FORMAT_IDX)");
  }
  if (!custom || dataset.has_train()) {
    CheckArtifact(dataset.train(), "spec.recipe.dataset.train", artifact_present, issues);
  }
  if (!custom || dataset.has_eval()) {
    CheckArtifact(dataset.eval(), "spec.recipe.dataset.eval", artifact_present, issues);
  }
  if (!custom && dataset.batch_size() < 1) {
    issues.Add("spec.recipe.dataset.batch_size",
               absl::StrCat("must be >= 1, got ", dataset.batch_size()));
  }
  if (dataset.eval_batch_size() < 0) {
    issues.Add("spec.recipe.dataset.eval_batch_size",
               absl::StrCat("must be >= 0 (0 = batch_size), got ", dataset.eval_batch_size()));
  }
  if (dataset.mean_size() != dataset.stddev_size()) {
    issues.Add(
        "spec.recipe.dataset.stddev",
        absl::StrCat("has ", dataset.stddev_size(), " values but mean has ", dataset.mean_size()));
  }
  for (int i = 0; i < dataset.stddev_size(); ++i) {
    if (!(dataset.stddev(i) > 0) || !std::isfinite(dataset.stddev(i))) {
      issues.Add(absl::StrCat("spec.recipe.dataset.stddev[", i, "]"),
                 absl::StrCat("must be positive and finite, got ", dataset.stddev(i)));
    }
  }
  const v1::OptimizerSpec& optimizer = recipe.optimizer();
  if (!custom) {
    if (optimizer.name().empty())
      issues.Add("spec.recipe.optimizer.name", "required (sgd or adam)");
    if (!(optimizer.learning_rate() > 0) || !std::isfinite(optimizer.learning_rate())) {
      issues.Add("spec.recipe.optimizer.learning_rate",
                 absl::StrCat("must be positive and finite, got ", optimizer.learning_rate()));
    }
    if (recipe.criterion().empty()) {
      issues.Add("spec.recipe.criterion", "required (cross_entropy or nll)");
    }
    if (recipe.evaluator().empty()) {
      issues.Add("spec.recipe.evaluator", "required (e.g. top1_accuracy)");
    }
  }
  if (optimizer.momentum() < 0 || optimizer.momentum() >= 1) {
    issues.Add("spec.recipe.optimizer.momentum",
               absl::StrCat("must be in [0, 1), got ", optimizer.momentum()));
  }
  if (optimizer.weight_decay() < 0 || !std::isfinite(optimizer.weight_decay())) {
    issues.Add("spec.recipe.optimizer.weight_decay",
               absl::StrCat("must be >= 0, got ", optimizer.weight_decay()));
  }
  struct Count {
    const char* field;
    int value;
  };
  for (const Count& count : {Count{"finetune_epochs", recipe.finetune_epochs()},
                             Count{"sparsifying_epochs", recipe.sparsifying_epochs()},
                             Count{"max_train_batches", recipe.max_train_batches()},
                             Count{"max_eval_batches", recipe.max_eval_batches()}}) {
    const int cap = absl::string_view(count.field).find("epochs") != absl::string_view::npos
                        ? kMaxEpochs
                        : 1 << 30;
    if (count.value < 0 || count.value > cap) {
      issues.Add(absl::StrCat("spec.recipe.", count.field),
                 absl::StrCat("must be in [0, ", cap, "], got ", count.value));
    }
  }
  CheckArgsJson(recipe.module_args_json(), "spec.recipe.module_args_json", issues);
}

}  // namespace

std::vector<SpecIssue> ValidateExperimentSpec(
    const v1::ExperimentSpec& spec,
    const std::function<bool(const v1::ArtifactRef&)>& artifact_present) {
  Issues issues;
  if (spec.name().size() > kMaxNameLength) {
    issues.Add("spec.name",
               absl::StrCat("at most ", kMaxNameLength, " characters, got ", spec.name().size()));
  }
  CheckLabels(spec.labels(), "spec.labels", /*values_may_be_empty=*/true, issues);
  if (spec.search_space_json().empty()) {
    issues.Add("spec.search_space_json", "required: a search space in NNI's JSON format");
  }
  if (spec.tuner().name().empty()) issues.Add("spec.tuner.name", "required (e.g. tpe, random)");
  CheckArgsJson(spec.tuner().args_json(), "spec.tuner.args_json", issues);
  CheckArgsJson(spec.assessor().args_json(), "spec.assessor.args_json", issues);
  CheckObjective(spec.objective(), issues);
  CheckLimits(spec.limits(), issues);
  CheckResources(spec.trial_resources(), issues);
  CheckArtifact(spec.model(), "spec.model", artifact_present, issues);
  CheckRecipe(spec.recipe(), artifact_present, issues);
  if (spec.export_options().keep_best() < 0) {
    issues.Add("spec.export_options.keep_best",
               absl::StrCat("must be >= 0 (0 = all), got ", spec.export_options().keep_best()));
  }
  return issues.Take();
}

std::string FormatIssues(const std::vector<SpecIssue>& issues) {
  std::vector<std::string> parts;
  for (const SpecIssue& issue : issues)
    parts.push_back(absl::StrCat(issue.path, ": ", issue.message));
  return absl::StrCat(
      issues.size(), issues.size() == 1 ? " problem: " : " problems: ", absl::StrJoin(parts, "; "));
}

}  // namespace autocompress::scheduler
