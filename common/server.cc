#include "common/server.h"

#include "absl/strings/str_cat.h"

namespace autocompress {

Server::~Server() {
  if (runner_ != nullptr) {
    runner_->Shutdown();
    runner_->Wait();
  }
}

absl::Status Server::Start(const ServerOptions& options, prometheus::Registry& registry,
                           std::vector<HostedService> services) {
  if (runner_ != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(name_, " server already started"));
  }
  rpc_metrics_ = std::make_unique<RpcMetrics>(name_, registry);
  services_ = std::move(services);
  ServerOptions with_metrics = options;
  with_metrics.rpc_metrics = rpc_metrics_.get();
  auto runner = std::make_unique<ServerRunner>(with_metrics);
  for (HostedService& hosted : services_)
    runner->AddService(hosted.service.get(), hosted.full_name);
  if (absl::Status status = runner->Start(); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat(name_, ": ", status.message()));
  }
  runner_ = std::move(runner);
  return absl::OkStatus();
}

void Server::Shutdown() {
  if (runner_ != nullptr) runner_->Shutdown();
}

void Server::Wait() {
  if (runner_ != nullptr) runner_->Wait();
}

}  // namespace autocompress
