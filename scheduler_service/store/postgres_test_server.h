// PostgresTestServer: a throwaway PostgreSQL cluster for tests. Start runs Debian's
// initdb into a fresh directory under /tmp and the server on 127.0.0.1 at a free port,
// trust authentication for the superuser "autocompress"; the destructor stops it and
// removes the directory. PostgreSQL refuses to run as root, so under root (CI
// containers) the cluster belongs to, and the server runs as, the user `nobody`.
//
// A machine without the server (apt package postgresql) fails Start with a message
// saying so: the tests that need it fail rather than skip.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_POSTGRES_TEST_SERVER_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_POSTGRES_TEST_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace autocompress::scheduler {

class PostgresTestServer {
 public:
  static absl::StatusOr<std::unique_ptr<PostgresTestServer>> Start();
  ~PostgresTestServer();

  PostgresTestServer(const PostgresTestServer&) = delete;
  PostgresTestServer& operator=(const PostgresTestServer&) = delete;

  int port() const { return port_; }
  // postgres://autocompress@127.0.0.1:<port>/<database>
  std::string Url(const std::string& database) const;
  // The same over the server's Unix socket (reachable from another network namespace):
  // postgresql://autocompress@/<database>?host=<socket dir>&port=<port>
  std::string SocketUrl(const std::string& database) const;

  absl::Status CreateDatabase(const std::string& database);
  // Runs `sql` on `database` over a connection of its own.
  absl::Status Exec(const std::string& database, const std::string& sql);
  // The first value of the first row of `sql` as text.
  absl::StatusOr<std::string> QueryText(const std::string& database, const std::string& sql);

  // Stops the server (fast shutdown: sessions are cut) and starts it again on the same
  // directory and port; what was committed is kept.
  absl::Status Stop();
  absl::Status Restart();

 private:
  PostgresTestServer(std::string bin_dir, std::string dir, int port)
      : bin_dir_(std::move(bin_dir)), dir_(std::move(dir)), port_(port) {}

  // Runs a PostgreSQL program of bin_dir_ as the cluster's owner; its output on error.
  absl::Status RunProgram(const std::string& program, const std::vector<std::string>& args);
  std::string LogTail() const;

  const std::string bin_dir_;
  const std::string dir_;  // the data directory is dir_/data, the socket is in dir_
  const int port_;
  bool running_ = false;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_POSTGRES_TEST_SERVER_H_
