#include "tuner_service/search_space/search_space.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace autocompress::tuner {

using Json = nlohmann::ordered_json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct TypeInfo {
  const char* name;
  ParamType type;
};

constexpr TypeInfo kTypes[] = {
    {"choice", ParamType::kChoice},         {"randint", ParamType::kRandint},
    {"uniform", ParamType::kUniform},       {"quniform", ParamType::kQuniform},
    {"loguniform", ParamType::kLoguniform}, {"qloguniform", ParamType::kQloguniform},
    {"normal", ParamType::kNormal},         {"qnormal", ParamType::kQnormal},
    {"lognormal", ParamType::kLognormal},   {"qlognormal", ParamType::kQlognormal},
};

std::string TypeList() {
  std::vector<std::string> names;
  for (const TypeInfo& t : kTypes) names.push_back(t.name);
  return absl::StrJoin(names, ", ");
}

bool IsIntegral(const Json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15;
}

// Path of the first parameter (an object with `_type`) inside a JSON value, or "".
std::string FirstParameterPath(const Json& value, const std::string& path) {
  if (value.is_object()) {
    if (value.contains("_type")) return path;
    for (auto it = value.begin(); it != value.end(); ++it) {
      std::string found = FirstParameterPath(it.value(), absl::StrCat(path, ".", it.key()));
      if (!found.empty()) return found;
    }
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) {
      std::string found = FirstParameterPath(value[i], absl::StrCat(path, "[", i, "]"));
      if (!found.empty()) return found;
    }
  }
  return "";
}

}  // namespace

absl::string_view ParamTypeName(ParamType type) {
  for (const TypeInfo& t : kTypes) {
    if (t.type == type) return t.name;
  }
  return "unknown";
}

double QRound(double x, double q) { return std::nearbyint(x / q) * q; }

// The document tree with parameters replaced by dimensions, for Render and Decode.
struct SearchSpace::Node {
  enum class Kind { kObject, kParam, kLiteral };
  Kind kind = Kind::kObject;
  // kObject: members in document order.
  std::vector<std::pair<std::string, std::unique_ptr<Node>>> members;
  // kParam: the dimension; for choice, per option either a nested object (non-null) or
  // a literal value.
  int dim = -1;
  std::vector<std::unique_ptr<Node>> nested_options;
  std::vector<Json> literal_options;
  // kLiteral: the value (`_name`).
  Json literal;
};

namespace {

// Builds dimensions and the template tree, collecting every issue on the way.
class Parser {
 public:
  Parser(const SearchSpaceLimits& limits, std::vector<Dimension>& dims,
         std::vector<std::vector<std::vector<int>>>& children, std::vector<int>& roots,
         std::vector<ValidationIssue>& issues)
      : limits_(limits), dims_(dims), children_(children), roots_(roots), issues_(issues) {}

  using Node = SearchSpace::Node;

  // An object of parameters (the top level, a nested option, or a plain group).
  std::unique_ptr<Node> ParseSpace(const Json& object, const std::string& path,
                                   const std::string& label, int parent, int parent_option,
                                   bool nested_option, int depth) {
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kObject;
    if (depth > limits_.max_depth) {
      Issue(path, absl::StrCat("nesting deeper than ", limits_.max_depth, " levels"));
      return node;
    }
    for (auto it = object.begin(); it != object.end(); ++it) {
      const std::string& key = it.key();
      const std::string member_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const std::string member_label = label.empty() ? key : absl::StrCat(label, "/", key);
      if (key == "_name" && nested_option) {
        auto literal = std::make_unique<Node>();
        literal->kind = Node::Kind::kLiteral;
        literal->literal = it.value();
        node->members.emplace_back(key, std::move(literal));
        continue;
      }
      if (!key.empty() && key[0] == '_') {
        Issue(member_path,
              absl::StrCat("unexpected key '", key, "' (only _name is allowed beside parameters)"));
        continue;
      }
      const Json& value = it.value();
      if (!value.is_object()) {
        Issue(member_path,
              absl::StrCat("expected an object with _type and _value, got ", value.type_name()));
        continue;
      }
      if (value.contains("_type")) {
        node->members.emplace_back(
            key, ParseParam(value, member_path, member_label, parent, parent_option, depth));
      } else {
        node->members.emplace_back(
            key, ParseSpace(value, member_path, member_label, parent, parent_option,
                            /*nested_option=*/false, depth + 1));
      }
    }
    return node;
  }

