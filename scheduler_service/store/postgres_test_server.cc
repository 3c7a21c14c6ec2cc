#include "scheduler_service/store/postgres_test_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace autocompress::scheduler {
namespace {

// The newest installed server's programs, e.g. /usr/lib/postgresql/15/bin.
absl::StatusOr<std::string> FindBinDir() {
  std::string best;
  int best_version = -1;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", error)) {
    const std::string bin = (entry.path() / "bin").string();
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && ::access((bin + "/initdb").c_str(), X_OK) == 0) {
      best = bin;
      best_version = version;
    }
  }
  if (best.empty()) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install postgresql; "
        "./dev test installs it)");
  }
  return best;
}

absl::StatusOr<int> FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(absl::StrCat("no free port: ", std::strerror(error)));
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

// The cluster's owner when we are root (PostgreSQL refuses root), else null.
const passwd* OwnerWhenRoot() { return ::geteuid() == 0 ? ::getpwnam("nobody") : nullptr; }

struct FinishConnection {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresTestServer>> PostgresTestServer::Start() {
  absl::StatusOr<std::string> bin_dir = FindBinDir();
  if (!bin_dir.ok()) return bin_dir.status();
  std::string pattern = "/tmp/autocompress-pg-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  if (const passwd* owner = OwnerWhenRoot(); owner != nullptr) {
    if (::chown(pattern.c_str(), owner->pw_uid, owner->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", pattern, ": ", std::strerror(errno)));
    }
  } else if (::geteuid() == 0) {
    return absl::FailedPreconditionError("running as root and there is no user nobody");
  }
  absl::StatusOr<int> port = FreePort();
  if (!port.ok()) return port.status();
  auto server =
      std::unique_ptr<PostgresTestServer>(new PostgresTestServer(*bin_dir, pattern, *port));
  // --no-sync: only initdb's own files skip fsync; the server runs with fsync on.
  if (absl::Status status = server->RunProgram(
          "initdb", {"-D", server->dir_ + "/data", "-U", "autocompress", "-A", "trust", "-E",
                     "UTF8", "--locale=C", "--no-sync", "--no-instructions"});
      !status.ok()) {
    return status;
  }
  if (absl::Status status = server->Restart(); !status.ok()) return status;
  return server;
}

PostgresTestServer::~PostgresTestServer() {
  if (running_) {
    RunProgram("pg_ctl", {"-D", dir_ + "/data", "-m", "immediate", "-w", "stop"}).IgnoreError();
  }
  std::error_code error;
  std::filesystem::remove_all(dir_, error);
}

std::string PostgresTestServer::Url(const std::string& database) const {
  return absl::StrCat("postgres://autocompress@127.0.0.1:", port_, "/", database);
}

std::string PostgresTestServer::SocketUrl(const std::string& database) const {
  return absl::StrCat("postgresql://autocompress@/", database, "?host=", dir_, "&port=", port_);
}

absl::Status PostgresTestServer::Stop() {
  if (!running_) return absl::OkStatus();
  running_ = false;
  return RunProgram("pg_ctl", {"-D", dir_ + "/data", "-m", "fast", "-w", "stop"});
}

absl::Status PostgresTestServer::Restart() {
  if (running_) {
    absl::Status stopped = Stop();
    if (!stopped.ok()) return stopped;
  }
  const std::string options = absl::StrCat(
      "-c listen_addresses=127.0.0.1 -c port=", port_, " -c unix_socket_directories=", dir_,
      " -c max_connections=64 -c shared_buffers=16MB -c fsync=on");
  absl::Status status = RunProgram("pg_ctl", {"-D", dir_ + "/data", "-l", dir_ + "/server.log",
                                              "-w", "-t", "60", "-o", options, "start"});
  if (!status.ok()) return absl::Status(status.code(), absl::StrCat(status.message(), LogTail()));
  running_ = true;
  return absl::OkStatus();
}

absl::Status PostgresTestServer::CreateDatabase(const std::string& database) {
  return Exec("postgres", absl::StrCat("CREATE DATABASE \"", database, "\""));
}

absl::Status PostgresTestServer::Exec(const std::string& database, const std::string& sql) {
  return QueryText(database, sql).status();
}

absl::StatusOr<std::string> PostgresTestServer::QueryText(const std::string& database,
                                                          const std::string& sql) {
  std::unique_ptr<PGconn, FinishConnection> conn(PQconnectdb(Url(database).c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("connect to ", Url(database), ": ", PQerrorMessage(conn.get())));
  }
  PGresult* result = PQexec(conn.get(), sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  std::string value;
  if (status == PGRES_TUPLES_OK && PQntuples(result) > 0) value = PQgetvalue(result, 0, 0);
  const std::string error = PQresultErrorMessage(result);
  PQclear(result);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return absl::InternalError(absl::StrCat("\"", sql, "\": ", error));
  }
  return value;
}

absl::Status PostgresTestServer::RunProgram(const std::string& program,
                                            const std::vector<std::string>& args) {
  const std::string path = absl::StrCat(bin_dir_, "/", program);
  const std::string output = absl::StrCat(dir_, "/", program, ".out");
  std::vector<std::string> argv = {path};
  argv.insert(argv.end(), args.begin(), args.end());
  const passwd* owner = OwnerWhenRoot();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    std::vector<char*> c_argv;
    for (std::string& arg : argv) c_argv.push_back(arg.data());
    c_argv.push_back(nullptr);
    const int fd = ::open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    if (owner != nullptr && (::setgid(owner->pw_gid) != 0 || ::setuid(owner->pw_uid) != 0)) {
      ::_exit(126);
    }
    ::execv(c_argv[0], c_argv.data());
    ::_exit(127);
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) return absl::OkStatus();
  std::ifstream file(output);
  std::stringstream text;
  text << file.rdbuf();
  return absl::InternalError(absl::StrCat(program, " ", absl::StrJoin(args, " "), " failed (wait ",
                                          wait_status, "): ", text.str()));
}

std::string PostgresTestServer::LogTail() const {
  std::ifstream file(dir_ + "/server.log");
  std::stringstream text;
  text << file.rdbuf();
  const std::string log = text.str();
  return absl::StrCat("\nserver log:\n", log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
}

}  // namespace autocompress::scheduler
