// Paths of files Bazel puts in a test's runfiles (the test's `data`), e.g.
// RunfilePath("compression/testdata/small_cnn.pt"). Outside Bazel the path is returned
// as given, relative to the working directory.
#ifndef AUTOCOMPRESS_COMMON_TESTING_RUNFILES_H_
#define AUTOCOMPRESS_COMMON_TESTING_RUNFILES_H_

#include <string>

namespace autocompress::testing {

std::string RunfilePath(const std::string& workspace_relative);

// A path inside the test's private temporary directory ($TEST_TMPDIR).
std::string TempPath(const std::string& name);

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_RUNFILES_H_
