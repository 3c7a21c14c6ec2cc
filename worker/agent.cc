#include "worker/agent.h"

#include <algorithm>
#include <filesystem>
#include <random>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/artifact_transfer.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "worker/artifact_cache.h"
#include "worker/devices.h"
#include "worker/trial_process.h"

namespace autocompress::worker {
namespace fs = std::filesystem;

// ---- Metrics ----------------------------------------------------------------------

struct AgentMetrics {
  explicit AgentMetrics(prometheus::Registry& registry)
      : trials(prometheus::BuildCounter()
                   .Name("autocompress_worker_trials_total")
                   .Help("Trial attempts ended on this worker, by terminal state")
                   .Register(registry)),
        phase_seconds(prometheus::BuildHistogram()
                          .Name("autocompress_worker_trial_phase_seconds")
                          .Help("Time trial attempts spent per phase (load, compress, "
                                "finetune, evaluate, export, latency, fetch, upload)")
                          .Register(registry)),
        slots(prometheus::BuildGauge()
                  .Name("autocompress_worker_slots")
                  .Help("Trial slots of this worker by use (busy, free)")
                  .Register(registry)),
        device_memory(prometheus::BuildGauge()
                          .Name("autocompress_worker_device_memory_bytes")
                          .Help("GPU memory by device and state (used, free)")
                          .Register(registry)),
        cache_hits(prometheus::BuildCounter()
                       .Name("autocompress_worker_artifact_cache_hits_total")
                       .Help("Artifact cache lookups served from the node's cache")
                       .Register(registry)
                       .Add({})),
        cache_misses(prometheus::BuildCounter()
                         .Name("autocompress_worker_artifact_cache_misses_total")
                         .Help("Artifact cache lookups that fetched from the scheduler")
                         .Register(registry)
                         .Add({})),
        cache_bytes(prometheus::BuildGauge()
                        .Name("autocompress_worker_artifact_cache_bytes")
                        .Help("Bytes held by the node's artifact cache")
                        .Register(registry)
                        .Add({})),
        busy(slots.Add({{"use", "busy"}})),
        free(slots.Add({{"use", "free"}})) {}

  prometheus::Histogram& Phase(const std::string& phase) {
    return phase_seconds.Add({{"phase", phase}},
                             prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.5, 1, 5, 10,
                                                                     30, 60, 300, 1800, 7200});
  }

  prometheus::Family<prometheus::Counter>& trials;
  prometheus::Family<prometheus::Histogram>& phase_seconds;
  prometheus::Family<prometheus::Gauge>& slots;
  prometheus::Family<prometheus::Gauge>& device_memory;
  prometheus::Counter& cache_hits;
  prometheus::Counter& cache_misses;
  prometheus::Gauge& cache_bytes;
  prometheus::Gauge& busy;
  prometheus::Gauge& free;
};

// ---- Attempts ---------------------------------------------------------------------

// One assigned attempt; members other than `spec` and `key` are guarded by the agent's mu_.
struct WorkerAgent::Attempt {
  v1::TrialSpec spec;
  std::string key;
  int64_t next_sequence = 1;
  std::map<int64_t, v1::WorkerMessage> unacked;
  bool ended = false;        // the finished event is queued (or it was handed back)
  bool cancel = false;       // stop the child
  bool handed_back = false;  // stopped by a drain: send nothing more
  std::string cancel_reason;
};

std::string WorkerAgent::Key(const std::string& trial_id, int32_t attempt) {
  return absl::StrCat(trial_id, "#", attempt);
}

namespace {

v1::RunningTrial RunningOf(const v1::TrialSpec& spec) {
  v1::RunningTrial r;
  r.set_trial_id(spec.trial_id());
  r.set_attempt(spec.attempt());
  return r;
}

v1::TrialFinished Failed(v1::FailureCode code, const std::string& message) {
  v1::TrialFinished finished;
  finished.set_state(v1::TRIAL_STATE_FAILED);
  finished.mutable_failure()->set_code(code);
  finished.mutable_failure()->set_message(message);
  return finished;
}

// Fetch errors: an artifact the scheduler does not have will not appear by retrying;
// transfer trouble and corrupted bytes might go away on another attempt.
v1::FailureCode FetchFailureCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
      return v1::FAILURE_CODE_INVALID_INPUT;
    default:
      return v1::FAILURE_CODE_INFRASTRUCTURE;
  }
}

