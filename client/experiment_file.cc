#include "client/experiment_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "client/search_space_generator.h"
#include "compression/algorithm_registry.h"
#include "compression/config_list.h"
#include "nlohmann/json.hpp"
#include "tuner_service/search_space/search_space.h"

namespace autocompress {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// ---- YAML helpers -------------------------------------------------------------------

std::pair<int, int> Position(const YAML::Node& node) {
  if (!node.IsDefined()) return {0, 0};
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {0, 0};
  return {mark.line + 1, mark.column + 1};
}

const char* KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "undefined";
  }
}

// A plain (unquoted) scalar is typed as YAML 1.2's core schema does; a quoted one is a
// string.
Json ScalarToJson(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  if (text == "null" || text == "Null" || text == "NULL" || text == "~" || text.empty()) {
    return nullptr;
  }
  int64_t i;
  if (absl::SimpleAtoi(text, &i)) return i;
  double d;
  if (absl::SimpleAtod(text, &d) && text != "inf" && text != "nan") return d;
  return text;
}

Json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& item : node) out[item.first.Scalar()] = ToJson(item.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    default:
      return nullptr;
  }
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Splits "config_list[0].op_types" into {"config_list", "[0]", "op_types"}.
std::vector<std::string> PathParts(const std::string& path) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : path) {
    if (c == '.' || c == '[') {
      if (!current.empty()) parts.push_back(current);
      current = c == '[' ? "[" : "";
    } else if (c == ']') {
      parts.push_back(current + "]");
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

// The deepest node along `path` below `root`.
YAML::Node Resolve(YAML::Node root, const std::string& path) {
  YAML::Node node = root;
  for (const std::string& part : PathParts(path)) {
    YAML::Node next;
    if (part.front() == '[' && node.IsSequence()) {
      size_t index = 0;
      if (!absl::SimpleAtoi(part.substr(1, part.size() - 2), &index) || index >= node.size()) break;
      next = node[index];
    } else if (node.IsMap()) {
      bool found = false;
      for (auto item : node) {
        if (item.first.Scalar() == part) {
          next = item.second;
          found = true;
          break;
        }
      }
      if (!found) break;
    } else {
      break;
    }
    node = next;
  }
  return node;
}

// Splits "path: message" as the library's errors are written.
std::pair<std::string, std::string> SplitPathMessage(const std::string& text) {
  const size_t colon = text.find(": ");
  if (colon == std::string::npos || text.find(' ') < colon) return {"", text};
  return {text.substr(0, colon), text.substr(colon + 2)};
}

// ---- The reader ---------------------------------------------------------------------

class Reader {
 public:
  Reader(std::string base_dir, std::vector<FileProblem>& problems)
      : base_dir_(std::move(base_dir)), problems_(problems) {}

  void Problem(const YAML::Node& node, const std::string& path, const std::string& message) {
    auto [line, column] = Position(node);
    problems_.push_back({path, line, column, message});
  }

  // A mapping's members, each to be taken once; Done() reports those never taken.
  class Fields {
   public:
    Fields(Reader& reader, YAML::Node node, std::string path, std::vector<std::string> known)
        : reader_(reader), node_(node), path_(std::move(path)), known_(std::move(known)) {}

    // The member `key` (undefined when absent).
    YAML::Node Get(const std::string& key) {
      taken_.insert(key);
      if (!node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
      for (auto item : node_) {
        if (item.first.Scalar() == key) return item.second;
      }
      return YAML::Node(YAML::NodeType::Undefined);
    }
    std::string PathOf(const std::string& key) const {
      return path_.empty() ? key : absl::StrCat(path_, ".", key);
    }
    const YAML::Node& node() const { return node_; }

    void Done() {
      if (!node_.IsMap()) return;
      for (auto item : node_) {
        const std::string key = item.first.Scalar();
        if (taken_.count(key)) continue;
        std::string best;
        size_t best_distance = 3;
        for (const std::string& k : known_) {
          const size_t d = EditDistance(key, k);
          if (d < best_distance) best_distance = d, best = k;
        }
        reader_.Problem(
            item.first, PathOf(key),
            best.empty() ? absl::StrCat("unknown field; known here: ", absl::StrJoin(known_, ", "))
                         : absl::StrCat("unknown field; did you mean ", best, "?"));
      }
    }

   private:
    Reader& reader_;
    YAML::Node node_;
    std::string path_;
    std::vector<std::string> known_;
    std::set<std::string> taken_;
  };

  // A mapping at `path`; a problem when `node` is something else (then no members).
  Fields Map(const YAML::Node& node, const std::string& path, std::vector<std::string> known) {
    if (node.IsDefined() && !node.IsMap() && !node.IsNull()) {
      Problem(node, path, absl::StrCat("expected a mapping, got ", KindName(node)));
      return Fields(*this, YAML::Node(YAML::NodeType::Undefined), path, std::move(known));
    }
    return Fields(*this, node, path, std::move(known));
  }

  bool Scalar(const YAML::Node& node, const std::string& path, const char* what) {
    if (node.IsScalar()) return true;
    Problem(node, path, absl::StrCat("expected ", what, ", got ", KindName(node)));
    return false;
  }

  std::optional<std::string> String(Fields& f, const std::string& key) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!Scalar(node, f.PathOf(key), "a string")) return std::nullopt;
    return node.Scalar();
  }

  std::optional<bool> Bool(Fields& f, const std::string& key) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!Scalar(node, f.PathOf(key), "true or false")) return std::nullopt;
    Json v = ScalarToJson(node);
    if (!v.is_boolean()) {
      Problem(node, f.PathOf(key), absl::StrCat("expected true or false, got ", node.Scalar()));
      return std::nullopt;
    }
    return v.get<bool>();
  }

  std::optional<double> Number(Fields& f, const std::string& key, double min, double max,
                               bool integer) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    const char* what = integer ? "an integer" : "a number";
    if (!Scalar(node, f.PathOf(key), what)) return std::nullopt;
    Json v = ScalarToJson(node);
    if (!v.is_number() || (integer && !v.is_number_integer())) {
      Problem(node, f.PathOf(key), absl::StrCat("expected ", what, ", got ", node.Scalar()));
      return std::nullopt;
    }
    const double value = v.get<double>();
    if (!(value >= min && value <= max)) {
      Problem(node, f.PathOf(key),
              max == std::numeric_limits<double>::max()
                  ? absl::StrCat("must be >= ", min, ", got ", node.Scalar())
                  : absl::StrCat("must be in ", min, "..", max, ", got ", node.Scalar()));
      return std::nullopt;
    }
    return value;
  }

  std::optional<int> Int(Fields& f, const std::string& key, int min, int max = 1 << 30) {
    std::optional<double> v = Number(f, key, min, max, /*integer=*/true);
    if (!v) return std::nullopt;
    return static_cast<int>(*v);
  }

  // A number of seconds, or text as "90s", "30m", "1h30m", "2d".
  std::optional<absl::Duration> Duration(Fields& f, const std::string& key) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!Scalar(node, f.PathOf(key), "a duration")) return std::nullopt;
    Json v = ScalarToJson(node);
    absl::Duration d;
    const std::string scalar = node.Scalar();
    absl::string_view text = scalar;
    bool ok = false;
    if (v.is_number()) {
      d = absl::Seconds(v.get<double>());
      ok = true;
    } else if (absl::ConsumeSuffix(&text, "d")) {
      double days;
      ok = absl::SimpleAtod(text, &days);
      d = absl::Hours(24 * days);
    } else {
      ok = absl::ParseDuration(text, &d);
    }
    if (!ok || d <= absl::ZeroDuration()) {
      Problem(node, f.PathOf(key),
              absl::StrCat("expected a positive duration such as 90s, 30m, 1h30m or 2d, got ",
                           node.Scalar()));
      return std::nullopt;
    }
    return d;
  }

  // Bytes, or text with a unit: "8GiB", "512MiB", "2GB".
  std::optional<int64_t> Bytes(Fields& f, const std::string& key) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!Scalar(node, f.PathOf(key), "a size")) return std::nullopt;
    static const std::pair<const char*, double> kUnits[] = {{"KiB", 1024.0},
                                                            {"MiB", 1024.0 * 1024},
                                                            {"GiB", 1024.0 * 1024 * 1024},
                                                            {"KB", 1e3},
                                                            {"MB", 1e6},
                                                            {"GB", 1e9},
                                                            {"B", 1}};
    const std::string scalar = node.Scalar();
    absl::string_view text = scalar;
    double scale = 1;
    for (const auto& [suffix, factor] : kUnits) {
      if (absl::ConsumeSuffix(&text, suffix)) {
        scale = factor;
        break;
      }
    }
    double value;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &value) || value < 0) {
      Problem(
          node, f.PathOf(key),
          absl::StrCat("expected a size such as 8GiB or a number of bytes, got ", node.Scalar()));
      return std::nullopt;
    }
    return static_cast<int64_t>(value * scale);
  }

  // A string map (labels, worker_selector).
  void StringMap(Fields& f, const std::string& key,
                 google::protobuf::Map<std::string, std::string>& out) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return;
    if (!node.IsMap()) {
      Problem(node, f.PathOf(key), absl::StrCat("expected a mapping, got ", KindName(node)));
      return;
    }
    for (auto item : node) {
      const std::string name = item.first.Scalar();
      if (!item.second.IsScalar()) {
        Problem(item.second, f.PathOf(key) + "." + name, "expected a string");
        continue;
      }
      out[name] = item.second.Scalar();
    }
  }

  // A JSON object from a mapping (class_args, module_args, kwargs).
  std::optional<Json> Object(Fields& f, const std::string& key) {
    YAML::Node node = f.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    if (!node.IsMap()) {
      Problem(node, f.PathOf(key), absl::StrCat("expected a mapping, got ", KindName(node)));
      return std::nullopt;
    }
    return ToJson(node);
  }

  // A local path, resolved against the file's folder; checked to exist (for IDX data,
  // a PREFIX naming PREFIX-images-idx3-ubyte[.gz] and its labels also counts).
  std::string LocalPath(Fields& f, const std::string& key, bool required, bool idx_prefix_ok) {
    std::optional<std::string> value = String(f, key);
    if (!value) {
      if (required && !f.Get(key).IsDefined()) {
        Problem(f.node(), f.PathOf(key), "required (a path relative to the experiment file)");
      }
      return "";
    }
    fs::path path(*value);
    if (path.is_relative()) path = fs::path(base_dir_) / path;
    path = path.lexically_normal();
    std::error_code error;
    if (fs::exists(path, error)) return path.string();
    if (idx_prefix_ok) {
      for (const char* suffix : {"-images-idx3-ubyte", "-images-idx3-ubyte.gz"}) {
        if (fs::exists(path.string() + suffix, error)) return path.string();
      }
    }
    Problem(f.Get(key), f.PathOf(key),
            absl::StrCat(
                path.string(), " does not exist",
                idx_prefix_ok ? " (nor as an IDX prefix: PREFIX-images-idx3-ubyte[.gz])" : ""));
    return "";
  }

  const std::string& base_dir() const { return base_dir_; }

 private:
  std::string base_dir_;
  std::vector<FileProblem>& problems_;
};

