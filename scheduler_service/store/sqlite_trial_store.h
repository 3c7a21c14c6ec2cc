// SqliteTrialStore: the TrialStore on one SQLite database file (Debian's libsqlite3),
// for a scheduler on one machine. Batches go through a GroupCommitter: concurrent
// batches share one transaction, hence one fsync.
//
// Durability. The database runs in WAL mode: a commit appends the transaction's pages
// to the -wal file, each frame checksummed, and a reader recovering after a crash keeps
// the WAL up to its last complete commit, so a torn write never corrupts the database
// or exposes half a transaction. What a returned commit survives depends on
// Options::synchronous:
// - kFull: the WAL is fsynced before COMMIT returns, so everything Submit reported OK
//   is on stable storage and survives a process crash, a kernel crash and a power loss
//   (given a disk that honours flushes). Costs one fsync per group.
// - kNormal: COMMIT returns once the frames are written into the OS page cache; the WAL
//   is fsynced only at checkpoints. A process crash (SIGKILL, abort) loses nothing,
//   since the kernel still holds and later writes those pages; a kernel crash or power
//   loss may lose the last commits (never a part of one) since the last checkpoint.
// Open also fsyncs the database's directory, so a freshly created file stays found.
//
// Schema: versioned (table `schema_version`, one row per applied migration); Open
// applies the missing migrations in one transaction and refuses a database written by a
// newer binary (FailedPrecondition naming both versions).
//
// Errors carry the operation and SQLite's message ("sqlite commit: database or disk is
// full"). Codes: full disk or database cap -> ResourceExhausted; locked by another
// process, I/O error -> Unavailable; not a database, corrupt -> DataLoss; cannot open,
// read-only -> FailedPrecondition; others Internal. A failed transaction is rolled back
// and the store stays usable.
//
// Reads (LoadAll, ReadEvents) use a second, read-only connection, so they never wait for
// a commit's fsync; LoadAll reads one consistent snapshot.
//
// Thread-safety: every method may be called from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_SQLITE_TRIAL_STORE_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_SQLITE_TRIAL_STORE_H_

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler_service/store/group_committer.h"
#include "scheduler_service/store/trial_store.h"

namespace autocompress::scheduler {

namespace sqlite_internal {
// Defined in sqlite_trial_store.cc, keeping <sqlite3.h> out of this header.
class Connection;
struct WriteStatements;
struct ReadStatements;
}  // namespace sqlite_internal

class SqliteTrialStore final : public TrialStore {
 public:
  // PRAGMA synchronous; see the file comment for what each survives.
  enum class Synchronous { kFull, kNormal };

  struct Options {
    Synchronous synchronous = Synchronous::kFull;
    // How long a statement waits for a lock held by another connection (e.g. another
    // process on the same file) before failing with Unavailable.
    absl::Duration busy_timeout = absl::Seconds(5);
    // Caps the database at about this many bytes (PRAGMA max_page_count): a transaction
    // that would grow it further fails with ResourceExhausted, as on a full disk.
    // 0 = no cap.
    int64_t max_database_bytes = 0;
    // Bounds of one transaction.
    GroupCommitter::Options group;
  };

  // The schema version this binary writes.
  static constexpr int kSchemaVersion = 1;

  // Opens (creating it if absent) the database at `path`, migrating it to
  // kSchemaVersion.
  static absl::StatusOr<std::unique_ptr<SqliteTrialStore>> Open(const std::string& path,
                                                                Options options);
  static absl::StatusOr<std::unique_ptr<SqliteTrialStore>> Open(const std::string& path) {
    return Open(path, Options());
  }

  // Commits what is queued, then closes the database.
  ~SqliteTrialStore() override;

  SqliteTrialStore(const SqliteTrialStore&) = delete;
  SqliteTrialStore& operator=(const SqliteTrialStore&) = delete;

  std::shared_future<absl::Status> Submit(WriteBatch batch) override;
  // On the calling thread, behind every batch submitted before (no queue hop).
  absl::Status Commit(const WriteBatch& batch) override;
  // Experiments by id, trials by (experiment_id, sequence, id), metrics by
  // (trial_id, attempt, step).
  absl::StatusOr<StoredState> LoadAll() override;
  // A negative `limit` is InvalidArgument; an unknown experiment has no events.
  absl::StatusOr<std::vector<v1::ExperimentEvent>> ReadEvents(const std::string& experiment_id,
                                                              int64_t after_sequence,
                                                              int limit) override;

 private:
  using Connection = sqlite_internal::Connection;
  using WriteStatements = sqlite_internal::WriteStatements;
  using ReadStatements = sqlite_internal::ReadStatements;

  SqliteTrialStore(std::unique_ptr<Connection> writer, std::unique_ptr<WriteStatements> write,
                   std::unique_ptr<Connection> reader, std::unique_ptr<ReadStatements> read,
                   const GroupCommitter::Options& group);

  // The committer's function: `group` in one transaction.
  absl::Status WriteGroup(const std::vector<const WriteBatch*>& group);

  // Used by the committer's thread only (and by Open before it starts).
  const std::unique_ptr<Connection> writer_;
  const std::unique_ptr<WriteStatements> write_;

  absl::Mutex read_mu_;
  const std::unique_ptr<Connection> reader_ ABSL_PT_GUARDED_BY(read_mu_);
  const std::unique_ptr<ReadStatements> read_ ABSL_PT_GUARDED_BY(read_mu_);

  // Last member: destroyed first, so it drains while the connections are still open.
  std::unique_ptr<GroupCommitter> committer_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_STORE_SQLITE_TRIAL_STORE_H_