const char* StateLabel(v1::TrialState state) {
  switch (state) {
    case v1::TRIAL_STATE_SUCCEEDED:
      return "succeeded";
    case v1::TRIAL_STATE_FAILED:
      return "failed";
    case v1::TRIAL_STATE_CANCELED:
      return "canceled";
    default:
      return "other";
  }
}

}  // namespace

// ---- Lifecycle --------------------------------------------------------------------

WorkerAgent::WorkerAgent(Options options, std::shared_ptr<grpc::Channel> channel,
                         prometheus::Registry& registry)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      gateway_(v1::WorkerGateway::NewStub(channel_)),
      artifacts_(v1::ArtifactService::NewStub(channel_)),
      metrics_(std::make_unique<AgentMetrics>(registry)),
      heartbeat_interval_(options_.heartbeat_interval) {
  for (const v1::Device& d : options_.devices) total_slots_ += d.slots();
}

absl::StatusOr<std::unique_ptr<WorkerAgent>> WorkerAgent::Start(
    Options options, std::shared_ptr<grpc::Channel> channel, prometheus::Registry& registry) {
  if (options.worker_id.empty()) return absl::InvalidArgumentError("worker: empty worker id");
  if (options.trial_command.empty()) return absl::InvalidArgumentError("worker: no trial command");
  if (options.work_dir.empty()) return absl::InvalidArgumentError("worker: no work directory");
  if (options.cpu_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker: cpu_threads ", options.cpu_threads, " must be >= 1"));
  }
  std::unique_ptr<WorkerAgent> agent(
      new WorkerAgent(std::move(options), std::move(channel), registry));
  WorkerAgent* self = agent.get();
  ASSIGN_OR_RETURN(agent->cache_,
                   ArtifactCache::Open({(fs::path(agent->options_.work_dir) / "cache").string(),
                                        agent->options_.cache_max_bytes},
                                       [self](const v1::ArtifactRef& ref, const std::string& path) {
                                         return DownloadArtifact(*self->artifacts_, ref, path,
                                                                 self->options_.transfer_timeout);
                                       }));
  std::error_code error;
  fs::remove_all(fs::path(agent->options_.work_dir) / "trials", error);
  fs::create_directories(fs::path(agent->options_.work_dir) / "trials", error);
  if (error) return absl::InternalError(absl::StrCat("worker: work directory: ", error.message()));
  {
    absl::MutexLock lock(&agent->mu_);
    agent->UpdateSlotGauges();
  }
  agent->spawner_thread_ = std::thread([self] { self->SpawnerLoop(); });
  agent->writer_thread_ = std::thread([self] { self->WriterLoop(); });
  agent->heartbeat_thread_ = std::thread([self] { self->HeartbeatLoop(); });
  agent->session_thread_ = std::thread([self] { self->SessionLoop(); });
  return agent;
}

WorkerAgent::~WorkerAgent() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [key, attempt] : attempts_) {
      attempt->cancel = true;
      attempt->handed_back = true;  // nobody will read its events
      attempt->cancel_reason = "agent shutting down";
    }
    if (context_ != nullptr) context_->TryCancel();
    // Attempt threads end once their children are stopped (stop_grace at most).
    mu_.Await(absl::Condition(
        +[](WorkerAgent* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->children_running_ == 0 && self->live_attempts_ == 0;
        },
        this));
  }
  session_thread_.join();
  writer_thread_.join();
  heartbeat_thread_.join();
  spawner_thread_.join();  // it stops the spare child on its way out
}

