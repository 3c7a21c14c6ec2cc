// Fuzzes the experiment-file parser (YAML or JSON: search space, config lists, tuner,
// limits), which reports every problem instead of stopping at the first.
#include <cstdint>
#include <string>
#include <vector>

#include "client/experiment_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<autocompress::FileProblem> problems;
  (void)autocompress::ParseExperimentText(text, "fuzz.yaml", "/nonexistent", problems);
  for (const auto& problem : problems) (void)autocompress::FormatProblem("fuzz.yaml", problem);
  return 0;
}
