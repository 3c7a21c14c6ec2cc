// Fuzzes the decoder of a trial's tuner parameters (what a worker receives), and the
// config-list parse the worker runs on what it decodes.
#include <cstdint>

#include "absl/strings/string_view.h"
#include "autocompress/v1/common.pb.h"
#include "compression/config_list.h"
#include "worker/trial_parameters.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  autocompress::v1::TrainingRecipe recipe;
  auto decoded = autocompress::worker::DecodeTrialParameters(json, recipe);
  if (decoded.ok() && !decoded->algorithm.empty()) {
    (void)autocompress::compression::ParseConfigList(decoded->algorithm, decoded->config_list_json);
  }
  return 0;
}