void WorkerAgent::SpawnerLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || spawn_requests_ > 0 ||
               (options_.prestart_trial_process && spare_ == nullptr && spawn_error_.ok());
      };
      mu_.Await(absl::Condition(&work));
      if (stopping_) {
        std::unique_ptr<TrialProcess> spare = std::move(spare_);
        mu_.Unlock();
        if (spare != nullptr) spare->Stop(absl::ZeroDuration());
        mu_.Lock();
        return;
      }
      if (spare_ != nullptr) {
        // An attempt is waiting and the spare is there: let it take it.
        mu_.Await(absl::Condition(
            +[](WorkerAgent* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->stopping_ || self->spare_ == nullptr;
            },
            this));
        continue;
      }
    }
    absl::StatusOr<std::unique_ptr<TrialProcess>> spawned =
        TrialProcess::Spawn(options_.trial_command);
    absl::MutexLock lock(&mu_);
    if (!spawned.ok()) {
      spawn_error_ = spawned.status();
      spawn_requests_ = 0;  // the waiting attempts see the error
      continue;
    }
    spawn_error_ = absl::OkStatus();
    spare_ = std::move(*spawned);
  }
}

absl::StatusOr<std::unique_ptr<TrialProcess>> WorkerAgent::TakeProcess() {
  absl::MutexLock lock(&mu_);
  for (int tries = 0; tries < 3; ++tries) {
    if (spare_ == nullptr) {
      ++spawn_requests_;
      spawn_error_ = absl::OkStatus();
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || spare_ != nullptr || !spawn_error_.ok();
      };
      mu_.Await(absl::Condition(&ready));
      --spawn_requests_;
      if (stopping_) return absl::UnavailableError("agent stopping");
      if (spare_ == nullptr) return spawn_error_;
    }
    std::unique_ptr<TrialProcess> process = std::move(spare_);
    // A spare that died while it waited (killed, out of memory) is no use.
    if (!process->Wait(absl::ZeroDuration()).has_value()) return process;
    LOG(WARNING) << "service=worker event=spare_child_died pid=" << process->pid();
  }
  return absl::InternalError("trial processes die before they get their request");
}

bool WorkerAgent::connected() const {
  absl::MutexLock lock(&mu_);
  return accepted_;
}

int WorkerAgent::attempts_held() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(attempts_.size());
}

int WorkerAgent::children_running() const {
  absl::MutexLock lock(&mu_);
  return children_running_;
}

void WorkerAgent::UpdateSlotGauges() {
  metrics_->busy.Set(children_running_);
  metrics_->free.Set(std::max(0, total_slots_ - children_running_));
}

// ---- Session ----------------------------------------------------------------------

v1::WorkerHello WorkerAgent::Hello() {
  v1::WorkerHello hello;
  hello.set_worker_id(options_.worker_id);
  hello.set_hostname(options_.hostname);
  for (const v1::Device& d : options_.devices) *hello.add_devices() = d;
  for (const v1::RunningTrial& r : HeldLocked()) *hello.add_running() = r;
  for (const auto& [k, v] : options_.labels) (*hello.mutable_labels())[k] = v;
  hello.set_version(options_.version);
  hello.set_cpu_threads(options_.cpu_threads);
  return hello;
}

std::vector<v1::RunningTrial> WorkerAgent::HeldLocked() const {
  std::vector<v1::RunningTrial> held;
  for (const auto& [key, attempt] : attempts_) held.push_back(RunningOf(attempt->spec));
  return held;
}

void WorkerAgent::Enqueue(v1::WorkerMessage message) { outbox_.push_back(std::move(message)); }

void WorkerAgent::SessionLoop() {
  absl::Duration backoff = options_.min_reconnect_backoff;
  std::mt19937_64 random(std::random_device{}());
  for (;;) {
    const bool accepted = RunSession();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    if (accepted) backoff = options_.min_reconnect_backoff;
    // +-20% jitter, so workers cut off together do not reconnect in lockstep.
    const double jitter = std::uniform_real_distribution<double>(0.8, 1.2)(random);
    auto stopping = [](WorkerAgent* self)
                        ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) { return self->stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(+stopping, this), backoff * jitter)) return;
    backoff = std::min(backoff * 2, options_.max_reconnect_backoff);
  }
}

