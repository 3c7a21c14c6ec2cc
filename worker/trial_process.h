// TrialProcess: the agent's side of one trial attempt's child process. It starts the
// child in its own process group, hands it the ChildRequest on stdin, reads the
// ChildMessages it writes to fd 3 and the tail of its stderr, stops it (SIGTERM to the
// group, SIGKILL after a grace period) and reaps it. The child is killed by the kernel
// if the agent dies (PR_SET_PDEATHSIG), so no attempt outlives its agent.
//
// DescribeExit turns how the child ended into a TrialFailure whose message names the
// cause and the phase: "signal 11 (SIGSEGV) in fine-tuning epoch 2".
//
// PR_SET_PDEATHSIG fires when the thread that started the child exits: start children
// from a thread that outlives them (the agent's spawner). Not thread-safe: one thread at
// a time makes the calls.
#ifndef AUTOCOMPRESS_WORKER_TRIAL_PROCESS_H_
#define AUTOCOMPRESS_WORKER_TRIAL_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "autocompress/internal/trial_child.pb.h"
#include "autocompress/v1/common.pb.h"

namespace autocompress::worker {

// How a child ended.
struct ChildExit {
  bool signaled = false;
  int code = 0;  // exit status, or the signal number when signaled
};

class TrialProcess {
 public:
  // Starts argv[0] (a path) with `argv` and writes `request` to its stdin.
  static absl::StatusOr<std::unique_ptr<TrialProcess>> Start(const std::vector<std::string>& argv,
                                                             const internal::ChildRequest& request);
  // Starts the child without a request: it loads (LibTorch takes ~0.5 s here) and then
  // waits on stdin, so a prestarted child is ready when an attempt comes.
  static absl::StatusOr<std::unique_ptr<TrialProcess>> Spawn(const std::vector<std::string>& argv);
  // Hands a spawned child its request (once).
  void Send(const internal::ChildRequest& request);
  // Kills and reaps a child still running.
  ~TrialProcess();

  TrialProcess(const TrialProcess&) = delete;
  TrialProcess& operator=(const TrialProcess&) = delete;

  // The next message, waiting up to `timeout`; nullopt at the end of the child's output
  // (it exited or closed fd 3); DeadlineExceeded when none came in time; DataLoss for
  // bytes that are not a ChildMessage. Collects stderr meanwhile.
  absl::StatusOr<std::optional<internal::ChildMessage>> Next(absl::Duration timeout);

  // SIGTERM to the child's process group; SIGKILL to it after `grace`; reaps.
  ChildExit Stop(absl::Duration grace);
  // Reaps the child, waiting up to `timeout`; nullopt while it still runs.
  std::optional<ChildExit> Wait(absl::Duration timeout);

  // The last phase the child announced ("" before the first).
  const std::string& phase() const { return phase_; }
  // The last few KiB of the child's stderr.
  std::string stderr_tail() const;
  pid_t pid() const { return pid_; }

 private:
  TrialProcess(pid_t pid, int stdin_fd, int messages_fd, int stderr_fd);
  void DrainStderr();
  bool ReadMessages();  // false at end of output

  pid_t pid_;
  int stdin_fd_;
  int messages_fd_;
  int stderr_fd_;
  std::optional<ChildExit> exit_;
  std::string buffer_;  // bytes from fd 3 not yet parsed
  bool messages_closed_ = false;
  std::string phase_;
  std::string stderr_tail_;
};

// The failure a child's end means when it sent no result: a crash by signal or exit
// status, naming `phase` and the last stderr line.
v1::TrialFailure DescribeExit(const ChildExit& exit, const std::string& phase,
                              const std::string& stderr_tail);

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_TRIAL_PROCESS_H_
