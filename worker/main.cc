// worker_server: the per-node agent. Only maps flags to WorkerServer::Options; see
// worker_server.h.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "worker/worker_server.h"

ABSL_FLAG(std::string, scheduler, autocompress::worker::WorkerServer::Options().scheduler_address,
          "Address of the scheduler's WorkerGateway (host:port).");

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);

  const autocompress::ServerFlags flags =
      autocompress::ServerFlagsWithDefaults(/*default_port=*/7402, /*default_metrics_port=*/9402);
  autocompress::worker::WorkerServer::Options options;
  options.server = flags.server;
  options.scheduler_address = absl::GetFlag(FLAGS_scheduler);
  return autocompress::RunServerProcess(
      flags.metrics,
      autocompress::worker::WorkerServer::BuildAndStart(options, *autocompress::ProcessRegistry()));
}