// ---- Search space -------------------------------------------------------------------

// Values a field's distribution can produce at its edges: every option of a choice, both
// bounds of a uniform-like range, the mean of a normal one.
std::vector<Json> Representatives(const Json& value) {
  if (!value.is_object()) return {value};
  if (!value.contains("_type")) {
    // An object of distributions (quant_bits {weight, output}): vary one member at a time.
    std::vector<Json> out;
    Json base = Json::object();
    for (const auto& [name, member] : value.items()) base[name] = Representatives(member).front();
    out.push_back(base);
    for (const auto& [name, member] : value.items()) {
      for (const Json& r : Representatives(member)) {
        Json variant = base;
        variant[name] = r;
        out.push_back(variant);
      }
    }
    return out;
  }
  const std::string type = value["_type"].is_string() ? value["_type"].get<std::string>() : "";
  const Json& v = value.contains("_value") ? value["_value"] : Json();
  if (!v.is_array() || v.empty()) return {value};
  if (type == "choice") {
    std::vector<Json> out(v.begin(), v.end());
    if (out.size() > 64) out.resize(64);
    return out;
  }
  if (v.size() >= 2 && v[0].is_number() && v[1].is_number()) {
    if (type == "uniform" || type == "quniform" || type == "loguniform" || type == "qloguniform") {
      return {v[0], v[1]};
    }
    if (type == "randint") return {v[0], v[1].get<int64_t>() - 1};
    return {v[0]};  // normal family: the mean
  }
  return {value};
}