 private:
  std::unique_ptr<Node> ParseParam(const Json& spec, const std::string& path,
                                   const std::string& label, int parent, int parent_option,
                                   int depth) {
    auto node = std::make_unique<Node>();
    node->kind = Node::Kind::kParam;
    for (auto it = spec.begin(); it != spec.end(); ++it) {
      if (it.key() != "_type" && it.key() != "_value") {
        Issue(absl::StrCat(path, ".", it.key()),
              "unexpected key (a parameter has only _type and _value)");
      }
    }
    const Json& type_json = spec["_type"];
    if (!type_json.is_string()) {
      Issue(path + "._type", "must be a string");
      return node;
    }
    const std::string type_name = type_json.get<std::string>();
    const TypeInfo* info = nullptr;
    for (const TypeInfo& t : kTypes) {
      if (type_name == t.name) info = &t;
    }
    if (info == nullptr) {
      Issue(path + "._type",
            absl::StrCat("unknown type '", type_name, "'; expected one of ", TypeList()));
      return node;
    }
    if (!spec.contains("_value")) {
      Issue(path, "missing _value");
      return node;
    }
    const Json& values = spec["_value"];
    const std::string value_path = path + "._value";
    if (!values.is_array()) {
      Issue(value_path, absl::StrCat("must be a list, got ", values.type_name()));
      return node;
    }
    if (static_cast<int>(dims_.size()) >= limits_.max_dimensions) {
      if (!too_many_reported_) {
        Issue(path, absl::StrCat("more than ", limits_.max_dimensions, " parameters"));
      }
      too_many_reported_ = true;
      return node;
    }

    Dimension dim;
    dim.id = static_cast<int>(dims_.size());
    dim.label = label;
    dim.json_path = path;
    dim.type = info->type;
    dim.parent = parent;
    dim.parent_option = parent_option;
    node->dim = dim.id;

    if (info->type == ParamType::kChoice) {
      if (values.empty()) {
        Issue(value_path, "choice needs at least one option");
        return node;
      }
      if (static_cast<int>(values.size()) > limits_.max_options) {
        Issue(value_path,
              absl::StrCat(values.size(), " options exceed the limit of ", limits_.max_options));
        return node;
      }
      dim.num_categories = static_cast<int>(values.size());
      dims_.push_back(dim);
      children_.emplace_back(values.size());
      if (parent < 0) roots_.push_back(dim.id);
      RegisterChild(dim);
      absl::flat_hash_set<std::string> names;
      for (size_t i = 0; i < values.size(); ++i) {
        const Json& option = values[i];
        const std::string option_path = absl::StrCat(value_path, "[", i, "]");
        if (option.is_object() && option.contains("_name")) {
          const Json& name = option["_name"];
          if (!name.is_string() && !name.is_number()) {
            Issue(option_path + "._name", "must be a string");
          }
          const std::string name_text = name.is_string() ? name.get<std::string>() : name.dump();
          if (!names.insert(name_text).second) {
            Issue(option_path + "._name",
                  absl::StrCat("duplicate option name '", name_text, "' in this choice"));
          }
          node->nested_options.push_back(ParseSpace(
              option, option_path, absl::StrCat(label, "/", name_text), dim.id, static_cast<int>(i),
              /*nested_option=*/true, depth + 1));
          node->literal_options.emplace_back();
        } else {
          // A constant (NNI passes it through as is) must not hide parameters: without a
          // _name they would reach the trial unsampled.
          if (const std::string inner = FirstParameterPath(option, option_path); !inner.empty()) {
            Issue(option_path,
                  absl::StrCat("an option holding parameters (", inner,
                               " has _type) must be a nested search space with a _name"));
          }
          node->nested_options.push_back(nullptr);
          node->literal_options.push_back(option);
        }
      }
      return node;
    }

    const bool q_type = info->type == ParamType::kQuniform ||
                        info->type == ParamType::kQloguniform ||
                        info->type == ParamType::kQnormal || info->type == ParamType::kQlognormal;
    const size_t want = q_type ? 3 : 2;
    if (values.size() != want) {
      Issue(value_path, absl::StrCat(type_name, " needs ", want, " numbers",
                                     q_type ? " [a, b, q]" : " [a, b]", ", got ", values.size()));
      return node;
    }
    double v[3] = {0, 0, 0};
    bool numbers_ok = true;
    for (size_t i = 0; i < want; ++i) {
      if (!values[i].is_number() || !std::isfinite(values[i].get<double>())) {
        Issue(absl::StrCat(value_path, "[", i, "]"), "must be a finite number");
        numbers_ok = false;
      } else {
        v[i] = values[i].get<double>();
      }
    }
    if (!numbers_ok) return node;
    dim.low = v[0];
    dim.high = v[1];
    dim.q = q_type ? v[2] : 0;
    bool ok = true;
    if (info->type == ParamType::kRandint) {
      for (int i = 0; i < 2; ++i) {
        if (!IsIntegral(values[i])) {
          Issue(absl::StrCat(value_path, "[", i, "]"), "randint bounds must be integers");
          ok = false;
        } else if (std::fabs(values[i].get<double>()) > 9007199254740992.0) {
          Issue(absl::StrCat(value_path, "[", i, "]"), "randint bounds must lie within +-2^53");
          ok = false;
        }
      }
      if (ok && dim.low >= dim.high) {
        Issue(value_path,
              absl::StrCat("upper bound ", values[1].dump(), " must exceed lower bound ",
                           values[0].dump(), " (randint's upper bound is exclusive)"));
        ok = false;
      }
      dim.num_categories = ok ? static_cast<int>(std::min(dim.high - dim.low, 2e9)) : 0;
    } else if (dim.normal_family()) {
      if (dim.high <= 0) {
        Issue(value_path + "[1]", absl::StrCat("sigma must be positive, got ", values[1].dump()));
        ok = false;
      }
    } else {
      if (dim.low >= dim.high) {
        Issue(value_path, absl::StrCat("upper bound ", values[1].dump(),
                                       " must exceed lower bound ", values[0].dump()));
        ok = false;
      }
      if (dim.log_scale() && dim.low <= 0) {
        Issue(value_path + "[0]",
              absl::StrCat(type_name, " needs a positive lower bound, got ", values[0].dump()));
        ok = false;
      }
    }
    if (q_type && dim.q <= 0) {
      Issue(value_path + "[2]", absl::StrCat("q must be positive, got ", values[2].dump()));
      ok = false;
    }
    if (!ok) return node;
    dims_.push_back(dim);
    children_.emplace_back();
    if (parent < 0) roots_.push_back(dim.id);
    RegisterChild(dim);
    return node;
  }

