// The life of a server process, shared by tuner_server, scheduler_server and
// worker_server: serve /metrics, start the gRPC server, announce readiness on stdout,
// wait for SIGTERM or SIGINT, then drain in-flight calls and exit 0.
//
// Readiness line (one line on stdout, flushed), which scripts and tests parse to learn
// the ports chosen for port 0:
//   READY service=<name> grpc_port=<port> metrics_port=<port>
#ifndef AUTOCOMPRESS_COMMON_SERVER_PROCESS_H_
#define AUTOCOMPRESS_COMMON_SERVER_PROCESS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/metrics.h"
#include "common/server_runner.h"

namespace autocompress {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it creates later, so
// that WaitForShutdownSignal can take them synchronously. Call first thing in main.
void BlockShutdownSignals();

// Waits for SIGTERM or SIGINT (blocked by BlockShutdownSignals) and returns it.
int WaitForShutdownSignal();

struct ServerProcessOptions {
  // Short service name used in metric names and logs: "tuner", "scheduler", "worker".
  std::string service;
  // gRPC server options (host, port, limits, grace).
  ServerOptions server;
  // Port of the Prometheus /metrics endpoint (0 = any free port), bound on server.host.
  int metrics_port = 0;
};

// Services to serve: each with its full protobuf name for the health status.
using NamedServices = std::vector<std::pair<grpc::Service*, std::string>>;

// Runs the process as described above. `on_started` runs after the server is listening
// and before the READY line (start background loops there); `on_shutdown` runs after the
// signal, before the server drains. Returns the process exit code: 0 after a clean
// shutdown, 1 when the server could not start.
int RunServerProcess(const ServerProcessOptions& options, const NamedServices& services,
                     const std::function<absl::Status(ServerRunner&)>& on_started = nullptr,
                     const std::function<void()>& on_shutdown = nullptr);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SERVER_PROCESS_H_
