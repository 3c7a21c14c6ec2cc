#include "compression/config_list.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using Json = nlohmann::json;

// NNI's expansion of op_types 'default' (weighted modules).
const std::vector<std::string>& DefaultOpTypes() {
  static const auto* types = new std::vector<std::string>{
      "Conv1d", "Conv2d",   "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
      "Linear", "Bilinear", "PReLU",  "Embedding",       "EmbeddingBag"};
  return *types;
}

absl::Status Bad(int index, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config_list[", index, "]", key.empty() ? "" : ".", key, ": ", what));
}

absl::StatusOr<std::vector<std::string>> StringList(const Json& value, int index,
                                                    absl::string_view key) {
  if (!value.is_array()) return Bad(index, key, "must be a list of strings");
  std::vector<std::string> out;
  for (const Json& item : value) {
    if (!item.is_string()) return Bad(index, key, "must be a list of strings");
    // Empty strings come from empty segments of encoded search-space keys: absent.
    if (!item.get<std::string>().empty()) out.push_back(item.get<std::string>());
  }
  return out;
}

bool Contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// "a, b and c".
std::string JoinWithAnd(const std::vector<std::string>& items) {
  if (items.size() < 2) return absl::StrJoin(items, "");
  return absl::StrCat(absl::StrJoin(items.begin(), items.end() - 1, ", "), " and ", items.back());
}

