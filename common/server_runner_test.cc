#include "common/server_runner.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/testing/health_check.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using autocompress::v1::SuggestRequest;
using autocompress::v1::SuggestResponse;
using autocompress::v1::TunerService;
using grpc::health::v1::HealthCheckResponse;
using testing::CheckHealth;
using testing::HealthProbe;

constexpr char kTuner[] = "autocompress.v1.TunerService";

// Suggest blocks until released (or cancelled), to hold a call in flight.
class BlockingService final : public TunerService::Service {
 public:
  grpc::Status Suggest(grpc::ServerContext* context, const SuggestRequest*,
                       SuggestResponse* response) override {
    entered_.Notify();
    while (!release_.WaitForNotificationWithTimeout(absl::Milliseconds(10))) {
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
    }
    response->set_exhausted(true);
    return grpc::Status::OK;
  }
  absl::Notification entered_;
  absl::Notification release_;
};

std::shared_ptr<grpc::Channel> TcpChannel(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

TEST(ServerRunnerTest, PortZeroBindsAFreePortAndServesHealth) {
  TunerService::Service service;
  ServerRunner runner(ServerOptions::Loopback());
  runner.AddService(&service, kTuner);
  ASSERT_TRUE(runner.Start().ok());
  ASSERT_GT(runner.port(), 0);

  EXPECT_EQ(CheckHealth(runner.port()).code, grpc::StatusCode::OK);
  EXPECT_EQ(CheckHealth(runner.port()).status, HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(runner.port(), kTuner).status, HealthCheckResponse::SERVING);
  EXPECT_EQ(CheckHealth(runner.port(), "no.such.Service").code, grpc::StatusCode::NOT_FOUND);
}

TEST(ServerRunnerTest, TakenPortIsUnavailable) {
  ServerRunner first(ServerOptions::Loopback());
  ASSERT_TRUE(first.Start().ok());
  ServerOptions options = ServerOptions::Loopback();
  options.port = first.port();
  ServerRunner second(options);
  EXPECT_EQ(second.Start().code(), absl::StatusCode::kUnavailable);
}

TEST(ServerRunnerTest, ShutdownDrainsInFlightCallsAndRefusesNewOnes) {
  BlockingService service;
  ServerOptions options = ServerOptions::Loopback();
  options.shutdown_grace = absl::Seconds(30);
  ServerRunner runner(options);
  runner.AddService(&service, kTuner);
  ASSERT_TRUE(runner.Start().ok());
  auto channel = TcpChannel(runner.port());
  auto stub = TunerService::NewStub(channel);

  grpc::Status in_flight;
  SuggestResponse response;
  std::thread caller([&] {
    grpc::ClientContext context;
    in_flight = stub->Suggest(&context, SuggestRequest(), &response);
  });
  service.entered_.WaitForNotification();
  std::thread stopper([&] { runner.Shutdown(); });
  // The call is still being served while the server drains; release it.
  absl::SleepFor(absl::Milliseconds(200));
  service.release_.Notify();
  caller.join();
  stopper.join();
  runner.Wait();
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_message();
  EXPECT_TRUE(response.exhausted());

  grpc::ClientContext late;
  late.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(stub->Suggest(&late, SuggestRequest(), &response).ok());
}

TEST(ServerRunnerTest, ShutdownCancelsCallsThatOutliveTheGrace) {
  BlockingService service;
  ServerOptions options = ServerOptions::Loopback();
  options.shutdown_grace = absl::Milliseconds(200);
  ServerRunner runner(options);
  runner.AddService(&service, kTuner);
  ASSERT_TRUE(runner.Start().ok());
  auto stub = TunerService::NewStub(runner.InProcessChannel());

  grpc::Status in_flight;
  std::thread caller([&] {
    grpc::ClientContext context;
    SuggestResponse response;
    in_flight = stub->Suggest(&context, SuggestRequest(), &response);
  });
  service.entered_.WaitForNotification();
  const absl::Time start = absl::Now();
  runner.Shutdown();
  runner.Wait();
  caller.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_FALSE(in_flight.ok());
}

TEST(ServerRunnerTest, HealthTurnsNotServingWhileTheListenerStillAccepts) {
  TunerService::Service service;
  ServerOptions options = ServerOptions::Loopback();
  options.health_grace = absl::Seconds(3);
  ServerRunner runner(options);
  runner.AddService(&service, kTuner);
  ASSERT_TRUE(runner.Start().ok());
  const int port = runner.port();
  std::thread stopper([&] { runner.Shutdown(); });

  // During the grace a probe on a fresh connection is answered, and says NOT_SERVING.
  HealthProbe probe;
  probe.status = HealthCheckResponse::SERVING;
  for (int i = 0; i < 100 && probe.status == HealthCheckResponse::SERVING; ++i) {
    probe = CheckHealth(port, kTuner);
    if (probe.status == HealthCheckResponse::SERVING) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(probe.code, grpc::StatusCode::OK);
  EXPECT_EQ(probe.status, HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(CheckHealth(port).status, HealthCheckResponse::NOT_SERVING);

  stopper.join();
  runner.Wait();
  EXPECT_EQ(CheckHealth(port).code, grpc::StatusCode::UNAVAILABLE);
}

TEST(ServerRunnerTest, ShutdownIsIdempotentAndSafeBeforeStart) {
  ServerRunner never_started(ServerOptions::Loopback());
  never_started.Shutdown();
  ServerRunner runner(ServerOptions::Loopback());
  ASSERT_TRUE(runner.Start().ok());
  runner.Shutdown();
  runner.Shutdown();
  runner.Wait();
}

}  // namespace
}  // namespace autocompress
