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
#include "common/channel.h"
#include "common/status_macros.h"
#include "scheduler_service/artifact_service_impl.h"
#include "scheduler_service/experiment_service_impl.h"
#include "scheduler_service/grpc_tuner_client.h"
#include "scheduler_service/worker_gateway_impl.h"

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

absl::StatusOr<std::unique_ptr<TrialStore>> OpenTrialStore(
    const SchedulerServer::Options& options) {
  if (PostgresTrialStore::IsPostgresUrl(options.store)) {
    ASSIGN_OR_RETURN(std::unique_ptr<PostgresTrialStore> store,
                     PostgresTrialStore::Open(options.store, options.postgres));
    return store;
  }
  if (options.store == "sqlite") {
    const std::string path = (std::filesystem::path(options.data_dir) / "scheduler.db").string();
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteTrialStore> store,
                     SqliteTrialStore::Open(path, options.sqlite));
    return store;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("store: expected \"sqlite\" or a postgres:// URL, got \"",
                   options.store.substr(0, options.store.find('@')), "\""));
}

}  // namespace

std::vector<TokenGrant> SchedulerServer::TokenGrants(const std::string& token,
                                                     const std::string& join_token) {
  if (join_token.empty()) return {{token, {}}};
  return {{token,
           {"autocompress.v1.ExperimentService", "autocompress.v1.ArtifactService",
            "grpc.reflection.v1alpha.ServerReflection"}},
          {join_token, {"autocompress.v1.WorkerGateway", "autocompress.v1.ArtifactService"}}};
}

absl::StatusOr<std::unique_ptr<SchedulerServer>> SchedulerServer::BuildAndStart(
    const Options& options, prometheus::Registry& registry) {
  RETURN_IF_ERROR(PrepareDataDir(options.data_dir));
  std::unique_ptr<SchedulerServer> server(new SchedulerServer());
  const std::filesystem::path dir(options.data_dir);
  ASSIGN_OR_RETURN(server->store_, OpenTrialStore(options));
  ASSIGN_OR_RETURN(server->artifacts_,
                   ArtifactStore::Open((dir / "artifacts").string(), options.artifacts));
  ChannelOptions tuner_channel;
  RETURN_IF_ERROR(ApplyClientSecurity(options.tuner_security, "tuner_", &tuner_channel));
  server->tuner_channel_ = CreateChannel(options.tuner_address, tuner_channel);
  server->tuner_ = std::make_unique<GrpcTunerClient>(server->tuner_channel_, options.tuner_timeout);
  ArtifactStore* artifacts = server->artifacts_.get();
  ASSIGN_OR_RETURN(
      server->scheduler_,
      Scheduler::Open(
          options.scheduler, server->store_.get(), server->tuner_.get(),
          [artifacts](const v1::ArtifactRef& ref) { return artifacts->Stat(ref.sha256()).ok(); },
          registry));
  std::vector<HostedService> services;
  services.push_back({std::make_unique<ExperimentServiceImpl>(server->scheduler_.get()),
                      v1::ExperimentService::service_full_name()});
  services.push_back({std::make_unique<ArtifactServiceImpl>(server->artifacts_.get()),
                      v1::ArtifactService::service_full_name()});
  services.push_back({std::make_unique<WorkerGatewayImpl>(server->scheduler_.get()),
                      v1::WorkerGateway::service_full_name()});
  RETURN_IF_ERROR(server->Start(options.server, registry, std::move(services)));
  if (options.web.has_value()) RETURN_IF_ERROR(server->StartWeb(*options.web));
  return server;
}

absl::Status SchedulerServer::StartWeb(const WebServer::Options& options) {
  if (web_ != nullptr) return absl::FailedPreconditionError("the web server runs already");
  ASSIGN_OR_RETURN(web_, WebServer::Start(options, InProcessChannel()));
  return absl::OkStatus();
}

SchedulerServer::~SchedulerServer() {
  Shutdown();
  Wait();
}

void SchedulerServer::Shutdown() {
  // First: an open event stream is a WatchExperiment call the server would wait for.
  if (web_ != nullptr) web_->Stop();
  if (scheduler_ != nullptr) scheduler_->Shutdown();
  Server::Shutdown();
}

}  // namespace autocompress::scheduler
