// Prometheus metrics for every AutoCompress process: one registry per process, an HTTP
// exposer for `/metrics`, and per-RPC request counts and latencies recorded by a gRPC
// server interceptor (or by hand through RpcMetrics::Record for client calls).
//
// Names follow `autocompress_<service>_<what>_<unit>`; label values come from small fixed
// sets (method, code). All classes here are thread-safe.
#ifndef AUTOCOMPRESS_COMMON_METRICS_H_
#define AUTOCOMPRESS_COMMON_METRICS_H_

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace prometheus {
class Exposer;
class Registry;
template <typename T>
class Family;
class Counter;
class Histogram;
}  // namespace prometheus

namespace autocompress {

// The process-wide registry every metric is registered in.
std::shared_ptr<prometheus::Registry> ProcessRegistry();

// Decides an HTTP basic-auth request to /metrics: true lets it through.
using MetricsAuth = std::function<bool(const std::string& user, const std::string& password)>;

// Serves the text exposition format of a registry at http://host:port/metrics.
class MetricsExposer {
 public:
  // Binds host:port (port 0 picks a free one). Unavailable when the port is taken. With
  // `auth`, a scrape needs HTTP basic auth that `auth` accepts (else 401).
  static absl::StatusOr<std::unique_ptr<MetricsExposer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry,
      MetricsAuth auth = nullptr);
  ~MetricsExposer();

  // The bound port.
  int port() const { return port_; }

 private:
  MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, int port);
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

// Counts and times RPCs of one service:
//   autocompress_<service>_rpc_requests_total{method, code}
//   autocompress_<service>_rpc_duration_seconds{method, code}   (histogram)
// `method` is "Service/Method" (e.g. "TunerService/Suggest"); a path whose method is not
// a known protobuf service method is recorded as "unknown" so that a hostile client
// cannot create unbounded label values.
class RpcMetrics {
 public:
  RpcMetrics(absl::string_view service, prometheus::Registry& registry);

  // Records one finished call. `method_path` is the gRPC path "/pkg.Service/Method".
  void Record(absl::string_view method_path, grpc::StatusCode code, absl::Duration elapsed);

  // Interceptor factory for grpc::ServerBuilder::experimental().SetInterceptorCreators.
  // The factory keeps a pointer to this object, which must outlive the server.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();

  // "TunerService/Suggest" for "/autocompress.v1.TunerService/Suggest", else "unknown".
  static std::string MethodLabel(absl::string_view method_path);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
};

// Upper bounds (seconds) of the RPC latency histogram: 100 us .. 60 s.
const std::vector<double>& RpcLatencyBuckets();

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_METRICS_H_
