#include "common/auth.h"

#include <grpc/grpc_security.h>
#include <openssl/crypto.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace autocompress {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " cannot be read"));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return text.str();
}

absl::string_view View(const grpc_slice& slice) {
  return {reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)), GRPC_SLICE_LENGTH(slice)};
}

// The token check, called by gRPC core's server auth filter with each call's metadata
// before the call reaches a handler. It decides at once (no I/O), so it answers on the
// calling thread.
class TokenCheck {
 public:
  explicit TokenCheck(std::vector<TokenGrant> grants) : grants_(std::move(grants)) {}

  static void Process(void* state, grpc_auth_context* /*context*/, const grpc_metadata* md,
                      size_t num_md, grpc_process_auth_metadata_done_cb done, void* user_data) {
    const auto* check = static_cast<const TokenCheck*>(state);
    absl::string_view path;
    const grpc_metadata* authorization = nullptr;
    for (size_t i = 0; i < num_md; ++i) {
      const absl::string_view key = View(md[i].key);
      if (key == ":path") path = View(md[i].value);
      if (key == "authorization") authorization = &md[i];
    }
    const auto [code, message] = check->Decide(path, authorization);
    // The authorization header is consumed: handlers never see the token.
    done(user_data, authorization, authorization != nullptr ? 1 : 0, nullptr, 0, code,
         code == GRPC_STATUS_OK ? nullptr : message);
  }

  static void Destroy(void* state) { delete static_cast<TokenCheck*>(state); }

 private:
  std::pair<grpc_status_code, const char*> Decide(absl::string_view path,
                                                  const grpc_metadata* authorization) const {
    // "/grpc.health.v1.Health/Check": probes carry no token.
    if (absl::StartsWith(path, "/grpc.health.v1.Health/")) return {GRPC_STATUS_OK, nullptr};
    if (authorization == nullptr) {
      return {GRPC_STATUS_UNAUTHENTICATED,
              "this server needs a bearer token (metadata \"authorization: Bearer <token>\"; "
              "--token or AUTOCOMPRESS_TOKEN)"};
    }
    absl::string_view value = View(authorization->value);
    if (!absl::ConsumePrefix(&value, "Bearer ")) {
      return {GRPC_STATUS_UNAUTHENTICATED, "the authorization metadata is not \"Bearer <token>\""};
    }
    // "/autocompress.v1.WorkerGateway/Connect" -> "autocompress.v1.WorkerGateway".
    absl::string_view service = path.substr(path.empty() ? 0 : 1);
    service = service.substr(0, service.find('/'));
    const std::string given(value);
    bool granted = false;
    for (const TokenGrant& grant : grants_) {
      // Every grant is compared, so the time taken does not tell which one matched.
      bool opens = grant.services.empty();
      for (const std::string& s : grant.services) opens = opens || s == service;
      granted = (TokenMatches(given, grant.token) && opens) || granted;
    }
    if (!granted) {
      return {GRPC_STATUS_PERMISSION_DENIED,
              "the bearer token is not one this server accepts for this service"};
    }
    return {GRPC_STATUS_OK, nullptr};
  }

  const std::vector<TokenGrant> grants_;
};

// ServerCredentials over gRPC core credentials, so that plaintext ports can carry the
// token check too (the C++ InsecureServerCredentials refuse an auth processor).
// AddPortToServer is ServerCredentials' private hook that grpc::Server calls.
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit CoreServerCredentials(grpc_server_credentials* credentials)
      : credentials_(credentials) {}
  ~CoreServerCredentials() override { grpc_server_credentials_release(credentials_); }

  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>& /*processor*/) override {
    LOG(FATAL) << "CoreServerCredentials take their token check from ServerCredentialsFor";
  }

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }

  grpc_server_credentials* const credentials_;
};

}  // namespace

bool ServerSecurity::checks_tokens() const {
  for (const TokenGrant& grant : tokens) {
    if (!grant.token.empty()) return true;
  }
  return false;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const ServerSecurity& security) {
  grpc_server_credentials* credentials = nullptr;
  if (security.tls()) {
    if (security.tls_cert_file.empty() || security.tls_key_file.empty()) {
      return absl::InvalidArgumentError("TLS needs both --tls_cert and --tls_key");
    }
    ASSIGN_OR_RETURN(const std::string cert, ReadPem("--tls_cert", security.tls_cert_file));
    ASSIGN_OR_RETURN(const std::string key, ReadPem("--tls_key", security.tls_key_file));
    std::string client_ca;
    if (!security.tls_client_ca_file.empty()) {
      ASSIGN_OR_RETURN(client_ca, ReadPem("--tls_client_ca", security.tls_client_ca_file));
    }
    grpc_ssl_pem_key_cert_pair pair{key.c_str(), cert.c_str()};
    credentials = grpc_ssl_server_credentials_create_ex(
        client_ca.empty() ? nullptr : client_ca.c_str(), &pair, 1,
        client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
        nullptr);
    if (credentials == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("--tls_cert ", security.tls_cert_file,
                                                     " and --tls_key ", security.tls_key_file,
                                                     " do not make TLS credentials"));
    }
  } else {
    if (!security.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
    }
    credentials = grpc_insecure_server_credentials_create();
  }
  if (security.checks_tokens()) {
    std::vector<TokenGrant> grants;
    for (const TokenGrant& grant : security.tokens) {
      if (!grant.token.empty()) grants.push_back(grant);
    }
    grpc_server_credentials_set_auth_metadata_processor(
        credentials,
        {&TokenCheck::Process, &TokenCheck::Destroy, new TokenCheck(std::move(grants))});
  }
  return std::make_shared<CoreServerCredentials>(credentials);
}

absl::Status ApplyClientSecurity(const ClientSecurity& security, const std::string& flag_prefix,
                                 ChannelOptions* channel) {
  channel->token = security.token;
  const bool tls = security.tls || !security.ca_file.empty() || !security.cert_file.empty() ||
                   !security.key_file.empty();
  if (!tls) return absl::OkStatus();
  if (security.cert_file.empty() != security.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("a client certificate needs both --",
                                                   flag_prefix, "tls_cert and --", flag_prefix,
                                                   "tls_key"));
  }
  grpc::SslCredentialsOptions ssl;
  if (!security.ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs,
                     ReadPem(absl::StrCat("--", flag_prefix, "tls_ca"), security.ca_file));
  }
  if (!security.cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain,
                     ReadPem(absl::StrCat("--", flag_prefix, "tls_cert"), security.cert_file));
    ASSIGN_OR_RETURN(ssl.pem_private_key,
                     ReadPem(absl::StrCat("--", flag_prefix, "tls_key"), security.key_file));
  }
  channel->credentials = grpc::SslCredentials(ssl);
  channel->ssl_target_name_override = security.server_name;
  return absl::OkStatus();
}

bool TokenMatches(const std::string& given, const std::string& expected) {
  return given.size() == expected.size() &&
         CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || absl::StartsWith(host, "127.");
}

std::string FlagOrEnv(const std::string& value, const char* env) {
  if (!value.empty()) return value;
  const char* from_env = std::getenv(env);
  return from_env != nullptr ? from_env : "";
}

}  // namespace autocompress
