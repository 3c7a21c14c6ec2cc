#include "tests/fakes/fake_gateway.h"

#include "common/proto_time.h"

namespace autocompress::testing {

grpc::Status FakeGateway::Connect(grpc::ServerContext* context, Stream* stream) {
  v1::WorkerMessage first;
  if (!stream->Read(&first) || !first.has_hello()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "first message must be hello");
  }
  v1::SchedulerMessage accepted;
  {
    absl::MutexLock lock(&mu_);
    hellos_.push_back(first.hello());
    *accepted.mutable_accepted()->mutable_heartbeat_interval() =
        ToProtoDuration(heartbeat_interval_);
    *accepted.mutable_accepted()->mutable_lease_timeout() = ToProtoDuration(absl::Seconds(30));
    for (const v1::RunningTrial& r : first.hello().running()) {
      *accepted.mutable_accepted()->add_reattached() = r;
    }
  }
  {
    absl::MutexLock write(&write_mu_);
    stream->Write(accepted);
  }
  {
    absl::MutexLock lock(&mu_);
    context_ = context;
    stream_ = stream;
  }
  v1::WorkerMessage message;
  while (stream->Read(&message)) {
    bool ack = false;
    {
      absl::MutexLock lock(&mu_);
      messages_.push_back(message);
      ack = auto_ack_ && message.has_trial_event();
    }
    if (ack) {
      v1::SchedulerMessage reply;
      v1::EventAck* event_ack = reply.mutable_ack();
      event_ack->set_trial_id(message.trial_event().trial_id());
      event_ack->set_attempt(message.trial_event().attempt());
      event_ack->set_event_sequence(message.trial_event().event_sequence());
      absl::MutexLock write(&write_mu_);
      stream->Write(reply);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (stream_ == stream) {
      stream_ = nullptr;
      context_ = nullptr;
    }
  }
  absl::MutexLock write(&write_mu_);  // no Send still writes on it
  return grpc::Status::OK;
}

void FakeGateway::set_auto_ack(bool auto_ack) {
  absl::MutexLock lock(&mu_);
  auto_ack_ = auto_ack;
}

void FakeGateway::set_heartbeat_interval(absl::Duration interval) {
  absl::MutexLock lock(&mu_);
  heartbeat_interval_ = interval;
}

bool FakeGateway::WaitForSession(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto open = [](FakeGateway* self)
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) { return self->stream_ != nullptr; };
  return mu_.AwaitWithTimeout(absl::Condition(+open, this), timeout);
}

std::vector<v1::WorkerHello> FakeGateway::hellos() const {
  absl::MutexLock lock(&mu_);
  return hellos_;
}

bool FakeGateway::Send(const v1::SchedulerMessage& message) {
  absl::MutexLock write(&write_mu_);
  Stream* stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  return stream != nullptr && stream->Write(message);
}

bool FakeGateway::Assign(const v1::TrialSpec& trial) {
  v1::SchedulerMessage message;
  *message.mutable_assign()->mutable_trial() = trial;
  return Send(message);
}

bool FakeGateway::Cancel(const std::string& trial_id, int32_t attempt, const std::string& reason) {
  v1::SchedulerMessage message;
  message.mutable_cancel()->set_trial_id(trial_id);
  message.mutable_cancel()->set_attempt(attempt);
  message.mutable_cancel()->set_reason(reason);
  return Send(message);
}

void FakeGateway::Disconnect() {
  absl::MutexLock lock(&mu_);
  if (context_ != nullptr) context_->TryCancel();
}

std::vector<v1::WorkerMessage> FakeGateway::messages() const {
  absl::MutexLock lock(&mu_);
  return messages_;
}

std::vector<v1::TrialEvent> FakeGateway::Events(const std::string& trial_id,
                                                int32_t attempt) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::TrialEvent> events;
  for (const v1::WorkerMessage& m : messages_) {
    if (m.has_trial_event() && m.trial_event().trial_id() == trial_id &&
        m.trial_event().attempt() == attempt) {
      events.push_back(m.trial_event());
    }
  }
  return events;
}

bool FakeGateway::WaitFor(
    const std::function<bool(const std::vector<v1::WorkerMessage>&)>& predicate,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (predicate(messages_)) return true;
    // Re-checked on every change of messages_ (and at least every 50 ms).
    const size_t seen = messages_.size();
    auto changed = [this, seen]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return messages_.size() != seen; };
    const absl::Time next = std::min(deadline, absl::Now() + absl::Milliseconds(50));
    mu_.AwaitWithDeadline(absl::Condition(&changed), next);
    if (absl::Now() >= deadline) return predicate(messages_);
  }
}

std::optional<v1::TrialFinished> FakeGateway::WaitForFinished(const std::string& trial_id,
                                                              int32_t attempt,
                                                              absl::Duration timeout) {
  std::optional<v1::TrialFinished> finished;
  WaitFor(
      [&](const std::vector<v1::WorkerMessage>& messages) {
        for (const v1::WorkerMessage& m : messages) {
          if (m.has_trial_event() && m.trial_event().trial_id() == trial_id &&
              m.trial_event().attempt() == attempt && m.trial_event().has_finished()) {
            finished = m.trial_event().finished();
            return true;
          }
        }
        return false;
      },
      timeout);
  return finished;
}

}  // namespace autocompress::testing
