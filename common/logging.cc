#include "common/logging.h"

#include "glog/logging.h"

namespace autocompress {

void InitLogging(const char* argv0) {
  static bool initialized = false;
  if (initialized) return;
  initialized = true;
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv0);
  google::InstallFailureSignalHandler();
}

}  // namespace autocompress
