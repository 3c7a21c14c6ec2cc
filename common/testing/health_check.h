// grpc.health.v1 Check over a fresh loopback TCP connection, the way a Kubernetes probe
// asks, for tests of servers in process or started as child processes.
#ifndef AUTOCOMPRESS_COMMON_TESTING_HEALTH_CHECK_H_
#define AUTOCOMPRESS_COMMON_TESTING_HEALTH_CHECK_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "grpc/health/v1/health.pb.h"

namespace autocompress::testing {

struct HealthProbe {
  // The call's code: OK, UNAVAILABLE when nothing listens, NOT_FOUND for an unknown
  // service.
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  // The answer when `code` is OK.
  grpc::health::v1::HealthCheckResponse::ServingStatus status =
      grpc::health::v1::HealthCheckResponse::UNKNOWN;
};

// Asks 127.0.0.1:`port` about `service` ("" = the whole server) on a connection of its
// own (never one shared with other channels), with a 10 s deadline.
HealthProbe CheckHealth(int port, const std::string& service = "");

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_HEALTH_CHECK_H_
