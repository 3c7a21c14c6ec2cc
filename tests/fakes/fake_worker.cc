#include "tests/fakes/fake_worker.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/proto_time.h"
#include "common/status.h"

namespace autocompress::testing {
namespace {

std::vector<v1::Metric> DefaultResult(const v1::TrialSpec& trial, int step, int epochs) {
  // A deterministic accuracy in [0.5, 0.95) from the parameters, rising over epochs.
  const size_t hash = std::hash<std::string>()(trial.parameters_json());
  double accuracy = 0.5 + 0.45 * static_cast<double>(hash % 1000) / 1000.0;
  if (step >= 0) accuracy *= static_cast<double>(step + 1) / (epochs + 1);
  return {FakeWorker::MetricOf("accuracy", accuracy), FakeWorker::MetricOf("loss", 1 - accuracy)};
}

}  // namespace

v1::Metric FakeWorker::MetricOf(const std::string& name, double value) {
  v1::Metric metric;
  metric.set_name(name);
  metric.set_value(value);
  return metric;
}

std::string FakeWorker::Key(const std::string& trial_id, int32_t attempt) {
  return absl::StrCat(trial_id, "/", attempt);
}

FakeWorker::FakeWorker(std::shared_ptr<grpc::Channel> channel, Options options)
    : options_(std::move(options)), stub_(v1::WorkerGateway::NewStub(std::move(channel))) {
  if (options_.auto_heartbeat) heartbeater_ = std::thread([this] { HeartbeatLoop(); });
  if (options_.auto_run) {
    int slots = 0;
    for (const v1::Device& device : options_.devices) slots += device.slots();
    if (options_.devices.empty()) slots = options_.cpu_slots;
    for (int i = 0; i < std::max(1, slots); ++i) runners_.emplace_back([this] { RunnerLoop(); });
  }
}

void FakeWorker::RunnerLoop() {
  for (;;) {
    v1::TrialSpec trial;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [](FakeWorker* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return self->stopping_ || !self->auto_queue_.empty();
      };
      mu_.Await(absl::Condition(+ready, this));
      if (stopping_) return;
      trial = std::move(auto_queue_.front());
      auto_queue_.pop_front();
    }
    RunTrial(std::move(trial));
  }
}

FakeWorker::~FakeWorker() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Disconnect();
  if (heartbeater_.joinable()) heartbeater_.join();
  for (std::thread& runner : runners_) runner.join();
}

absl::Status FakeWorker::Connect(absl::Duration timeout) {
  Disconnect();
  auto context = std::make_shared<grpc::ClientContext>();
  std::shared_ptr<Stream> stream(stub_->Connect(context.get()));
  v1::WorkerMessage hello_message;
  v1::WorkerHello* hello = hello_message.mutable_hello();
  hello->set_worker_id(options_.worker_id);
  hello->set_hostname("localhost");
  hello->set_version("fake");
  hello->set_cpu_threads(options_.cpu_threads);
  hello->mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  if (options_.devices.empty()) {
    v1::Device* cpu = hello->add_devices();
    cpu->set_name("cpu");
    cpu->set_slots(options_.cpu_slots);
  } else {
    for (const v1::Device& device : options_.devices) *hello->add_devices() = device;
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, running] : running_) *hello->add_running() = running;
    context_ = context;
    stream_ = stream;
    connected_ = true;
    has_accepted_ = false;
    stream_status_ = absl::OkStatus();
  }
  {
    absl::MutexLock write_lock(&write_mu_);
    stream->Write(hello_message);
  }
  reader_ = std::thread([this, stream, context] { ReadLoop(stream, context); });
  absl::MutexLock lock(&mu_);
  auto ready = [](FakeWorker* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
    return self->has_accepted_ || !self->connected_;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(+ready, this), timeout)) {
    mu_.Unlock();
    Disconnect();  // so that the next Connect starts over
    mu_.Lock();
    return absl::DeadlineExceededError("no WorkerAccepted in time");
  }
  if (!has_accepted_)
    return stream_status_.ok() ? absl::UnavailableError("stream closed") : stream_status_;
  // At-least-once: everything not acknowledged goes again, in order.
  std::vector<v1::WorkerMessage> again;
  for (auto& [key, events] : unacked_) {
    for (auto& [sequence, sent] : events) {
      sent.sent = absl::Now();
      again.push_back(sent.message);
    }
  }
  mu_.Unlock();
  for (const v1::WorkerMessage& message : again) Write(message);
  mu_.Lock();
  return absl::OkStatus();
}

