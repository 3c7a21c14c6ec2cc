#include "worker/trial_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace autocompress::worker {
namespace {

constexpr size_t kStderrTailBytes = 4096;

absl::Status ErrnoStatus(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// The child's side between fork and exec: async-signal-safe calls only.
[[noreturn]] void ExecChild(char* const* argv, pid_t parent, int stdin_fd, int messages_fd,
                            int stderr_fd) {
  setpgid(0, 0);
  // The agent blocks shutdown signals and ignores SIGPIPE; exec keeps both, the child
  // must not.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  // Dies with the agent's thread; a parent already gone means it raced us.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  // dup2 clears close-on-exec on the targets; the sources stay close-on-exec.
  if (dup2(stdin_fd, 0) < 0 || dup2(stderr_fd, 1) < 0 || dup2(stderr_fd, 2) < 0 ||
      dup2(messages_fd, 3) < 0) {
    _exit(127);
  }
  execv(argv[0], argv);
  _exit(127);
}

}  // namespace

TrialProcess::TrialProcess(pid_t pid, int stdin_fd, int messages_fd, int stderr_fd)
    : pid_(pid), stdin_fd_(stdin_fd), messages_fd_(messages_fd), stderr_fd_(stderr_fd) {}

absl::StatusOr<std::unique_ptr<TrialProcess>> TrialProcess::Start(
    const std::vector<std::string>& argv, const internal::ChildRequest& request) {
  absl::StatusOr<std::unique_ptr<TrialProcess>> process = Spawn(argv);
  if (process.ok()) (*process)->Send(request);
  return process;
}

void TrialProcess::Send(const internal::ChildRequest& request) {
  if (stdin_fd_ < 0) return;
  // The request is small (a TrialSpec and paths); a child that died before reading it
  // makes this fail with EPIPE, and its exit then tells why.
  (void)google::protobuf::util::SerializeDelimitedToFileDescriptor(request, stdin_fd_);
  CloseFd(stdin_fd_);
}

absl::StatusOr<std::unique_ptr<TrialProcess>> TrialProcess::Spawn(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("trial process: no command");
  // Close-on-exec everywhere, so concurrent starts never leak each other's pipes.
  int in[2], messages[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return ErrnoStatus("pipe");
  if (pipe2(messages, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    return ErrnoStatus("pipe");
  }
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]), close(messages[0]), close(messages[1]);
    return ErrnoStatus("pipe");
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) ExecChild(args.data(), parent, in[0], messages[1], err[1]);
  close(in[0]), close(messages[1]), close(err[1]);
  if (pid < 0) {
    close(in[1]), close(messages[0]), close(err[0]);
    return ErrnoStatus("fork");
  }
  setpgid(pid, pid);  // also here, so Stop's group kill works before the child ran
  std::unique_ptr<TrialProcess> process(new TrialProcess(pid, in[1], messages[0], err[0]));
  fcntl(messages[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);  // a child gone before its request is told by its exit
  return process;
}

TrialProcess::~TrialProcess() {
  if (!exit_.has_value()) Stop(absl::ZeroDuration());
  CloseFd(stdin_fd_);
  CloseFd(messages_fd_);
  CloseFd(stderr_fd_);
}

void TrialProcess::DrainStderr() {
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(stderr_fd_, chunk, sizeof(chunk));
    if (n <= 0) {
      if (n == 0) CloseFd(stderr_fd_);
      return;
    }
    stderr_tail_.append(chunk, n);
    if (stderr_tail_.size() > 2 * kStderrTailBytes) {
      stderr_tail_.erase(0, stderr_tail_.size() - kStderrTailBytes);
    }
  }
}

bool TrialProcess::ReadMessages() {
  char chunk[65536];
  for (;;) {
    const ssize_t n = read(messages_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      buffer_.append(chunk, n);
      continue;
    }
    if (n == 0) {
      CloseFd(messages_fd_);
      messages_closed_ = true;
      return false;
    }
    return errno == EAGAIN || errno == EINTR;
  }
}

