// WorkerServer: the per-node agent's own server. The agent dials the scheduler named by
// `scheduler_address` for work (workers need no inbound port for it) and serves only
// health and metrics, for Kubernetes probes and Prometheus. Until the worker issue lands
// it does not dial yet; health, metrics and graceful shutdown already work.
// worker_server's main.cc maps flags to Options; the embedded `autocompress run` and
// tests build it directly.
#ifndef AUTOCOMPRESS_WORKER_WORKER_SERVER_H_
#define AUTOCOMPRESS_WORKER_WORKER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/server.h"
#include "common/server_runner.h"

namespace autocompress::worker {

class WorkerServer final : public Server {
 public:
  struct Options {
    ServerOptions server;
    // The scheduler's WorkerGateway, host:port.
    std::string scheduler_address = "localhost:7400";
  };

  // InvalidArgument for an empty scheduler address, Unavailable for a port in use.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> BuildAndStart(
      const Options& options, prometheus::Registry& registry);

 private:
  WorkerServer() : Server("worker") {}
};

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_WORKER_SERVER_H_