bool WorkerAgent::RunSession() {
  auto context = std::make_shared<grpc::ClientContext>();
  std::shared_ptr<Stream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    stream = gateway_->Connect(context.get());
    context_ = context;
    stream_ = stream;
    accepted_ = false;
    outbox_.clear();  // what the last session had not sent is re-sent from `unacked`
    v1::WorkerMessage hello;
    *hello.mutable_hello() = Hello();
    Enqueue(std::move(hello));
  }
  bool was_accepted = false;
  v1::SchedulerMessage message;
  while (stream->Read(&message)) {
    if (message.has_accepted()) was_accepted = true;
    HandleMessage(message);
  }
  {
    absl::MutexLock lock(&mu_);
    accepted_ = false;
    stream_ = nullptr;
    context_ = nullptr;
  }
  context->TryCancel();
  absl::MutexLock write_lock(&write_mu_);  // the writer is out of Write on this stream
  const grpc::Status status = stream->Finish();
  LOG(INFO) << "service=worker event=session_ended code=" << status.error_code() << " error=\""
            << status.error_message() << "\"";
  return was_accepted;
}

void WorkerAgent::WriterLoop() {
  for (;;) {
    v1::WorkerMessage message;
    std::shared_ptr<Stream> stream;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkerAgent* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || (!self->outbox_.empty() && self->stream_ != nullptr);
          },
          this));
      if (stopping_) return;
      message = std::move(outbox_.front());
      outbox_.pop_front();
      stream = stream_;
      write_mu_.Lock();
    }
    stream->Write(message);  // a failure ends the session's Read too
    write_mu_.Unlock();
  }
}

void WorkerAgent::HeartbeatLoop() {
  for (;;) {
    absl::Duration interval;
    {
      absl::MutexLock lock(&mu_);
      interval = heartbeat_interval_;
    }
    std::vector<v1::DeviceStatus> devices;
    if (options_.device_status) devices = options_.device_status();
    for (const v1::DeviceStatus& d : devices) {
      for (const v1::Device& offered : options_.devices) {
        if (offered.name() != d.name()) continue;
        metrics_->device_memory.Add({{"device", d.name()}, {"state", "free"}})
            .Set(static_cast<double>(d.free_memory_bytes()));
        metrics_->device_memory.Add({{"device", d.name()}, {"state", "used"}})
            .Set(static_cast<double>(offered.memory_bytes() - d.free_memory_bytes()));
      }
    }
    absl::MutexLock lock(&mu_);
    if (accepted_) {
      v1::WorkerMessage message;
      v1::Heartbeat* heartbeat = message.mutable_heartbeat();
      *heartbeat->mutable_time() = ToProtoTime(absl::Now());
      for (const v1::RunningTrial& r : HeldLocked()) *heartbeat->add_running() = r;
      for (const v1::DeviceStatus& d : devices) *heartbeat->add_devices() = d;
      Enqueue(std::move(message));
    }
    // Also wakes when WorkerAccepted changes the interval.
    auto wake = [this, interval]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ || heartbeat_interval_ != interval;
    };
    mu_.AwaitWithTimeout(absl::Condition(&wake), interval);
    if (stopping_) return;
  }
}

