#include "compression/config_list.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

}  // namespace

const std::vector<std::string>& AlgorithmNames() {
  static const auto* names = new std::vector<std::string>{
      "level",           "slim",  "l1",  "l2",     "fpgm", "taylorfo", "apoz",
      "mean_activation", "naive", "qat", "dorefa", "bnn"};
  return *names;
}

bool IsQuantizer(absl::string_view algorithm) {
  const auto family = FamilyOf(algorithm);
  return family.ok() && *family == AlgorithmFamily::kQuantizer;
}

bool TrainsBeforePruning(absl::string_view algorithm) {
  return algorithm == "slim" || algorithm == "taylorfo" || algorithm == "apoz" ||
         algorithm == "mean_activation";
}

absl::StatusOr<AlgorithmFamily> FamilyOf(absl::string_view algorithm) {
  if (algorithm == "level") return AlgorithmFamily::kLevel;
  if (algorithm == "slim") return AlgorithmFamily::kBatchNorm;
  if (algorithm == "l1" || algorithm == "l2" || algorithm == "fpgm" || algorithm == "taylorfo" ||
      algorithm == "apoz" || algorithm == "mean_activation") {
    return AlgorithmFamily::kFilter;
  }
  if (algorithm == "naive" || algorithm == "qat" || algorithm == "dorefa" || algorithm == "bnn") {
    return AlgorithmFamily::kQuantizer;
  }
  return absl::NotFoundError(absl::StrCat("unknown compression algorithm '", algorithm,
                                          "'; known: ", absl::StrJoin(AlgorithmNames(), ", ")));
}

absl::StatusOr<std::vector<LayerConfig>> ParseConfigList(absl::string_view algorithm,
                                                         absl::string_view json_text) {
  auto family = FamilyOf(algorithm);
  if (!family.ok()) return absl::InvalidArgumentError(family.status().message());
  const bool quantizer = *family == AlgorithmFamily::kQuantizer;
  Json list;
  try {
    list = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::parse_error& e) {
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
        if (algorithm == "qat") {
          for (const std::string& t : *types) {
            if (t != "Conv2d" && t != "Linear" && t != "ReLU" && t != "ReLU6") {
              return Bad(i, key,
                         absl::StrCat("qat quantizes Conv2d, Linear, ReLU and ReLU6 "
                                      "layers, not '",
                                      t, "'"));
            }
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
      } else if ((key == "quant_scheme" || key == "quant_dtype") && algorithm == "qat") {
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
        if (algorithm == "naive" && (config.quant_types != std::vector<std::string>{"weight"} ||
                                     config.quant_bits.at("weight") != 8)) {
          return Bad(i, "",
                     "naive quantizes weights to 8 bits only (quant_types [weight], "
                     "quant_bits 8)");
        }
        if (algorithm == "dorefa" && config.quant_types != std::vector<std::string>{"weight"}) {
          return Bad(i, "quant_types", "dorefa quantizes weights only");
        }
        if (algorithm == "bnn" && Contains(config.quant_types, "input")) {
          return Bad(i, "quant_types", "bnn quantizes weight and output only");
        }
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
  auto family = FamilyOf(algorithm);
  if (!family.ok()) return absl::InvalidArgumentError(family.status().message());
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
