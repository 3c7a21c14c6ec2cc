#include "compression/algorithm_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/args.h"
#include "common/status_macros.h"

namespace autocompress::compression {
namespace {

using Type = KwargSpec::Type;

KwargSpec Flag(const char* name) {
  KwargSpec k;
  k.name = name;
  return k;
}
KwargSpec Number(const char* name, Type type, double min, double max, double fallback) {
  KwargSpec k = Flag(name);
  k.type = type;
  k.min = min;
  k.max = max;
  k.fallback = fallback;
  return k;
}
KwargSpec Choice(const char* name, std::vector<std::string> choices) {
  KwargSpec k = Flag(name);
  k.type = Type::kChoice;
  k.choices = std::move(choices);
  return k;
}
KwargSpec TrainingBatches() {
  return Number("sparsifying_training_batches", Type::kInt, 1, 1000000, 1);
}

AlgorithmSpec Pruner(const char* name, AlgorithmFamily family, bool trains,
                     std::vector<KwargSpec> kwargs) {
  AlgorithmSpec spec;
  spec.name = name;
  spec.family = family;
  spec.trains_before_pruning = trains;
  spec.kwargs = std::move(kwargs);
  return spec;
}
AlgorithmSpec Quantizer(const char* name, std::vector<std::string> quant_types, int weight_bits,
                        std::vector<std::string> op_types, bool takes_quant_scheme) {
  AlgorithmSpec spec = Pruner(name, AlgorithmFamily::kQuantizer, false, {});
  spec.quant_types = std::move(quant_types);
  spec.weight_bits = weight_bits;
  spec.op_types = std::move(op_types);
  spec.takes_quant_scheme = takes_quant_scheme;
  return spec;
}

// The registry: every algorithm once, pruners first, in the order AlgorithmNames lists.
const std::vector<AlgorithmSpec>& Registry() {
  using F = AlgorithmFamily;
  static const auto* registry = [] {
    const KwargSpec dependency_aware = Flag("dependency_aware");
    const KwargSpec activation = Choice("activation", {"relu", "relu6"});
    return new std::vector<AlgorithmSpec>{
        Pruner("level", F::kLevel, false, {}),
        Pruner("slim", F::kBatchNorm, true,
               {Number("sparsifying_training_epochs", Type::kInt, 1, 10000, 10),
                Number("scale", Type::kDouble, 1e-12, 1e3, 1e-4)}),
        Pruner("l1", F::kFilter, false, {dependency_aware}),
        Pruner("l2", F::kFilter, false, {dependency_aware}),
        Pruner("fpgm", F::kFilter, false, {dependency_aware}),
        Pruner("taylorfo", F::kFilter, true,
               {dependency_aware, TrainingBatches(), Flag("global_sort")}),
        Pruner("apoz", F::kFilter, true, {dependency_aware, TrainingBatches(), activation}),
        Pruner("mean_activation", F::kFilter, true,
               {dependency_aware, TrainingBatches(), activation}),
        Quantizer("naive", {"weight"}, 8, {}, false),
        Quantizer("qat", {"weight", "input", "output"}, 0, {"Conv2d", "Linear", "ReLU", "ReLU6"},
                  true),
        Quantizer("dorefa", {"weight"}, 0, {}, false),
        Quantizer("bnn", {"weight", "output"}, 0, {}, false),
    };
  }();
  return *registry;
}

const AlgorithmSpec* Lookup(absl::string_view algorithm) {
  for (const AlgorithmSpec& spec : Registry()) {
    if (spec.name == algorithm) return &spec;
  }
  return nullptr;
}

std::string UnknownAlgorithm(absl::string_view algorithm) {
  return absl::StrCat("unknown compression algorithm '", algorithm,
                      "'; known: ", absl::StrJoin(AlgorithmNames(), ", "));
}

}  // namespace

absl::StatusOr<const AlgorithmSpec*> FindAlgorithm(absl::string_view algorithm) {
  const AlgorithmSpec* spec = Lookup(algorithm);
  if (spec == nullptr) return absl::InvalidArgumentError(UnknownAlgorithm(algorithm));
  return spec;
}

absl::StatusOr<AlgorithmFamily> FamilyOf(absl::string_view algorithm) {
  const AlgorithmSpec* spec = Lookup(algorithm);
  if (spec == nullptr) return absl::NotFoundError(UnknownAlgorithm(algorithm));
  return spec->family;
}

const std::vector<std::string>& AlgorithmNames() {
  static const auto* names = [] {
    auto* out = new std::vector<std::string>;
    for (const AlgorithmSpec& spec : Registry()) out->push_back(spec.name);
    return out;
  }();
  return *names;
}

bool IsQuantizer(absl::string_view algorithm) {
  const AlgorithmSpec* spec = Lookup(algorithm);
  return spec != nullptr && spec->family == AlgorithmFamily::kQuantizer;
}

bool TrainsBeforePruning(absl::string_view algorithm) {
  const AlgorithmSpec* spec = Lookup(algorithm);
  return spec != nullptr && spec->trains_before_pruning;
}

absl::StatusOr<Kwargs> ParseKwargs(const AlgorithmSpec& spec, absl::string_view json) {
  ASSIGN_OR_RETURN(Args args, Args::ParseAt(json, "kwargs", spec.name));
  Kwargs out;
  for (const KwargSpec& k : spec.kwargs) {
    switch (k.type) {
      case Type::kBool: {
        ASSIGN_OR_RETURN(const bool value, args.Bool(k.name, k.fallback != 0));
        out.numbers_[k.name] = value ? 1 : 0;
        break;
      }
      case Type::kInt: {
        ASSIGN_OR_RETURN(const int value,
                         args.Int(k.name, static_cast<int>(k.fallback), static_cast<int>(k.min),
                                  static_cast<int>(k.max)));
        out.numbers_[k.name] = value;
        break;
      }
      case Type::kDouble: {
        ASSIGN_OR_RETURN(out.numbers_[k.name], args.Double(k.name, k.fallback, k.min, k.max));
        break;
      }
      case Type::kChoice: {
        ASSIGN_OR_RETURN(out.choices_[k.name], args.OneOf(k.name, k.choices.front(), k.choices));
        break;
      }
    }
  }
  RETURN_IF_ERROR(args.CheckAllUsed(/*ignored=*/{}));
  return out;
}

}  // namespace autocompress::compression
