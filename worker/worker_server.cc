#include "worker/worker_server.h"

#include "common/status_macros.h"
#include "glog/logging.h"

namespace autocompress::worker {

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::BuildAndStart(
    const Options& options, prometheus::Registry& registry) {
  if (options.scheduler_address.empty()) {
    return absl::InvalidArgumentError(
        "scheduler_address: must name the scheduler's WorkerGateway (host:port)");
  }
  std::unique_ptr<WorkerServer> server(new WorkerServer());
  RETURN_IF_ERROR(server->Start(options.server, registry, {}));
  LOG(INFO) << "service=worker scheduler=" << options.scheduler_address
            << " note=\"gateway client not implemented yet\"";
  return server;
}

}  // namespace autocompress::worker