void WorkerAgent::HandleMessage(const v1::SchedulerMessage& message) {
  absl::MutexLock lock(&mu_);
  switch (message.message_case()) {
    case v1::SchedulerMessage::kAccepted: {
      const v1::WorkerAccepted& accepted = message.accepted();
      if (accepted.has_heartbeat_interval()) {
        heartbeat_interval_ =
            std::max(absl::Milliseconds(10), FromProtoDuration(accepted.heartbeat_interval()));
      }
      accepted_ = true;
      // Everything not acknowledged, per attempt in order, before anything new.
      int resent = 0;
      for (auto& [key, attempt] : attempts_) {
        for (const auto& [sequence, event] : attempt->unacked) {
          Enqueue(event);
          ++resent;
        }
      }
      LOG(INFO) << "service=worker event=accepted reattached=" << accepted.reattached_size()
                << " resent_events=" << resent;
      return;
    }
    case v1::SchedulerMessage::kAssign: {
      const v1::TrialSpec& spec = message.assign().trial();
      const std::string key = Key(spec.trial_id(), spec.attempt());
      if (attempts_.count(key) > 0) return;  // a re-sent assignment we hold
      if (draining_ || stopping_) {
        v1::WorkerMessage back;
        back.mutable_draining()->set_reason("draining");
        *back.mutable_draining()->add_handed_back() = RunningOf(spec);
        Enqueue(std::move(back));
        return;
      }
      auto attempt = std::make_shared<Attempt>();
      attempt->spec = spec;
      attempt->key = key;
      attempts_[key] = attempt;
      ++live_attempts_;
      std::thread([this, attempt] { RunAttempt(attempt); }).detach();
      return;
    }
    case v1::SchedulerMessage::kCancel: {
      const v1::CancelTrial& cancel = message.cancel();
      auto it = attempts_.find(Key(cancel.trial_id(), cancel.attempt()));
      if (it == attempts_.end()) return;
      it->second->cancel = true;
      it->second->cancel_reason = cancel.reason();
      return;
    }
    case v1::SchedulerMessage::kAck: {
      const v1::EventAck& ack = message.ack();
      auto it = attempts_.find(Key(ack.trial_id(), ack.attempt()));
      if (it == attempts_.end()) return;
      Attempt& attempt = *it->second;
      attempt.unacked.erase(attempt.unacked.begin(),
                            attempt.unacked.upper_bound(ack.event_sequence()));
      if (attempt.ended && attempt.unacked.empty()) attempts_.erase(it);
      return;
    }
    default:
      return;
  }
}

// ---- Attempts ---------------------------------------------------------------------

void WorkerAgent::SendEvent(Attempt& attempt, v1::TrialEvent event) {
  absl::MutexLock lock(&mu_);
  if (attempt.handed_back) return;
  event.set_trial_id(attempt.spec.trial_id());
  event.set_attempt(attempt.spec.attempt());
  event.set_event_sequence(attempt.next_sequence++);
  v1::WorkerMessage message;
  *message.mutable_trial_event() = std::move(event);
  attempt.unacked[message.trial_event().event_sequence()] = message;
  // Before the session is accepted, the resend at acceptance carries it.
  if (accepted_) Enqueue(std::move(message));
}

void WorkerAgent::RunAttempt(std::shared_ptr<Attempt> attempt) {
  const v1::TrialSpec& spec = attempt->spec;
  LOG(INFO) << "service=worker event=attempt_started trial=" << spec.trial_id()
            << " attempt=" << spec.attempt();
  v1::TrialEvent started;
  for (const std::string& d : spec.devices()) started.mutable_started()->add_devices(d);
  SendEvent(*attempt, std::move(started));

  v1::TrialFinished finished = Execute(*attempt);
  metrics_->trials.Add({{"state", StateLabel(finished.state())}}).Increment();
  LOG(INFO) << "service=worker event=attempt_ended trial=" << spec.trial_id()
            << " attempt=" << spec.attempt() << " state=" << v1::TrialState_Name(finished.state())
            << " failure=\"" << finished.failure().message() << "\"";
  v1::TrialEvent event;
  *event.mutable_finished() = std::move(finished);
  SendEvent(*attempt, std::move(event));
  absl::MutexLock lock(&mu_);
  attempt->ended = true;  // from here an ack that empties `unacked` releases it
  if (attempt->handed_back || attempt->unacked.empty()) attempts_.erase(attempt->key);
  --live_attempts_;
}

