#include "worker/trial_parameters.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "compression/algorithm_registry.h"
#include "nlohmann/json.hpp"

namespace autocompress::worker {
namespace {

// Ordered: config-list entries keep the order their keys came in.
using Json = nlohmann::ordered_json;

constexpr absl::string_view kChoiceKey = "algorithm_name";
constexpr absl::string_view kConfigPrefix = "config_list::";
constexpr absl::string_view kKwargPrefix = "parameter::";

absl::Status Invalid(const std::string& path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// A number the tuner produced for an integer field: quniform and randint may give 3.0.
absl::StatusOr<int64_t> IntegerOf(const Json& value, const std::string& path, int64_t min) {
  if (!value.is_number() || std::isnan(value.get<double>()) ||
      std::floor(value.get<double>()) != value.get<double>()) {
    return Invalid(path, absl::StrCat("expected an integer, got ", value.dump()));
  }
  const double v = value.get<double>();
  if (v < static_cast<double>(min) || v > 1e12) {
    return Invalid(path, absl::StrCat(value.dump(), " is outside [", min, ", 1e12]"));
  }
  return static_cast<int64_t>(v);
}

absl::StatusOr<double> DoubleOf(const Json& value, const std::string& path, double min,
                                bool min_exclusive) {
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    return Invalid(path, absl::StrCat("expected a finite number, got ", value.dump()));
  }
  const double v = value.get<double>();
  if (v < min || (min_exclusive && v == min)) {
    return Invalid(path,
                   absl::StrCat(value.dump(), " must be ", min_exclusive ? "> " : ">= ", min));
  }
  return v;
}

// The recipe fields a searched parameter may set, by the name it is searched under.
struct RecipeField {
  const char* name;
  std::function<absl::Status(const Json&, const std::string& path, v1::TrainingRecipe&)> set;
};

const std::vector<RecipeField>& RecipeFields() {
  static const auto* fields = new std::vector<RecipeField>{
      {"learning_rate",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<double> lr = DoubleOf(v, path, 0, /*min_exclusive=*/true);
         if (lr.ok()) r.mutable_optimizer()->set_learning_rate(*lr);
         return lr.status();
       }},
      {"momentum",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<double> m = DoubleOf(v, path, 0, false);
         if (m.ok() && *m >= 1) return Invalid(path, absl::StrCat(v.dump(), " must be < 1"));
         if (m.ok()) r.mutable_optimizer()->set_momentum(*m);
         return m.status();
       }},
      {"weight_decay",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<double> wd = DoubleOf(v, path, 0, false);
         if (wd.ok()) r.mutable_optimizer()->set_weight_decay(*wd);
         return wd.status();
       }},
      {"nesterov",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         if (!v.is_boolean()) return Invalid(path, absl::StrCat("expected a bool, got ", v.dump()));
         r.mutable_optimizer()->set_nesterov(v.get<bool>());
         return absl::OkStatus();
       }},
      {"optimizer",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         if (!v.is_string()) {
           return Invalid(path, absl::StrCat("expected an optimizer name, got ", v.dump()));
         }
         r.mutable_optimizer()->set_name(v.get<std::string>());
         return absl::OkStatus();
       }},
      {"batch_size",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<int64_t> n = IntegerOf(v, path, 1);
         if (n.ok()) r.mutable_dataset()->set_batch_size(static_cast<int32_t>(*n));
         return n.status();
       }},
      {"finetune_epochs",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<int64_t> n = IntegerOf(v, path, 0);
         if (n.ok()) r.set_finetune_epochs(static_cast<int32_t>(*n));
         return n.status();
       }},
      {"sparsifying_epochs",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<int64_t> n = IntegerOf(v, path, 0);
         if (n.ok()) r.set_sparsifying_epochs(static_cast<int32_t>(*n));
         return n.status();
       }},
      {"max_train_batches",
       [](const Json& v, const std::string& path, v1::TrainingRecipe& r) -> absl::Status {
         absl::StatusOr<int64_t> n = IntegerOf(v, path, 0);
         if (n.ok()) r.set_max_train_batches(static_cast<int32_t>(*n));
         return n.status();
       }},
  };
  return *fields;
}

std::vector<std::string> RecipeFieldNames() {
  std::vector<std::string> names;
  for (const RecipeField& f : RecipeFields()) names.push_back(f.name);
  return names;
}

// "Conv2d:Linear" -> ["Conv2d", "Linear"]; "" -> absent.
void SetSegment(Json& entry, const char* key, absl::string_view segment) {
  if (segment.empty()) return;
  entry[key] = absl::StrSplit(segment, ':');
}