void FakeWorker::Disconnect() {
  std::shared_ptr<grpc::ClientContext> context;
  {
    absl::MutexLock lock(&mu_);
    context = context_;
  }
  if (context != nullptr) context->TryCancel();
  if (reader_.joinable()) reader_.join();
  absl::MutexLock lock(&mu_);
  context_.reset();
  stream_.reset();
  connected_ = false;
}

void FakeWorker::ReadLoop(std::shared_ptr<Stream> stream,
                          std::shared_ptr<grpc::ClientContext> context) {
  v1::SchedulerMessage message;
  while (stream->Read(&message)) {
    absl::MutexLock lock(&mu_);
    switch (message.message_case()) {
      case v1::SchedulerMessage::kAccepted:
        accepted_ = message.accepted();
        has_accepted_ = true;
        break;
      case v1::SchedulerMessage::kAssign: {
        const v1::TrialSpec& trial = message.assign().trial();
        // A repeat (re-sent after a reconnect) of an attempt it holds is ignored, as a
        // real worker does.
        if (!received_.insert(Key(trial.trial_id(), trial.attempt())).second) break;
        ++assignments_received_;
        if (options_.auto_run && !stopping_) {
          running_[Key(trial.trial_id(), trial.attempt())] = [&] {
            v1::RunningTrial r;
            r.set_trial_id(trial.trial_id());
            r.set_attempt(trial.attempt());
            return r;
          }();
          auto_queue_.push_back(trial);
        } else {
          assignments_.push_back(trial);
        }
        break;
      }
      case v1::SchedulerMessage::kCancel:
        cancel_requested_[Key(message.cancel().trial_id(), message.cancel().attempt())] = true;
        cancels_.push_back(message.cancel());
        break;
      case v1::SchedulerMessage::kAck: {
        const v1::EventAck& ack = message.ack();
        const std::string key = Key(ack.trial_id(), ack.attempt());
        int64_t& acked = acked_[key];
        acked = std::max(acked, ack.event_sequence());
        auto& events = unacked_[key];
        const absl::Time now = absl::Now();
        while (!events.empty() && events.begin()->first <= ack.event_sequence()) {
          ack_latencies_ms_.push_back(
              absl::ToDoubleMilliseconds(now - events.begin()->second.sent));
          events.erase(events.begin());
        }
        if (events.empty()) {
          unacked_.erase(key);
          if (finished_.erase(key) > 0) running_.erase(key);
        }
        break;
      }
      default:
        break;
    }
  }
  grpc::Status status = stream->Finish();
  absl::MutexLock lock(&mu_);
  if (stream_ == stream) {
    connected_ = false;
    stream_status_ = FromGrpcStatus(status);
  }
}

v1::WorkerAccepted FakeWorker::accepted() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

bool FakeWorker::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

absl::Status FakeWorker::stream_status() const {
  absl::MutexLock lock(&mu_);
  return stream_status_;
}

std::optional<v1::TrialSpec> FakeWorker::WaitForAssignment(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto has = [](FakeWorker* self)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) { return !self->assignments_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(+has, this), timeout)) return std::nullopt;
  v1::TrialSpec trial = std::move(assignments_.front());
  assignments_.pop_front();
  return trial;
}