v1::TrialFinished WorkerAgent::Execute(Attempt& attempt) {
  const v1::TrialSpec& spec = attempt.spec;
  const absl::Time start = absl::Now();
  const absl::Time deadline = spec.has_max_duration()
                                  ? start + FromProtoDuration(spec.max_duration())
                                  : absl::InfiniteFuture();

  // Inputs from the node's cache.
  const v1::DatasetSpec& dataset = spec.recipe().dataset();
  const bool archives = dataset.format() != v1::DATASET_FORMAT_TENSORS;
  std::vector<std::unique_ptr<ArtifactCache::Pin>> pins;
  auto fetch = [&](const v1::ArtifactRef& ref, bool extract) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::unique_ptr<ArtifactCache::Pin>> pin =
        extract ? cache_->GetExtracted(ref) : cache_->Get(ref);
    if (!pin.ok()) return pin.status();
    ((*pin)->hit() ? metrics_->cache_hits : metrics_->cache_misses).Increment();
    metrics_->cache_bytes.Set(static_cast<double>(cache_->stats().bytes));
    pins.push_back(std::move(*pin));
    return pins.back()->path();
  };
  internal::ChildRequest request;
  *request.mutable_trial() = spec;
  for (auto [ref, extract, path] : {std::tuple{&spec.model(), false, request.mutable_model_path()},
                                    {&dataset.train(), archives, request.mutable_train_path()},
                                    {&dataset.eval(), archives, request.mutable_eval_path()}}) {
    absl::StatusOr<std::string> local = fetch(*ref, extract);
    if (!local.ok()) {
      return Failed(FetchFailureCode(local.status()),
                    absl::StrCat("fetching artifacts: ", local.status().message()));
    }
    *path = *local;
  }
  if (spec.has_resume_from()) {
    // A checkpoint that cannot be fetched costs the epochs it saved, not the attempt.
    absl::StatusOr<std::string> local = fetch(spec.resume_from().artifact(), false);
    if (local.ok()) {
      request.set_resume_path(*local);
    } else {
      LOG(WARNING) << "service=worker event=checkpoint_unavailable trial=" << spec.trial_id()
                   << " attempt=" << spec.attempt() << " error=\"" << local.status().message()
                   << "\" (fine-tuning starts afresh)";
    }
  }
  metrics_->Phase("fetch").Observe(absl::ToDoubleSeconds(absl::Now() - start));
  const fs::path output =
      fs::path(options_.work_dir) / "trials" / absl::StrCat(spec.trial_id(), "-", spec.attempt());
  std::error_code error;
  fs::remove_all(output, error);
  fs::create_directories(output, error);
  if (error) {
    return Failed(v1::FAILURE_CODE_INFRASTRUCTURE,
                  absl::StrCat("creating ", output.string(), ": ", error.message()));
  }
  request.set_output_dir(output.string());
  struct RemoveOnExit {
    fs::path path;
    ~RemoveOnExit() {
      std::error_code e;
      fs::remove_all(path, e);
    }
  } remove_output{output};

  {
    absl::MutexLock lock(&mu_);
    if (attempt.cancel) {
      v1::TrialFinished canceled;
      canceled.set_state(v1::TRIAL_STATE_CANCELED);
      canceled.mutable_failure()->set_code(v1::FAILURE_CODE_STOPPED);
      canceled.mutable_failure()->set_message(absl::StrCat("canceled: ", attempt.cancel_reason));
      return canceled;
    }
    ++children_running_;
    UpdateSlotGauges();
  }
  absl::StatusOr<std::unique_ptr<TrialProcess>> started = TakeProcess();
  if (started.ok()) (*started)->Send(request);
  if (!started.ok()) {
    absl::MutexLock lock(&mu_);
    --children_running_;
    UpdateSlotGauges();
    return Failed(v1::FAILURE_CODE_INFRASTRUCTURE,
                  absl::StrCat("starting the trial process: ", started.status().message()));
  }
  TrialProcess& child = **started;

  // Relay until the child's output ends, stopping it on cancel or past its deadline.
  std::optional<internal::ChildResult> result;
  std::optional<v1::TrialFinished> stopped;
  // GPU attempts: the child's device memory, sampled (nvidia-smi) about once a second.
  const bool on_gpu = std::any_of(spec.devices().begin(), spec.devices().end(),
                                  [](const std::string& d) { return absl::StartsWith(d, "cuda"); });
  int64_t peak_device_bytes = 0;
  absl::Time next_sample = absl::Now();
  for (;;) {
    if (on_gpu && absl::Now() >= next_sample) {
      const std::map<int, int64_t> used = GpuMemoryByProcess();
      if (auto it = used.find(child.pid()); it != used.end()) {
        peak_device_bytes = std::max(peak_device_bytes, it->second);
      }
      next_sample = absl::Now() + absl::Seconds(1);
    }
    absl::StatusOr<std::optional<internal::ChildMessage>> next = child.Next(absl::Milliseconds(50));
    if (next.ok() && !next->has_value()) break;
    if (next.ok()) {
      const internal::ChildMessage& m = **next;
      if (m.has_intermediate()) {
        v1::TrialEvent event;
        *event.mutable_intermediate() = m.intermediate();
        SendEvent(attempt, std::move(event));
      } else if (m.has_checkpoint()) {
        SendCheckpoint(attempt, m.checkpoint());
      } else if (m.has_result()) {
        result = m.result();
      }
      continue;
    }
    if (!absl::IsDeadlineExceeded(next.status())) {
      child.Stop(options_.stop_grace);
      stopped = Failed(v1::FAILURE_CODE_INTERNAL,
                       absl::StrCat("reading the trial process: ", next.status().message()));
      break;
    }
    bool cancel = false;
    std::string reason;
    {
      absl::MutexLock lock(&mu_);
      cancel = attempt.cancel;
      reason = attempt.cancel_reason;
    }
    if (cancel) {
      child.Stop(options_.stop_grace);
      v1::TrialFinished canceled;
      canceled.set_state(v1::TRIAL_STATE_CANCELED);
      canceled.mutable_failure()->set_code(v1::FAILURE_CODE_STOPPED);
      canceled.mutable_failure()->set_message(
          absl::StrCat("canceled in ", child.phase().empty() ? "start-up" : child.phase(),
                       reason.empty() ? "" : ": ", reason));
      stopped = canceled;
      break;
    }
    if (absl::Now() >= deadline) {
      child.Stop(options_.stop_grace);
      stopped = Failed(v1::FAILURE_CODE_TIMEOUT,
                       absl::StrCat("ran past max_duration ",
                                    absl::FormatDuration(FromProtoDuration(spec.max_duration())),
                                    " in ", child.phase().empty() ? "start-up" : child.phase()));
      break;
    }
  }
  std::optional<ChildExit> exit = child.Wait(absl::Seconds(10));
  if (!exit.has_value()) exit = child.Stop(options_.stop_grace);
  {
    absl::MutexLock lock(&mu_);
    --children_running_;
    UpdateSlotGauges();
  }
  if (stopped.has_value()) return *stopped;
  if (!result.has_value()) {
    v1::TrialFinished crashed;
    crashed.set_state(v1::TRIAL_STATE_FAILED);
    *crashed.mutable_failure() = DescribeExit(*exit, child.phase(), child.stderr_tail());
    return crashed;
  }

  v1::TrialFinished finished;
  finished.set_state(result->state());
  if (result->state() != v1::TRIAL_STATE_SUCCEEDED) {
    *finished.mutable_failure() = result->failure();
    return finished;
  }
  *finished.mutable_final_report() = result->final_report();
  if (peak_device_bytes > 0) {
    v1::Metric* peak = finished.mutable_final_report()->add_metrics();
    peak->set_name("peak_device_memory_bytes");  // sampled: a lower bound of the true peak
    peak->set_value(static_cast<double>(peak_device_bytes));
  }
  for (const v1::Metric& m : result->final_report().metrics()) {
    if (absl::StartsWith(m.name(), "seconds_")) {
      metrics_->Phase(m.name().substr(sizeof("seconds_") - 1)).Observe(m.value());
    }
  }
  // The work is done: a scheduler that cannot take the result now (restarting, its disk
  // full: Unavailable) gets it later. Retried with backoff until it is taken, the attempt
  // is canceled, or transfer_timeout passes; heartbeats list the attempt meanwhile, so
  // its lease holds.
  const absl::Time upload_start = absl::Now();
  const absl::Time upload_deadline = upload_start + options_.transfer_timeout;
  for (const internal::ResultFile& file : result->files()) {
    absl::StatusOr<v1::ArtifactRef> ref;
    for (absl::Duration backoff = absl::Seconds(1);;
         backoff = std::min(backoff * 2, absl::Seconds(5))) {
      ref =
          UploadArtifact(*artifacts_, file.path(), absl::StrCat(spec.trial_id(), "/", file.name()),
                         v1::ARTIFACT_KIND_RESULT, options_.transfer_timeout);
      if (ref.ok() || !absl::IsUnavailable(ref.status()) ||
          absl::Now() + backoff > upload_deadline) {
        break;
      }
      {
        absl::MutexLock lock(&mu_);
        if (attempt.cancel || stopping_) break;
      }
      LOG(WARNING) << "service=worker event=result_upload_waiting trial=" << spec.trial_id()
                   << " attempt=" << spec.attempt() << " file=" << file.name() << " error=\""
                   << ref.status().message() << "\" retry_in=" << absl::FormatDuration(backoff);
      absl::SleepFor(backoff);
    }
    if (!ref.ok()) {
      return Failed(v1::FAILURE_CODE_INFRASTRUCTURE,
                    absl::StrCat("uploading ", file.name(), ": ", ref.status().message()));
    }
    *finished.add_results() = *ref;
  }
  metrics_->Phase("upload").Observe(absl::ToDoubleSeconds(absl::Now() - upload_start));
  return finished;
}