  void RegisterChild(const Dimension& dim) {
    if (dim.parent >= 0) children_[dim.parent][dim.parent_option].push_back(dim.id);
  }

  void Issue(std::string path, std::string message) {
    issues_.push_back({std::move(path), std::move(message)});
  }

  const SearchSpaceLimits& limits_;
  std::vector<Dimension>& dims_;
  std::vector<std::vector<std::vector<int>>>& children_;
  std::vector<int>& roots_;
  std::vector<ValidationIssue>& issues_;
  bool too_many_reported_ = false;
};

}  // namespace

SearchSpace::SearchSpace() = default;
SearchSpace::~SearchSpace() = default;

absl::StatusOr<std::shared_ptr<const SearchSpace>> SearchSpace::Parse(
    absl::string_view json_text, const SearchSpaceLimits& limits,
    std::vector<ValidationIssue>* issues_out) {
  std::vector<ValidationIssue> issues;
  auto fail = [&]() -> absl::Status {
    std::vector<std::string> lines;
    for (const ValidationIssue& issue : issues) {
      lines.push_back(issue.path.empty() ? issue.message
                                         : absl::StrCat(issue.path, ": ", issue.message));
    }
    if (issues_out != nullptr) *issues_out = issues;
    return absl::InvalidArgumentError(
        absl::StrCat("invalid search space (", issues.size(),
                     issues.size() == 1 ? " issue): " : " issues): ", absl::StrJoin(lines, "; ")));
  };
  if (json_text.size() > limits.max_text_bytes) {
    issues.push_back({"", absl::StrCat("search space is ", json_text.size(),
                                       " bytes; the limit is ", limits.max_text_bytes)});
    return fail();
  }
  Json document;
  // Depth of raw JSON is bounded before building the tree: nlohmann recurses.
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : json_text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  // Each parameter level uses up to three JSON levels ({_type, _value: [ {option} ]}).
  if (max_depth > 3 * limits.max_depth + 2) {
    issues.push_back({"", absl::StrCat("JSON nesting depth ", max_depth, " exceeds the limit")});
    return fail();
  }
  try {
    document = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {  // also out_of_range: a number beyond double
    issues.push_back({"", absl::StrCat("not valid JSON: ", e.what())});
    return fail();
  }
  if (!document.is_object()) {
    issues.push_back({"", absl::StrCat("must be a JSON object, got ", document.type_name())});
    return fail();
  }
  std::shared_ptr<SearchSpace> space(new SearchSpace());
  Parser parser(limits, space->dimensions_, space->children_, space->roots_, issues);
  space->root_ = parser.ParseSpace(document, "", "", -1, -1, /*nested_option=*/false, 0);
  if (issues.empty() && space->dimensions_.empty()) {
    issues.push_back({"", "the search space defines no parameters (it is empty)"});
  }
  if (!issues.empty()) return fail();
  if (issues_out != nullptr) issues_out->clear();
  return std::shared_ptr<const SearchSpace>(std::move(space));
}

const std::vector<int>& SearchSpace::Children(int dim, int option) const {
  return children_[dim][option];
}

bool SearchSpace::IsActive(const Assignment& x, int dim) const {
  int current = dim;
  while (dimensions_[current].parent >= 0) {
    const Dimension& d = dimensions_[current];
    if (x[d.parent] != static_cast<double>(d.parent_option)) return false;
    current = d.parent;
  }
  return true;
}

namespace {

double DrawOnce(const Dimension& d, absl::BitGenRef gen) {
  switch (d.type) {
    case ParamType::kChoice:
      return static_cast<double>(absl::Uniform<int>(gen, 0, d.num_categories));
    case ParamType::kRandint:
      return d.low + static_cast<double>(
                         absl::Uniform<int64_t>(gen, 0, static_cast<int64_t>(d.high - d.low)));
    case ParamType::kUniform:
      return absl::Uniform<double>(gen, d.low, d.high);
    case ParamType::kQuniform:
      return std::clamp(QRound(absl::Uniform<double>(gen, d.low, d.high), d.q), d.low, d.high);
    case ParamType::kLoguniform:
      return std::exp(absl::Uniform<double>(gen, std::log(d.low), std::log(d.high)));
    case ParamType::kQloguniform:
      return std::clamp(
          QRound(std::exp(absl::Uniform<double>(gen, std::log(d.low), std::log(d.high))), d.q),
          d.low, d.high);
    case ParamType::kNormal:
      return absl::Gaussian<double>(gen, d.low, d.high);
    case ParamType::kQnormal:
      return QRound(absl::Gaussian<double>(gen, d.low, d.high), d.q);
    case ParamType::kLognormal:
      return std::exp(absl::Gaussian<double>(gen, d.low, d.high));
    case ParamType::kQlognormal:
      return QRound(std::exp(absl::Gaussian<double>(gen, d.low, d.high)), d.q);
  }
  return kNaN;
}

}  // namespace

double SearchSpace::SampleDimension(int dim_id, absl::BitGenRef gen) const {
  // A wide lognormal can overflow to inf, which JSON cannot carry: draw again.
  double v = DrawOnce(dimensions_[dim_id], gen);
  for (int retry = 0; retry < 100 && !std::isfinite(v); ++retry)
    v = DrawOnce(dimensions_[dim_id], gen);
  return std::isfinite(v) ? v : std::numeric_limits<double>::max();
}

Assignment SearchSpace::SamplePrior(absl::BitGenRef gen) const {
  Assignment x(dimensions_.size(), kNaN);
  Repair(x, gen);
  return x;
}

void SearchSpace::Repair(Assignment& x, absl::BitGenRef gen) const {
  x.resize(dimensions_.size(), kNaN);
  // Depth-first from the roots: active dimensions get a value, inactive ones NaN.
  std::vector<std::pair<int, bool>> stack;
  for (auto it = roots_.rbegin(); it != roots_.rend(); ++it) stack.emplace_back(*it, true);
  while (!stack.empty()) {
    auto [dim, active] = stack.back();
    stack.pop_back();
    if (!active) {
      x[dim] = kNaN;
    } else if (std::isnan(x[dim])) {
      x[dim] = SampleDimension(dim, gen);
    }
    if (dimensions_[dim].type != ParamType::kChoice) continue;
    for (int option = 0; option < dimensions_[dim].num_categories; ++option) {
      const bool child_active = active && x[dim] == static_cast<double>(option);
      const std::vector<int>& kids = children_[dim][option];
      for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.emplace_back(*it, child_active);
    }
  }
}

namespace {

Json RenderNode(const SearchSpace::Node& node, const std::vector<Dimension>& dims,
                const Assignment& x);

Json RenderParam(const SearchSpace::Node& node, const std::vector<Dimension>& dims,
                 const Assignment& x) {
  const Dimension& d = dims[node.dim];
  const double v = x[node.dim];
  switch (d.type) {
    case ParamType::kChoice: {
      const int option = static_cast<int>(v);
      if (node.nested_options[option] != nullptr) {
        return RenderNode(*node.nested_options[option], dims, x);
      }
      return node.literal_options[option];
    }
    case ParamType::kRandint:
      return static_cast<int64_t>(v);
    default:
      return v;
  }
}

Json RenderNode(const SearchSpace::Node& node, const std::vector<Dimension>& dims,
                const Assignment& x) {
  Json out = Json::object();
  for (const auto& [key, member] : node.members) {
    switch (member->kind) {
      case SearchSpace::Node::Kind::kLiteral:
        out[key] = member->literal;
        break;
      case SearchSpace::Node::Kind::kObject:
        out[key] = RenderNode(*member, dims, x);
        break;
      case SearchSpace::Node::Kind::kParam:
        if (member->dim >= 0 && !std::isnan(x[member->dim])) {
          out[key] = RenderParam(*member, dims, x);
        }
        break;
    }
  }
  return out;
}

absl::Status DecodeNode(const SearchSpace::Node& node, const std::vector<Dimension>& dims,
                        const Json& value, const std::string& path, Assignment& x);

absl::Status DecodeParam(const SearchSpace::Node& node, const std::vector<Dimension>& dims,
                         const Json& value, const std::string& path, Assignment& x) {
  const Dimension& d = dims[node.dim];
  if (d.type == ParamType::kChoice) {
    for (int option = 0; option < d.num_categories; ++option) {
      const SearchSpace::Node* nested = node.nested_options[option].get();
      if (nested != nullptr) {
        if (!value.is_object() || !value.contains("_name")) continue;
        for (const auto& [key, member] : nested->members) {
          if (key == "_name" && member->literal == value["_name"]) {
            x[node.dim] = option;
            return DecodeNode(*nested, dims, value, path, x);
          }
        }
      } else if (node.literal_options[option] == value) {
        x[node.dim] = option;
        return absl::OkStatus();
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", value.dump(), " is not an option of this choice"));
  }
  if (!value.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a number"));
  }
  const double v = value.get<double>();
  if (d.type == ParamType::kRandint && (!IsIntegral(value) || v < d.low || v >= d.high)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", value.dump(), " is not an integer in [", d.low, ", ", d.high, ")"));
  }
  const double slack = 1e-9 * std::max(1.0, std::fabs(d.high - d.low));
  if (d.bounded() && (v < d.low - slack || v > d.high + slack)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", v, " is outside [", d.low, ", ", d.high, "]"));
  }
  // Within the slack, values are pulled onto the range (a log type never sees <= 0).
  x[node.dim] = d.bounded() && d.type != ParamType::kRandint ? std::clamp(v, d.low, d.high) : v;
  return absl::OkStatus();
}

absl::Status DecodeNode(const SearchSpace::Node& node, const std::vector<Dimension>& dims,
                        const Json& value, const std::string& path, Assignment& x) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.empty() ? "parameters" : path, ": expected an object"));
  }
  for (const auto& [key, member] : node.members) {
    const std::string member_path = path.empty() ? key : absl::StrCat(path, ".", key);
    if (member->kind == SearchSpace::Node::Kind::kLiteral) continue;
    if (!value.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat(member_path, ": missing"));
    }
    const Json& v = value[key];
    if (member->kind == SearchSpace::Node::Kind::kObject) {
      if (absl::Status s = DecodeNode(*member, dims, v, member_path, x); !s.ok()) return s;
    } else if (member->dim >= 0) {
      if (absl::Status s = DecodeParam(*member, dims, v, member_path, x); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string SearchSpace::Render(const Assignment& x) const {
  return RenderNode(*root_, dimensions_, x).dump();
}

absl::StatusOr<Assignment> SearchSpace::Decode(absl::string_view parameters_json) const {
  Json value;
  try {
    value = Json::parse(parameters_json.begin(), parameters_json.end());
  } catch (const Json::exception& e) {  // also out_of_range: a number beyond double
    return absl::InvalidArgumentError(absl::StrCat("parameters are not valid JSON: ", e.what()));
  }
  Assignment x(dimensions_.size(), kNaN);
  if (absl::Status s = DecodeNode(*root_, dimensions_, value, "", x); !s.ok()) return s;
  return x;
}

}  // namespace autocompress::tuner
