// Client side of every AutoCompress gRPC hop: channels with keepalive and size limits,
// and the one place where calls are retried. Every call gets a deadline; only
// UNAVAILABLE (peer down or restarting) is retried, with exponential backoff and jitter.
// Other codes are answers, and retrying them would repeat non-idempotent work.
#ifndef AUTOCOMPRESS_COMMON_CHANNEL_H_
#define AUTOCOMPRESS_COMMON_CHANNEL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"

namespace autocompress {

struct ChannelOptions {
  // Largest message sent or received, in bytes.
  int max_message_bytes = 64 << 20;
  // Client keepalive pings, so a dead peer is noticed on an idle connection.
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Bounds of the channel's own reconnect backoff after a failed connection attempt.
  // While it waits, calls fail fast with UNAVAILABLE (and CallWithRetry retries them).
  absl::Duration min_reconnect_backoff = absl::Seconds(1);
  absl::Duration max_reconnect_backoff = absl::Seconds(10);
  // Transport security; null means insecure.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // With TLS, the name checked in the server's certificate instead of the target's host
  // (for a target that is an IP address); empty = the host.
  std::string ssl_target_name_override;
  // Sent as "authorization: Bearer <token>" on every call when not empty (by a client
  // interceptor, so it travels on plaintext channels too, unlike gRPC call credentials).
  std::string token;
};

// A channel to `target` ("host:port", "dns:///name:port", "unix:/path").
std::shared_ptr<grpc::Channel> CreateChannel(const std::string& target,
                                             const ChannelOptions& options = {});

struct RetryOptions {
  // Deadline of each attempt.
  absl::Duration attempt_timeout = absl::Seconds(10);
  // Attempts in all, the first included; >= 1.
  int max_attempts = 5;
  // Backoff before the second attempt; multiplied by `backoff_multiplier` after each
  // failure up to `max_backoff`, each wait randomized by +-`jitter` (a fraction).
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;
  double jitter = 0.2;
  // Waits between attempts; tests inject a fake.
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
};

// True for the codes a call may be retried on (UNAVAILABLE only).
bool IsRetryable(const grpc::Status& status);

// Runs `call` with a fresh ClientContext whose deadline is set, retrying while it
// returns a retryable status and attempts remain. Returns the last status. `call` may
// add metadata to the context; it must issue exactly one RPC with it.
grpc::Status CallWithRetry(const RetryOptions& options,
                           absl::FunctionRef<grpc::Status(grpc::ClientContext*)> call);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_CHANNEL_H_
