// The life of a server process, shared by tuner_server, scheduler_server and
// worker_server: block and wait for SIGTERM or SIGINT, serve the process's /metrics,
// announce readiness on stdout, then shut the assembled Server down and exit 0. What a
// process serves is assembled by its `*_server.{h,cc}` (a Server); main.cc maps flags to
// that server's Options and hands the result here.
//
// Readiness line (one line on stdout, flushed), which scripts and tests parse to learn
// the ports chosen for port 0:
//   READY service=<name> grpc_port=<port> metrics_port=<port>
#ifndef AUTOCOMPRESS_COMMON_SERVER_PROCESS_H_
#define AUTOCOMPRESS_COMMON_SERVER_PROCESS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/server.h"

namespace autocompress {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it creates later, so
// that WaitForShutdownSignal can take them synchronously. Call first thing in main.
void BlockShutdownSignals();

// Waits for SIGTERM or SIGINT (blocked by BlockShutdownSignals) and returns it.
int WaitForShutdownSignal();

// Where the process serves Prometheus /metrics (the process registry, every server in it).
struct MetricsEndpoint {
  std::string host = "0.0.0.0";
  // 0 picks a free port (printed on the READY line).
  int port = 0;
  // When set, a scrape needs HTTP basic auth with this password (any user name);
  // compared in constant time. Empty: /metrics is open.
  std::string password;
};

// Runs the process around `server` (already started, or the error that prevented it):
// /metrics, READY line, signal wait, Shutdown and Wait. Returns the exit code: 0 after a
// clean shutdown, 1 when the server or the metrics endpoint could not start.
int RunServerProcess(const MetricsEndpoint& metrics,
                     absl::StatusOr<std::unique_ptr<Server>> server);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SERVER_PROCESS_H_