void WorkerAgent::SendCheckpoint(Attempt& attempt, const internal::CheckpointFile& file) {
  const v1::TrialSpec& spec = attempt.spec;
  // The relay loop waits meanwhile (cancel and max_duration are checked after it), so
  // a checkpoint gets less time than a result: a slow one is skipped, not waited for.
  const absl::Duration timeout = std::min(options_.transfer_timeout, absl::Seconds(30));
  absl::StatusOr<v1::ArtifactRef> ref = UploadArtifact(
      *artifacts_, file.path(), absl::StrCat(spec.trial_id(), "/checkpoint-", file.epoch(), ".pt"),
      v1::ARTIFACT_KIND_RESULT, timeout);
  std::error_code error;
  fs::remove(file.path(), error);
  if (!ref.ok()) {  // best effort: a re-run then resumes from an earlier one, or afresh
    LOG(WARNING) << "service=worker event=checkpoint_not_uploaded trial=" << spec.trial_id()
                 << " attempt=" << spec.attempt() << " epoch=" << file.epoch() << " error=\""
                 << ref.status().message() << "\"";
    return;
  }
  v1::TrialEvent event;
  event.mutable_checkpoint()->set_epoch(file.epoch());
  *event.mutable_checkpoint()->mutable_artifact() = *ref;
  SendEvent(attempt, std::move(event));
}