std::string Describe(const Json& value, const Json& representative) {
  if (!value.is_object()) return "";
  return absl::StrCat(" (", value.dump(), " can give ", representative.dump(), ")");
}

// The tuner names a field of the list form by its encoded key
// ("[0].config_list::default::::sparsity._value"); this is the field as the user wrote it
// ("[0].config_list[0].sparsity._value"), the first config entry with that field.
std::string UserPath(const YAML::Node& list, absl::string_view rest) {
  size_t index = 0;
  const size_t close = rest.find(']');
  if (!absl::ConsumePrefix(&rest, "[") || close == absl::string_view::npos ||
      !absl::SimpleAtoi(rest.substr(0, close - 1), &index) || index >= list.size()) {
    return std::string(rest);
  }
  absl::string_view tail = rest.substr(close);
  const std::string head = absl::StrCat("[", index, "]");
  if (!absl::ConsumePrefix(&tail, ".config_list::")) return head + std::string(tail);
  const size_t dot = tail.find('.');
  const absl::string_view key = tail.substr(0, dot);
  const absl::string_view after = dot == absl::string_view::npos ? "" : tail.substr(dot);
  const std::string field(
      key.substr(key.rfind("::") == absl::string_view::npos ? 0 : key.rfind("::") + 2));
  const YAML::Node configs = list[index]["config_list"];
  if (configs.IsSequence()) {
    for (size_t j = 0; j < configs.size(); ++j) {
      if (configs[j].IsMap() && configs[j][field].IsDefined()) {
        return absl::StrCat(head, ".config_list[", j, "].", field, after);
      }
    }
  }
  return absl::StrCat(head, ".config_list::", tail);
}

class SearchSpaceReader {
 public:
  SearchSpaceReader(Reader& reader, std::set<std::string>& algorithms)
      : reader_(reader), algorithms_(algorithms) {}

  // search_space as a list of add_config entries; returns the encoded choice.
  std::optional<Json> Entries(const YAML::Node& list, const std::string& path) {
    SearchSpaceGenerator generator;
    bool ok = true;
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string entry_path = absl::StrCat(path, "[", i, "]");
      const YAML::Node entry = list[i];
      Reader::Fields f = reader_.Map(entry, entry_path, {"algorithm", "config_list", "kwargs"});
      if (!entry.IsMap()) {
        if (!entry.IsDefined() || entry.IsNull() || entry.IsScalar() || entry.IsSequence()) {
          reader_.Problem(
              entry, entry_path,
              "expected {algorithm, config_list, kwargs}, got " + std::string(KindName(entry)));
        }
        ok = false;
        continue;
      }
      std::optional<std::string> algorithm = reader_.String(f, "algorithm");
      const YAML::Node config_node = f.Get("config_list");
      std::optional<Json> kwargs = reader_.Object(f, "kwargs");
      f.Done();
      if (!algorithm) {
        if (!f.Get("algorithm").IsDefined()) {
          reader_.Problem(entry, f.PathOf("algorithm"),
                          absl::StrCat("required; one of ",
                                       absl::StrJoin(compression::AlgorithmNames(), ", ")));
        }
        ok = false;
        continue;
      }
      if (!config_node.IsDefined() || !config_node.IsSequence()) {
        reader_.Problem(
            config_node.IsDefined() ? config_node : entry, f.PathOf("config_list"),
            config_node.IsDefined()
                ? absl::StrCat("expected a list of config entries, got ", KindName(config_node))
                : "required: a list of config entries (op_types, sparsity, ...)");
        ok = false;
        continue;
      }
      const Json config_list = ToJson(config_node);
      const Json kwargs_json = kwargs.value_or(Json::object());
      const absl::Status added = generator.AddConfig(*algorithm, config_list, kwargs_json);
      if (!added.ok()) {
        auto [sub, message] = SplitPathMessage(std::string(added.message()));
        const YAML::Node at = sub == "algorithm" ? f.Get("algorithm") : Resolve(entry, sub);
        reader_.Problem(at, sub.empty() ? entry_path : entry_path + "." + sub, message);
        ok = false;
        continue;
      }
      algorithms_.insert(*algorithm);
      ok &= CheckAgainstAlgorithm(*algorithm, config_list, kwargs_json, entry, entry_path);
    }
    if (list.size() == 0) {
      reader_.Problem(list, path, "needs at least one {algorithm, config_list} entry");
      ok = false;
    }
    if (!ok) return std::nullopt;
    return generator.ToJson()["algorithm_name"];
  }

 private:
  // The config list and kwargs as the worker will parse them, at the edges of every
  // distribution (one field varied at a time), so "sparsity: uniform [0.5, 1.5]" is
  // caught here and not in every trial.
  bool CheckAgainstAlgorithm(const std::string& algorithm, const Json& config_list,
                             const Json& kwargs, const YAML::Node& entry,
                             const std::string& entry_path) {
    std::set<std::string> reported;
    auto report = [&](const absl::Status& status, const Json& value, const Json& r) {
      auto [sub, message] = SplitPathMessage(std::string(status.message()));
      if (!reported.insert(sub).second) return;
      reader_.Problem(Resolve(entry, sub), sub.empty() ? entry_path : entry_path + "." + sub,
                      message + Describe(value, r));
    };
    Json base = Json::array();
    for (const Json& e : config_list) {
      Json b = Json::object();
      for (const auto& [name, value] : e.items()) b[name] = Representatives(value).front();
      base.push_back(b);
    }
    bool ok = true;
    auto check_list = [&](const Json& list, const Json& value, const Json& r) {
      absl::Status s = compression::ParseConfigList(algorithm, list.dump()).status();
      if (!s.ok()) {
        report(s, value, r);
        ok = false;
      }
    };
    check_list(base, Json(), Json());
    for (size_t i = 0; i < config_list.size() && ok; ++i) {
      for (const auto& [name, value] : config_list[i].items()) {
        for (const Json& r : Representatives(value)) {
          Json variant = base;
          variant[i][name] = r;
          check_list(variant, value, r);
        }
      }
    }
    const compression::AlgorithmSpec* spec = *compression::FindAlgorithm(algorithm);
    Json kwargs_base = Json::object();
    for (const auto& [name, value] : kwargs.items()) {
      kwargs_base[name] = Representatives(value).front();
    }
    auto check_kwargs = [&](const Json& k, const Json& value, const Json& r) {
      absl::Status s = compression::ParseKwargs(*spec, k.dump()).status();
      if (!s.ok()) {
        report(s, value, r);
        ok = false;
      }
    };
    check_kwargs(kwargs_base, Json(), Json());
    for (const auto& [name, value] : kwargs.items()) {
      for (const Json& r : Representatives(value)) {
        Json variant = kwargs_base;
        variant[name] = r;
        check_kwargs(variant, value, r);
      }
    }
    return ok;
  }

  Reader& reader_;
  std::set<std::string>& algorithms_;
};

