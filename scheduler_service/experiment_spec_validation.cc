#include "scheduler_service/experiment_spec_validation.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "autocompress/v1/tuner.pb.h"
#include "common/sha256.h"
#include "compression/algorithm_registry.h"
#include "nlohmann/json.hpp"
#include "tuner_service/objective.h"

namespace autocompress::scheduler {
namespace {

constexpr size_t kMaxNameLength = 256;
constexpr size_t kMaxLabelLength = 63;  // Kubernetes' limit for a label name or value
constexpr int kMaxLabels = 64;
constexpr size_t kMaxMetricNameLength = 128;
constexpr int kMaxObjectives = 32;  // secondary objectives, and constraints, each
constexpr int kMaxRetries = 100;
constexpr int kMaxGpus = 64;
constexpr int kMaxCpuThreads = 4096;
constexpr int kMaxEpochs = 10000;
// google.protobuf.Duration's range: 10,000 years.
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;

using ArtifactPresent = std::function<bool(const v1::ArtifactRef&)>;

class Issues {
 public:
  void Add(std::string path, std::string message) {
    issues_.push_back({std::move(path), std::move(message)});
  }
  // A status whose message reads "path: message".
  void AddStatus(const absl::Status& status) {
    const std::string text(status.message());
    const size_t colon = text.find(": ");
    if (colon == std::string::npos) {
      Add("spec", text);
    } else {
      Add(text.substr(0, colon), text.substr(colon + 2));
    }
  }
  std::vector<SpecIssue> Take() { return std::move(issues_); }

