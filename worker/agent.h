// WorkerAgent: the per-node agent's work loop. It dials the scheduler's
// WorkerGateway.Connect, says hello (devices, slots, CPU threads, labels, version and
// the attempts it still holds), heartbeats, and runs every assignment in a child
// process (trial_process.h running trial_pipeline.h), relaying the child's reports as
// numbered TrialEvents.
//
// Delivery: each attempt's events are numbered from 1 and kept until the scheduler
// acknowledges them; after a reconnect (with exponential backoff) they are re-sent in
// order, and the attempt is listed in hello and heartbeats until its last event is
// acknowledged. A repeated assignment of an attempt the agent holds is ignored.
//
// Per attempt: artifacts come from the node's ArtifactCache (model file; dataset
// archives extracted), the child runs with the attempt's devices and threads, result
// files are uploaded before the finished event. A cancel stops the child (SIGTERM, then
// SIGKILL after `stop_grace`) and reports CANCELED; past TrialSpec.max_duration it is
// stopped and FAILED with TIMEOUT; a child that dies without a result FAILED with CRASH
// and a message naming the signal or exit status and the phase it was in.
//
// Drain (SIGTERM): no new work; running attempts get until the grace deadline to
// finish, then are stopped and handed back (no retry counted); the stream closes once
// every event is acknowledged or the deadline passed.
//
// Thread-safety: every public method may be called from any thread.
#ifndef AUTOCOMPRESS_WORKER_AGENT_H_
#define AUTOCOMPRESS_WORKER_AGENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "autocompress/v1/worker.grpc.pb.h"
#include "prometheus/registry.h"

namespace autocompress::internal {
class CheckpointFile;
}  // namespace autocompress::internal

namespace autocompress::worker {

class ArtifactCache;
class TrialProcess;
struct AgentMetrics;

class WorkerAgent {
 public:
  struct Options {
    std::string worker_id;
    std::string hostname;
    std::map<std::string, std::string> labels;
    std::string version;
    // Devices offered (devices.h's DiscoverDevices), each with its slots.
    std::vector<v1::Device> devices;
    // CPU threads offered to trials in all (WorkerHello.cpu_threads); >= 1.
    int cpu_threads = 0;
    // Refreshes GPU free memory for heartbeats; empty = none.
    std::function<std::vector<v1::DeviceStatus>()> device_status;
    // The command of a trial child: argv of `worker_server --run_trial` (or a test's).
    std::vector<std::string> trial_command;
    // Holds the artifact cache (cache/) and the attempts' outputs (trials/).
    std::string work_dir;
    int64_t cache_max_bytes = int64_t{20} << 30;
    absl::Duration stop_grace = absl::Seconds(1);
    // Keep one trial child started ahead (LibTorch loaded, waiting for its request), so
    // an attempt does not wait for the process to start.
    bool prestart_trial_process = true;
    absl::Duration transfer_timeout = absl::Minutes(10);
    absl::Duration min_reconnect_backoff = absl::Milliseconds(100);
    absl::Duration max_reconnect_backoff = absl::Seconds(5);
    // Until WorkerAccepted says otherwise.
    absl::Duration heartbeat_interval = absl::Seconds(2);
  };

  // Starts connecting to the scheduler on `channel` (WorkerGateway and ArtifactService).
  static absl::StatusOr<std::unique_ptr<WorkerAgent>> Start(Options options,
                                                            std::shared_ptr<grpc::Channel> channel,
                                                            prometheus::Registry& registry);
  // Stops every child and closes the session without draining (as a crash would, but
  // leaving no process behind).
  ~WorkerAgent();

  // Stops taking work, waits up to `grace` for running attempts to finish and their
  // events to be acknowledged, hands back the rest, then closes the session. Returns
  // once done.
  void Drain(const std::string& reason, absl::Duration grace);

  bool connected() const;
  // Attempts held: running, or ended with events not yet acknowledged.
  int attempts_held() const;
  // Attempts whose child is running now.
  int children_running() const;

 private:
  struct Attempt;
  using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::SchedulerMessage>;

  WorkerAgent(Options options, std::shared_ptr<grpc::Channel> channel,
              prometheus::Registry& registry);
  void SessionLoop();
  bool RunSession();  // false once stopping
  void HandleMessage(const v1::SchedulerMessage& message);
  void WriterLoop();
  void HeartbeatLoop();
  void Enqueue(v1::WorkerMessage message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::WorkerHello Hello() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<v1::RunningTrial> HeldLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SendEvent(Attempt& attempt, v1::TrialEvent event) ABSL_LOCKS_EXCLUDED(mu_);
  void RunAttempt(std::shared_ptr<Attempt> attempt);
  // Runs the child and returns how the attempt ended (results uploaded).
  v1::TrialFinished Execute(Attempt& attempt);
  // Uploads a checkpoint the child wrote (then deletes it) and reports it.
  void SendCheckpoint(Attempt& attempt, const internal::CheckpointFile& file);
  void UpdateSlotGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A started child for an attempt: the prestarted one, or a new one. Children are
  // always forked by the spawner thread, which lives as long as the agent, since
  // PR_SET_PDEATHSIG kills a child when the thread that forked it exits.
  absl::StatusOr<std::unique_ptr<TrialProcess>> TakeProcess();
  void SpawnerLoop();
  static std::string Key(const std::string& trial_id, int32_t attempt);

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerGateway::Stub> gateway_;
  std::unique_ptr<v1::ArtifactService::Stub> artifacts_;
  std::unique_ptr<ArtifactCache> cache_;
  std::unique_ptr<AgentMetrics> metrics_;
  int total_slots_ = 0;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // The current session's WorkerAccepted came: connected, and events may be sent.
  bool accepted_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<grpc::ClientContext> context_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);
  // Messages for the current session, in order (the writer thread sends them).
  std::deque<v1::WorkerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<Attempt>> attempts_ ABSL_GUARDED_BY(mu_);
  int children_running_ ABSL_GUARDED_BY(mu_) = 0;
  // Attempt threads not yet returned (they are detached).
  int live_attempts_ ABSL_GUARDED_BY(mu_) = 0;
  // Held by the writer while it writes, so a session's Finish never overlaps a Write.
  absl::Mutex write_mu_;

  // The spawner's state: a child ready for the next attempt, how many are wanted now.
  std::unique_ptr<TrialProcess> spare_ ABSL_GUARDED_BY(mu_);
  absl::Status spawn_error_ ABSL_GUARDED_BY(mu_);
  int spawn_requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread spawner_thread_;

  std::thread session_thread_;
  std::thread writer_thread_;
  std::thread heartbeat_thread_;
};

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_AGENT_H_
