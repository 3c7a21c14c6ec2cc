// Server: the assembled gRPC part of a process (TunerServer, SchedulerServer,
// WorkerServer derive from it). It owns the service implementations, their RPC metrics
// (`autocompress_<service>_rpc_*`) and the ServerRunner that hosts them, so one process
// can hold several servers (the embedded `autocompress run` holds all three) and a test
// can start one on port 0 without a subprocess.
//
// A derived class builds its services, hands them to Start in its BuildAndStart, and
// overrides Shutdown when it has background work to stop before the services drain. The
// base destructor runs after the derived members are gone: a derived class whose
// services or loops use its own members must call Shutdown() and Wait() first thing in
// its own destructor.
//
// Thread-safety: Shutdown and Wait may be called from any thread; port() and
// InProcessChannel() after a successful Start.
#ifndef AUTOCOMPRESS_COMMON_SERVER_H_
#define AUTOCOMPRESS_COMMON_SERVER_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/metrics.h"
#include "common/server_runner.h"

namespace prometheus {
class Registry;
}

namespace autocompress {

// A service to host and its full protobuf name (its health status key).
struct HostedService {
  std::unique_ptr<grpc::Service> service;
  std::string full_name;
};

class Server {
 public:
  virtual ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Short service name: "tuner", "scheduler", "worker" (metric prefix, READY line).
  const std::string& name() const { return name_; }
  // The bound gRPC port.
  int port() const { return runner_->port(); }
  // A channel to this server that bypasses the network.
  std::shared_ptr<grpc::Channel> InProcessChannel() { return runner_->InProcessChannel(); }

  // Health NOT_SERVING for the health grace, then drains in-flight calls (ServerRunner).
  // Idempotent.
  virtual void Shutdown();
  // Blocks until the gRPC server has stopped.
  void Wait();

 protected:
  explicit Server(std::string name) : name_(std::move(name)) {}

  // Starts `services` with `options`, counting RPCs in `registry`. Once only.
  absl::Status Start(const ServerOptions& options, prometheus::Registry& registry,
                     std::vector<HostedService> services);

 private:
  std::string name_;
  // Destroyed in reverse order: the runner stops before the services and metrics go.
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::vector<HostedService> services_;
  std::unique_ptr<ServerRunner> runner_;
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SERVER_H_
