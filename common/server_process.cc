#include "common/server_process.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "glog/logging.h"

namespace autocompress {
namespace {

sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockShutdownSignals() {
  sigset_t set = ShutdownSignals();
  CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, nullptr), 0);
}

int WaitForShutdownSignal() {
  sigset_t set = ShutdownSignals();
  int signal = 0;
  while (sigwait(&set, &signal) != 0) {
  }
  return signal;
}

int RunServerProcess(const MetricsEndpoint& metrics,
                     absl::StatusOr<std::unique_ptr<Server>> server) {
  if (!server.ok()) {
    LOG(ERROR) << "cannot start: " << server.status();
    return 1;
  }
  const std::string name = (*server)->name();
  MetricsAuth auth;
  if (!metrics.password.empty()) {
    auth = [password = metrics.password](const std::string&, const std::string& given) {
      return TokenMatches(given, password);
    };
  }
  auto exposer =
      MetricsExposer::Start(metrics.host, metrics.port, ProcessRegistry(), std::move(auth));
  if (!exposer.ok()) {
    LOG(ERROR) << name << ": " << exposer.status();
    return 1;
  }
  LOG(INFO) << "service=" << name << " event=listening grpc_port=" << (*server)->port()
            << " metrics_port=" << (*exposer)->port();
  std::printf("READY service=%s grpc_port=%d metrics_port=%d\n", name.c_str(), (*server)->port(),
              (*exposer)->port());
  std::fflush(stdout);

  const int signal = WaitForShutdownSignal();
  LOG(INFO) << "service=" << name << " event=shutdown signal=" << strsignal(signal);
  // The metrics server takes ~2 s to stop (civetweb's poll interval): stop it while the
  // gRPC server drains rather than after.
  std::thread stop_metrics([&exposer] { exposer->reset(); });
  (*server)->Shutdown();
  (*server)->Wait();
  stop_metrics.join();
  LOG(INFO) << "service=" << name << " event=stopped";
  return 0;
}

}  // namespace autocompress