// A quantizer's own limits (the registry's quant_types and weight_bits).
absl::Status CheckQuantizerRules(const AlgorithmSpec& spec, const LayerConfig& config, int index) {
  const bool fixed_bits = spec.weight_bits != 0 && config.quant_bits.count("weight") &&
                          config.quant_bits.at("weight") != spec.weight_bits;
  for (const std::string& t : config.quant_types) {
    if (Contains(spec.quant_types, t) && !fixed_bits) continue;
    if (spec.weight_bits != 0) {
      return Bad(
          index, "",
          absl::StrCat(spec.name, " quantizes weights to ", spec.weight_bits,
                       " bits only (quant_types [weight], quant_bits ", spec.weight_bits, ")"));
    }
    return Bad(index, "quant_types",
               absl::StrCat(spec.name, " quantizes ", JoinWithAnd(spec.quant_types), " only"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<LayerConfig>> ParseConfigList(absl::string_view algorithm,
                                                         absl::string_view json_text) {
  auto found = FindAlgorithm(algorithm);
  if (!found.ok()) return found.status();
  const AlgorithmSpec& spec = **found;
  const bool quantizer = spec.family == AlgorithmFamily::kQuantizer;
  Json list;
  try {
    list = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {  // also out_of_range: a number beyond double
    return absl::InvalidArgumentError(absl::StrCat("config_list: not valid JSON: ", e.what()));
  }
  if (!list.is_array() || list.empty()) {
    return absl::InvalidArgumentError("config_list: must be a non-empty JSON list of objects");
  }
  std::vector<LayerConfig> configs;
  for (int i = 0; i < static_cast<int>(list.size()); ++i) {
    const Json& entry = list[i];
    if (!entry.is_object()) return Bad(i, "", "must be an object");
    LayerConfig config;
    bool has_op_types = false, has_op_names = false, has_bits = false;
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      const std::string& key = it.key();
      const Json& value = it.value();
      if (key == "op_types") {
        auto types = StringList(value, i, key);
        if (!types.ok()) return types.status();
        config.op_types_given = !types->empty() || value.empty();
        for (const std::string& t : *types) {
          if (!spec.op_types.empty() && !Contains(spec.op_types, t)) {
            return Bad(i, key,
                       absl::StrCat(spec.name, " quantizes ", JoinWithAnd(spec.op_types),
                                    " layers, not '", t, "'"));
          }
        }
        for (const std::string& t : *types) {
          if (t == "default") {
            for (const std::string& d : DefaultOpTypes()) config.op_types.push_back(d);
          } else {
            config.op_types.push_back(t);
          }
        }
        has_op_types = config.op_types_given;
      } else if (key == "op_names") {
        auto names = StringList(value, i, key);
        if (!names.ok()) return names.status();
        config.op_names = *names;
        config.op_names_given = !names->empty() || value.empty();
        has_op_names = config.op_names_given;
      } else if (key == "exclude") {
        config.exclude = true;  // NNI: the key's presence excludes, whatever its value
      } else if (key == "sparsity" && !quantizer) {
        if (!value.is_number()) return Bad(i, key, "must be a number");
        const double s = value.get<double>();
        if (!(s > 0 && s < 1)) {
          return Bad(i, key, absl::StrCat(value.dump(), " is outside (0, 1)"));
        }
        config.sparsity = s;
      } else if (key == "quant_types" && quantizer) {
        auto types = StringList(value, i, key);
        if (!types.ok()) return types.status();
        for (const std::string& t : *types) {
          if (t != "weight" && t != "input" && t != "output") {
            return Bad(i, key, absl::StrCat("'", t, "' is not one of weight, input, output"));
          }
        }
        config.quant_types = *types;
      } else if (key == "quant_bits" && quantizer) {
        has_bits = true;
        auto check = [&](const Json& bits, const std::string& where) -> absl::StatusOr<int> {
          if (!bits.is_number_integer()) return Bad(i, where, "must be an integer");
          const int64_t b = bits.get<int64_t>();
          if (b < 1 || b > 32) return Bad(i, where, absl::StrCat(b, " is outside 1..32"));
          return static_cast<int>(b);
        };
        if (value.is_object()) {
          for (auto b = value.begin(); b != value.end(); ++b) {
            auto bits = check(b.value(), absl::StrCat(key, ".", b.key()));
            if (!bits.ok()) return bits.status();
            config.quant_bits[b.key()] = *bits;
          }
        } else {
          auto bits = check(value, key);
          if (!bits.ok()) return bits.status();
          config.quant_bits["*"] = *bits;
        }
      } else if ((key == "quant_scheme" || key == "quant_dtype") && spec.takes_quant_scheme) {
        const std::vector<std::string> allowed =
            key == "quant_scheme"
                ? std::vector<std::string>{"per_tensor_affine", "per_tensor_symmetric",
                                           "per_channel_affine", "per_channel_symmetric"}
                : std::vector<std::string>{"uint", "int"};
        std::map<std::string, std::string>& target =
            key == "quant_scheme" ? config.quant_scheme : config.quant_dtype;
        auto check = [&](const Json& v, const std::string& where) -> absl::Status {
          if (!v.is_string() || !Contains(allowed, v.get<std::string>())) {
            return Bad(i, where,
                       absl::StrCat(v.dump(), " is not one of ", absl::StrJoin(allowed, ", ")));
          }
          return absl::OkStatus();
        };
        if (value.is_object()) {
          for (auto v = value.begin(); v != value.end(); ++v) {
            if (absl::Status s = check(v.value(), absl::StrCat(key, ".", v.key())); !s.ok())
              return s;
            target[v.key()] = v.value().get<std::string>();
          }
        } else {
          if (absl::Status s = check(value, key); !s.ok()) return s;
          target["*"] = value.get<std::string>();
        }
      } else if (key == "quant_start_step" && quantizer) {
        if (!value.is_number_integer() || value.get<int64_t>() < 0) {
          return Bad(i, key, "must be a non-negative integer");
        }
        config.quant_start_step = static_cast<int>(value.get<int64_t>());
      } else {
        return Bad(i, key, absl::StrCat("unknown key for ", algorithm));
      }
    }
    if (!has_op_types && !has_op_names) return Bad(i, "", "needs op_types or op_names");
    if (!config.exclude) {
      if (!quantizer && !config.sparsity.has_value()) {
        return Bad(i, "", "needs sparsity (or exclude)");
      }
      if (quantizer) {
        if (config.quant_types.empty()) return Bad(i, "", "needs quant_types (or exclude)");
        if (!has_bits) return Bad(i, "", "needs quant_bits (or exclude)");
        // One int applies to every type; a dict must cover each listed type.
        std::map<std::string, int> per_type;
        for (const std::string& t : config.quant_types) {
          auto it = config.quant_bits.find("*");
          if (it == config.quant_bits.end()) it = config.quant_bits.find(t);
          if (it == config.quant_bits.end()) {
            return Bad(i, "quant_bits", absl::StrCat("has no entry for quant type '", t, "'"));
          }
          per_type[t] = it->second;
        }
        config.quant_bits = per_type;
        // Scheme and dtype default per NNI, per type.
        std::map<std::string, std::string> scheme, dtype;
        for (const std::string& t : config.quant_types) {
          auto pick = [&](const std::map<std::string, std::string>& m, const char* fallback) {
            auto it = m.find(t);
            if (it == m.end()) it = m.find("*");
            return it == m.end() ? std::string(fallback) : it->second;
          };
          scheme[t] = pick(config.quant_scheme, "per_tensor_affine");
          dtype[t] = pick(config.quant_dtype, "uint");
        }
        config.quant_scheme = scheme;
        config.quant_dtype = dtype;
        RETURN_IF_ERROR(CheckQuantizerRules(spec, config, i));
      }
    }
    configs.push_back(std::move(config));
  }
  return configs;
}

std::string DescribeLayers(const std::vector<LayerInfo>& layers) {
  std::vector<std::string> parts;
  for (const LayerInfo& layer : layers) {
    std::string shape = layer.weight_shape.empty()
                            ? ""
                            : absl::StrCat(" [", absl::StrJoin(layer.weight_shape, ", "), "]");
    parts.push_back(absl::StrCat(layer.name, " (", layer.type, shape, ")"));
  }
  return absl::StrJoin(parts, ", ");
}

absl::StatusOr<std::vector<LayerAssignment>> MatchLayers(absl::string_view algorithm,
                                                         const std::vector<LayerConfig>& configs,
                                                         const std::vector<LayerInfo>& layers) {
  auto found = FindAlgorithm(algorithm);
  if (!found.ok()) return found.status();
  const AlgorithmFamily* family = &(*found)->family;
  const std::string layer_list = absl::StrCat("; the model's layers are: ", DescribeLayers(layers));
  for (int i = 0; i < static_cast<int>(configs.size()); ++i) {
    for (const std::string& name : configs[i].op_names) {
      const bool found = std::any_of(layers.begin(), layers.end(),
                                     [&](const LayerInfo& l) { return l.name == name; });
      if (!found) {
        return Bad(i, "op_names", absl::StrCat("no layer named '", name, "'", layer_list));
      }
    }
  }
  std::vector<bool> config_used(configs.size(), false);
  std::vector<LayerAssignment> out;
  for (int l = 0; l < static_cast<int>(layers.size()); ++l) {
    const LayerInfo& layer = layers[l];
    int winner = -1;
    for (int i = 0; i < static_cast<int>(configs.size()); ++i) {
      const LayerConfig& c = configs[i];
      const bool type_ok = !c.op_types_given || Contains(c.op_types, layer.type);
      const bool name_ok = !c.op_names_given || Contains(c.op_names, layer.name);
      if (type_ok && name_ok) winner = i;
    }
    if (winner < 0) continue;
    config_used[winner] = true;
    if (configs[winner].exclude) continue;
    std::string problem;
    switch (*family) {
      case AlgorithmFamily::kLevel:
      case AlgorithmFamily::kQuantizer:
        if (layer.weight_shape.empty() && (*family == AlgorithmFamily::kLevel ||
                                           Contains(configs[winner].quant_types, "weight"))) {
          problem = "has no weight tensor";
        }
        break;
      case AlgorithmFamily::kFilter:
        if (layer.type != "Conv2d") problem = "is not a Conv2d (filter pruners prune conv filters)";
        break;
      case AlgorithmFamily::kBatchNorm:
        if (layer.type != "BatchNorm2d") problem = "is not a BatchNorm2d (slim prunes BN channels)";
        break;
    }
    if (!problem.empty()) {
      return Bad(winner, "",
                 absl::StrCat("selects ", layer.name, " (", layer.type, ") which ", problem,
                              " for ", algorithm, layer_list));
    }
    out.push_back({l, configs[winner]});
  }
  for (int i = 0; i < static_cast<int>(configs.size()); ++i) {
    if (!config_used[i]) {
      return Bad(i, "",
                 absl::StrCat("applies to no layer (nothing matches, or later entries ",
                              "override it)", layer_list));
    }
  }
  return out;
}

}  // namespace autocompress::compression
