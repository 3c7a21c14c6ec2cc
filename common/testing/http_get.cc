#include "common/testing/http_get.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace autocompress::testing {
namespace {

// A connected socket to host:port, or an error; `timeout` bounds connect and send.
absl::StatusOr<int> Connect(const std::string& host, int port, absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addresses);
      rc != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", gai_strerror(rc)));
  }
  int fd = -1;
  for (addrinfo* a = addresses; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{};
    tv.tv_sec = absl::ToInt64Seconds(timeout);
    tv.tv_usec = absl::ToInt64Microseconds(timeout) % 1000000;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("connect ", host, ":", port));
  return fd;
}

absl::Status SendAll(int fd, const std::string& data) {
  for (size_t sent = 0; sent < data.size();) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
    sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads until the peer closes, `until` appears (when not empty) or `deadline` passes.
absl::StatusOr<std::string> ReadReply(int fd, const std::string& until, absl::Time deadline) {
  std::string reply;
  char buffer[8192];
  for (;;) {
    if (!until.empty() && absl::StrContains(reply, until)) return reply;
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    pollfd readable{fd, POLLIN, 0};
    const int ready = left_ms > 0 ? poll(&readable, 1, static_cast<int>(left_ms)) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no end of the reply", until.empty() ? "" : absl::StrCat(" nor \"", until, "\""),
          " before the timeout; read ", reply.size(), " bytes: ", reply.substr(0, 300)));
    }
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(absl::StrCat("recv: ", std::strerror(errno)));
    if (n == 0) break;
    reply.append(buffer, n);
  }
  // Closed before `until`: the caller sees what the server answered instead.
  return reply;
}

}  // namespace

absl::StatusOr<HttpResponse> HttpFetch(const HttpRequest& request) {
  const absl::Time deadline = absl::Now() + request.timeout;
  absl::StatusOr<int> fd = Connect(request.host, request.port, request.timeout);
  if (!fd.ok()) return fd.status();

  std::string message =
      absl::StrCat(request.method, " ", request.path, " HTTP/1.0\r\nHost: ", request.host,
                   "\r\nConnection: close\r\n");
  for (const std::string& header : request.headers) absl::StrAppend(&message, header, "\r\n");
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    absl::StrAppend(&message, "Content-Length: ", request.body.size(), "\r\n");
  }
  absl::StrAppend(&message, "\r\n", request.body);
  absl::Status sent = SendAll(*fd, message);
  absl::StatusOr<std::string> reply =
      sent.ok() ? ReadReply(*fd, request.read_until, deadline) : sent;
  close(*fd);
  if (!reply.ok()) return reply.status();

  const size_t header_end = reply->find("\r\n\r\n");
  int code = 0;
  if (header_end == std::string::npos || reply->compare(0, 5, "HTTP/") != 0 || reply->size() < 12 ||
      !absl::SimpleAtoi(reply->substr(9, 3), &code)) {
    return absl::DataLossError(absl::StrCat("malformed HTTP reply: ", reply->substr(0, 100)));
  }
  return HttpResponse{code, reply->substr(0, header_end), reply->substr(header_end + 4)};
}

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout) {
  HttpRequest request;
  request.host = host;
  request.port = port;
  request.path = path;
  request.timeout = timeout;
  return HttpFetch(request);
}

std::optional<std::string> FindHeader(const HttpResponse& response, absl::string_view name) {
  for (absl::string_view line : absl::StrSplit(response.headers, "\r\n")) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(line.substr(0, colon)), name)) {
      return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    }
  }
  return std::nullopt;
}

}  // namespace autocompress::testing
