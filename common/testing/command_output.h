// CommandOutput: runs a shell command and returns what it wrote on stdout (benchmarks run
// their Python baselines this way).
#ifndef AUTOCOMPRESS_COMMON_TESTING_COMMAND_OUTPUT_H_
#define AUTOCOMPRESS_COMMON_TESTING_COMMAND_OUTPUT_H_

#include <string>

#include "absl/status/statusor.h"

namespace autocompress::testing {

// Its stdout; Internal when it cannot start or exits non-zero (with the exit status).
absl::StatusOr<std::string> CommandOutput(const std::string& command);

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_COMMAND_OUTPUT_H_
