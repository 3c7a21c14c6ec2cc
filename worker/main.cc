// worker_server: the per-node agent. Maps flags to WorkerServer::Options (see
// worker_server.h); with --run_trial it is instead one trial attempt's child process
// (trial_pipeline.h), started by the agent.
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "common/auth.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "worker/trial_pipeline.h"
#include "worker/worker_server.h"

using autocompress::worker::WorkerServer;

ABSL_FLAG(std::string, scheduler, WorkerServer::Options().scheduler_address,
          "Address of the scheduler's WorkerGateway (host:port).");
ABSL_FLAG(std::string, worker_id, "", "Stable worker id (default: the host name).");
ABSL_FLAG(std::vector<std::string>, labels, {},
          "Worker labels for worker_selector, as key=value,key=value.");
ABSL_FLAG(int, cpu_slots, -1, "CPU trial slots; -1: 1 when no GPU is offered, else 0.");
ABSL_FLAG(int, threads_per_trial, 1, "LibTorch intra-op threads per CPU trial.");
ABSL_FLAG(int, gpu_slots, 1, "Trials per GPU at once.");
ABSL_FLAG(bool, use_active_gpu, false, "Also offer GPUs other processes already use.");
ABSL_FLAG(std::string, work_dir, "",
          "Artifact cache and trial outputs (default /tmp/autocompress-worker-<id>).");
ABSL_FLAG(int64_t, cache_max_bytes, int64_t{20} << 30, "Bound of the artifact cache.");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(25),
          "On SIGTERM, how long running trials may finish before they are handed back.");
ABSL_FLAG(bool, run_trial, false,
          "Internal: run one trial attempt (request on stdin, events on fd 3).");

ABSL_FLAG(std::string, join_token, "",
          "The scheduler's join token (its --join_token, or --token when it has none; "
          "default: $AUTOCOMPRESS_JOIN_TOKEN).");
ABSL_FLAG(bool, scheduler_tls, false, "Reach the scheduler over TLS.");
ABSL_FLAG(std::string, scheduler_tls_ca, "",
          "PEM roots the scheduler's certificate is checked with (default: the system's).");
ABSL_FLAG(std::string, scheduler_tls_cert, "",
          "Client certificate (PEM) for a scheduler that requires mutual TLS.");
ABSL_FLAG(std::string, scheduler_tls_key, "", "Key of --scheduler_tls_cert (PEM).");
ABSL_FLAG(std::string, scheduler_tls_server_name, "",
          "Name checked in the scheduler's certificate (default: the host of --scheduler).");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_run_trial)) {
    autocompress::InitLogging(argv[0]);
    return autocompress::worker::RunTrialChild(/*in_fd=*/0, /*out_fd=*/3);
  }
  autocompress::BlockShutdownSignals();
  autocompress::InitLogging(argv[0]);

  const autocompress::ServerFlags flags =
      autocompress::ServerFlagsWithDefaults(/*default_port=*/7402, /*default_metrics_port=*/9402);
  WorkerServer::Options options;
  options.server = flags.server;
  options.scheduler_address = absl::GetFlag(FLAGS_scheduler);
  options.scheduler_security.tls = absl::GetFlag(FLAGS_scheduler_tls);
  options.scheduler_security.ca_file = absl::GetFlag(FLAGS_scheduler_tls_ca);
  options.scheduler_security.cert_file = absl::GetFlag(FLAGS_scheduler_tls_cert);
  options.scheduler_security.key_file = absl::GetFlag(FLAGS_scheduler_tls_key);
  options.scheduler_security.server_name = absl::GetFlag(FLAGS_scheduler_tls_server_name);
  options.scheduler_security.token =
      autocompress::FlagOrEnv(absl::GetFlag(FLAGS_join_token), "AUTOCOMPRESS_JOIN_TOKEN");
  options.devices.cpu_slots = absl::GetFlag(FLAGS_cpu_slots);
  options.devices.gpu_slots = absl::GetFlag(FLAGS_gpu_slots);
  options.devices.use_active_gpu = absl::GetFlag(FLAGS_use_active_gpu);
  options.threads_per_trial = absl::GetFlag(FLAGS_threads_per_trial);
  options.drain_grace = absl::GetFlag(FLAGS_drain_grace);
  options.agent.worker_id = absl::GetFlag(FLAGS_worker_id);
  options.agent.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.agent.cache_max_bytes = absl::GetFlag(FLAGS_cache_max_bytes);
  for (const std::string& label : absl::GetFlag(FLAGS_labels)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
    options.agent.labels[kv.first] = kv.second;
  }
  return autocompress::RunServerProcess(
      flags.metrics, WorkerServer::BuildAndStart(options, *autocompress::ProcessRegistry()));
}
