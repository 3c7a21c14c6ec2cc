// Process logging setup (glog): to stderr, with the failure signal handler that prints a
// stack trace on a crash. Call once at the top of main.
#ifndef AUTOCOMPRESS_COMMON_LOGGING_H_
#define AUTOCOMPRESS_COMMON_LOGGING_H_

namespace autocompress {

void InitLogging(const char* argv0);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_LOGGING_H_