 private:
  std::vector<SpecIssue> issues_;
};

// ---- Names, labels, JSON ---------------------------------------------------------------

constexpr char kLabelRule[] =
    "1-63 characters of [A-Za-z0-9._-], starting and ending with a letter or digit "
    "(Kubernetes' label rule)";

// Kubernetes' label rule for names (non-empty) and values (may be empty).
bool IsLabelText(const std::string& text, bool may_be_empty) {
  if (text.empty()) return may_be_empty;
  if (text.size() > kMaxLabelLength) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return absl::ascii_isalnum(text.front()) && absl::ascii_isalnum(text.back());
}

void CheckLabels(const google::protobuf::Map<std::string, std::string>& labels,
                 const std::string& path, Issues& issues) {
  if (labels.size() > kMaxLabels) {
    issues.Add(path, absl::StrCat("at most ", kMaxLabels, " labels, got ", labels.size()));
  }
  // Sorted, so the issues come in the same order every time.
  const std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  for (const auto& [key, value] : sorted) {
    const std::string entry = absl::StrCat(path, "[\"", key, "\"]");
    if (!IsLabelText(key, /*may_be_empty=*/false)) {
      issues.Add(entry, absl::StrCat("key must be ", kLabelRule));
    }
    if (!IsLabelText(value, /*may_be_empty=*/true)) {
      issues.Add(entry, absl::StrCat("value \"", value, "\" must be empty or ", kLabelRule));
    }
  }
}

void CheckJsonObject(const std::string& json, const std::string& path, Issues& issues) {
  if (json.empty()) return;
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {  // also out_of_range: a number beyond double
    issues.Add(path, absl::StrCat("not valid JSON: ", e.what()));
    return;
  }
  if (!parsed.is_object()) {
    issues.Add(
        path, absl::StrCat("must be a JSON object such as {\"key\": 1}, got ", parsed.type_name()));
  }
}

void CheckAlgorithms(const v1::ExperimentSpec& spec, Issues& issues) {
  if (spec.tuner().name().empty()) issues.Add("spec.tuner.name", "required (e.g. tpe, random)");
  CheckJsonObject(spec.tuner().args_json(), "spec.tuner.args_json", issues);
  CheckJsonObject(spec.assessor().args_json(), "spec.assessor.args_json", issues);
  if (spec.assessor().name().empty() && !spec.assessor().args_json().empty()) {
    issues.Add("spec.assessor.args_json", "set, but no assessor is named in spec.assessor.name");
  }
}

// The algorithms a search space offers (NNI's `algorithm_name` choice) must be ones a
// worker has: else every trial that draws one fails on its worker. The tuner reports the
// space's syntax; this looks only at well-formed options.
void CheckSearchSpaceAlgorithms(const std::string& json, Issues& issues) {
  const nlohmann::json space = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!space.is_object() || !space.contains("algorithm_name")) return;
  const nlohmann::json& choice = space["algorithm_name"];
  if (!choice.is_object() || !choice.contains("_value") || !choice["_value"].is_array()) return;
  const nlohmann::json& options = choice["_value"];
  for (size_t i = 0; i < options.size(); ++i) {
    if (!options[i].is_object() || !options[i].contains("_name") ||
        !options[i]["_name"].is_string()) {
      continue;
    }
    absl::StatusOr<const compression::AlgorithmSpec*> found =
        compression::FindAlgorithm(options[i]["_name"].get<std::string>());
    if (!found.ok()) {
      issues.Add(absl::StrCat("spec.search_space_json.algorithm_name._value[", i, "]._name"),
                 std::string(found.status().message()));
    }
  }
}

// ---- Objective ---------------------------------------------------------------------------

// Metric names are lower snake_case (v1::Metric.name), e.g. "top1_accuracy".
void CheckMetricName(const std::string& metric, const std::string& path, Issues& issues) {
  if (metric.empty()) return;  // the tuner's rule reports it
  bool ok = absl::ascii_islower(metric[0]) && metric.size() <= kMaxMetricNameLength;
  for (char c : metric) ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_');
  if (!ok) {
    issues.Add(path,
               absl::StrCat("\"", metric, "\" is not a metric name: lower snake_case (",
                            "[a-z][a-z0-9_]*), at most ", kMaxMetricNameLength, " characters"));
  }
}

// The tuner's ValidateObjective stops at the first problem. Asking it about one element
// at a time, with valid stand-ins before it so that the index in its path stays right,
// reports every element's problem by the one rule.
void CheckObjectiveByTunerRule(const v1::ObjectiveSpec& objective, Issues& issues) {
  v1::Objective good;
  good.set_metric("stand_in");
  good.set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
  v1::MetricConstraint good_constraint;
  good_constraint.set_metric("stand_in");
  good_constraint.set_comparison(v1::COMPARISON_LESS_EQUAL);
  auto ask = [&issues](const v1::ObjectiveSpec& one) {
    if (absl::Status s = tuner::ValidateObjective(one, "spec.objective"); !s.ok()) {
      issues.AddStatus(s);
    }
  };
  v1::ObjectiveSpec one;
  if (objective.has_primary()) *one.mutable_primary() = objective.primary();
  ask(one);
  for (int i = 0; i < objective.secondary_size() && i < kMaxObjectives; ++i) {
    one.Clear();
    *one.mutable_primary() = good;
    for (int k = 0; k < i; ++k) *one.add_secondary() = good;
    *one.add_secondary() = objective.secondary(i);
    ask(one);
  }
  for (int i = 0; i < objective.constraints_size() && i < kMaxObjectives; ++i) {
    one.Clear();
    *one.mutable_primary() = good;
    for (int k = 0; k < i; ++k) *one.add_constraints() = good_constraint;
    *one.add_constraints() = objective.constraints(i);
    ask(one);
  }
}

// A `*_drop` metric comes from the baseline trial; without one it never appears.
void CheckDropNeedsBaseline(const std::string& metric, bool skip_baseline, const std::string& path,
                            Issues& issues) {
  if (skip_baseline && absl::EndsWith(metric, "_drop")) {
    issues.Add(path, absl::StrCat("\"", metric,
                                  "\" is computed from the baseline trial, which "
                                  "skip_baseline turns off"));
  }
}

void CheckObjective(const v1::ObjectiveSpec& objective, bool skip_baseline, Issues& issues) {
  CheckObjectiveByTunerRule(objective, issues);
  if (objective.secondary_size() > kMaxObjectives) {
    issues.Add("spec.objective.secondary",
               absl::StrCat("at most ", kMaxObjectives, ", got ", objective.secondary_size()));
  }
  if (objective.constraints_size() > kMaxObjectives) {
    issues.Add("spec.objective.constraints",
               absl::StrCat("at most ", kMaxObjectives, ", got ", objective.constraints_size()));
  }
  std::set<std::string> optimized;
  auto check = [&](const v1::Objective& o, const std::string& path) {
    CheckMetricName(o.metric(), path + ".metric", issues);
    CheckDropNeedsBaseline(o.metric(), skip_baseline, path + ".metric", issues);
    if (!o.metric().empty() && !optimized.insert(o.metric()).second) {
      issues.Add(path + ".metric",
                 absl::StrCat("\"", o.metric(), "\" is already an objective of this experiment"));
    }
  };
  check(objective.primary(), "spec.objective.primary");
  for (int i = 0; i < objective.secondary_size(); ++i) {
    check(objective.secondary(i), absl::StrCat("spec.objective.secondary[", i, "]"));
  }
  for (int i = 0; i < objective.constraints_size(); ++i) {
    const std::string path = absl::StrCat("spec.objective.constraints[", i, "].metric");
    CheckMetricName(objective.constraints(i).metric(), path, issues);
    CheckDropNeedsBaseline(objective.constraints(i).metric(), skip_baseline, path, issues);
  }
}

// ---- Limits and resources ------------------------------------------------------------------

// An optional limit: unset means none; set, it must be a valid positive duration.
void CheckLimitDuration(const google::protobuf::Duration& duration, bool set,
                        const std::string& path, Issues& issues) {
  if (!set) return;
  if (duration.nanos() < 0 || duration.nanos() >= 1'000'000'000) {
    issues.Add(path, absl::StrCat("nanos must be in [0, 999999999], got ", duration.nanos()));
  } else if (duration.seconds() < 0 || duration.seconds() > kMaxDurationSeconds) {
    issues.Add(path, absl::StrCat("seconds must be in [0, ", kMaxDurationSeconds, "], got ",
                                  duration.seconds()));
  } else if (duration.seconds() == 0 && duration.nanos() == 0) {
    issues.Add(path, "must be positive when set; leave it unset for no limit");
  }
}

void CheckLimits(const v1::ExperimentLimits& limits, Issues& issues) {
  if (limits.trial_concurrency() < 1) {
    issues.Add("spec.limits.trial_concurrency",
               absl::StrCat("must be >= 1, got ", limits.trial_concurrency()));
  }
  if (limits.max_trial_number() < 0 || limits.max_trial_number() > kMaxTrialNumber) {
    issues.Add("spec.limits.max_trial_number",
               absl::StrCat("must be in [0, ", kMaxTrialNumber, "] (0 = up to ", kMaxTrialNumber,
                            "), got ", limits.max_trial_number()));
  }
  if (limits.max_retries() < 0 || limits.max_retries() > kMaxRetries) {
    issues.Add("spec.limits.max_retries",
               absl::StrCat("must be in [0, ", kMaxRetries, "] (0 = the default, 3), got ",
                            limits.max_retries()));
  }
  CheckLimitDuration(limits.max_experiment_duration(), limits.has_max_experiment_duration(),
                     "spec.limits.max_experiment_duration", issues);
  CheckLimitDuration(limits.max_trial_duration(), limits.has_max_trial_duration(),
                     "spec.limits.max_trial_duration", issues);
}

void CheckResources(const v1::ResourceSpec& resources, Issues& issues) {
  if (resources.gpus() < 0 || resources.gpus() > kMaxGpus) {
    issues.Add("spec.trial_resources.gpus",
               absl::StrCat("must be in [0, ", kMaxGpus, "], got ", resources.gpus()));
  }
  if (resources.min_gpu_memory_bytes() < 0) {
    issues.Add("spec.trial_resources.min_gpu_memory_bytes",
               absl::StrCat("must be >= 0 (0 = any), got ", resources.min_gpu_memory_bytes()));
  } else if (resources.min_gpu_memory_bytes() > 0 && resources.gpus() == 0) {
    issues.Add("spec.trial_resources.min_gpu_memory_bytes",
               "set, but the trial asks for no GPU (spec.trial_resources.gpus is 0)");
  }
  if (resources.cpu_threads() < 0 || resources.cpu_threads() > kMaxCpuThreads) {
    issues.Add("spec.trial_resources.cpu_threads",
               absl::StrCat("must be in [0, ", kMaxCpuThreads, "] (0 = an even share), got ",
                            resources.cpu_threads()));
  }
  CheckLabels(resources.worker_selector(), "spec.trial_resources.worker_selector", issues);
}

// ---- Artifacts and the recipe --------------------------------------------------------------

void CheckArtifact(const v1::ArtifactRef& ref, const std::string& path,
                   const ArtifactPresent& artifact_present, Issues& issues) {
  const std::string& sha = ref.sha256();
  const bool hex = IsSha256Hex(sha);
  if (sha.empty()) {
    issues.Add(path + ".sha256", "required: the SHA-256 of an uploaded artifact");
  } else if (!hex) {
    issues.Add(path + ".sha256",
               absl::StrCat("must be 64 lowercase hex characters, got \"", sha, "\""));
  } else if (!artifact_present(ref)) {
    issues.Add(path, absl::StrCat("artifact ", sha, " not found; upload it first"));
  }
}

// A custom `module` replaces the declarative recipe: then only what is set is checked.
void CheckDataset(const v1::DatasetSpec& dataset, bool custom,
                  const ArtifactPresent& artifact_present, Issues& issues) {
  if (!v1::DatasetFormat_IsValid(dataset.format())) {
    issues.Add("spec.recipe.dataset.format", absl::StrCat("unknown value ", dataset.format()));
  } else if (dataset.format() == v1::DATASET_FORMAT_UNSPECIFIED && !custom) {
    issues.Add("spec.recipe.dataset.format",
               "required: DATASET_FORMAT_IDX, DATASET_FORMAT_TENSORS or "
               "DATASET_FORMAT_IMAGE_FOLDER");
  }
  if (!custom || dataset.has_train()) {
    CheckArtifact(dataset.train(), "spec.recipe.dataset.train", artifact_present, issues);
  }
  if (!custom || dataset.has_eval()) {
    CheckArtifact(dataset.eval(), "spec.recipe.dataset.eval", artifact_present, issues);
  }
  if (dataset.batch_size() < (custom ? 0 : 1)) {
    issues.Add("spec.recipe.dataset.batch_size",
               absl::StrCat("must be >= ", custom ? 0 : 1, ", got ", dataset.batch_size()));
  }
  if (dataset.eval_batch_size() < 0) {
    issues.Add("spec.recipe.dataset.eval_batch_size",
               absl::StrCat("must be >= 0 (0 = batch_size), got ", dataset.eval_batch_size()));
  }
  if (dataset.mean_size() != dataset.stddev_size()) {
    issues.Add("spec.recipe.dataset.stddev",
               absl::StrCat("has ", dataset.stddev_size(), " values but mean has ",
                            dataset.mean_size(), "; give one of each per channel"));
  }
  for (int i = 0; i < dataset.mean_size(); ++i) {
    if (!std::isfinite(dataset.mean(i))) {
      issues.Add(absl::StrCat("spec.recipe.dataset.mean[", i, "]"),
                 absl::StrCat("must be finite, got ", dataset.mean(i)));
    }
  }
  for (int i = 0; i < dataset.stddev_size(); ++i) {
    if (!(dataset.stddev(i) > 0) || !std::isfinite(dataset.stddev(i))) {
      issues.Add(absl::StrCat("spec.recipe.dataset.stddev[", i, "]"),
                 absl::StrCat("must be positive and finite, got ", dataset.stddev(i)));
    }
  }
}

void CheckOptimizer(const v1::OptimizerSpec& optimizer, bool custom, Issues& issues) {
  if (optimizer.name().empty() && !custom) {
    issues.Add("spec.recipe.optimizer.name", "required (sgd or adam)");
  }
  const double lr = optimizer.learning_rate();
  if ((!custom || lr != 0) && !(lr > 0 && std::isfinite(lr))) {
    issues.Add("spec.recipe.optimizer.learning_rate",
               absl::StrCat("must be positive and finite, got ", lr));
  }
  if (!(optimizer.momentum() >= 0 && optimizer.momentum() < 1)) {
    issues.Add("spec.recipe.optimizer.momentum",
               absl::StrCat("must be in [0, 1), got ", optimizer.momentum()));
  }
  if (!(optimizer.weight_decay() >= 0 && std::isfinite(optimizer.weight_decay()))) {
    issues.Add("spec.recipe.optimizer.weight_decay",
               absl::StrCat("must be >= 0 and finite, got ", optimizer.weight_decay()));
  }
}

void CheckRecipe(const v1::TrainingRecipe& recipe, const ArtifactPresent& artifact_present,
                 Issues& issues) {
  const bool custom = !recipe.module().empty();
  CheckDataset(recipe.dataset(), custom, artifact_present, issues);
  CheckOptimizer(recipe.optimizer(), custom, issues);
  if (recipe.criterion().empty() && !custom) {
    issues.Add("spec.recipe.criterion", "required (cross_entropy or nll) unless module is set");
  }
  if (recipe.evaluator().empty() && !custom) {
    issues.Add("spec.recipe.evaluator", "required (e.g. top1_accuracy) unless module is set");
  }
  struct Count {
    const char* field;
    int value;
    int max;
  };
  for (const Count& count : {Count{"finetune_epochs", recipe.finetune_epochs(), kMaxEpochs},
                             Count{"sparsifying_epochs", recipe.sparsifying_epochs(), kMaxEpochs},
                             Count{"max_train_batches", recipe.max_train_batches(), INT32_MAX},
                             Count{"max_eval_batches", recipe.max_eval_batches(), INT32_MAX}}) {
    if (count.value < 0 || count.value > count.max) {
      issues.Add(absl::StrCat("spec.recipe.", count.field),
                 count.max == INT32_MAX
                     ? absl::StrCat("must be >= 0 (0 = no cap), got ", count.value)
                     : absl::StrCat("must be in [0, ", count.max, "], got ", count.value));
    }
  }
  CheckJsonObject(recipe.module_args_json(), "spec.recipe.module_args_json", issues);
  if (!custom && !recipe.module_args_json().empty()) {
    issues.Add("spec.recipe.module_args_json", "set, but no module is named in spec.recipe.module");
  }
}

}  // namespace

