#include "client/search_space_generator.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compression/algorithm_registry.h"

namespace autocompress {
namespace {

using Json = nlohmann::json;

// op_types / op_names / quant_types joined with ':' (one key segment).
absl::StatusOr<std::string> Segment(const Json& entry, const char* field, const std::string& path) {
  if (!entry.contains(field)) return std::string();
  const Json& value = entry.at(field);
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".", field, ": expected a list of strings, got ", value.dump()));
  }
  std::vector<std::string> items;
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".", field, "[", i, "]: expected a string, got ", value[i].dump(),
                       " (layer selectors cannot be searched over; add one option per selection)"));
    }
    const std::string item = value[i].get<std::string>();
    if (item.empty() || item.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".", field, "[", i, "]: \"", item,
                                                     "\" must be non-empty and without ':'"));
    }
    items.push_back(item);
  }
  return absl::StrJoin(items, ":");
}

}  // namespace

Json WrapSearchValue(const Json& value) {
  if (!value.is_object()) return Json{{"_type", "choice"}, {"_value", Json::array({value})}};
  if (value.contains("_type")) return value;
  Json wrapped = Json::object();
  for (const auto& [name, member] : value.items()) wrapped[name] = WrapSearchValue(member);
  return wrapped;
}

absl::Status SearchSpaceGenerator::AddConfig(const std::string& algorithm, const Json& config_list,
                                             const Json& kwargs) {
  if (!compression::FindAlgorithm(algorithm).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm: unknown algorithm \"", algorithm,
                     "\"; known: ", absl::StrJoin(compression::AlgorithmNames(), ", ")));
  }
  const bool quantizer = compression::IsQuantizer(algorithm);
  if (!config_list.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config_list: expected a list of objects, got ", config_list.dump()));
  }
  if (!kwargs.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kwargs: expected an object, got ", kwargs.dump()));
  }
  Json option = Json::object();
  option["_name"] = algorithm;
  std::set<std::string> seen;
  for (size_t i = 0; i < config_list.size(); ++i) {
    const std::string path = absl::StrCat("config_list[", i, "]");
    const Json& entry = config_list[i];
    if (!entry.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected an object, got ", entry.dump()));
    }
    std::string prefix = "config_list";
    if (quantizer) {
      absl::StatusOr<std::string> quant_types = Segment(entry, "quant_types", path);
      if (!quant_types.ok()) return quant_types.status();
      absl::StrAppend(&prefix, "::", *quant_types);
    } else if (entry.contains("quant_types")) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".quant_types: ", algorithm,
                                                     " is a pruner; quant_types is for "
                                                     "quantizers"));
    }
    for (const char* field : {"op_types", "op_names"}) {
      absl::StatusOr<std::string> segment = Segment(entry, field, path);
      if (!segment.ok()) return segment.status();
      absl::StrAppend(&prefix, "::", *segment);
    }
    bool any = false;
    for (const auto& [field, value] : entry.items()) {
      if (field == "op_types" || field == "op_names" || field == "quant_types") continue;
      if (field.empty() || field.find("::") != std::string::npos) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": field name \"", field, "\" must be non-empty without '::'"));
      }
      const std::string key = absl::StrCat(prefix, "::", field);
      if (!seen.insert(key).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".", field,
                         ": an earlier entry has the same op_types and op_names and "
                         "sets it too; merge the two entries"));
      }
      option[key] = WrapSearchValue(value);
      any = true;
    }
    if (!any) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": has no field besides the layer selectors (sparsity, quant_bits, ...)"));
    }
  }
  for (const auto& [name, value] : kwargs.items()) {
    if (name.empty()) return absl::InvalidArgumentError("kwargs: empty name");
    option[absl::StrCat("parameter::", name)] = WrapSearchValue(value);
  }
  options_.push_back(std::move(option));
  return absl::OkStatus();
}

Json SearchSpaceGenerator::ToJson() const {
  Json choice = {{"_type", "choice"}, {"_value", Json::array()}};
  for (const Json& option : options_) choice["_value"].push_back(option);
  return Json{{"algorithm_name", std::move(choice)}};
}

std::string SearchSpaceGenerator::Dumps(int indent) const { return ToJson().dump(indent); }

absl::StatusOr<SearchSpaceGenerator> SearchSpaceGenerator::Loads(const Json& search_space) {
  if (!search_space.is_object() || !search_space.contains("algorithm_name") ||
      !search_space["algorithm_name"].is_object() ||
      !search_space["algorithm_name"].contains("_value") ||
      !search_space["algorithm_name"]["_value"].is_array()) {
    return absl::InvalidArgumentError(
        "search space: expected {\"algorithm_name\": {\"_type\": \"choice\", \"_value\": [...]}}");
  }
  SearchSpaceGenerator generator;
  const Json& options = search_space["algorithm_name"]["_value"];
  for (size_t i = 0; i < options.size(); ++i) {
    if (!options[i].is_object() || !options[i].contains("_name") ||
        !options[i]["_name"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("algorithm_name._value[", i, "]: expected an object with a \"_name\""));
    }
    generator.options_.push_back(options[i]);
  }
  return generator;
}

}  // namespace autocompress
