#include "common/testing/runfiles.h"

#include <cstdlib>

namespace autocompress::testing {

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return workspace_relative;
  return std::string(srcdir) + "/" + (workspace != nullptr ? workspace : "autocompress") + "/" +
         workspace_relative;
}

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name;
}

}  // namespace autocompress::testing
