// scheduler_server: hosts ExperimentService and ArtifactService for clients and
// WorkerGateway for workers, and owns the durable store under --data_dir. Until the
// scheduler issue lands the services answer UNIMPLEMENTED; the data directory is
// checked, and health, metrics and graceful shutdown already work.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/worker.grpc.pb.h"
#include "common/logging.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "glog/logging.h"

ABSL_FLAG(std::string, data_dir, "./autocompress-data",
          "Directory of the scheduler's SQLite store and artifacts; created if missing.");

namespace {

// The data directory must exist (or be creatable) and be writable before serving.
bool PrepareDataDir(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) {
    LOG(ERROR) << "--data_dir=" << path << ": cannot create: " << error.message();
    return false;
  }
  const std::filesystem::path probe = std::filesystem::path(path) / ".write-probe";
  FILE* file = std::fopen(probe.c_str(), "w");
  if (file == nullptr) {
    LOG(ERROR) << "--data_dir=" << path << ": not writable: " << std::strerror(errno);
    return false;
  }
  std::fclose(file);
  std::filesystem::remove(probe, error);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);
  if (!PrepareDataDir(absl::GetFlag(FLAGS_data_dir))) return 1;

  autocompress::v1::ExperimentService::Service experiments;
  autocompress::v1::ArtifactService::Service artifacts;
  autocompress::v1::WorkerGateway::Service gateway;
  return autocompress::RunServerProcess(
      autocompress::ServerProcessOptionsFromFlags("scheduler", /*default_port=*/7400,
                                                  /*default_metrics_port=*/9400),
      {{&experiments, "autocompress.v1.ExperimentService"},
       {&artifacts, "autocompress.v1.ArtifactService"},
       {&gateway, "autocompress.v1.WorkerGateway"}});
}
