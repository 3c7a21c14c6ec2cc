// EmbeddedCluster: the three services in this process, as `autocompress run` holds them:
// a tuner, a scheduler over a SQLite store under `data_dir`, and a worker agent with
// `slots` CPU (or GPU) slots whose trials run as child processes of this binary
// (`--run_trial`). Each server listens on its own loopback port (the scheduler's is what
// `autocompress --server` would use meanwhile); the client talks to the scheduler in
// process. Starting again on the same data_dir recovers every experiment.
#ifndef AUTOCOMPRESS_CLIENT_EMBEDDED_H_
#define AUTOCOMPRESS_CLIENT_EMBEDDED_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace prometheus {
class Registry;
}

namespace autocompress {

namespace scheduler {
class SchedulerServer;
}
namespace tuner {
class TunerServer;
}
namespace worker {
class WorkerServer;
}

class EmbeddedCluster {
 public:
  struct Options {
    std::string data_dir = "./autocompress-data";
    // Trials at once on this machine, and LibTorch threads each (0 = the cores / slots).
    int slots = 1;
    int threads_per_trial = 0;
    // GPUs are used when present (one slot each, `slots` per GPU); false = CPU only.
    bool use_gpus = true;
    // Scheduler port on 127.0.0.1 (0 = any free port).
    int scheduler_port = 0;
    // The dashboard on 127.0.0.1: this port, or any free one when it is taken; -1 = none.
    int http_port = 8088;
    // The built page; empty = web/dist (scheduler_service/web/web_server.h).
    std::string web_dir;
    // The trial child's command; empty = this binary with --run_trial.
    std::vector<std::string> trial_command;
    // How long Shutdown lets running trials finish before handing them back.
    absl::Duration drain_grace = absl::Seconds(2);
  };

  // FailedPrecondition for a data_dir that cannot be used, Unavailable for a port in use.
  static absl::StatusOr<std::unique_ptr<EmbeddedCluster>> Start(const Options& options);
  ~EmbeddedCluster();

  // Drains the worker (running trials are handed back, to re-run when the cluster is
  // started again), then stops the scheduler and the tuner. Idempotent.
  void Shutdown();

  Client& client() { return *client_; }
  int scheduler_port() const;
  // "http://127.0.0.1:PORT/", or empty without a dashboard.
  std::string dashboard_url() const;

 private:
  EmbeddedCluster() = default;
  std::unique_ptr<prometheus::Registry> registry_;
  std::unique_ptr<tuner::TunerServer> tuner_;
  std::unique_ptr<scheduler::SchedulerServer> scheduler_;
  std::unique_ptr<worker::WorkerServer> worker_;
  std::unique_ptr<Client> client_;
  bool shut_down_ = false;
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_EMBEDDED_H_
