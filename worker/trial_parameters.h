// Decoding a trial's tuner parameters (TrialSpec.parameters_json) into what the
// compression library and the training recipe take (reference §1.5).
//
// The parameters are one JSON object. Its `algorithm_name` member is the active branch
// of the search space's compressor choice: `_name` (the algorithm), keys
// `config_list::<op_types>::<op_names>::<field>` (pruners) or
// `config_list::<quant_types>::<op_types>::<op_names>::<field>` (quantizers), and
// `parameter::<kwarg>`. Config keys are grouped by their segments in first-seen order
// (config matching is "last match wins"), each group becoming one config-list entry.
// Every other top-level member is a searched knob outside the compressor choice: an
// algorithm kwarg by its name (`sparsifying_training_epochs`), else a recipe field by
// its name (learning_rate, momentum, weight_decay, nesterov, optimizer, batch_size,
// finetune_epochs, sparsifying_epochs, max_train_batches), which overrides the recipe.
//
// Differs from NNI: an empty op_types / op_names segment is absent for quantizers too
// (NNI decoded it to [''], which matched no layer and so quantized nothing); a top-level
// name that is neither a kwarg nor a recipe field is an error instead of being ignored.
//
// Pure C++ (no LibTorch), so the agent can reject bad parameters before starting a
// child. Thread-safe (no state).
#ifndef AUTOCOMPRESS_WORKER_TRIAL_PARAMETERS_H_
#define AUTOCOMPRESS_WORKER_TRIAL_PARAMETERS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "autocompress/v1/common.pb.h"

namespace autocompress::worker {

struct DecodedParameters {
  // Registered algorithm name; empty when the parameters choose no compressor (the
  // trial only fine-tunes and evaluates the model as it is).
  std::string algorithm;
  std::string config_list_json = "[]";  // JSON array
  std::string kwargs_json = "{}";       // JSON object
  // Recipe fields the parameters set, in order ("learning_rate", ...).
  std::vector<std::string> recipe_overrides;
};

// Decodes `parameters_json` and applies its recipe overrides to `recipe`.
// InvalidArgument naming the member ("parameters.algorithm_name.config_list::Conv2d:
// expected config_list::<op_types>::<op_names>::<field>") for malformed keys, an
// unknown algorithm, a value of the wrong type for its recipe field, or an unknown
// top-level name. The config list and kwargs are not validated against the algorithm
// here (compression's ParseConfigList and ParseKwargs do that, with their own paths).
absl::StatusOr<DecodedParameters> DecodeTrialParameters(absl::string_view parameters_json,
                                                        v1::TrainingRecipe& recipe);

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_TRIAL_PARAMETERS_H_