std::optional<v1::CancelTrial> FakeWorker::WaitForCancel(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto has = [](FakeWorker* self)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) { return !self->cancels_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(+has, this), timeout)) return std::nullopt;
  v1::CancelTrial cancel = std::move(cancels_.front());
  cancels_.pop_front();
  return cancel;
}

int FakeWorker::assignments_received() const {
  absl::MutexLock lock(&mu_);
  return assignments_received_;
}

void FakeWorker::Write(const v1::WorkerMessage& message) {
  std::shared_ptr<Stream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (!connected_) return;  // kept in unacked_, re-sent after the next Connect
    stream = stream_;
  }
  absl::MutexLock write_lock(&write_mu_);
  stream->Write(message);
}

int64_t FakeWorker::SendEvent(const v1::TrialSpec& trial, v1::TrialEvent event) {
  v1::WorkerMessage message;
  const std::string key = Key(trial.trial_id(), trial.attempt());
  {
    absl::MutexLock lock(&mu_);
    event.set_trial_id(trial.trial_id());
    event.set_attempt(trial.attempt());
    event.set_event_sequence(++next_sequence_[key]);
    *message.mutable_trial_event() = event;
    unacked_[key][event.event_sequence()] = {message, absl::Now()};
    if (event.has_started()) {
      v1::RunningTrial& running = running_[key];
      running.set_trial_id(trial.trial_id());
      running.set_attempt(trial.attempt());
    }
    // A finished attempt stays listed (hello, heartbeats) until its last event is
    // acknowledged, so a reconnect does not report it lost.
    if (event.has_finished()) finished_.insert(key);
  }
  Write(message);
  return event.event_sequence();
}

int64_t FakeWorker::Started(const v1::TrialSpec& trial) {
  v1::TrialEvent event;
  *event.mutable_started()->mutable_devices() = trial.devices();
  return SendEvent(trial, std::move(event));
}

int64_t FakeWorker::Intermediate(const v1::TrialSpec& trial, int64_t step,
                                 std::vector<v1::Metric> metrics) {
  v1::TrialEvent event;
  v1::MetricReport* report = event.mutable_intermediate();
  report->set_step(step);
  for (v1::Metric& metric : metrics) *report->add_metrics() = std::move(metric);
  *report->mutable_time() = ToProtoTime(absl::Now());
  return SendEvent(trial, std::move(event));
}

int64_t FakeWorker::Checkpoint(const v1::TrialSpec& trial, int32_t epoch,
                               const v1::ArtifactRef& artifact) {
  v1::TrialEvent event;
  event.mutable_checkpoint()->set_epoch(epoch);
  *event.mutable_checkpoint()->mutable_artifact() = artifact;
  return SendEvent(trial, std::move(event));
}

int64_t FakeWorker::Succeeded(const v1::TrialSpec& trial, std::vector<v1::Metric> metrics,
                              std::vector<v1::ArtifactRef> results) {
  v1::TrialEvent event;
  v1::TrialFinished* finished = event.mutable_finished();
  finished->set_state(v1::TRIAL_STATE_SUCCEEDED);
  for (v1::Metric& metric : metrics)
    *finished->mutable_final_report()->add_metrics() = std::move(metric);
  for (v1::ArtifactRef& ref : results) *finished->add_results() = std::move(ref);
  *finished->mutable_final_report()->mutable_time() = ToProtoTime(absl::Now());
  return SendEvent(trial, std::move(event));
}

int64_t FakeWorker::Finished(const v1::TrialSpec& trial, v1::TrialState state, v1::FailureCode code,
                             const std::string& message) {
  v1::TrialEvent event;
  v1::TrialFinished* finished = event.mutable_finished();
  finished->set_state(state);
  finished->mutable_failure()->set_code(code);
  finished->mutable_failure()->set_message(message);
  return SendEvent(trial, std::move(event));
}

