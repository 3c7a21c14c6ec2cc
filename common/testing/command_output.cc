#include "common/testing/command_output.h"

#include <cstdio>

#include "absl/strings/str_cat.h"

namespace autocompress::testing {

absl::StatusOr<std::string> CommandOutput(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run: ", command));
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(absl::StrCat("exit status ", status, ": ", command));
  }
  return output;
}

}  // namespace autocompress::testing