absl::StatusOr<std::optional<internal::ChildMessage>> TrialProcess::Next(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    // A whole message in the buffer?
    if (!buffer_.empty()) {
      google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(buffer_.data()),
                                                static_cast<int>(buffer_.size()));
      uint32_t size = 0;
      if (in.ReadVarint32(&size)) {
        const size_t start = static_cast<size_t>(in.CurrentPosition());
        if (buffer_.size() - start >= size) {
          internal::ChildMessage message;
          if (!message.ParseFromArray(buffer_.data() + start, static_cast<int>(size))) {
            return absl::DataLossError("trial process: a message from the child does not parse");
          }
          buffer_.erase(0, start + size);
          if (message.has_phase()) phase_ = message.phase();
          return message;
        }
      } else if (buffer_.size() >= 5) {
        return absl::DataLossError("trial process: bad message length from the child");
      }
    }
    if (messages_closed_) {
      if (!buffer_.empty()) return absl::DataLossError("trial process: truncated message");
      DrainStderr();
      return std::nullopt;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("no message yet");
    pollfd fds[2] = {{messages_fd_, POLLIN, 0}, {stderr_fd_, POLLIN, 0}};
    const int count = stderr_fd_ >= 0 ? 2 : 1;
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    if (poll(fds, count, ms) < 0 && errno != EINTR) return ErrnoStatus("poll");
    if (count == 2 && fds[1].revents != 0) DrainStderr();
    if (fds[0].revents != 0) ReadMessages();
  }
}

std::optional<ChildExit> TrialProcess::Wait(absl::Duration timeout) {
  if (exit_.has_value()) return exit_;
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    // Not reaped yet (WNOWAIT): the group is killed while the pid cannot be reused, so
    // anything the child left behind goes with it.
    siginfo_t info{};
    if (waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_) {
      kill(-pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
      ChildExit exit;
      exit.signaled = WIFSIGNALED(status);
      exit.code = exit.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
      exit_ = exit;
      if (stderr_fd_ >= 0) DrainStderr();
      return exit_;
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

ChildExit TrialProcess::Stop(absl::Duration grace) {
  if (exit_.has_value()) return *exit_;
  kill(-pid_, SIGTERM);
  if (std::optional<ChildExit> exit = Wait(grace)) return *exit;
  kill(-pid_, SIGKILL);
  return *Wait(absl::InfiniteDuration());
}

std::string TrialProcess::stderr_tail() const {
  if (stderr_tail_.size() <= kStderrTailBytes) return stderr_tail_;
  return stderr_tail_.substr(stderr_tail_.size() - kStderrTailBytes);
}

v1::TrialFailure DescribeExit(const ChildExit& exit, const std::string& phase,
                              const std::string& stderr_tail) {
  v1::TrialFailure failure;
  failure.set_code(v1::FAILURE_CODE_CRASH);
  std::string message;
  if (exit.signaled) {
    const char* abbrev = sigabbrev_np(exit.code);
    message = absl::StrCat("signal ", exit.code, " (SIG", abbrev != nullptr ? abbrev : "?", ")");
    if (exit.code == SIGKILL) absl::StrAppend(&message, ", possibly the kernel's OOM killer,");
  } else {
    message = absl::StrCat("exited with status ", exit.code);
  }
  absl::StrAppend(&message, " in ", phase.empty() ? "start-up" : phase);
  // The last non-empty line the child printed usually says what went wrong.
  std::vector<absl::string_view> lines = absl::StrSplit(stderr_tail, '\n', absl::SkipWhitespace());
  if (!lines.empty())
    absl::StrAppend(&message, "; last output: ", absl::StripAsciiWhitespace(lines.back()));
  failure.set_message(message);
  return failure;
}

}  // namespace autocompress::worker