std::optional<v1::OptimizeMode> ModeOf(const std::string& text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "maximize" || lower == "max") return v1::OPTIMIZE_MODE_MAXIMIZE;
  if (lower == "minimize" || lower == "min") return v1::OPTIMIZE_MODE_MINIMIZE;
  return std::nullopt;
}

// ---- The whole file -----------------------------------------------------------------

class FileReader {
 public:
  FileReader(Reader& reader, ExperimentFile& out) : r_(reader), out_(out) {}

  void Read(const YAML::Node& root) {
    if (!root.IsMap()) {
      r_.Problem(root, "",
                 absl::StrCat("expected a mapping of experiment fields, got ", KindName(root)));
      return;
    }
    Reader::Fields f = r_.Map(root, "",
                              {"experiment_name",
                               "labels",
                               "search_space",
                               "search_space_file",
                               "tuner",
                               "assessor",
                               "objective",
                               "trial_concurrency",
                               "max_trial_number",
                               "max_experiment_duration",
                               "max_trial_duration",
                               "max_retries",
                               "trial_gpu_number",
                               "trial_resources",
                               "model",
                               "data",
                               "training",
                               "export",
                               "seed",
                               "skip_baseline"});
    v1::ExperimentSpec& spec = out_.spec;
    if (auto name = r_.String(f, "experiment_name")) spec.set_name(*name);
    r_.StringMap(f, "labels", *spec.mutable_labels());
    ReadSearchSpace(f);
    std::optional<v1::OptimizeMode> tuner_mode = ReadAlgorithm(f, "tuner", spec.mutable_tuner());
    if (spec.tuner().name().empty()) spec.mutable_tuner()->set_name("tpe");
    ReadAlgorithm(f, "assessor", spec.mutable_assessor());
    ReadObjective(f, tuner_mode);
    ReadLimits(f);
    ReadResources(f);
    out_.model_path = r_.LocalPath(f, "model", /*required=*/true, /*idx_prefix_ok=*/false);
    ReadData(f);
    ReadTraining(f);
    ReadExport(f);
    if (auto seed = r_.Number(f, "seed", 0, 9007199254740992.0, /*integer=*/true)) {
      spec.set_seed(static_cast<uint64_t>(*seed));
    }
    if (auto skip = r_.Bool(f, "skip_baseline")) spec.set_skip_baseline(*skip);
    f.Done();
  }

