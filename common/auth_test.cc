#include "common/auth.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/channel.h"
#include "common/server_runner.h"
#include "common/testing/runfiles.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using autocompress::v1::DeleteStudyRequest;
using autocompress::v1::DeleteStudyResponse;
using autocompress::v1::TunerService;

// Counts the calls that reached a handler: a refused call must never get there.
class CountingService final : public TunerService::Service {
 public:
  grpc::Status DeleteStudy(grpc::ServerContext* context, const DeleteStudyRequest*,
                           DeleteStudyResponse* response) override {
    ++calls;
    // The token is consumed by the check: handlers never see it.
    saw_token = context->client_metadata().count("authorization") > 0;
    response->set_existed(true);
    return grpc::Status::OK;
  }
  int calls = 0;
  bool saw_token = false;
};

struct Started {
  std::unique_ptr<CountingService> service = std::make_unique<CountingService>();
  std::unique_ptr<ServerRunner> runner;
};

Started Start(ServerSecurity security) {
  Started s;
  ServerOptions options = ServerOptions::Loopback();
  options.security = std::move(security);
  s.runner = std::make_unique<ServerRunner>(options);
  s.runner->AddService(s.service.get(), "autocompress.v1.TunerService");
  EXPECT_TRUE(s.runner->Start().ok());
  return s;
}

grpc::Status Call(int port, const ClientSecurity& security) {
  ChannelOptions channel;
  EXPECT_TRUE(ApplyClientSecurity(security, "", &channel).ok());
  auto stub = TunerService::NewStub(CreateChannel(absl::StrCat("127.0.0.1:", port), channel));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  DeleteStudyResponse response;
  return stub->DeleteStudy(&context, DeleteStudyRequest(), &response);
}

ServerSecurity Tokens(std::vector<TokenGrant> tokens) {
  ServerSecurity security;
  security.tokens = std::move(tokens);
  return security;
}

ClientSecurity WithToken(const std::string& token) {
  ClientSecurity security;
  security.token = token;
  return security;
}

TEST(AuthTest, MissingTokenIsUnauthenticatedWrongIsDeniedRightPasses) {
  Started s = Start(Tokens({{"s3cret", {}}}));
  grpc::Status missing = Call(s.runner->port(), {});
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(missing.error_message().find("bearer token"), std::string::npos);
  grpc::Status wrong = Call(s.runner->port(), WithToken("s3creX"));
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(wrong.error_message().find("s3cre"), std::string::npos) << "token echoed";
  EXPECT_EQ(Call(s.runner->port(), WithToken("s3cre")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.service->calls, 0) << "a refused call reached the handler";
  EXPECT_TRUE(Call(s.runner->port(), WithToken("s3cret")).ok());
  EXPECT_EQ(s.service->calls, 1);
  EXPECT_FALSE(s.service->saw_token);
}

TEST(AuthTest, ATokenOpensOnlyItsServices) {
  Started s = Start(Tokens({{"client", {"autocompress.v1.ExperimentService"}},
                            {"tuner", {"autocompress.v1.TunerService"}}}));
  EXPECT_EQ(Call(s.runner->port(), WithToken("client")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Call(s.runner->port(), WithToken("tuner")).ok());
}

TEST(AuthTest, EmptyTokensCheckNothing) {
  Started s = Start(Tokens({{"", {}}}));
  EXPECT_TRUE(Call(s.runner->port(), {}).ok());
}

TEST(AuthTest, TlsServesVerifiedClientsAndRefusesPlaintext) {
  const std::string dir = testing::TempPath("auth_tls");
  const std::string make = absl::StrCat(
      "mkdir -p ", dir, " && cd ", dir,
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
      " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem"
      " 2>/dev/null");
  ASSERT_EQ(std::system(make.c_str()), 0) << "openssl failed";
  ServerSecurity security = Tokens({{"t", {}}});
  security.tls_cert_file = dir + "/cert.pem";
  security.tls_key_file = dir + "/key.pem";
  Started s = Start(security);
  ClientSecurity tls = WithToken("t");
  tls.tls = true;
  tls.ca_file = dir + "/cert.pem";
  tls.server_name = "localhost";
  EXPECT_TRUE(Call(s.runner->port(), tls).ok());
  EXPECT_EQ(Call(s.runner->port(), WithToken("t")).error_code(), grpc::StatusCode::UNAVAILABLE)
      << "plaintext reached a TLS port";
  ClientSecurity no_ca = WithToken("t");
  no_ca.tls = true;
  no_ca.server_name = "localhost";
  EXPECT_EQ(Call(s.runner->port(), no_ca).error_code(), grpc::StatusCode::UNAVAILABLE)
      << "a certificate no root vouches for was accepted";
}

TEST(AuthTest, BadFilesAreClearErrors) {
  ServerOptions options = ServerOptions::Loopback();
  options.security.tls_cert_file = "/nonexistent.pem";
  ServerRunner half(options);
  absl::Status status = half.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  ChannelOptions channel;
  ClientSecurity client;
  client.ca_file = "/nonexistent.pem";
  status = ApplyClientSecurity(client, "scheduler_", &channel);
  EXPECT_NE(status.message().find("--scheduler_tls_ca"), std::string::npos) << status;
}

TEST(AuthTest, TokenMatchesComparesWholeTokens) {
  EXPECT_TRUE(TokenMatches("abc", "abc"));
  EXPECT_FALSE(TokenMatches("abc", "abd"));
  EXPECT_FALSE(TokenMatches("ab", "abc"));
  EXPECT_FALSE(TokenMatches("", "abc"));
}

TEST(AuthTest, LoopbackHostsAreOnlyThisMachines) {
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "", "10.0.0.1", "scheduler", "128.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

}  // namespace
}  // namespace autocompress
