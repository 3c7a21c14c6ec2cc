// scheduler_server: hosts ExperimentService, ArtifactService and WorkerGateway and owns
// the durable store under --data_dir. Only maps flags to SchedulerServer::Options; see
// scheduler_server.h.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "scheduler_service/scheduler_server.h"

ABSL_FLAG(std::string, data_dir, autocompress::scheduler::SchedulerServer::Options().data_dir,
          "Directory of the scheduler's SQLite store and artifacts; created if missing.");

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);

  const autocompress::ServerFlags flags =
      autocompress::ServerFlagsWithDefaults(/*default_port=*/7400, /*default_metrics_port=*/9400);
  autocompress::scheduler::SchedulerServer::Options options;
  options.server = flags.server;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  return autocompress::RunServerProcess(flags.metrics,
                                        autocompress::scheduler::SchedulerServer::BuildAndStart(
                                            options, *autocompress::ProcessRegistry()));
}
