// ServerRunner assembles a gRPC server the same way in every AutoCompress process: the
// standard health service (grpc.health.v1, for probes), keepalive, message-size limits,
// per-RPC metrics, binding port 0 with the chosen port reported, and a graceful
// shutdown that stops accepting calls and drains in-flight ones up to a deadline.
//
// Thread-safety: Start, Shutdown and Wait may be called from different threads; Start
// at most once.
#ifndef AUTOCOMPRESS_COMMON_SERVER_RUNNER_H_
#define AUTOCOMPRESS_COMMON_SERVER_RUNNER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "common/metrics.h"

namespace autocompress {

struct ServerOptions {
  // Address to bind; "0.0.0.0" for all interfaces, "127.0.0.1" for loopback only.
  std::string host = "0.0.0.0";
  // Port; 0 picks a free one (see ServerRunner::port()).
  int port = 0;
  // Largest request and response message accepted, in bytes.
  int max_message_bytes = 64 << 20;
  // Server-initiated keepalive pings on idle connections.
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Shortest interval between client keepalive pings the server tolerates.
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  // On Shutdown, how long health reports NOT_SERVING while the listener still accepts
  // calls, so that load balancers and Kubernetes readiness probes see the server leave
  // before connections are refused. Set it above the probe period on a cluster.
  absl::Duration health_grace = absl::ZeroDuration();
  // How long Shutdown waits for in-flight calls before cancelling them. Idle client
  // connections also hold shutdown until they acknowledge GOAWAY (an idle gRPC client
  // polls only every 5 s), so this bounds the exit time in practice.
  absl::Duration shutdown_grace = absl::Seconds(3);
  // TLS and bearer tokens (auth.h); the default is plaintext without tokens (loopback,
  // tests, in-cluster behind a mesh that does mTLS).
  ServerSecurity security;
  // When set, every RPC is counted and timed here (not owned, must outlive the server).
  RpcMetrics* rpc_metrics = nullptr;

  // Bound to 127.0.0.1 on `port` (0 = a free one): tests and the embedded mode.
  static ServerOptions Loopback(int port = 0) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = port;
    return options;
  }
};

class ServerRunner {
 public:
  explicit ServerRunner(ServerOptions options);
  ~ServerRunner();

  ServerRunner(const ServerRunner&) = delete;
  ServerRunner& operator=(const ServerRunner&) = delete;

  // Registers a service (not owned; must outlive the runner). Before Start only.
  // `full_name` (e.g. "autocompress.v1.TunerService") gets a SERVING health status.
  void AddService(grpc::Service* service, const std::string& full_name);

  // Builds and starts the server. Unavailable if the port cannot be bound,
  // InvalidArgument for unusable TLS files.
  absl::Status Start();

  // The bound port (valid after a successful Start).
  int port() const { return port_; }

  // A channel to this server that bypasses the network (tests, embedded mode).
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Marks every service NOT_SERVING, keeps serving for `health_grace`, then stops
  // accepting calls, lets in-flight calls finish until the shutdown grace deadline and
  // cancels the rest. Blocks for the health grace only. Idempotent.
  void Shutdown();

  // Blocks until the server has shut down.
  void Wait();

 private:
  ServerOptions options_;
  std::vector<std::pair<grpc::Service*, std::string>> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SERVER_RUNNER_H_
