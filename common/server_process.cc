#include "common/server_process.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
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

int RunServerProcess(const ServerProcessOptions& options, const NamedServices& services,
                     const std::function<absl::Status(ServerRunner&)>& on_started,
                     const std::function<void()>& on_shutdown) {
  auto exposer =
      MetricsExposer::Start(options.server.host, options.metrics_port, ProcessRegistry());
  if (!exposer.ok()) {
    LOG(ERROR) << options.service << ": " << exposer.status();
    return 1;
  }
  RpcMetrics rpc_metrics(options.service, *ProcessRegistry());
  ServerOptions server_options = options.server;
  server_options.rpc_metrics = &rpc_metrics;
  ServerRunner runner(server_options);
  for (const auto& [service, name] : services) runner.AddService(service, name);
  if (absl::Status status = runner.Start(); !status.ok()) {
    LOG(ERROR) << options.service << ": " << status;
    return 1;
  }
  if (on_started) {
    if (absl::Status status = on_started(runner); !status.ok()) {
      LOG(ERROR) << options.service << ": start-up failed: " << status;
      runner.Shutdown();
      runner.Wait();
      return 1;
    }
  }
  LOG(INFO) << "service=" << options.service << " event=listening grpc_port=" << runner.port()
            << " metrics_port=" << (*exposer)->port();
  std::printf("READY service=%s grpc_port=%d metrics_port=%d\n", options.service.c_str(),
              runner.port(), (*exposer)->port());
  std::fflush(stdout);

  const int signal = WaitForShutdownSignal();
  LOG(INFO) << "service=" << options.service << " event=shutdown signal=" << strsignal(signal);
  if (on_shutdown) on_shutdown();
  // The metrics server takes ~2 s to stop (civetweb's poll interval): stop it while the
  // gRPC server drains rather than after.
  std::thread stop_metrics([&exposer] { exposer->reset(); });
  runner.Shutdown();
  runner.Wait();
  stop_metrics.join();
  LOG(INFO) << "service=" << options.service << " event=stopped";
  return 0;
}

}  // namespace autocompress
