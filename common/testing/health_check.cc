#include "common/testing/health_check.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace autocompress::testing {

HealthProbe CheckHealth(int port, const std::string& service) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  HealthProbe probe;
  probe.code = stub->Check(&context, request, &response).error_code();
  if (probe.code == grpc::StatusCode::OK) probe.status = response.status();
  return probe;
}

}  // namespace autocompress::testing