 private:
  void ReadSearchSpace(Reader::Fields& f) {
    const YAML::Node node = f.Get("search_space");
    const YAML::Node file_node = f.Get("search_space_file");
    if (node.IsDefined() == file_node.IsDefined()) {
      r_.Problem(node.IsDefined() ? file_node : f.node(), "search_space",
                 node.IsDefined() ? "give search_space or search_space_file, not both"
                                  : "required: search_space (a list of {algorithm, "
                                    "config_list, kwargs}) or search_space_file");
      return;
    }
    SearchSpaceReader entries(r_, algorithms_);
    Json space;
    if (file_node.IsDefined()) {
      const std::string path =
          r_.LocalPath(f, "search_space_file", /*required=*/true, /*idx_prefix_ok=*/false);
      if (path.empty()) return;
      std::ifstream in(path);
      std::stringstream text;
      text << in.rdbuf();
      space = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
      if (space.is_discarded()) {
        r_.Problem(file_node, "search_space_file", absl::StrCat(path, " is not valid JSON"));
        return;
      }
    } else if (node.IsSequence()) {
      std::optional<Json> choice = entries.Entries(node, "search_space");
      if (!choice) return;
      space = Json{{"algorithm_name", *choice}};
    } else if (node.IsMap()) {
      // NNI's dumped form, or an algorithm_name list beside other searched knobs.
      space = Json::object();
      for (auto item : node) {
        const std::string key = item.first.Scalar();
        if (key == "algorithm_name" && item.second.IsSequence()) {
          std::optional<Json> choice = entries.Entries(item.second, "search_space.algorithm_name");
          if (!choice) return;
          space[key] = *choice;
        } else {
          space[key] = ToJson(item.second);
        }
      }
    } else {
      r_.Problem(node, "search_space",
                 absl::StrCat("expected a list of {algorithm, config_list, kwargs} or NNI's "
                              "search-space object, got ",
                              KindName(node)));
      return;
    }
    CollectAlgorithms(space);
    // As the tuner will judge it (distributions, nesting).
    std::vector<tuner::ValidationIssue> issues;
    if (!tuner::SearchSpace::Parse(space.dump(), {}, &issues).ok()) {
      for (const tuner::ValidationIssue& issue : issues) {
        std::string path = issue.path;
        YAML::Node at = file_node.IsDefined() ? file_node : node;
        if (!file_node.IsDefined()) {
          // algorithm_name._value[i] is entry i of the list form.
          absl::string_view rest = issue.path;
          if (node.IsSequence() && absl::ConsumePrefix(&rest, "algorithm_name._value")) {
            const std::string user = UserPath(node, rest);
            at = Resolve(node, user);
            path = absl::StrCat("search_space", user);
          } else {
            at = Resolve(node, path);
            path = "search_space." + path;
          }
        } else {
          path = "search_space_file: " + path;
        }
        r_.Problem(at, path, issue.message);
      }
      return;
    }
    out_.spec.set_search_space_json(space.dump());
  }

  // Algorithms named in the encoded space (for the checks on data that follow).
  void CollectAlgorithms(const Json& space) {
    if (!space.is_object() || !space.contains("algorithm_name")) return;
    const Json& choice = space["algorithm_name"];
    if (!choice.is_object() || !choice.contains("_value") || !choice["_value"].is_array()) return;
    for (const Json& option : choice["_value"]) {
      if (option.is_object() && option.contains("_name") && option["_name"].is_string()) {
        algorithms_.insert(option["_name"].get<std::string>());
      }
    }
  }

  // tuner / assessor: {name, class_args}; returns class_args.optimize_mode when given.
  std::optional<v1::OptimizeMode> ReadAlgorithm(Reader::Fields& parent, const std::string& key,
                                                v1::AlgorithmSpec* out) {
    const YAML::Node node = parent.Get(key);
    if (!node.IsDefined() || node.IsNull()) return std::nullopt;
    Reader::Fields f = r_.Map(node, key, {"name", "class_args"});
    std::optional<v1::OptimizeMode> mode;
    if (auto name = r_.String(f, "name")) {
      out->set_name(*name);
    } else if (node.IsMap()) {
      r_.Problem(node, key + ".name", "required");
    }
    if (auto args = r_.Object(f, "class_args")) {
      if (args->contains("optimize_mode") && (*args)["optimize_mode"].is_string()) {
        mode = ModeOf((*args)["optimize_mode"].get<std::string>());
        if (!mode) {
          r_.Problem(Resolve(node, "class_args.optimize_mode"), key + ".class_args.optimize_mode",
                     "expected maximize or minimize");
        }
      }
      out->set_args_json(args->dump());
    }
    f.Done();
    return mode;
  }

  bool ReadObjectiveEntry(const YAML::Node& node, const std::string& path, v1::Objective* out) {
    Reader::Fields f = r_.Map(node, path, {"metric", "mode"});
    out->set_metric("accuracy");
    out->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
    bool mode_given = false;
    if (auto metric = r_.String(f, "metric")) out->set_metric(*metric);
    if (auto mode = r_.String(f, "mode")) {
      if (auto m = ModeOf(*mode)) {
        out->set_mode(*m);
        mode_given = true;
      } else {
        r_.Problem(f.Get("mode"), f.PathOf("mode"),
                   absl::StrCat("expected maximize or minimize, got ", *mode));
      }
    }
    f.Done();
    return mode_given;
  }

  void ReadObjective(Reader::Fields& parent, std::optional<v1::OptimizeMode> tuner_mode) {
    v1::ObjectiveSpec& objective = *out_.spec.mutable_objective();
    const YAML::Node node = parent.Get("objective");
    Reader::Fields f = r_.Map(node, "objective", {"metric", "mode", "secondary", "constraints"});
    objective.mutable_primary()->set_metric("accuracy");
    objective.mutable_primary()->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
    if (auto metric = r_.String(f, "metric")) objective.mutable_primary()->set_metric(*metric);
    bool primary_mode = false;
    if (auto mode = r_.String(f, "mode")) {
      if (auto m = ModeOf(*mode)) {
        objective.mutable_primary()->set_mode(*m);
        primary_mode = true;
      } else {
        r_.Problem(f.Get("mode"), "objective.mode",
                   absl::StrCat("expected maximize or minimize, got ", *mode));
      }
    }
    if (!primary_mode && tuner_mode) objective.mutable_primary()->set_mode(*tuner_mode);
    const YAML::Node secondary = f.Get("secondary");
    if (secondary.IsDefined() && !secondary.IsNull()) {
      if (!secondary.IsSequence()) {
        r_.Problem(secondary, "objective.secondary", "expected a list of {metric, mode}");
      } else {
        for (size_t i = 0; i < secondary.size(); ++i) {
          const std::string path = absl::StrCat("objective.secondary[", i, "]");
          v1::Objective* o = objective.add_secondary();
          if (!ReadObjectiveEntry(secondary[i], path, o)) {
            r_.Problem(secondary[i], path + ".mode", "required: maximize or minimize");
          }
        }
      }
    }
    const YAML::Node constraints = f.Get("constraints");
    if (constraints.IsDefined() && !constraints.IsNull()) {
      if (!constraints.IsSequence()) {
        r_.Problem(constraints, "objective.constraints",
                   "expected a list such as [\"sparsity >= 0.5\", \"latency_ms <= 2\"]");
      } else {
        for (size_t i = 0; i < constraints.size(); ++i) {
          ReadConstraint(constraints[i], absl::StrCat("objective.constraints[", i, "]"),
                         objective.add_constraints());
        }
      }
    }
    f.Done();
  }

