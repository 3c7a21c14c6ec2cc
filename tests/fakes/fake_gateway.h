// FakeGateway: the scheduler's WorkerGateway as a worker test needs it. It accepts one
// session at a time, records every message the worker sends (hello, heartbeats, trial
// events, draining), acknowledges trial events as they come (unless told not to), and
// sends assignments and cancels when the test says so. No placement, no store: the
// test is the scheduler.
//
// Thread-safety: all methods may be called from any thread.
#ifndef AUTOCOMPRESS_TESTS_FAKES_FAKE_GATEWAY_H_
#define AUTOCOMPRESS_TESTS_FAKES_FAKE_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "autocompress/v1/worker.grpc.pb.h"

namespace autocompress::testing {

class FakeGateway final : public v1::WorkerGateway::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SchedulerMessage, v1::WorkerMessage>* stream) override;

  // Acknowledge trial events on arrival (default) or not at all.
  void set_auto_ack(bool auto_ack);
  // Sent in WorkerAccepted.
  void set_heartbeat_interval(absl::Duration interval);

  // Waits for a session to be open (hello received, accepted sent).
  bool WaitForSession(absl::Duration timeout = absl::Seconds(10));
  // Sessions opened so far, and the hello of each.
  std::vector<v1::WorkerHello> hellos() const;
  // Sends to the open session; false when none is open.
  bool Assign(const v1::TrialSpec& trial);
  bool Cancel(const std::string& trial_id, int32_t attempt, const std::string& reason);
  // Ends the open session as a crashed scheduler would.
  void Disconnect();

  // Every message received in any session (hello excluded), in order.
  std::vector<v1::WorkerMessage> messages() const;
  // Trial events of one attempt, in order of arrival (re-sent ones repeated).
  std::vector<v1::TrialEvent> Events(const std::string& trial_id, int32_t attempt) const;
  // Waits until `predicate` holds for the messages received; returns whether it did.
  // The predicate runs under the gateway's lock: it must not call the gateway.
  bool WaitFor(const std::function<bool(const std::vector<v1::WorkerMessage>&)>& predicate,
               absl::Duration timeout = absl::Seconds(60));
  // Waits for the attempt's finished event.
  std::optional<v1::TrialFinished> WaitForFinished(const std::string& trial_id, int32_t attempt,
                                                   absl::Duration timeout = absl::Seconds(60));

 private:
  using Stream = grpc::ServerReaderWriter<v1::SchedulerMessage, v1::WorkerMessage>;
  bool Send(const v1::SchedulerMessage& message);

  mutable absl::Mutex mu_;
  bool auto_ack_ ABSL_GUARDED_BY(mu_) = true;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Milliseconds(200);
  grpc::ServerContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<v1::WorkerHello> hellos_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::WorkerMessage> messages_ ABSL_GUARDED_BY(mu_);
  absl::Mutex write_mu_;  // one writer at a time on the stream
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAKES_FAKE_GATEWAY_H_
