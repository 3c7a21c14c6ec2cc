#include "common/metrics.h"

#include <google/protobuf/descriptor.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <iterator>
#include <map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace autocompress {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::Interceptor;
using grpc::experimental::InterceptorBatchMethods;
using grpc::experimental::ServerInterceptorFactoryInterface;
using grpc::experimental::ServerRpcInfo;

// The built-in health service is implemented by gRPC itself; its descriptor is only in
// the pool when a client stub is linked, so it is allowed by name.
constexpr absl::string_view kHealthService = "grpc.health.v1.Health";

std::string CodeLabel(grpc::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(std::size(kNames))) return "UNKNOWN";
  return kNames[index];
}

// Records the call when the server sends its status; one instance per RPC.
class RpcMetricsInterceptor final : public Interceptor {
 public:
  RpcMetricsInterceptor(RpcMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}

  void Intercept(InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_->Record(method_, methods->GetSendStatus().error_code(), absl::Now() - start_);
    }
    methods->Proceed();
  }

 private:
  RpcMetrics* metrics_;
  std::string method_;
  absl::Time start_;
};

class RpcMetricsInterceptorFactory final : public ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(metrics_, info->method() ? info->method() : "");
  }

 private:
  RpcMetrics* metrics_;
};

}  // namespace

std::shared_ptr<prometheus::Registry> ProcessRegistry() {
  static auto* registry =
      new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
  return *registry;
}

const std::vector<double>& RpcLatencyBuckets() {
  static const auto* buckets =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                              0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
  return *buckets;
}

absl::StatusOr<std::unique_ptr<MetricsExposer>> MetricsExposer::Start(
    const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry,
    MetricsAuth auth) {
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(absl::StrCat(host, ":", port));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics exposer cannot listen on ", host, ":", port, ": ", e.what()));
  }
  if (auth) exposer->RegisterAuth(std::move(auth), "autocompress metrics");
  exposer->RegisterCollectable(registry);
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("metrics exposer bound no port on ", host));
  }
  return std::unique_ptr<MetricsExposer>(new MetricsExposer(std::move(exposer), ports[0]));
}

MetricsExposer::MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsExposer::~MetricsExposer() = default;

RpcMetrics::RpcMetrics(absl::string_view service, prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name(absl::StrCat("autocompress_", service, "_rpc_requests_total"))
                    .Help(absl::StrCat("RPCs served by the ", service, ", by method and code"))
                    .Register(registry)),
      durations_(
          prometheus::BuildHistogram()
              .Name(absl::StrCat("autocompress_", service, "_rpc_duration_seconds"))
              .Help(absl::StrCat("Latency of RPCs served by the ", service, ", by method and code"))
              .Register(registry)) {}

std::string RpcMetrics::MethodLabel(absl::string_view method_path) {
  if (method_path.size() < 4 || method_path.size() > 200 || method_path[0] != '/') {
    return "unknown";
  }
  absl::string_view path = method_path.substr(1);
  size_t slash = path.find('/');
  if (slash == absl::string_view::npos) return "unknown";
  absl::string_view service = path.substr(0, slash);
  absl::string_view method = path.substr(slash + 1);
  bool known = service == kHealthService
                   ? (method == "Check" || method == "Watch")
                   : google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
                         absl::StrCat(service, ".", method)) != nullptr;
  if (!known) return "unknown";
  size_t dot = service.rfind('.');
  absl::string_view short_service =
      dot == absl::string_view::npos ? service : service.substr(dot + 1);
  return absl::StrCat(short_service, "/", method);
}

void RpcMetrics::Record(absl::string_view method_path, grpc::StatusCode code,
                        absl::Duration elapsed) {
  const std::map<std::string, std::string> labels = {{"method", MethodLabel(method_path)},
                                                     {"code", CodeLabel(code)}};
  requests_.Add(labels).Increment();
  durations_.Add(labels, RpcLatencyBuckets()).Observe(absl::ToDoubleSeconds(elapsed));
}

std::unique_ptr<ServerInterceptorFactoryInterface> RpcMetrics::NewInterceptorFactory() {
  return std::make_unique<RpcMetricsInterceptorFactory>(this);
}

}  // namespace autocompress
