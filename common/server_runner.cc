#include "common/server_runner.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace autocompress {
namespace {

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

}  // namespace

ServerRunner::ServerRunner(ServerOptions options) : options_(std::move(options)) {}

ServerRunner::~ServerRunner() {
  Shutdown();
  if (server_ != nullptr) server_->Wait();
}

void ServerRunner::AddService(grpc::Service* service, const std::string& full_name) {
  CHECK(server_ == nullptr) << "AddService after Start";
  services_.emplace_back(service, full_name);
}

absl::Status ServerRunner::Start() {
  if (server_ != nullptr) return absl::FailedPreconditionError("server already started");
  auto credentials = ServerCredentialsFor(options_.security);
  if (!credentials.ok()) return credentials.status();
  if (options_.security.checks_tokens() && !options_.security.tls() &&
      !IsLoopbackHost(options_.host)) {
    LOG(WARNING) << "tokens are checked on " << options_.host << ":" << options_.port
                 << " without TLS: anyone on the network path can read them; set "
                    "--tls_cert and --tls_key, or terminate TLS in front (a service mesh)";
  }
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection lets grpcurl/grpc_cli list and call the services without .proto files;
  // it is also a synchronous service, which a server with only the (callback) health
  // service needs to start.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options_.host, ":", options_.port);
  builder.AddListeningPort(address, *credentials, &port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options_.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             Millis(options_.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 5);
  // Two servers must never share a port silently (gRPC sets SO_REUSEPORT by default).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (auto& [service, name] : services_) builder.RegisterService(service);
  if (options_.rpc_metrics != nullptr) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
    creators.push_back(options_.rpc_metrics->NewInterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  for (auto& [service, name] : services_) health->SetServingStatus(name, true);
  health->SetServingStatus(true);
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> ServerRunner::InProcessChannel() {
  CHECK(server_ != nullptr) << "InProcessChannel before Start";
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options_.max_message_bytes);
  args.SetMaxSendMessageSize(options_.max_message_bytes);
  return server_->InProcessChannel(args);
}

void ServerRunner::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_ || server_ == nullptr) return;
    shut_down_ = true;
  }
  server_->GetHealthCheckService()->SetServingStatus(false);
  if (options_.health_grace > absl::ZeroDuration()) {
    LOG(INFO) << "event=not_serving grace=" << options_.health_grace;
    absl::SleepFor(options_.health_grace);
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
}

void ServerRunner::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace autocompress
