// A child process for tests that exercise binaries as users run them: started with
// arguments, its stdout read line by line with a timeout, signalled, and reaped with a
// timeout. The child's stderr goes to the test's stderr. The destructor kills a child
// that is still running, so a failing test leaves no stray process.
#ifndef AUTOCOMPRESS_COMMON_TESTING_SUBPROCESS_H_
#define AUTOCOMPRESS_COMMON_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/testing/runfiles.h"

namespace autocompress::testing {

class Subprocess {
 public:
  // Starts `argv[0]` (a path) with the given arguments.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv);
  ~Subprocess();

  // The next line of stdout without its newline; DeadlineExceeded after `timeout`,
  // OutOfRange at end of output.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);

  // Reads lines until one starts with `prefix` and returns it.
  absl::StatusOr<std::string> ReadLineStartingWith(const std::string& prefix,
                                                   absl::Duration timeout);

  // Sends a signal.
  void Signal(int signal);

  // Waits for exit. Returns the exit code, or 128 + signal number when killed by a
  // signal; DeadlineExceeded when still running after `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);

  pid_t pid() const { return pid_; }

 private:
  Subprocess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}
  pid_t pid_;
  int stdout_fd_;
  bool reaped_ = false;
  std::string buffer_;
};

// The ports in a server's READY line ("READY service=.. grpc_port=.. metrics_port=..",
// common/server_process.h); InvalidArgument unless both are positive.
struct ReadyPorts {
  int grpc = 0;
  int metrics = 0;
};
absl::StatusOr<ReadyPorts> ParseReadyLine(const std::string& line);

// A server binary started as a child process that has announced its ports.
struct ReadyServer {
  std::unique_ptr<Subprocess> process;
  ReadyPorts ports;
  std::string ready_line;
};
// Starts `argv` and waits up to `timeout` for its READY line.
absl::StatusOr<ReadyServer> StartReadyServer(const std::vector<std::string>& argv,
                                             absl::Duration timeout = absl::Seconds(30));

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_SUBPROCESS_H_