  // "metric <= bound" or "metric >= bound".
  void ReadConstraint(const YAML::Node& node, const std::string& path, v1::MetricConstraint* out) {
    const char* expected = "expected \"METRIC <= BOUND\" or \"METRIC >= BOUND\"";
    if (!node.IsScalar()) {
      r_.Problem(node, path, expected);
      return;
    }
    const std::string text = node.Scalar();
    for (const auto& [op, comparison] :
         {std::pair<const char*, v1::Comparison>{"<=", v1::COMPARISON_LESS_EQUAL},
          {">=", v1::COMPARISON_GREATER_EQUAL}}) {
      const size_t at = text.find(op);
      if (at == std::string::npos) continue;
      const std::string metric(absl::StripAsciiWhitespace(text.substr(0, at)));
      double bound;
      if (metric.empty() ||
          !absl::SimpleAtod(absl::StripAsciiWhitespace(text.substr(at + 2)), &bound) ||
          !std::isfinite(bound)) {
        break;
      }
      out->set_metric(metric);
      out->set_comparison(comparison);
      out->set_bound(bound);
      return;
    }
    r_.Problem(node, path, absl::StrCat(expected, ", got \"", text, "\""));
  }

  void ReadLimits(Reader::Fields& f) {
    v1::ExperimentLimits& limits = *out_.spec.mutable_limits();
    limits.set_trial_concurrency(r_.Int(f, "trial_concurrency", 1, 10000).value_or(1));
    if (auto n = r_.Int(f, "max_trial_number", 0, 1'000'000)) limits.set_max_trial_number(*n);
    if (auto d = r_.Duration(f, "max_experiment_duration")) {
      limits.mutable_max_experiment_duration()->set_seconds(absl::ToInt64Seconds(*d));
    }
    if (auto d = r_.Duration(f, "max_trial_duration")) {
      limits.mutable_max_trial_duration()->set_seconds(absl::ToInt64Seconds(*d));
    }
    if (auto n = r_.Int(f, "max_retries", 0, 1000)) limits.set_max_retries(*n);
  }

  void ReadResources(Reader::Fields& parent) {
    v1::ResourceSpec& resources = *out_.spec.mutable_trial_resources();
    if (auto gpus = r_.Int(parent, "trial_gpu_number", 0, 64)) resources.set_gpus(*gpus);
    const YAML::Node node = parent.Get("trial_resources");
    if (!node.IsDefined()) return;
    Reader::Fields f = r_.Map(node, "trial_resources",
                              {"gpus", "min_gpu_memory", "cpu_threads", "worker_selector"});
    if (auto gpus = r_.Int(f, "gpus", 0, 64)) resources.set_gpus(*gpus);
    if (auto bytes = r_.Bytes(f, "min_gpu_memory")) resources.set_min_gpu_memory_bytes(*bytes);
    if (auto threads = r_.Int(f, "cpu_threads", 0, 4096)) resources.set_cpu_threads(*threads);
    r_.StringMap(f, "worker_selector", *resources.mutable_worker_selector());
    f.Done();
  }

  void ReadData(Reader::Fields& parent) {
    const YAML::Node node = parent.Get("data");
    v1::DatasetSpec& data = *out_.spec.mutable_recipe()->mutable_dataset();
    if (!node.IsDefined()) {
      r_.Problem(parent.node(), "data", "required: {format, train, eval, ...}");
      return;
    }
    Reader::Fields f = r_.Map(
        node, "data",
        {"format", "train", "eval", "mean", "std", "batch_size", "eval_batch_size", "shuffle"});
    static const std::map<std::string, v1::DatasetFormat> kFormats = {
        {"idx", v1::DATASET_FORMAT_IDX},
        {"tensors", v1::DATASET_FORMAT_TENSORS},
        {"image_folder", v1::DATASET_FORMAT_IMAGE_FOLDER},
        {"cifar10_binary", v1::DATASET_FORMAT_CIFAR10_BINARY}};
    if (auto format = r_.String(f, "format")) {
      auto it = kFormats.find(absl::AsciiStrToLower(*format));
      if (it == kFormats.end()) {
        r_.Problem(f.Get("format"), "data.format",
                   absl::StrCat("unknown format \"", *format,
                                "\"; known: idx, tensors, cifar10_binary, image_folder"));
      } else {
        data.set_format(it->second);
      }
    } else if (node.IsMap()) {
      r_.Problem(node, "data.format", "required: idx, tensors, cifar10_binary or image_folder");
    }
    const bool idx = data.format() == v1::DATASET_FORMAT_IDX;
    out_.train_path = r_.LocalPath(f, "train", /*required=*/false, idx);
    out_.eval_path = r_.LocalPath(f, "eval", /*required=*/true, idx);
    train_given_ = f.Get("train").IsDefined();
    for (const auto& [key, field] :
         {std::pair<const char*, google::protobuf::RepeatedField<float>*>{"mean",
                                                                          data.mutable_mean()},
          {"std", data.mutable_stddev()}}) {
      const YAML::Node list = f.Get(key);
      if (!list.IsDefined()) continue;
      if (!list.IsSequence()) {
        r_.Problem(list, f.PathOf(key), "expected a list of numbers, one per channel");
        continue;
      }
      for (size_t i = 0; i < list.size(); ++i) {
        Json v = list[i].IsScalar() ? ScalarToJson(list[i]) : Json();
        if (!v.is_number() || (std::string(key) == "std" && v.get<double>() <= 0)) {
          r_.Problem(
              list[i], absl::StrCat("data.", key, "[", i, "]"),
              std::string(key) == "std" ? "expected a positive number" : "expected a number");
          continue;
        }
        field->Add(v.get<float>());
      }
    }
    if (data.mean_size() != data.stddev_size()) {
      r_.Problem(node, "data.std",
                 absl::StrCat("has ", data.stddev_size(), " values for ", data.mean_size(),
                              " means; give one of each per channel"));
    }
    data.set_batch_size(r_.Int(f, "batch_size", 1, 1 << 20).value_or(64));
    if (auto b = r_.Int(f, "eval_batch_size", 1, 1 << 20)) data.set_eval_batch_size(*b);
    data.set_shuffle(r_.Bool(f, "shuffle").value_or(true));
    f.Done();
  }

