// The compression algorithms this library knows: one table (algorithm_registry.cc) of
// each algorithm's name, family, whether it trains before pruning, the keyword arguments
// it takes (type, range, default) and, for quantizers, the config-list rules. Config-list
// parsing, kwargs validation and the session's dispatch all read this table; the
// LibTorch implementations are looked up by the same names (compressors.h).
//
// Pure C++ (no LibTorch), so the worker and the CLI can validate cheaply. Thread-safe:
// the table is constant.
#ifndef AUTOCOMPRESS_COMPRESSION_ALGORITHM_REGISTRY_H_
#define AUTOCOMPRESS_COMPRESSION_ALGORITHM_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace autocompress::compression {

// The algorithm families that read config lists differently.
enum class AlgorithmFamily {
  kLevel,      // any weighted layer, element-wise
  kFilter,     // l1, l2, fpgm, taylorfo, apoz, mean_activation: Conv2d filters
  kBatchNorm,  // slim: BatchNorm2d channels
  kQuantizer,  // naive, qat, dorefa, bnn
};

// One keyword argument an algorithm takes.
struct KwargSpec {
  enum class Type { kBool, kInt, kDouble, kChoice };
  std::string name;
  Type type = Type::kBool;
  double min = 0, max = 0;           // kInt, kDouble: inclusive range
  double fallback = 0;               // kBool (0/1), kInt, kDouble: value when absent
  std::vector<std::string> choices;  // kChoice; the first is the default
};

struct AlgorithmSpec {
  std::string name;
  AlgorithmFamily family = AlgorithmFamily::kLevel;
  // slim, taylorfo, apoz, mean_activation: they train (TrainingHooks) to choose filters.
  bool trains_before_pruning = false;
  std::vector<KwargSpec> kwargs;
  // Quantizers' config-list rules (empty / 0 = no restriction).
  std::vector<std::string> quant_types;  // the quant types it handles
  int weight_bits = 0;                   // the only weight bit width it accepts
  std::vector<std::string> op_types;     // the layer types it quantizes
  bool takes_quant_scheme = false;       // quant_scheme / quant_dtype keys
};

// The spec of `algorithm`; InvalidArgument naming the known ones for an unknown name.
absl::StatusOr<const AlgorithmSpec*> FindAlgorithm(absl::string_view algorithm);

// Family of a registered algorithm name; NotFound for an unknown one.
absl::StatusOr<AlgorithmFamily> FamilyOf(absl::string_view algorithm);

// All algorithm names: the eight pruners, then the four quantizers.
const std::vector<std::string>& AlgorithmNames();

// naive, qat, dorefa, bnn.
bool IsQuantizer(absl::string_view algorithm);
// slim, taylorfo, apoz, mean_activation.
bool TrainsBeforePruning(absl::string_view algorithm);

// An algorithm's keyword arguments after validation, every declared one present
// (defaults filled in). Reading a name the spec does not declare is a bug: it throws
// std::out_of_range (inside the session's exception boundary).
class Kwargs {
 public:
  bool Bool(const std::string& name) const { return numbers_.at(name) != 0; }
  int Int(const std::string& name) const { return static_cast<int>(numbers_.at(name)); }
  double Double(const std::string& name) const { return numbers_.at(name); }
  const std::string& Choice(const std::string& name) const { return choices_.at(name); }

 private:
  friend absl::StatusOr<Kwargs> ParseKwargs(const AlgorithmSpec& spec, absl::string_view json);
  std::map<std::string, double> numbers_;
  std::map<std::string, std::string> choices_;
};

// Parses `json` (an object, or empty for none) against spec.kwargs. InvalidArgument
// with the path ("kwargs.scale: -1 is outside [1e-12, 1000]"), and for unknown keys a
// message listing them and the valid ones.
absl::StatusOr<Kwargs> ParseKwargs(const AlgorithmSpec& spec, absl::string_view json);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_ALGORITHM_REGISTRY_H_
