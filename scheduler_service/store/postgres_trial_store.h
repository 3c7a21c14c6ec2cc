// PostgresTrialStore: the TrialStore on a PostgreSQL database (Debian's libpq), for a
// scheduler whose state must outlive its machine and volume (a Kubernetes cluster with
// a managed or replicated database). Batches go through a GroupCommitter, as SQLite's.
//
// Connection. `conninfo` is a libpq URI or key=value string
// ("postgres://autocompress@db:5432/autocompress?sslmode=verify-full"); the password may
// come from the URI, PGPASSWORD or ~/.pgpass (libpq reads them). Errors name the host,
// port and database, never the password.
//
// One writer. Open takes a session-level advisory lock on the writer connection and
// holds it for the store's life, so a second scheduler pointed at the same database
// fails at start (FailedPrecondition) instead of both writing. It waits up to
// Options::lock_wait for it: the server notices a SIGKILLed scheduler's closed
// connection, and frees its lock, a moment after a restarted one may already ask.
//
// Durability. The writer's session runs with synchronous_commit = on, whatever the
// server's default: COMMIT returns once the server has flushed the transaction's WAL,
// so everything Submit reported OK survives a crash of the scheduler, of the server and
// of the server's machine (given fsync = on there, the default). Waiting for replicas
// is the server's setting (synchronous_standby_names), not ours.
//
// Writes. A group is one transaction sent in pipeline mode (libpq 14+): BEGIN, every
// row's prepared upsert, COMMIT, with a sync point every kPipelineChunk statements (which
// bounds what either side buffers). A group thus costs about one round trip and one WAL
// flush, not one round trip per row.
//
// Lost connection. A group that fails on a broken connection is Unavailable; the next
// one reconnects (re-preparing its statements and taking the lock again; should another
// scheduler hold it by then, writes fail with FailedPrecondition). A COMMIT whose answer
// was lost may have committed; every row is an idempotent upsert, so the scheduler's
// retry of it is harmless. Reads reconnect the same way.
//
// Schema: versioned as SQLite's (table `schema_version`); Open applies the missing
// migrations in one transaction, under the lock, and refuses a database written by a
// newer binary (FailedPrecondition naming both versions).
//
// Error codes by SQLSTATE: class 53 (disk full, out of memory, too many connections) ->
// ResourceExhausted; class 08, 57P01-57P03 (connection, shutdown) and class 40
// (serialization, deadlock) -> Unavailable; a failed connect -> Unavailable;
// 23505 (unique) -> AlreadyExists; XX001, XX002 (corrupt) -> DataLoss; 42501, 25006
// (no privilege, read-only) -> FailedPrecondition; others Internal. Messages carry the
// operation and the server's ("postgres commit: could not extend file ...: No space
// left on device").
//
// Thread-safety: every method may be called from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_POSTGRES_TRIAL_STORE_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_POSTGRES_TRIAL_STORE_H_

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler_service/store/group_committer.h"
#include "scheduler_service/store/trial_store.h"

namespace autocompress::scheduler {

namespace postgres_internal {
// Defined in postgres_trial_store.cc, keeping <libpq-fe.h> out of this header.
class Connection;
}  // namespace postgres_internal

class PostgresTrialStore final : public TrialStore {
 public:
  struct Options {
    // How long Open (and a reconnect) waits for the writer lock another session holds.
    absl::Duration lock_wait = absl::Seconds(10);
    // libpq's connect_timeout, unless `conninfo` sets one.
    absl::Duration connect_timeout = absl::Seconds(10);
    // Bounds of one transaction.
    GroupCommitter::Options group;
  };

  // The schema version this binary writes.
  static constexpr int kSchemaVersion = 1;
  // Statements between two sync points of a pipelined group.
  static constexpr int kPipelineChunk = 256;
  // The advisory lock key the writer holds (pg_locks.objid shows its low 32 bits).
  static constexpr int64_t kWriterLockKey = 0x6175746f636d7072;  // "autocmpr"

  // True for "postgres://..." and "postgresql://..." (what --store selects us by).
  static bool IsPostgresUrl(absl::string_view store);

  // Connects, takes the writer lock and migrates the schema to kSchemaVersion.
  static absl::StatusOr<std::unique_ptr<PostgresTrialStore>> Open(const std::string& conninfo,
                                                                  Options options);
  static absl::StatusOr<std::unique_ptr<PostgresTrialStore>> Open(const std::string& conninfo) {
    return Open(conninfo, Options());
  }

  // Commits what is queued, then closes the connections (releasing the lock).
  ~PostgresTrialStore() override;

  PostgresTrialStore(const PostgresTrialStore&) = delete;
  PostgresTrialStore& operator=(const PostgresTrialStore&) = delete;

  std::shared_future<absl::Status> Submit(WriteBatch batch) override;
  // On the calling thread, behind every batch submitted before (no queue hop).
  absl::Status Commit(const WriteBatch& batch) override;
  // One REPEATABLE READ snapshot. Experiments by id, trials by (experiment_id, sequence,
  // id), metrics by (trial_id, attempt, step).
  absl::StatusOr<StoredState> LoadAll() override;
  // A negative `limit` is InvalidArgument; an unknown experiment has no events.
  absl::StatusOr<std::vector<v1::ExperimentEvent>> ReadEvents(const std::string& experiment_id,
                                                              int64_t after_sequence,
                                                              int limit) override;

 private:
  using Connection = postgres_internal::Connection;

  PostgresTrialStore(std::unique_ptr<Connection> writer, std::unique_ptr<Connection> reader,
                     const GroupCommitter::Options& group);

  // The committer's function: `group` in one transaction.
  absl::Status WriteGroup(const std::vector<const WriteBatch*>& group);

  // Used by the committer's thread only (and by Open before it starts).
  const std::unique_ptr<Connection> writer_;

  absl::Mutex read_mu_;
  const std::unique_ptr<Connection> reader_ ABSL_PT_GUARDED_BY(read_mu_);

  // Last member: destroyed first, so it drains while the connections are still open.
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_POSTGRES_TRIAL_STORE_H_
