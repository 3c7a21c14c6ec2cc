// worker_server: the per-node agent. It dials the scheduler named by --scheduler (workers
// need no inbound port for work) and serves only health and metrics on its own ports,
// for Kubernetes probes and Prometheus. Until the worker issue lands it does not dial
// yet; health, metrics and graceful shutdown already work.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "glog/logging.h"

ABSL_FLAG(std::string, scheduler, "localhost:7400",
          "Address of the scheduler's WorkerGateway (host:port).");

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);
  if (absl::GetFlag(FLAGS_scheduler).empty()) {
    LOG(ERROR) << "--scheduler must name the scheduler's address (host:port)";
    return 1;
  }
  LOG(INFO) << "service=worker scheduler=" << absl::GetFlag(FLAGS_scheduler)
            << " note=\"gateway client not implemented yet\"";
  return autocompress::RunServerProcess(
      autocompress::ServerProcessOptionsFromFlags("worker", /*default_port=*/7402,
                                                  /*default_metrics_port=*/9402),
      {});
}
