// NNI config lists (reference §2.1, §3.1): which layers an algorithm compresses and how.
//
// A config list is a JSON array of objects with `op_types` (class names, `default` =
// the weighted module types) and/or `op_names` (dotted layer names), plus `sparsity`
// (pruners), `quant_types` / `quant_bits` / `quant_start_step` (quantizers), or
// `exclude`. For each layer the LAST matching entry wins and replaces earlier ones;
// an entry with `exclude` leaves the layer uncompressed.
//
// Differences from NNI (compression/README.md): unknown op names, keys or a config that
// matches no layer are errors that list the model's layers (NNI only warned); empty
// strings in op_types/op_names are ignored (NNI's quantizer decoding turned an empty
// segment into [''], which matched nothing).
//
// Pure C++ (no LibTorch), so the worker can validate a trial's parameters cheaply.
#ifndef AUTOCOMPRESS_COMPRESSION_CONFIG_LIST_H_
#define AUTOCOMPRESS_COMPRESSION_CONFIG_LIST_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "compression/algorithm_registry.h"

namespace autocompress::compression {

// A layer of a loaded model, as found by walking named_modules().
struct LayerInfo {
  std::string name;                   // dotted name, e.g. "block1.conv_a"
  std::string type;                   // class name, e.g. "Conv2d"
  std::vector<int64_t> weight_shape;  // empty when the layer has no weight tensor
  bool has_bias = false;
};

// One entry of a config list.
struct LayerConfig {
  std::vector<std::string> op_types;  // after expanding `default`
  std::vector<std::string> op_names;
  // An explicit empty list matches nothing (NNI); a list of only empty strings (an
  // empty segment of an encoded search-space key) counts as absent.
  bool op_types_given = false;
  bool op_names_given = false;
  std::optional<double> sparsity;
  bool exclude = false;
  std::vector<std::string> quant_types;   // subset of weight, input, output
  std::map<std::string, int> quant_bits;  // per quant type
  int quant_start_step = 0;
  // QAT only, per quant type: per_tensor_affine (default), per_tensor_symmetric,
  // per_channel_affine, per_channel_symmetric; and uint (default) or int.
  std::map<std::string, std::string> quant_scheme;
  std::map<std::string, std::string> quant_dtype;
};

// Parses and validates a config list for `algorithm`: required keys, sparsity strictly
// inside (0, 1), bits in 1..32, known quant types, no unknown keys. Errors name the
// entry and key, e.g. "config_list[1].sparsity: 1.5 is outside (0, 1)".
absl::StatusOr<std::vector<LayerConfig>> ParseConfigList(absl::string_view algorithm,
                                                         absl::string_view json_text);

// A layer chosen for compression and the config that applies to it.
struct LayerAssignment {
  int layer = 0;  // index into the model's layers
  LayerConfig config;
};

// Applies the matching rules to the model's layers. InvalidArgument (listing the
// layers) when an op_name is not a layer, when an entry matches no layer, or when a
// selected layer cannot be compressed by the family (a Linear for l1, a layer without
// weight for level).
absl::StatusOr<std::vector<LayerAssignment>> MatchLayers(absl::string_view algorithm,
                                                         const std::vector<LayerConfig>& configs,
                                                         const std::vector<LayerInfo>& layers);

// "conv1 (Conv2d [8, 1, 3, 3]), fc1 (Linear [32, 400]), ..." for messages.
std::string DescribeLayers(const std::vector<LayerInfo>& layers);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_CONFIG_LIST_H_
