#include "common/channel.h"

#include <vector>

#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/server_runner.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using autocompress::v1::DeleteStudyRequest;
using autocompress::v1::DeleteStudyResponse;
using autocompress::v1::TunerService;

class OkService final : public TunerService::Service {
  grpc::Status DeleteStudy(grpc::ServerContext*, const DeleteStudyRequest*,
                           DeleteStudyResponse* response) override {
    response->set_existed(true);
    return grpc::Status::OK;
  }
};

RetryOptions RecordingOptions(std::vector<absl::Duration>* sleeps) {
  RetryOptions options;
  options.sleep = [sleeps](absl::Duration d) { sleeps->push_back(d); };
  return options;
}

TEST(CallWithRetryTest, RetriesUnavailableWithGrowingJitteredBackoff) {
  std::vector<absl::Duration> sleeps;
  RetryOptions options = RecordingOptions(&sleeps);
  int calls = 0;
  grpc::Status status = CallWithRetry(options, [&](grpc::ClientContext*) {
    return ++calls < 4 ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "down") : grpc::Status::OK;
  });
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(calls, 4);
  ASSERT_EQ(sleeps.size(), 3u);
  absl::Duration expected = options.initial_backoff;
  for (absl::Duration slept : sleeps) {
    EXPECT_GE(slept, expected * (1 - options.jitter));
    EXPECT_LE(slept, expected * (1 + options.jitter));
    expected *= options.backoff_multiplier;
  }
}

TEST(CallWithRetryTest, OtherCodesAreAnswersAndNotRetried) {
  for (grpc::StatusCode code : {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND,
                                grpc::StatusCode::DEADLINE_EXCEEDED, grpc::StatusCode::INTERNAL,
                                grpc::StatusCode::FAILED_PRECONDITION}) {
    std::vector<absl::Duration> sleeps;
    int calls = 0;
    grpc::Status status = CallWithRetry(RecordingOptions(&sleeps), [&](grpc::ClientContext*) {
      ++calls;
      return grpc::Status(code, "answer");
    });
    EXPECT_EQ(status.error_code(), code);
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(sleeps.empty());
  }
}

TEST(CallWithRetryTest, GivesUpAfterMaxAttemptsWithBackoffCapped) {
  std::vector<absl::Duration> sleeps;
  RetryOptions options = RecordingOptions(&sleeps);
  options.max_attempts = 8;
  options.jitter = 0;
  options.max_backoff = absl::Milliseconds(500);
  int calls = 0;
  grpc::Status status = CallWithRetry(options, [&](grpc::ClientContext*) {
    ++calls;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "down");
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(calls, 8);
  ASSERT_EQ(sleeps.size(), 7u);
  EXPECT_EQ(sleeps.back(), absl::Milliseconds(500));
}

TEST(CallWithRetryTest, EveryAttemptHasItsOwnDeadline) {
  std::vector<absl::Duration> sleeps;
  RetryOptions options = RecordingOptions(&sleeps);
  options.attempt_timeout = absl::Seconds(3);
  int calls = 0;
  CallWithRetry(options, [&](grpc::ClientContext* context) {
    const absl::Duration left = absl::FromChrono(context->deadline()) - absl::Now();
    EXPECT_GT(left, absl::Seconds(2));
    EXPECT_LE(left, absl::Seconds(3));
    return ++calls < 2 ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "") : grpc::Status::OK;
  });
  EXPECT_EQ(calls, 2);
}

TEST(CallWithRetryTest, ReachesAServerThatComesUpDuringBackoff) {
  // Learn a free port, then free it again.
  int port = 0;
  {
    ServerOptions probe;
    probe.host = "127.0.0.1";
    ServerRunner runner(probe);
    ASSERT_TRUE(runner.Start().ok());
    port = runner.port();
  }
  OkService service;
  ServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  ServerRunner late_server(options);
  late_server.AddService(&service, "autocompress.v1.TunerService");

  RetryOptions retry;
  retry.attempt_timeout = absl::Seconds(2);
  retry.initial_backoff = absl::Milliseconds(50);
  retry.max_attempts = 10;
  int sleeps = 0;
  retry.sleep = [&](absl::Duration d) {
    if (++sleeps == 2) {
      ASSERT_TRUE(late_server.Start().ok());
    }
    absl::SleepFor(d);
  };
  ChannelOptions channel_options;
  channel_options.min_reconnect_backoff = absl::Milliseconds(100);
  channel_options.max_reconnect_backoff = absl::Milliseconds(200);
  auto stub =
      TunerService::NewStub(CreateChannel("127.0.0.1:" + std::to_string(port), channel_options));
  DeleteStudyResponse response;
  grpc::Status status = CallWithRetry(retry, [&](grpc::ClientContext* context) {
    return stub->DeleteStudy(context, DeleteStudyRequest(), &response);
  });
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.existed());
  EXPECT_GE(sleeps, 2);
}

}  // namespace
}  // namespace autocompress
