// SearchSpaceGenerator: the seed's AutoCompressionSearchSpaceGenerator in C++. Each
// AddConfig(algorithm, config_list, kwargs) appends one option of the compressor choice,
// and Dumps() gives NNI's nested search space (reference §1.3):
//
//   {"algorithm_name": {"_type": "choice", "_value": [
//      {"_name": "level", "config_list::default::::sparsity": {"_type": "uniform", ...}},
//      {"_name": "qat", "config_list::weight:output::Conv2d:Linear::::quant_bits": {
//          "weight": {"_type": "choice", "_value": [8]}, ...}}]}}
//
// Config fields other than op_types, op_names (and quant_types for quantizers) become
// values: a plain value is wrapped as a one-option choice, an object with `_type` is kept
// as the user's distribution, an object without one is wrapped member by member. Kwargs
// become `parameter::<name>` the same way.
//
// Differs from NNI, on purpose: an unknown algorithm is an error (NNI appended nothing and
// said nothing); the caller's config dicts are not modified (NNI popped their op_types,
// so a dict reused in a second call lost them); two entries that would produce the same
// key are an error (NNI's decoder let the later one overwrite the earlier silently); a
// plain string for op_types / op_names / quant_types is one item (NNI joined its
// characters). Errors name the position: "config_list[1].op_types: ...".
//
// Not thread-safe (a builder); the result is plain JSON.
#ifndef AUTOCOMPRESS_CLIENT_SEARCH_SPACE_GENERATOR_H_
#define AUTOCOMPRESS_CLIENT_SEARCH_SPACE_GENERATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace autocompress {

class SearchSpaceGenerator {
 public:
  // Appends one option. `config_list` is a JSON array of objects, `kwargs` an object.
  // InvalidArgument (nothing appended) for an unknown algorithm, a config entry that is
  // not an object, op_types that are not strings, or a repeated key.
  absl::Status AddConfig(const std::string& algorithm, const nlohmann::json& config_list,
                         const nlohmann::json& kwargs = nlohmann::json::object());

  // {"algorithm_name": {"_type": "choice", "_value": [options...]}}.
  nlohmann::json ToJson() const;
  // ToJson() as text (`indent` as nlohmann's dump: -1 = one line).
  std::string Dumps(int indent = -1) const;
  // The reverse of Dumps: takes the options of `search_space["algorithm_name"]`.
  static absl::StatusOr<SearchSpaceGenerator> Loads(const nlohmann::json& search_space);

  const std::vector<nlohmann::json>& options() const { return options_; }

 private:
  std::vector<nlohmann::json> options_;
};

// The value wrapping rule above, applied to one field or kwarg value.
nlohmann::json WrapSearchValue(const nlohmann::json& value);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_SEARCH_SPACE_GENERATOR_H_
