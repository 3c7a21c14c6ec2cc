// Transport security and bearer tokens for every AutoCompress gRPC hop.
//
// Server side: ServerCredentialsFor builds the credentials a ServerRunner listens with:
// TLS from PEM files (optionally requiring client certificates: mutual TLS) or plaintext,
// and, when tokens are configured, a check of "authorization: Bearer <token>" that gRPC
// core runs on every call before any handler (the server auth filter): no token is
// UNAUTHENTICATED, a token not granted for the called service is PERMISSION_DENIED, both
// with a message that never repeats the token. Health checks (grpc.health.v1) stay open
// for probes. Tokens are compared in constant time. In-process channels
// (ServerRunner::InProcessChannel) do not pass through the check: they never leave the
// process.
//
// gRPC's C++ InsecureServerCredentials cannot carry an auth processor, so the check is
// attached to gRPC core's credentials directly (C API), for plaintext and TLS alike.
//
// Client side: ClientSecurity turns the same flags into ChannelOptions (channel.h).
#ifndef AUTOCOMPRESS_COMMON_AUTH_H_
#define AUTOCOMPRESS_COMMON_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/channel.h"

namespace autocompress {

// A bearer token and the services it opens, by full name ("autocompress.v1.WorkerGateway");
// no services = every service.
struct TokenGrant {
  std::string token;
  std::vector<std::string> services;
};

struct ServerSecurity {
  // TLS certificate chain and private key (PEM files); both or neither. Neither = plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  // With TLS: clients must present a certificate that chains to these roots (PEM file).
  std::string tls_client_ca_file;
  // Tokens checked on every call but health checks; none = no token check. Empty tokens
  // are left out (an unset flag grants nothing).
  std::vector<TokenGrant> tokens;

  bool tls() const { return !tls_cert_file.empty() || !tls_key_file.empty(); }
  bool checks_tokens() const;
};

// Credentials for a server port. InvalidArgument naming the flag for an unreadable or
// half-given certificate/key pair, or a client CA without TLS.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const ServerSecurity& security);

// How a client reaches a server: TLS when `tls` or any file is given (the server's certificate is
// checked against `ca_file`, empty = the system's roots; `cert_file` and `key_file` are sent for
// mutual TLS; `server_name` overrides the name checked, for an address that is an IP),
// and a bearer token on every call when `token` is not empty.
struct ClientSecurity {
  bool tls = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;
  std::string token;
};

// Sets `channel`'s credentials, target name override and token from `security`.
// InvalidArgument naming `flag_prefix` + "tls_ca" (etc.) for an unreadable file or a
// certificate without its key.
absl::Status ApplyClientSecurity(const ClientSecurity& security, const std::string& flag_prefix,
                                 ChannelOptions* channel);

// True when `given` equals `expected`, in time that depends on their lengths only.
bool TokenMatches(const std::string& given, const std::string& expected);

// `value` when not empty, else the environment variable `env` (or "" when unset): how a
// token flag falls back to AUTOCOMPRESS_TOKEN and friends.
std::string FlagOrEnv(const std::string& value, const char* env);

// True for hosts only this machine reaches: "localhost", 127.0.0.0/8, "::1" (bracketed or
// not). A wildcard ("0.0.0.0", "::", "") is not.
bool IsLoopbackHost(absl::string_view host);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_AUTH_H_
