// FakeWorker: a worker agent without trials, for scheduler tests. It speaks the real
// WorkerGateway protocol over a real channel (hello, heartbeats, numbered trial events
// with re-send of unacknowledged ones after a reconnect, draining) and holds what the
// scheduler told it (assignments, cancels, acks), answering when the test says so.
//
// In auto mode it runs every assignment by itself on a thread: started, `epochs`
// intermediate reports, then SUCCEEDED with the metrics `result` computes; a cancel
// ends the attempt as CANCELED. The benchmark and the process-level tests use that.
//
// Thread-safety: all methods may be called from any thread.
#ifndef AUTOCOMPRESS_TESTS_FAKES_FAKE_WORKER_H_
#define AUTOCOMPRESS_TESTS_FAKES_FAKE_WORKER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "autocompress/v1/worker.grpc.pb.h"

namespace autocompress::testing {

class FakeWorker {
 public:
  struct Options {
    std::string worker_id = "fake-worker";
    // Defaults to one "cpu" device with `cpu_slots` slots when empty.
    std::vector<v1::Device> devices;
    int cpu_slots = 1;
    int cpu_threads = 8;
    std::map<std::string, std::string> labels;
    // Send heartbeats by itself at the interval the scheduler asks for.
    bool auto_heartbeat = false;
    // Run assignments by itself (see above).
    bool auto_run = false;
    int epochs = 2;
    absl::Duration epoch_time = absl::ZeroDuration();
    // Metrics of a trial's reports (step -1 = final); default: accuracy = a value
    // derived from the parameters, plus loss.
    std::function<std::vector<v1::Metric>(const v1::TrialSpec& trial, int step)> result;
    // Result artifacts a succeeding trial reports (already uploaded); default none.
    std::function<std::vector<v1::ArtifactRef>(const v1::TrialSpec& trial)> results;
  };

  FakeWorker(std::shared_ptr<grpc::Channel> channel, Options options);
  ~FakeWorker();

  // Opens a session: hello (listing the attempts it still runs), then waits for
  // WorkerAccepted. Re-sends unacknowledged events after it.
  absl::Status Connect(absl::Duration timeout = absl::Seconds(10));
  // Ends the session as a crashed or cut-off worker would (no goodbye).
  void Disconnect();
  // The last WorkerAccepted.
  v1::WorkerAccepted accepted() const;
  // The session ended and why (OK while open or after Disconnect).
  bool connected() const;
  absl::Status stream_status() const;

  // What the scheduler sent, in order; Wait* pop the oldest unseen one.
  std::optional<v1::TrialSpec> WaitForAssignment(absl::Duration timeout = absl::Seconds(10));
  std::optional<v1::CancelTrial> WaitForCancel(absl::Duration timeout = absl::Seconds(10));
  int assignments_received() const;

  // Trial events; each returns the event's sequence number. The attempt is counted as
  // running (heartbeats list it) from Started until Finished.
  int64_t Started(const v1::TrialSpec& trial);
  int64_t Intermediate(const v1::TrialSpec& trial, int64_t step, std::vector<v1::Metric> metrics);
  // A fine-tuning checkpoint after `epoch` epochs, already uploaded as `artifact`.
  int64_t Checkpoint(const v1::TrialSpec& trial, int32_t epoch, const v1::ArtifactRef& artifact);
  int64_t Succeeded(const v1::TrialSpec& trial, std::vector<v1::Metric> metrics,
                    std::vector<v1::ArtifactRef> results = {});
  int64_t Finished(const v1::TrialSpec& trial, v1::TrialState state, v1::FailureCode code,
                   const std::string& message);
  // A heartbeat listing the running attempts.
  void Heartbeat();
  // Hands back `handed_back` and keeps the rest running.
  void Drain(const std::vector<v1::TrialSpec>& handed_back, const std::string& reason);

  // Waits until the event (trial, attempt, sequence) is acknowledged.
  bool WaitForAck(const v1::TrialSpec& trial, int64_t sequence,
                  absl::Duration timeout = absl::Seconds(10));
  // Events sent and not acknowledged yet.
  int unacked() const;
  // Milliseconds from sending each acknowledged event to its ack (the bench reads it).
  std::vector<double> TakeAckLatenciesMs();

  static v1::Metric MetricOf(const std::string& name, double value);

 private:
  struct Sent {
    v1::WorkerMessage message;
    absl::Time sent;
  };
  using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::SchedulerMessage>;

  int64_t SendEvent(const v1::TrialSpec& trial, v1::TrialEvent event);
  void Write(const v1::WorkerMessage& message) ABSL_LOCKS_EXCLUDED(mu_);
  void ReadLoop(std::shared_ptr<Stream> stream, std::shared_ptr<grpc::ClientContext> context);
  void HeartbeatLoop();
  void RunTrial(v1::TrialSpec trial);
  void RunnerLoop();
  static std::string Key(const std::string& trial_id, int32_t attempt);

  const Options options_;
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;

  mutable absl::Mutex mu_;
  std::shared_ptr<grpc::ClientContext> context_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);
  absl::Mutex write_mu_;  // one writer at a time on the stream
  std::thread reader_;
  std::thread heartbeater_;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool has_accepted_ ABSL_GUARDED_BY(mu_) = false;
  v1::WorkerAccepted accepted_ ABSL_GUARDED_BY(mu_);
  absl::Status stream_status_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::TrialSpec> assignments_ ABSL_GUARDED_BY(mu_);
  int assignments_received_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> received_ ABSL_GUARDED_BY(mu_);
  // Attempts whose finished event was sent but not yet acknowledged.
  std::set<std::string> finished_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::CancelTrial> cancels_ ABSL_GUARDED_BY(mu_);
  // Running attempts by key, and canceled ones (auto mode stops them).
  std::map<std::string, v1::RunningTrial> running_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> cancel_requested_ ABSL_GUARDED_BY(mu_);
  // Next event sequence per attempt, unacked events per attempt by sequence.
  std::map<std::string, int64_t> next_sequence_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<int64_t, Sent>> unacked_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> acked_ ABSL_GUARDED_BY(mu_);
  std::vector<double> ack_latencies_ms_ ABSL_GUARDED_BY(mu_);
  // Auto mode: assignments waiting for a runner, and one runner thread per slot.
  std::deque<v1::TrialSpec> auto_queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> runners_;
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAKES_FAKE_WORKER_H_
