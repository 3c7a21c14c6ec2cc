// NNI's search-space format, parsed into a flat list of dimensions that tuners sample.
//
// A search space is a JSON object {name: {"_type": T, "_value": [...]}, ...} with the ten
// types of NNI 2.x (choice, randint, uniform, quniform, loguniform, qloguniform, normal,
// qnormal, lognormal, qlognormal). A `choice` option that is an object with `_name` is a
// nested sub-space: its other members are parameters that exist only when that option is
// chosen. Any other option (number, string, list, object without `_name`) is a literal
// value handed back as is. Inside a space, an object without `_type` is a plain group
// whose members follow the same rules (how the auto-compression generator writes
// `quant_bits: {weight: ..., output: ...}`).
//
// Every leaf parameter and every choice becomes a Dimension. A dimension is active when
// all choices above it picked the option that contains it. An Assignment holds one double
// per dimension: the option index for choice, the integer for randint, the value for the
// rest, and NaN for inactive dimensions. Render() turns an assignment into the
// parameters JSON a trial receives: only the active branch, `_name` kept.
//
// Thread-safety: a SearchSpace is immutable after Parse and safe to share.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_SEARCH_SPACE_SEARCH_SPACE_H_
#define AUTOCOMPRESS_TUNER_SERVICE_SEARCH_SPACE_SEARCH_SPACE_H_

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace autocompress::tuner {

enum class ParamType {
  kChoice,
  kRandint,
  kUniform,
  kQuniform,
  kLoguniform,
  kQloguniform,
  kNormal,
  kQnormal,
  kLognormal,
  kQlognormal,
};

// "choice", "randint", ... as NNI spells them.
absl::string_view ParamTypeName(ParamType type);

// One sampled variable.
struct Dimension {
  int id = 0;
  // Dotted label of the parameter within the rendered parameters, e.g.
  // "algorithm_name/l1/config_list::Conv2d::::sparsity" (choices by `_name`).
  std::string label;
  // JSON path in the search-space document, for messages.
  std::string json_path;
  ParamType type = ParamType::kUniform;
  // Bounds: [low, high] for uniform-like types (randint: [lower, upper)), or mu and
  // sigma for the normal family (stored in low and high); q for q-types, else 0.
  double low = 0;
  double high = 0;
  double q = 0;
  // Number of options for choice; upper - lower for randint.
  int num_categories = 0;
  // The choice (dimension id) and option index that activate this dimension; -1 for
  // top-level dimensions.
  int parent = -1;
  int parent_option = -1;

  bool categorical() const { return type == ParamType::kChoice || type == ParamType::kRandint; }
  bool log_scale() const {
    return type == ParamType::kLoguniform || type == ParamType::kQloguniform ||
           type == ParamType::kLognormal || type == ParamType::kQlognormal;
  }
  // A value in the space algorithms model it in (log for log types), and back. A
  // qlognormal value can round to 0: it is floored at 1e-12 before the log (hyperopt).
  double ToModel(double v) const { return log_scale() ? std::log(std::max(v, 1e-12)) : v; }
  double FromModel(double v) const { return log_scale() ? std::exp(v) : v; }
  bool normal_family() const {
    return type == ParamType::kNormal || type == ParamType::kQnormal ||
           type == ParamType::kLognormal || type == ParamType::kQlognormal;
  }
  bool quantized() const { return q > 0; }
  // Uniform-like types are clipped to [low, high]; the normal family is unbounded.
  bool bounded() const { return !normal_family(); }
};

// One value per dimension (NaN = inactive).
using Assignment = std::vector<double>;

struct ValidationIssue {
  std::string path;
  std::string message;
};

// Limits that keep a hostile document from exhausting the tuner.
struct SearchSpaceLimits {
  size_t max_text_bytes = 1 << 20;
  int max_depth = 16;
  int max_dimensions = 10000;
  int max_options = 10000;
};

class SearchSpace {
 public:
  // Parses and validates. On error the status is InvalidArgument and lists every issue
  // as "path: message" lines; `issues`, when given, receives them one by one.
  static absl::StatusOr<std::shared_ptr<const SearchSpace>> Parse(
      absl::string_view json_text, const SearchSpaceLimits& limits = {},
      std::vector<ValidationIssue>* issues = nullptr);

  ~SearchSpace();

  const std::vector<Dimension>& dimensions() const { return dimensions_; }
  int size() const { return static_cast<int>(dimensions_.size()); }

  // True when every choice above `dim` picked the option containing it.
  bool IsActive(const Assignment& x, int dim) const;

  // Draws a full assignment from the prior: top-down, so only the chosen branch of each
  // nested choice is sampled (the rest stays NaN).
  Assignment SamplePrior(absl::BitGenRef gen) const;

  // Draws one value of a dimension from its prior, with NNI's rounding and clipping.
  double SampleDimension(int dim, absl::BitGenRef gen) const;

  // Sets dimensions that became inactive to NaN and samples those that became active
  // from the prior (after a choice changed).
  void Repair(Assignment& x, absl::BitGenRef gen) const;

  // The parameters a trial receives (compact JSON), e.g.
  // {"algorithm_name": {"_name": "l1", "config_list::Conv2d::::sparsity": 0.42}}.
  std::string Render(const Assignment& x) const;

  // The inverse of Render: recovers the assignment from parameters JSON (used when a
  // study is re-created from stored suggestions). InvalidArgument when it does not fit.
  absl::StatusOr<Assignment> Decode(absl::string_view parameters_json) const;

  // Children (dimension ids) activated by option `option` of choice `dim`, in order.
  const std::vector<int>& Children(int dim, int option) const;

  // Top-level dimension ids, in document order.
  const std::vector<int>& Roots() const { return roots_; }

  // The rendering template (defined in the .cc only).
  struct Node;

 private:
  SearchSpace();

  std::vector<Dimension> dimensions_;
  std::vector<int> roots_;
  // children_[dim][option] -> dimension ids directly below that option.
  std::vector<std::vector<std::vector<int>>> children_;
  // Rendering template: the document tree with parameters replaced by dimension ids.
  std::unique_ptr<Node> root_;
};

// NNI's rounding for q-types: round(x / q) * q with round-half-to-even, as NumPy does.
double QRound(double x, double q);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_SEARCH_SPACE_SEARCH_SPACE_H_