void FakeWorker::Heartbeat() {
  v1::WorkerMessage message;
  v1::Heartbeat* heartbeat = message.mutable_heartbeat();
  *heartbeat->mutable_time() = ToProtoTime(absl::Now());
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, running] : running_) *heartbeat->add_running() = running;
  }
  for (const v1::Device& device : options_.devices) {
    v1::DeviceStatus* status = heartbeat->add_devices();
    status->set_name(device.name());
    status->set_free_memory_bytes(device.free_memory_bytes());
  }
  Write(message);
}

void FakeWorker::Drain(const std::vector<v1::TrialSpec>& handed_back, const std::string& reason) {
  v1::WorkerMessage message;
  v1::WorkerDraining* draining = message.mutable_draining();
  draining->set_reason(reason);
  {
    absl::MutexLock lock(&mu_);
    for (const v1::TrialSpec& trial : handed_back) {
      v1::RunningTrial* r = draining->add_handed_back();
      r->set_trial_id(trial.trial_id());
      r->set_attempt(trial.attempt());
      running_.erase(Key(trial.trial_id(), trial.attempt()));
    }
    for (const auto& [key, running] : running_) *draining->add_finishing() = running;
  }
  Write(message);
}

bool FakeWorker::WaitForAck(const v1::TrialSpec& trial, int64_t sequence, absl::Duration timeout) {
  const std::string key = Key(trial.trial_id(), trial.attempt());
  absl::MutexLock lock(&mu_);
  struct Args {
    FakeWorker* self;
    const std::string* key;
    int64_t sequence;
  } args{this, &key, sequence};
  return mu_.AwaitWithTimeout(absl::Condition(
                                  +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                    auto it = a->self->acked_.find(*a->key);
                                    return it != a->self->acked_.end() && it->second >= a->sequence;
                                  },
                                  &args),
                              timeout);
}

int FakeWorker::unacked() const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const auto& [key, events] : unacked_) count += static_cast<int>(events.size());
  return count;
}

std::vector<double> FakeWorker::TakeAckLatenciesMs() {
  absl::MutexLock lock(&mu_);
  std::vector<double> out;
  out.swap(ack_latencies_ms_);
  return out;
}

void FakeWorker::HeartbeatLoop() {
  for (;;) {
    absl::Duration interval = absl::Milliseconds(200);
    {
      absl::MutexLock lock(&mu_);
      if (has_accepted_ && accepted_.has_heartbeat_interval()) {
        interval = FromProtoDuration(accepted_.heartbeat_interval());
      }
      auto stopping = [](FakeWorker* self)
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) { return self->stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(+stopping, this), interval)) return;
    }
    Heartbeat();
  }
}

void FakeWorker::RunTrial(v1::TrialSpec trial) {
  const std::string key = Key(trial.trial_id(), trial.attempt());
  auto result = [&](int step) {
    return options_.result ? options_.result(trial, step)
                           : DefaultResult(trial, step, options_.epochs);
  };
  // Sleeps an epoch; true when the attempt was canceled or the worker stops.
  auto interrupted = [&]() {
    absl::MutexLock lock(&mu_);
    struct Args {
      FakeWorker* self;
      const std::string* key;
    } args{this, &key};
    auto stop = +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return a->self->stopping_ || a->self->cancel_requested_.count(*a->key) > 0;
    };
    if (options_.epoch_time > absl::ZeroDuration()) {
      mu_.AwaitWithTimeout(absl::Condition(stop, &args), options_.epoch_time);
    }
    return stop(&args);
  };
  Started(trial);
  for (int step = 0; step < options_.epochs; ++step) {
    if (interrupted()) {
      Finished(trial, v1::TRIAL_STATE_CANCELED, v1::FAILURE_CODE_STOPPED, "canceled");
      return;
    }
    Intermediate(trial, step, result(step));
  }
  if (interrupted()) {
    Finished(trial, v1::TRIAL_STATE_CANCELED, v1::FAILURE_CODE_STOPPED, "canceled");
    return;
  }
  Succeeded(trial, result(-1),
            options_.results ? options_.results(trial) : std::vector<v1::ArtifactRef>{});
}

}  // namespace autocompress::testing