// The config list of one branch from its `config_list::` members.
absl::StatusOr<Json> DecodeConfigList(const Json& branch, bool quantizer, const std::string& path) {
  // Groups by their segments ("op_types::op_names" or with quant_types), first-seen order.
  std::vector<std::pair<std::string, Json>> groups;
  const size_t parts = quantizer ? 5 : 4;
  for (const auto& [key, value] : branch.items()) {
    if (!absl::StartsWith(key, kConfigPrefix)) continue;
    const std::vector<absl::string_view> segments = absl::StrSplit(key, "::");
    if (segments.size() != parts || segments.back().empty()) {
      return Invalid(absl::StrCat(path, ".", key),
                     quantizer
                         ? "expected config_list::<quant_types>::<op_types>::<op_names>::<field>"
                         : "expected config_list::<op_types>::<op_names>::<field>");
    }
    const std::string group_key = absl::StrJoin(segments.begin() + 1, segments.end() - 1, "::");
    auto group = std::find_if(groups.begin(), groups.end(),
                              [&](const auto& g) { return g.first == group_key; });
    if (group == groups.end()) {
      Json entry = Json::object();
      size_t s = 1;
      if (quantizer) SetSegment(entry, "quant_types", segments[s++]);
      SetSegment(entry, "op_types", segments[s++]);
      SetSegment(entry, "op_names", segments[s]);
      groups.emplace_back(group_key, std::move(entry));
      group = groups.end() - 1;
    }
    group->second[std::string(segments.back())] = value;
  }
  Json config_list = Json::array();
  for (auto& [unused, entry] : groups) {
    // NNI drops an entry that selects no layers; so do we (pruners and quantizers alike).
    if (entry.contains("op_types") || entry.contains("op_names")) {
      config_list.push_back(std::move(entry));
    }
  }
  return config_list;
}

}  // namespace

absl::StatusOr<DecodedParameters> DecodeTrialParameters(absl::string_view parameters_json,
                                                        v1::TrainingRecipe& recipe) {
  Json parameters = Json::parse(parameters_json, nullptr, /*allow_exceptions=*/false);
  if (parameters.is_discarded() || !parameters.is_object()) {
    return Invalid("parameters", "not a JSON object");
  }
  DecodedParameters decoded;
  Json kwargs = Json::object();
  const compression::AlgorithmSpec* spec = nullptr;
  if (parameters.contains(kChoiceKey)) {
    const std::string path = absl::StrCat("parameters.", kChoiceKey);
    const Json& branch = parameters[std::string(kChoiceKey)];
    if (!branch.is_object() || !branch.contains("_name") || !branch["_name"].is_string()) {
      return Invalid(path, "expected the chosen branch: an object with a string _name");
    }
    absl::StatusOr<const compression::AlgorithmSpec*> found =
        compression::FindAlgorithm(branch["_name"].get<std::string>());
    if (!found.ok()) return Invalid(absl::StrCat(path, "._name"), found.status().message());
    spec = *found;
    decoded.algorithm = spec->name;
    const bool quantizer = spec->family == compression::AlgorithmFamily::kQuantizer;
    absl::StatusOr<Json> config_list = DecodeConfigList(branch, quantizer, path);
    if (!config_list.ok()) return config_list.status();
    decoded.config_list_json = config_list->dump();
    for (const auto& [key, value] : branch.items()) {
      if (key == "_name" || absl::StartsWith(key, kConfigPrefix)) continue;
      if (!absl::StartsWith(key, kKwargPrefix)) {
        return Invalid(absl::StrCat(path, ".", key),
                       "expected _name, config_list::... or parameter::<kwarg>");
      }
      kwargs[key.substr(kKwargPrefix.size())] = value;
    }
  }
  for (const auto& item : parameters.items()) {
    // Named, not a structured binding: C++17 lambdas cannot capture those (clang says so).
    const std::string& key = item.key();
    const Json& value = item.value();
    if (key == kChoiceKey) continue;
    const std::string path = absl::StrCat("parameters.", key);
    const bool is_kwarg =
        spec != nullptr && std::any_of(spec->kwargs.begin(), spec->kwargs.end(),
                                       [&](const auto& k) { return k.name == key; });
    if (is_kwarg) {
      if (kwargs.contains(key)) {
        return Invalid(path, absl::StrCat("also searched as ", kChoiceKey, ".parameter::", key));
      }
      kwargs[key] = value;
      continue;
    }
    const auto& fields = RecipeFields();
    auto field = std::find_if(fields.begin(), fields.end(),
                              [&](const RecipeField& f) { return key == f.name; });
    if (field == fields.end()) {
      return Invalid(path, absl::StrCat("neither a kwarg of ",
                                        spec != nullptr ? spec->name : "the (absent) algorithm",
                                        " nor a recipe field (",
                                        absl::StrJoin(RecipeFieldNames(), ", "), ")"));
    }
    if (absl::Status s = field->set(value, path, recipe); !s.ok()) return s;
    decoded.recipe_overrides.push_back(key);
  }
  decoded.kwargs_json = kwargs.dump();
  return decoded;
}

}  // namespace autocompress::worker
