// SchedulerServer: the scheduler's services assembled as one gRPC server:
// ExperimentService and ArtifactService for clients, WorkerGateway for workers, over the
// trial store (SQLite under `data_dir`, or PostgreSQL) and the artifact store under
// `data_dir`, with the tuner at
// `tuner_address`. scheduler_server's main.cc maps flags to Options; the embedded
// `autocompress run` and tests build it directly.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/server.h"
#include "common/server_runner.h"
#include "scheduler_service/artifacts/artifact_store.h"
#include "scheduler_service/grpc_tuner_client.h"
#include "scheduler_service/scheduler.h"
#include "scheduler_service/store/postgres_trial_store.h"
#include "scheduler_service/store/sqlite_trial_store.h"
#include "scheduler_service/store/trial_store.h"
#include "scheduler_service/web/web_server.h"

namespace grpc {
class Channel;
}

namespace autocompress::scheduler {

class SchedulerServer final : public Server {
 public:
  struct Options {
    ServerOptions server;
    // Directory of the artifacts (artifacts/) and of the SQLite store (scheduler.db);
    // created if missing, must be writable.
    std::string data_dir = "./autocompress-data";
    // The tuner service, "host:port".
    std::string tuner_address = "127.0.0.1:7300";
    // How the scheduler reaches the tuner: TLS and token.
    ClientSecurity tuner_security;
    // Deadline of each tuner call.
    absl::Duration tuner_timeout = absl::Seconds(10);
    // Leases, ticks, placement policy, clock.
    Scheduler::Options scheduler;
    // The trial store: "sqlite" (scheduler.db under data_dir) or a PostgreSQL URL
    // ("postgres://user@host:5432/db", postgres_trial_store.h).
    std::string store = "sqlite";
    // SQLite durability (sqlite_trial_store.h).
    SqliteTrialStore::Options sqlite;
    // PostgreSQL lock wait and timeouts.
    PostgresTrialStore::Options postgres;
    // Artifact size limits.
    ArtifactStore::Options artifacts;
    // The dashboard and its JSON API (web/web_server.h); none when unset.
    std::optional<WebServer::Options> web;
  };

  // The scheduler's token rules: `token` opens the client services (experiments,
  // artifacts, reflection) and `join_token` the worker services (WorkerGateway,
  // artifacts); without a join token, `token` opens every service. Empty = no check.
  static std::vector<TokenGrant> TokenGrants(const std::string& token,
                                             const std::string& join_token);

  // Prepares the data directory, opens the stores (recovering every experiment) and
  // starts listening (and the web server, when configured). FailedPrecondition for a data
  // directory that cannot be created or written, InvalidArgument for an unknown `store`,
  // Unavailable for a port in use, the store's error for a bad or unreachable database.
  static absl::StatusOr<std::unique_ptr<SchedulerServer>> BuildAndStart(
      const Options& options, prometheus::Registry& registry);
  ~SchedulerServer() override;

  // Ends the web server's event streams, stops the experiment managers and closes worker
  // sessions, then the server.
  void Shutdown() override;

  // The experiment manager (embedders and tests).
  Scheduler& scheduler() { return *scheduler_; }
  ArtifactStore& artifacts() { return *artifacts_; }
  // Starts the web server on this server's services (BuildAndStart does when
  // Options::web is set); Unavailable when its address cannot be bound, FailedPrecondition
  // when one runs already.
  absl::Status StartWeb(const WebServer::Options& options);
  // The web server, or null when none was started.
  WebServer* web() { return web_.get(); }

 private:
  SchedulerServer() : Server("scheduler") {}

  std::unique_ptr<TrialStore> store_;
  std::unique_ptr<ArtifactStore> artifacts_;
  std::shared_ptr<grpc::Channel> tuner_channel_;
  std::unique_ptr<GrpcTunerClient> tuner_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<WebServer> web_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_SCHEDULER_SERVER_H_
