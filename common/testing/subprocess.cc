#include "common/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace autocompress::testing {

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError(std::strerror(errno));
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    // The test runner may block signals; the child starts with a clean mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  return std::unique_ptr<Subprocess>(new Subprocess(pid, fds[0]));
}

Subprocess::~Subprocess() {
  if (!reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  close(stdout_fd_);
}

absl::StatusOr<std::string> Subprocess::ReadLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (size_t newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("no line in time");
    pollfd p{stdout_fd_, POLLIN, 0};
    int rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    char chunk[4096];
    ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n == 0) return absl::OutOfRangeError("end of output");
    if (n < 0 && errno != EINTR) return absl::InternalError(std::strerror(errno));
    if (n > 0) buffer_.append(chunk, n);
  }
}

absl::StatusOr<std::string> Subprocess::ReadLineStartingWith(const std::string& prefix,
                                                             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<std::string> line = ReadLine(deadline - absl::Now());
    if (!line.ok() || absl::StartsWith(*line, prefix)) return line;
  }
}

void Subprocess::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    pid_t rc = waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
      reaped_ = true;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    if (rc < 0) return absl::InternalError(std::strerror(errno));
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("process still running");
    absl::SleepFor(absl::Milliseconds(10));
  }
}

absl::StatusOr<ReadyPorts> ParseReadyLine(const std::string& line) {
  ReadyPorts ports;
  for (absl::string_view field : absl::StrSplit(line, ' ')) {
    std::vector<std::string> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
    if (kv.size() != 2) continue;
    if (kv[0] == "grpc_port" && !absl::SimpleAtoi(kv[1], &ports.grpc)) break;
    if (kv[0] == "metrics_port" && !absl::SimpleAtoi(kv[1], &ports.metrics)) break;
  }
  if (ports.grpc <= 0 || ports.metrics <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad READY line: ", line));
  }
  return ports;
}

absl::StatusOr<ReadyServer> StartReadyServer(const std::vector<std::string>& argv,
                                             absl::Duration timeout) {
  ReadyServer server;
  auto process = Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  server.process = std::move(*process);
  auto ready = server.process->ReadLineStartingWith("READY ", timeout);
  if (!ready.ok()) return ready.status();
  server.ready_line = *ready;
  auto ports = ParseReadyLine(*ready);
  if (!ports.ok()) return ports.status();
  server.ports = *ports;
  return server;
}

}  // namespace autocompress::testing
