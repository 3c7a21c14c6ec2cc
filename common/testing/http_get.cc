#include "common/testing/http_get.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace autocompress::testing {

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout) {
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
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(addresses);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("connect ", host, ":", port));

  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host, "\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("send: ", std::strerror(errno)));
  }
  std::string reply;
  char buffer[8192];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0) {
      close(fd);
      return absl::DeadlineExceededError(absl::StrCat("recv: ", std::strerror(errno)));
    }
    reply.append(buffer, n);
  }
  close(fd);

  const size_t header_end = reply.find("\r\n\r\n");
  int code = 0;
  if (header_end == std::string::npos || reply.compare(0, 5, "HTTP/") != 0 || reply.size() < 12 ||
      !absl::SimpleAtoi(reply.substr(9, 3), &code)) {
    return absl::DataLossError(absl::StrCat("malformed HTTP reply: ", reply.substr(0, 100)));
  }
  return HttpResponse{code, reply.substr(0, header_end), reply.substr(header_end + 4)};
}

}  // namespace autocompress::testing