  void ReadTraining(Reader::Fields& parent) {
    v1::TrainingRecipe& recipe = *out_.spec.mutable_recipe();
    const YAML::Node node = parent.Get("training");
    Reader::Fields f =
        r_.Map(node, "training",
               {"optimizer", "criterion", "evaluator", "finetune_epochs", "sparsifying_epochs",
                "max_train_batches", "max_eval_batches", "lr_schedule", "report_every_batches",
                "checkpoint_epochs", "module", "module_args"});
    v1::OptimizerSpec& optimizer = *recipe.mutable_optimizer();
    optimizer.set_name("sgd");
    optimizer.set_learning_rate(0.01);
    const YAML::Node opt = f.Get("optimizer");
    if (opt.IsDefined()) {
      Reader::Fields o = r_.Map(opt, "training.optimizer",
                                {"name", "learning_rate", "momentum", "weight_decay", "nesterov"});
      if (auto name = r_.String(o, "name")) {
        const std::string lower = absl::AsciiStrToLower(*name);
        if (lower != "sgd" && lower != "adam") {
          r_.Problem(o.Get("name"), "training.optimizer.name",
                     absl::StrCat("unknown optimizer \"", *name, "\"; known: sgd, adam"));
        }
        optimizer.set_name(lower);
      }
      if (auto lr = r_.Number(o, "learning_rate", 1e-12, 1e6, false)) {
        optimizer.set_learning_rate(*lr);
      }
      if (auto m = r_.Number(o, "momentum", 0, 1, false)) optimizer.set_momentum(*m);
      if (auto wd = r_.Number(o, "weight_decay", 0, 1, false)) optimizer.set_weight_decay(*wd);
      if (auto n = r_.Bool(o, "nesterov")) optimizer.set_nesterov(*n);
      o.Done();
    }
    static const std::set<std::string> kCriteria = {"cross_entropy", "nll", "mse"};
    recipe.set_criterion("cross_entropy");
    if (auto c = r_.String(f, "criterion")) {
      if (!kCriteria.count(*c)) {
        r_.Problem(f.Get("criterion"), "training.criterion",
                   absl::StrCat("unknown criterion \"", *c, "\"; known: cross_entropy, nll, mse"));
      }
      recipe.set_criterion(*c);
    }
    static const std::set<std::string> kEvaluators = {"top1_accuracy", "top5_accuracy", "neg_loss"};
    recipe.set_evaluator("top1_accuracy");
    if (auto e = r_.String(f, "evaluator")) {
      if (!kEvaluators.count(*e)) {
        r_.Problem(f.Get("evaluator"), "training.evaluator",
                   absl::StrCat("unknown evaluator \"", *e,
                                "\"; known: top1_accuracy, top5_accuracy, neg_loss"));
      }
      recipe.set_evaluator(*e);
    }
    recipe.set_finetune_epochs(r_.Int(f, "finetune_epochs", 0, 100000).value_or(0));
    if (auto n = r_.Int(f, "sparsifying_epochs", 0, 100000)) recipe.set_sparsifying_epochs(*n);
    if (auto n = r_.Int(f, "max_train_batches", 0)) recipe.set_max_train_batches(*n);
    if (auto n = r_.Int(f, "max_eval_batches", 0)) recipe.set_max_eval_batches(*n);
    if (auto n = r_.Int(f, "report_every_batches", 0)) recipe.set_report_every_batches(*n);
    if (auto c = r_.Bool(f, "checkpoint_epochs")) recipe.set_checkpoint_epochs(*c);
    const YAML::Node schedule = f.Get("lr_schedule");
    if (schedule.IsDefined()) {
      Reader::Fields s = r_.Map(schedule, "training.lr_schedule",
                                {"name", "step_epochs", "gamma", "min_learning_rate"});
      v1::LrSchedule& out = *recipe.mutable_lr_schedule();
      if (auto name = r_.String(s, "name")) {
        if (*name != "constant" && *name != "step" && *name != "cosine") {
          r_.Problem(
              s.Get("name"), "training.lr_schedule.name",
              absl::StrCat("unknown schedule \"", *name, "\"; known: constant, step, cosine"));
        }
        out.set_name(*name);
      }
      if (auto n = r_.Int(s, "step_epochs", 1)) out.set_step_epochs(*n);
      if (auto g = r_.Number(s, "gamma", 0, 1, false)) out.set_gamma(*g);
      if (auto m = r_.Number(s, "min_learning_rate", 0, 1e6, false)) out.set_min_learning_rate(*m);
      s.Done();
    }
    if (auto module = r_.String(f, "module")) recipe.set_module(*module);
    if (auto args = r_.Object(f, "module_args")) recipe.set_module_args_json(args->dump());
    f.Done();
    // Training data is needed by fine-tuning and by the pruners that train to choose.
    if (train_given_) return;
    std::vector<std::string> needs;
    if (recipe.finetune_epochs() > 0) needs.push_back("training.finetune_epochs > 0");
    for (const std::string& a : algorithms_) {
      if (compression::TrainsBeforePruning(a)) needs.push_back("algorithm " + a);
    }
    if (!needs.empty() && recipe.module().empty()) {
      r_.Problem(parent.Get("data"), "data.train",
                 absl::StrCat("required by ", absl::StrJoin(needs, " and ")));
    }
  }

