#include "scheduler_service/scheduler_server.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/worker.grpc.pb.h"
#include "common/status_macros.h"

namespace autocompress::scheduler {
namespace {

// The data directory must exist (or be creatable) and be writable before serving.
absl::Status PrepareDataDir(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("data_dir: must not be empty");
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir ", path, ": cannot create: ", error.message()));
  }
  const std::filesystem::path probe = std::filesystem::path(path) / ".write-probe";
  FILE* file = std::fopen(probe.c_str(), "w");
  if (file == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir ", path, ": not writable: ", std::strerror(errno)));
  }
  std::fclose(file);
  std::filesystem::remove(probe, error);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::BuildAndStart(
    const Options& options, prometheus::Registry& registry) {
  RETURN_IF_ERROR(PrepareDataDir(options.data_dir));
  std::unique_ptr<SchedulerServer> server(new SchedulerServer());
  std::vector<HostedService> services;
  services.push_back({std::make_unique<v1::ExperimentService::Service>(),
                      v1::ExperimentService::service_full_name()});
  services.push_back(
      {std::make_unique<v1::ArtifactService::Service>(), v1::ArtifactService::service_full_name()});
  services.push_back(
      {std::make_unique<v1::WorkerGateway::Service>(), v1::WorkerGateway::service_full_name()});
  RETURN_IF_ERROR(server->Start(options.server, registry, std::move(services)));
  return server;
}

}  // namespace autocompress::scheduler
