// WorkerSession: the scheduler's side of one open WorkerGateway.Connect stream. The
// scheduler queues messages for the worker, each gated by the commit it announces (an
// assignment only after its lease is durable, an EventAck only after the event is); the
// stream's writer thread takes them in order with Next, waiting for each gate.
//
// Thread-safety: all methods may be called from any thread; Next from one thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_WORKER_SESSION_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_WORKER_SESSION_H_

#include <cstdint>
#include <deque>
#include <future>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "autocompress/v1/worker.pb.h"

namespace autocompress::scheduler {

class WorkerSession {
 public:
  WorkerSession(std::string worker_id, int64_t id) : worker_id_(std::move(worker_id)), id_(id) {}

  const std::string& worker_id() const { return worker_id_; }
  // Unique per session in this process (a reconnect gets a new one).
  int64_t id() const { return id_; }

  // Queues `message`, to be sent once `gate` is ready with OK (an invalid future: at
  // once). Ignored after Close.
  void Send(v1::SchedulerMessage message, std::shared_future<absl::Status> gate = {});

  // The next message to write, waiting for it and for its gate; nullopt once the
  // session is closed (queued messages are dropped then) or a gate failed.
  std::optional<v1::SchedulerMessage> Next();

  // Ends the session: Next returns nullopt from now on. `status` is what the stream
  // should finish with (OK for a normal end). Idempotent; the first status wins.
  void Close(absl::Status status = absl::OkStatus());
  bool closed() const;
  absl::Status close_status() const;

 private:
  struct Item {
    v1::SchedulerMessage message;
    std::shared_future<absl::Status> gate;
  };

  const std::string worker_id_;
  const int64_t id_;
  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status close_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_WORKER_SESSION_H_