  void ReadExport(Reader::Fields& parent) {
    v1::ExportOptions& e = *out_.spec.mutable_export_options();
    e.set_model(true);
    e.set_report(true);
    e.set_calibration(true);
    const YAML::Node node = parent.Get("export");
    if (!node.IsDefined()) return;
    Reader::Fields f =
        r_.Map(node, "export", {"model", "report", "calibration", "keep_best", "speedup"});
    if (auto b = r_.Bool(f, "model")) e.set_model(*b);
    if (auto b = r_.Bool(f, "report")) e.set_report(*b);
    if (auto b = r_.Bool(f, "calibration")) e.set_calibration(*b);
    if (auto k = r_.Int(f, "keep_best", 0)) e.set_keep_best(*k);
    if (auto b = r_.Bool(f, "speedup")) e.set_speedup(*b);
    f.Done();
  }

  Reader& r_;
  ExperimentFile& out_;
  std::set<std::string> algorithms_;
  bool train_given_ = false;
};

}  // namespace

std::string FormatProblem(const std::string& file, const FileProblem& problem) {
  std::string out = file;
  if (problem.line > 0) absl::StrAppend(&out, ":", problem.line, ":", problem.column);
  absl::StrAppend(&out, ": ");
  if (!problem.path.empty()) absl::StrAppend(&out, problem.path, ": ");
  absl::StrAppend(&out, problem.message);
  return out;
}

namespace {

// The offset of the first byte that does not start or continue a well-formed UTF-8
// sequence (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or is
// an ASCII control character YAML does not allow (YAML 1.2 section 5.1: only tab, line
// feed and carriage return; yaml-cpp misreads a NUL as the start of UTF-16).
std::optional<size_t> FirstUnreadableByte(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char b = byte(i);
    int length = 0;
    unsigned char low = 0x80, high = 0xBF;  // bounds of the second byte
    if (b < 0x80) {
      if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7F) return i;
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      length = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      length = 3;
      if (b == 0xE0) low = 0xA0;
      if (b == 0xED) high = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      length = 4;
      if (b == 0xF0) low = 0x90;
      if (b == 0xF4) high = 0x8F;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    if (byte(i + 1) < low || byte(i + 1) > high) return i;
    for (int k = 2; k < length; ++k) {
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return i;
    }
    i += length;
  }
  return std::nullopt;
}

}  // namespace

ExperimentFile ParseExperimentText(const std::string& text, const std::string& name,
                                   const std::string& base_dir,
                                   std::vector<FileProblem>& problems) {
  ExperimentFile out;
  out.file = name;
  out.base_dir = base_dir;
  // yaml-cpp passes such bytes through (or misreads them); they would only fail later,
  // when a value is written out as JSON (nlohmann throws on invalid UTF-8).
  if (const std::optional<size_t> bad = FirstUnreadableByte(text)) {
    const size_t line_start = text.rfind('\n', *bad == 0 ? 0 : *bad - 1);
    const int line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + *bad, '\n'));
    const int column =
        static_cast<int>(line_start == std::string::npos ? *bad : *bad - line_start - 1) + 1;
    problems.push_back(
        {"", line, column,
         absl::StrFormat("not valid UTF-8, or a control character YAML does not allow "
                         "(byte 0x%02X)",
                         static_cast<unsigned char>(text[*bad]))});
    return out;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    problems.push_back({"", e.mark.is_null() ? 0 : e.mark.line + 1,
                        e.mark.is_null() ? 0 : e.mark.column + 1,
                        absl::StrCat("not valid YAML or JSON: ", e.msg)});
    return out;
  }
  Reader reader(base_dir, problems);
  FileReader(reader, out).Read(root);
  std::stable_sort(problems.begin(), problems.end(),
                   [](const FileProblem& a, const FileProblem& b) {
                     return std::make_pair(a.line, a.column) < std::make_pair(b.line, b.column);
                   });
  return out;
}

ExperimentFile ReadExperimentFile(const std::string& path, std::vector<FileProblem>& problems) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    problems.push_back({"", 0, 0, "cannot be read"});
    ExperimentFile out;
    out.file = path;
    return out;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::error_code error;
  const fs::path absolute = fs::absolute(path, error);
  return ParseExperimentText(text.str(), path, absolute.parent_path().string(), problems);
}

absl::StatusOr<ExperimentFile> LoadExperimentFile(const std::string& path) {
  std::vector<FileProblem> problems;
  ExperimentFile file = ReadExperimentFile(path, problems);
  if (problems.empty()) return file;
  std::string message = absl::StrCat(
      problems.size(), problems.size() == 1 ? " problem" : " problems", " in ", path, ":");
  for (const FileProblem& p : problems) absl::StrAppend(&message, "\n", FormatProblem(path, p));
  return absl::InvalidArgumentError(message);
}

}  // namespace autocompress
