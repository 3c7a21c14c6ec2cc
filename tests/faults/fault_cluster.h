// FaultCluster: a whole AutoCompress deployment as real processes for fault tests:
// tuner_server, scheduler_server, N worker_servers (real trials in child processes) and
// M fake workers (for load), each on its own host of a TestNetwork, and a Client for the test. Any
// of them can be signalled, killed and started again on the same address, data directory and store;
// each process's stderr is kept in the test's outputs (`<host>.log`).
//
// Not thread-safe: one test thread drives it.
#ifndef AUTOCOMPRESS_TESTS_FAULTS_FAULT_CLUSTER_H_
#define AUTOCOMPRESS_TESTS_FAULTS_FAULT_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "common/testing/subprocess.h"
#include "tests/faults/test_network.h"

namespace autocompress::testing {

class FaultCluster {
 public:
  struct Options {
    // Names the logs (`<name>-<host>.log`) and the default data directory.
    std::string name = "cluster";
    int workers = 3;
    // Extra scheduler flags choosing its store; empty = SQLite in `data_dir`.
    std::vector<std::string> store_flags;
    // The scheduler's data directory; empty = a fresh one under the test's temp dir.
    std::string data_dir;
    absl::Duration lease_timeout = absl::Seconds(4);
    absl::Duration heartbeat_interval = absl::Milliseconds(500);
    // How long a SIGTERMed worker lets running trials finish before handing them back.
    absl::Duration drain_grace = absl::Seconds(1);
    // Fake workers (tests/fakes/fake_worker_main: no real trials, each attempt reports
    // `fake_epochs` intermediate metrics `fake_epoch` apart), hosts "fake-1"...
    int fake_workers = 0;
    int fake_slots = 2;
    int fake_epochs = 3;
    absl::Duration fake_epoch = absl::Milliseconds(20);
  };

  // Starts the network's hosts "tuner", "scheduler", "worker-1".. with their servers.
  static absl::StatusOr<std::unique_ptr<FaultCluster>> Start(Options options);
  // SIGKILLs whatever still runs, then removes the network.
  ~FaultCluster();

  TestNetwork& network() { return *network_; }
  Client& client() { return *client_; }
  std::string scheduler_address() const;
  std::string data_dir() const { return options_.data_dir; }
  static std::string WorkerHost(int index) { return "worker-" + std::to_string(index); }
  static std::string FakeWorkerHost(int index) { return "fake-" + std::to_string(index); }

  // The running server of a host ("tuner", "scheduler", "worker-2"); nullptr if none.
  Subprocess* process(const std::string& host);
  int metrics_port(const std::string& host) const;
  // Starts the host's server (again, on the same address, port and state).
  absl::Status StartHost(const std::string& host);
  // Sends `signal` and, for SIGKILL and SIGTERM, waits up to `timeout` for the exit;
  // returns the exit code (128 + signal when killed).
  absl::StatusOr<int> Stop(const std::string& host, int signal,
                           absl::Duration timeout = absl::Seconds(30));
  // The worker's trial child that runs its current attempt (the oldest child; the agent
  // keeps one younger, idle, prestarted child); NotFound when it has none.
  absl::StatusOr<pid_t> TrialChildOf(const std::string& worker_host);

 private:
  struct Host {
    std::string name;
    std::unique_ptr<Subprocess> process;
    int port = 0;  // fixed once first started
    int metrics_port = 0;
  };
  explicit FaultCluster(Options options) : options_(std::move(options)) {}
  std::vector<std::string> Argv(const Host& host) const;
  Host* Find(const std::string& name);

  Options options_;
  std::unique_ptr<TestNetwork> network_;
  std::vector<Host> hosts_;
  std::unique_ptr<Client> client_;
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAULTS_FAULT_CLUSTER_H_
