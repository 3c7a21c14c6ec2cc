// SchedulerServer: the scheduler's services assembled as one gRPC server:
// ExperimentService and ArtifactService for clients, WorkerGateway for workers, over the
// durable store under `data_dir`. Until the scheduler issue lands the services answer
// UNIMPLEMENTED; the data directory is checked, and health, metrics and graceful
// shutdown already work. scheduler_server's main.cc maps flags to Options; the embedded
// `autocompress run` and tests build it directly.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/server.h"
#include "common/server_runner.h"

namespace autocompress::scheduler {

class SchedulerServer final : public Server {
 public:
  struct Options {
    ServerOptions server;
    // Directory of the SQLite store and the artifacts; created if missing, must be
    // writable.
    std::string data_dir = "./autocompress-data";
  };

  // Prepares the data directory and starts listening. FailedPrecondition for a data
  // directory that cannot be created or written, Unavailable for a port in use.
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> BuildAndStart(
      const Options& options, prometheus::Registry& registry);

 private:
  SchedulerServer() : Server("scheduler") {}
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_
