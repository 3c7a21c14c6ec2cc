// scheduler_server: hosts ExperimentService, ArtifactService and WorkerGateway and owns
// the durable store under --data_dir. Only maps flags to SchedulerServer::Options; see
// scheduler_server.h.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/auth.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "glog/logging.h"
#include "scheduler_service/scheduler_server.h"

namespace {
using autocompress::scheduler::SchedulerServer;
using autocompress::scheduler::SqliteTrialStore;
const SchedulerServer::Options kDefaults;
}  // namespace

ABSL_FLAG(std::string, data_dir, kDefaults.data_dir,
          "Directory of the artifacts and of the SQLite store; created if missing.");
ABSL_FLAG(std::string, store, "",
          "Trial store: \"sqlite\" (scheduler.db under --data_dir) or a PostgreSQL URL, "
          "postgres://user@host:5432/db?sslmode=verify-full (password from PGPASSWORD or "
          "~/.pgpass). Empty: $AUTOCOMPRESS_STORE, else sqlite.");
ABSL_FLAG(absl::Duration, postgres_lock_wait, kDefaults.postgres.lock_wait,
          "How long to wait for another scheduler's hold on the PostgreSQL database.");
ABSL_FLAG(std::string, tuner_address, kDefaults.tuner_address, "TunerService address host:port.");
ABSL_FLAG(absl::Duration, lease_timeout, kDefaults.scheduler.lease_timeout,
          "A trial attempt whose worker shows no sign of it for this long is re-queued.");
ABSL_FLAG(absl::Duration, heartbeat_interval, kDefaults.scheduler.heartbeat_interval,
          "How often workers are told to send heartbeats.");
ABSL_FLAG(std::string, placement_policy, kDefaults.scheduler.placement_policy,
          "How trials are placed on worker slots.");
ABSL_FLAG(std::string, sqlite_synchronous, "full",
          "SQLite durability: \"full\" (fsync per commit, survives power loss) or \"normal\" "
          "(survives a process crash; the last commits may be lost on power loss).");

ABSL_FLAG(int32_t, http_port, -1,
          "Port of the web dashboard and its JSON API (/api/v1/); -1 = off, 0 = any free port.");
ABSL_FLAG(std::string, http_host, "", "Address the dashboard binds; empty = the same as --host.");
ABSL_FLAG(std::string, web_dir, autocompress::scheduler::WebServer::DefaultStaticDir(),
          "Directory of the built dashboard page (./dev build makes web/dist).");
ABSL_FLAG(std::string, token, "",
          "Bearer token every gRPC call (but health checks) and every dashboard API request "
          "must carry (default: $AUTOCOMPRESS_TOKEN; empty = none).");
ABSL_FLAG(std::string, join_token, "",
          "Bearer token workers must carry (default: $AUTOCOMPRESS_JOIN_TOKEN). Unset: workers "
          "use --token, which then opens every service.");
ABSL_FLAG(bool, tuner_tls, false, "Reach the tuner over TLS.");
ABSL_FLAG(std::string, tuner_tls_ca, "", "PEM roots the tuner's certificate is checked with.");
ABSL_FLAG(std::string, tuner_tls_server_name, "",
          "Name checked in the tuner's certificate (default: the host of --tuner_address).");
ABSL_FLAG(std::string, tuner_token, "",
          "Bearer token sent to the tuner (default: $AUTOCOMPRESS_TUNER_TOKEN).");
ABSL_FLAG(int64_t, max_model_bytes, kDefaults.artifacts.max_model_bytes,
          "Largest model artifact accepted by Upload, in bytes.");
ABSL_FLAG(int64_t, max_dataset_bytes, kDefaults.artifacts.max_dataset_bytes,
          "Largest dataset artifact accepted by Upload, in bytes.");
ABSL_FLAG(int64_t, max_result_bytes, kDefaults.artifacts.max_result_bytes,
          "Largest trial result artifact accepted by Upload, in bytes.");

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);

  const autocompress::ServerFlags flags =
      autocompress::ServerFlagsWithDefaults(/*default_port=*/7400, /*default_metrics_port=*/9400);
  SchedulerServer::Options options;
  options.server = flags.server;
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.store = autocompress::FlagOrEnv(absl::GetFlag(FLAGS_store), "AUTOCOMPRESS_STORE");
  if (options.store.empty()) options.store = kDefaults.store;
  options.postgres.lock_wait = absl::GetFlag(FLAGS_postgres_lock_wait);
  options.tuner_address = absl::GetFlag(FLAGS_tuner_address);
  options.tuner_security.tls = absl::GetFlag(FLAGS_tuner_tls);
  options.tuner_security.ca_file = absl::GetFlag(FLAGS_tuner_tls_ca);
  options.tuner_security.server_name = absl::GetFlag(FLAGS_tuner_tls_server_name);
  options.tuner_security.token =
      autocompress::FlagOrEnv(absl::GetFlag(FLAGS_tuner_token), "AUTOCOMPRESS_TUNER_TOKEN");
  const std::string token =
      autocompress::FlagOrEnv(absl::GetFlag(FLAGS_token), "AUTOCOMPRESS_TOKEN");
  const std::string join_token =
      autocompress::FlagOrEnv(absl::GetFlag(FLAGS_join_token), "AUTOCOMPRESS_JOIN_TOKEN");
  options.server.security.tokens =
      autocompress::scheduler::SchedulerServer::TokenGrants(token, join_token);
  options.scheduler.lease_timeout = absl::GetFlag(FLAGS_lease_timeout);
  options.scheduler.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  options.scheduler.placement_policy = absl::GetFlag(FLAGS_placement_policy);
  options.artifacts.max_model_bytes = absl::GetFlag(FLAGS_max_model_bytes);
  options.artifacts.max_dataset_bytes = absl::GetFlag(FLAGS_max_dataset_bytes);
  options.artifacts.max_result_bytes = absl::GetFlag(FLAGS_max_result_bytes);
  const std::string synchronous = absl::GetFlag(FLAGS_sqlite_synchronous);
  if (synchronous == "full") {
    options.sqlite.synchronous = SqliteTrialStore::Synchronous::kFull;
  } else if (synchronous == "normal") {
    options.sqlite.synchronous = SqliteTrialStore::Synchronous::kNormal;
  } else {
    LOG(ERROR) << "--sqlite_synchronous: expected \"full\" or \"normal\", got \"" << synchronous
               << "\"";
    return 2;
  }
  if (const int http_port = absl::GetFlag(FLAGS_http_port); http_port >= 0) {
    autocompress::scheduler::WebServer::Options web;
    web.host = absl::GetFlag(FLAGS_http_host);
    if (web.host.empty()) web.host = options.server.host;
    web.port = http_port;
    web.static_dir = absl::GetFlag(FLAGS_web_dir);
    web.token = token;
    options.web = web;
  }
  if (options.scheduler.lease_timeout <= options.scheduler.heartbeat_interval) {
    LOG(ERROR) << "--lease_timeout (" << options.scheduler.lease_timeout
               << ") must exceed --heartbeat_interval (" << options.scheduler.heartbeat_interval
               << ")";
    return 2;
  }
  return autocompress::RunServerProcess(
      flags.metrics, SchedulerServer::BuildAndStart(options, *autocompress::ProcessRegistry()));
}
