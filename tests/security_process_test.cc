// Tokens and TLS on the real server processes, as users deploy them: tuner_server with
// --token, scheduler_server with --token, --join_token, --tuner_token, the dashboard's
// JSON API and a password on /metrics; then a scheduler on TLS (and mutual TLS) with a
// certificate made here by openssl, reached by the CLI with --tls_ca and --token.
// Every service is called with no token, a wrong one (another service's) and the right
// one: missing is UNAUTHENTICATED (401 on HTTP), wrong PERMISSION_DENIED (403), and
// health checks stay open.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "autocompress/v1/worker.grpc.pb.h"
#include "common/auth.h"
#include "common/channel.h"
#include "common/testing/http_get.h"
#include "common/testing/runfiles.h"
#include "common/testing/subprocess.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/fakes/experiment_fixtures.h"

namespace autocompress {
namespace {

using testing::RunfilePath;
using testing::Subprocess;

constexpr char kClientToken[] = "client-token-4f1c";
constexpr char kJoinToken[] = "join-token-9a2e";
constexpr char kTunerToken[] = "tuner-token-77b0";
constexpr char kMetricsPassword[] = "metrics-pw-31d5";

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::shared_ptr<grpc::Channel> Channel(int port, const std::string& token,
                                       const ClientSecurity& tls = ClientSecurity()) {
  ClientSecurity security = tls;
  security.token = token;
  ChannelOptions options;
  EXPECT_TRUE(ApplyClientSecurity(security, "", &options).ok());
  return CreateChannel(absl::StrCat(security.tls ? "localhost" : "127.0.0.1", ":", port), options);
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return context;
}

grpc::StatusCode Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  auto context = Context();
  return stub->Check(context.get(), request, &response).error_code();
}

grpc::StatusCode ListExperiments(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::ExperimentService::NewStub(channel);
  v1::ListExperimentsRequest request;
  v1::ListExperimentsResponse response;
  auto context = Context();
  return stub->ListExperiments(context.get(), request, &response).error_code();
}

grpc::StatusCode StatArtifact(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::ArtifactService::NewStub(channel);
  v1::StatRequest request;
  request.set_sha256(std::string(64, 'a'));
  v1::StatResponse response;
  auto context = Context();
  return stub->Stat(context.get(), request, &response).error_code();
}

// Opens WorkerGateway's stream and ends it without a hello: past the token check, the
// gateway itself answers (not with an auth code).
grpc::StatusCode ConnectWorker(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::WorkerGateway::NewStub(channel);
  auto context = Context();
  auto stream = stub->Connect(context.get());
  stream->WritesDone();
  v1::SchedulerMessage message;
  while (stream->Read(&message)) {
  }
  return stream->Finish().error_code();
}

grpc::StatusCode ValidateSearchSpace(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::TunerService::NewStub(channel);
  v1::ValidateSearchSpaceRequest request;
  request.set_search_space_json(R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
  v1::ValidateSearchSpaceResponse response;
  auto context = Context();
  return stub->ValidateSearchSpace(context.get(), request, &response).error_code();
}

bool PassedTheCheck(grpc::StatusCode code) {
  return code != grpc::StatusCode::UNAUTHENTICATED && code != grpc::StatusCode::PERMISSION_DENIED &&
         code != grpc::StatusCode::UNAVAILABLE && code != grpc::StatusCode::DEADLINE_EXCEEDED;
}

int HttpStatus(int port, const std::string& path, const std::string& header) {
  testing::HttpRequest request;
  request.port = port;
  request.path = path;
  if (!header.empty()) request.headers.push_back(header);
  auto response = testing::HttpFetch(request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? response->status_code : -1;
}

class SecurityProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tuner = testing::StartReadyServer({RunfilePath("tuner_service/tuner_server"),
                                            "--host=127.0.0.1", "--port=0", "--metrics_port=0",
                                            absl::StrCat("--token=", kTunerToken)});
    ASSERT_TRUE(tuner.ok()) << tuner.status();
    tuner_ = std::move(*tuner);
  }

  void TearDown() override {
    if (tuner_.process != nullptr) tuner_.process->Signal(SIGTERM);
  }

  std::vector<std::string> SchedulerArgv(const std::string& data_dir) const {
    return {RunfilePath("scheduler_service/scheduler_server"),
            "--host=127.0.0.1",
            "--port=0",
            "--metrics_port=0",
            absl::StrCat("--data_dir=", data_dir),
            absl::StrCat("--tuner_address=127.0.0.1:", tuner_.ports.grpc),
            absl::StrCat("--tuner_token=", kTunerToken),
            absl::StrCat("--token=", kClientToken),
            absl::StrCat("--join_token=", kJoinToken)};
  }

  testing::ReadyServer tuner_;
};

TEST_F(SecurityProcessTest, EveryServiceRefusesMissingAndWrongTokens) {
  const int tuner = tuner_.ports.grpc;
  EXPECT_EQ(ValidateSearchSpace(Channel(tuner, "")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ValidateSearchSpace(Channel(tuner, kClientToken)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ValidateSearchSpace(Channel(tuner, kTunerToken)), grpc::StatusCode::OK);
  EXPECT_EQ(Health(Channel(tuner, "")), grpc::StatusCode::OK);

  const int http_port = FreePort();
  std::vector<std::string> argv = SchedulerArgv(testing::TempPath("security-scheduler"));
  argv.push_back(absl::StrCat("--http_port=", http_port));
  argv.push_back(absl::StrCat("--metrics_password=", kMetricsPassword));
  auto scheduler = testing::StartReadyServer(argv);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  const int port = scheduler->ports.grpc;

  EXPECT_EQ(Health(Channel(port, "")), grpc::StatusCode::OK);
  // Clients: ExperimentService.
  EXPECT_EQ(ListExperiments(Channel(port, "")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ListExperiments(Channel(port, kJoinToken)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListExperiments(Channel(port, "not-a-token")), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListExperiments(Channel(port, kClientToken)), grpc::StatusCode::OK);
  // Workers: WorkerGateway.
  EXPECT_EQ(ConnectWorker(Channel(port, "")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ConnectWorker(Channel(port, kClientToken)), grpc::StatusCode::PERMISSION_DENIED);
  const grpc::StatusCode joined = ConnectWorker(Channel(port, kJoinToken));
  EXPECT_TRUE(PassedTheCheck(joined)) << joined;
  // Both: ArtifactService (clients upload, workers download).
  EXPECT_EQ(StatArtifact(Channel(port, "")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(StatArtifact(Channel(port, kTunerToken)), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(StatArtifact(Channel(port, kClientToken)), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(StatArtifact(Channel(port, kJoinToken)), grpc::StatusCode::NOT_FOUND);

  // The dashboard's API takes the client token too.
  EXPECT_EQ(HttpStatus(http_port, "/api/v1/experiments", ""), 401);
  EXPECT_EQ(HttpStatus(http_port, "/api/v1/experiments", "Authorization: Bearer wrong"), 403);
  EXPECT_EQ(HttpStatus(http_port, "/api/v1/experiments",
                       absl::StrCat("Authorization: Bearer ", kJoinToken)),
            403);
  EXPECT_EQ(HttpStatus(http_port, "/api/v1/experiments",
                       absl::StrCat("Authorization: Bearer ", kClientToken)),
            200);
  // /metrics behind its password (HTTP basic auth, any user name).
  const int metrics = scheduler->ports.metrics;
  EXPECT_EQ(HttpStatus(metrics, "/metrics", ""), 401);
  EXPECT_EQ(HttpStatus(metrics, "/metrics",
                       "Authorization: Basic " + absl::Base64Escape("prometheus:wrong")),
            401);
  EXPECT_EQ(HttpStatus(metrics, "/metrics",
                       "Authorization: Basic " +
                           absl::Base64Escape(absl::StrCat("prometheus:", kMetricsPassword))),
            200);

  // The scheduler reaches the tuner with --tuner_token: an experiment gets its trials.
  auto client = Channel(port, kClientToken);
  auto artifacts = v1::ArtifactService::NewStub(client);
  auto experiments = v1::ExperimentService::NewStub(client);
  absl::StatusOr<v1::ExperimentSpec> spec = testing::NoOpExperimentSpec(*artifacts, 2, 4);
  ASSERT_TRUE(spec.ok()) << spec.status();
  v1::CreateExperimentRequest create;
  *create.mutable_spec() = *spec;
  v1::CreateExperimentResponse created;
  {
    auto context = Context();
    const grpc::Status status = experiments->CreateExperiment(context.get(), create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  int trials = 0;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(20);
       trials == 0 && absl::Now() < deadline; absl::SleepFor(absl::Milliseconds(50))) {
    v1::ListTrialsRequest request;
    request.set_experiment_id(created.experiment().id());
    v1::ListTrialsResponse response;
    auto context = Context();
    if (experiments->ListTrials(context.get(), request, &response).ok()) {
      trials = response.trials_size();
    }
  }
  EXPECT_GT(trials, 0) << "no suggestion reached the scheduler: the tuner refused its token?";
  scheduler->process->Signal(SIGTERM);
  EXPECT_TRUE(scheduler->process->Wait(absl::Seconds(30)).ok());
}

TEST_F(SecurityProcessTest, TlsAndMutualTlsWithTheCli) {
  const std::string dir = testing::TempPath("security-tls");
  const std::string make = absl::StrCat(
      "mkdir -p ", dir, " && cd ", dir,
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
      " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout key.pem -out cert.pem"
      " 2>/dev/null"
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=stranger"
      " -keyout stranger-key.pem -out stranger.pem 2>/dev/null");
  ASSERT_EQ(std::system(make.c_str()), 0) << "openssl failed";
  std::vector<std::string> argv = SchedulerArgv(dir + "/data");
  argv.push_back(absl::StrCat("--tls_cert=", dir, "/cert.pem"));
  argv.push_back(absl::StrCat("--tls_key=", dir, "/key.pem"));
  // Clients must present a certificate this root signed (the same self-signed one).
  argv.push_back(absl::StrCat("--tls_client_ca=", dir, "/cert.pem"));
  auto scheduler = testing::StartReadyServer(argv);
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  const int port = scheduler->ports.grpc;

  ClientSecurity mutual;
  mutual.tls = true;
  mutual.ca_file = dir + "/cert.pem";
  mutual.cert_file = dir + "/cert.pem";
  mutual.key_file = dir + "/key.pem";
  EXPECT_EQ(ListExperiments(Channel(port, kClientToken, mutual)), grpc::StatusCode::OK);
  EXPECT_EQ(ListExperiments(Channel(port, "", mutual)), grpc::StatusCode::UNAUTHENTICATED);
  ClientSecurity no_cert = mutual;
  no_cert.cert_file.clear();
  no_cert.key_file.clear();
  EXPECT_EQ(ListExperiments(Channel(port, kClientToken, no_cert)), grpc::StatusCode::UNAVAILABLE)
      << "a client without a certificate got through mutual TLS";
  ClientSecurity stranger = mutual;
  stranger.cert_file = dir + "/stranger.pem";
  stranger.key_file = dir + "/stranger-key.pem";
  EXPECT_EQ(ListExperiments(Channel(port, kClientToken, stranger)), grpc::StatusCode::UNAVAILABLE)
      << "a certificate the client CA did not sign got through";
  EXPECT_EQ(ListExperiments(Channel(port, kClientToken)), grpc::StatusCode::UNAVAILABLE)
      << "plaintext reached the TLS port";

  // The CLI: --tls_ca, --tls_cert/--tls_key and the token from AUTOCOMPRESS_TOKEN.
  auto cli = [&](const std::string& token) {
    std::vector<std::string> args = {RunfilePath("client/autocompress"),
                                     "status",
                                     absl::StrCat("--server=localhost:", port),
                                     absl::StrCat("--tls_ca=", dir, "/cert.pem"),
                                     absl::StrCat("--tls_cert=", dir, "/cert.pem"),
                                     absl::StrCat("--tls_key=", dir, "/key.pem")};
    setenv("AUTOCOMPRESS_TOKEN", token.c_str(), 1);
    auto process = Subprocess::Start(args);
    unsetenv("AUTOCOMPRESS_TOKEN");
    EXPECT_TRUE(process.ok());
    if (!process.ok()) return -1;
    while ((*process)->ReadLine(absl::Seconds(30)).ok()) {
    }
    auto code = (*process)->Wait(absl::Seconds(30));
    return code.ok() ? *code : -1;
  };
  EXPECT_EQ(cli(kClientToken), 0);
  EXPECT_NE(cli("wrong"), 0);
  scheduler->process->Signal(SIGTERM);
  EXPECT_TRUE(scheduler->process->Wait(absl::Seconds(30)).ok());
}

}  // namespace
}  // namespace autocompress
