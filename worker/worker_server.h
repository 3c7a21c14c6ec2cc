// WorkerServer: the per-node agent's process. It serves health and metrics (for
// Kubernetes probes and Prometheus) and runs a WorkerAgent (agent.h) that dials the
// scheduler's WorkerGateway at `scheduler_address` for work: workers need no inbound
// port for it. Shutdown drains the agent first (no new work; running trials get
// `drain_grace` to finish, the rest are handed back), then stops the server.
// worker_server's main.cc maps flags to Options; the embedded `autocompress run` and
// tests build it directly.
#ifndef AUTOCOMPRESS_WORKER_WORKER_SERVER_H_
#define AUTOCOMPRESS_WORKER_WORKER_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/server.h"
#include "common/server_runner.h"
#include "worker/agent.h"
#include "worker/devices.h"

namespace autocompress::worker {

class WorkerServer final : public Server {
 public:
  struct Options {
    ServerOptions server;
    // The scheduler's WorkerGateway (and ArtifactService), host:port.
    std::string scheduler_address = "localhost:7400";
    // How the worker reaches the scheduler: TLS (mutual with a certificate) and the
    // scheduler's join token.
    ClientSecurity scheduler_security;
    // Devices and slots, when `agent.devices` is empty: discovered (devices.h).
    DeviceOptions devices;
    // LibTorch intra-op threads per CPU trial; with no GPU the worker offers
    // cpu_slots x threads_per_trial threads.
    int threads_per_trial = 1;
    // How long a SIGTERM waits for running trials before handing them back.
    absl::Duration drain_grace = absl::Seconds(25);
    // The agent; empty worker_id = the host name, empty trial_command = this binary
    // with --run_trial, empty work_dir = /tmp/autocompress-worker-<worker_id>, empty
    // devices = discovered, cpu_threads 0 = cpu_slots x threads_per_trial without a
    // GPU, else the machine's hardware threads.
    WorkerAgent::Options agent;
  };

  // InvalidArgument for an empty scheduler address, Unavailable for a port in use.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> BuildAndStart(
      const Options& options, prometheus::Registry& registry);
  ~WorkerServer() override;

  void Shutdown() override;
  WorkerAgent& agent() { return *agent_; }

 private:
  WorkerServer() : Server("worker") {}
  absl::Duration drain_grace_;
  std::unique_ptr<WorkerAgent> agent_;
};

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_WORKER_SERVER_H_
