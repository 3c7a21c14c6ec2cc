#include "tests/fakes/worker_endpoint.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/artifact_transfer.h"
#include "common/channel.h"
#include "common/status_macros.h"
#include "scheduler_service/artifact_service_impl.h"
#include "scheduler_service/artifacts/artifact_store.h"

namespace autocompress::testing {

absl::StatusOr<std::unique_ptr<WorkerEndpoint>> WorkerEndpoint::Start(const std::string& dir) {
  std::unique_ptr<WorkerEndpoint> endpoint(new WorkerEndpoint());
  ASSIGN_OR_RETURN(endpoint->store_, scheduler::ArtifactStore::Open(dir + "/artifacts"));
  endpoint->artifact_service_ =
      std::make_unique<scheduler::ArtifactServiceImpl>(endpoint->store_.get());
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&endpoint->gateway_);
  builder.RegisterService(endpoint->artifact_service_.get());
  endpoint->server_ = builder.BuildAndStart();
  if (endpoint->server_ == nullptr) return absl::UnavailableError("cannot start the endpoint");
  endpoint->address_ = absl::StrCat("127.0.0.1:", port);
  endpoint->channel_ = CreateChannel(endpoint->address_);
  endpoint->artifacts_ = v1::ArtifactService::NewStub(endpoint->channel_);
  return endpoint;
}

WorkerEndpoint::~WorkerEndpoint() {
  if (server_ != nullptr) server_->Shutdown();
}

absl::StatusOr<v1::ArtifactRef> WorkerEndpoint::Upload(const std::string& path,
                                                       v1::ArtifactKind kind) {
  return UploadArtifact(*artifacts_, path, std::filesystem::path(path).filename().string(), kind,
                        absl::Minutes(5));
}

}  // namespace autocompress::testing