std::vector<SpecIssue> ValidateExperimentSpec(const v1::ExperimentSpec& spec,
                                              const ArtifactPresent& artifact_present) {
  Issues issues;
  if (spec.name().size() > kMaxNameLength) {
    issues.Add("spec.name",
               absl::StrCat("at most ", kMaxNameLength, " characters, got ", spec.name().size()));
  }
  for (char c : spec.name()) {
    if (absl::ascii_iscntrl(c)) {
      issues.Add("spec.name", "must not contain control characters (newlines, tabs, ...)");
      break;
    }
  }
  CheckLabels(spec.labels(), "spec.labels", issues);
  if (spec.search_space_json().empty()) {
    issues.Add("spec.search_space_json", "required: a search space in NNI's JSON format");
  }
  CheckAlgorithms(spec, issues);
  CheckSearchSpaceAlgorithms(spec.search_space_json(), issues);
  CheckObjective(spec.objective(), spec.skip_baseline(), issues);
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
  for (const SpecIssue& issue : issues) {
    parts.push_back(absl::StrCat(issue.path, ": ", issue.message));
  }
  return absl::StrCat(
      issues.size(), issues.size() == 1 ? " problem: " : " problems: ", absl::StrJoin(parts, "; "));
}

}  // namespace autocompress::scheduler
