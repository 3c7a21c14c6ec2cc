// A minimal blocking HTTP/1.0 client over a real TCP socket, for tests: HttpGet fetches a
// server's /metrics page the way Prometheus does; HttpFetch sends any method with headers
// and a body, and can stop early on a stream that never ends (Server-Sent Events).
#ifndef AUTOCOMPRESS_COMMON_TESTING_HTTP_GET_H_
#define AUTOCOMPRESS_COMMON_TESTING_HTTP_GET_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace autocompress::testing {

struct HttpResponse {
  int status_code = 0;
  // The status line and the header lines, without the blank line after them.
  std::string headers;
  std::string body;
};

struct HttpRequest {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string method = "GET";
  // Path and query, e.g. "/api/v1/experiments?state=RUNNING".
  std::string path = "/";
  // Extra header lines, each "Name: value".
  std::vector<std::string> headers;
  // Sent with its Content-Length (also 0 for POST and PUT).
  std::string body;
  // For the whole exchange, connect to the last byte.
  absl::Duration timeout = absl::Seconds(5);
  // When not empty, stop reading as soon as the reply holds this string and return what
  // was read: a stream that stays open (text/event-stream) is cut there.
  std::string read_until;
};

// Sends `request` and reads the reply until the server closes the connection (or until
// `read_until`). Fails on connection errors, timeouts or a malformed reply.
absl::StatusOr<HttpResponse> HttpFetch(const HttpRequest& request);

// GETs http://host:port/path. Fails on connection errors, timeouts or a malformed reply.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout = absl::Seconds(5));

// The value of the header `name` (any case) in `response`, without surrounding spaces;
// nullopt when absent.
std::optional<std::string> FindHeader(const HttpResponse& response, absl::string_view name);

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_HTTP_GET_H_