// ---- Drain ------------------------------------------------------------------------

void WorkerAgent::Drain(const std::string& reason, absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  absl::MutexLock lock(&mu_);
  draining_ = true;
  {
    v1::WorkerMessage message;
    v1::WorkerDraining* draining = message.mutable_draining();
    draining->set_reason(reason);
    for (const v1::RunningTrial& r : HeldLocked()) *draining->add_finishing() = r;
    *draining->mutable_deadline() = ToProtoTime(deadline);
    Enqueue(std::move(message));
  }
  LOG(INFO) << "service=worker event=draining reason=\"" << reason
            << "\" attempts=" << attempts_.size() << " grace=" << absl::FormatDuration(grace);
  auto all_done = [](WorkerAgent* self)
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) { return self->attempts_.empty(); };
  if (!mu_.AwaitWithDeadline(absl::Condition(+all_done, this), deadline)) {
    // Out of time: stop what still runs and give it back; it did not fail.
    v1::WorkerMessage message;
    v1::WorkerDraining* draining = message.mutable_draining();
    draining->set_reason(absl::StrCat(reason, ": grace period over"));
    for (auto& [key, attempt] : attempts_) {
      if (attempt->ended) continue;  // only its acknowledgement is missing
      attempt->cancel = true;
      attempt->handed_back = true;
      attempt->cancel_reason = "handed back while draining";
      *draining->add_handed_back() = RunningOf(attempt->spec);
    }
    Enqueue(std::move(message));
    mu_.Await(absl::Condition(
        +[](WorkerAgent* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
          return self->children_running_ == 0 && self->live_attempts_ == 0;
        },
        this));
  }
  // Let the writer send what is queued (bounded), then close.
  auto sent = [](WorkerAgent* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
    return self->outbox_.empty() || self->stream_ == nullptr;
  };
  mu_.AwaitWithTimeout(absl::Condition(+sent, this), absl::Seconds(2));
  stopping_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

}  // namespace autocompress::worker
