// A minimal blocking HTTP/1.0 GET over a real TCP socket, for tests that fetch a server's
// /metrics page the way Prometheus does.
#ifndef AUTOCOMPRESS_COMMON_TESTING_HTTP_GET_H_
#define AUTOCOMPRESS_COMMON_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace autocompress::testing {

struct HttpResponse {
  int status_code = 0;
  std::string headers;
  std::string body;
};

// GETs http://host:port/path. Fails on connection errors, timeouts or a malformed reply.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout = absl::Seconds(5));

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_HTTP_GET_H_
