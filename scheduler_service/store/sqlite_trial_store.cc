#include "scheduler_service/store/sqlite_trial_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace autocompress::scheduler {
namespace sqlite_internal {
namespace {

// The schema, one step per version, applied in order. A released step never changes;
// a schema change is a new step at the end (and kSchemaVersion raised to it).
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE experiments (
  id TEXT NOT NULL PRIMARY KEY,
  request_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  create_time_seconds INTEGER NOT NULL,
  experiment BLOB NOT NULL
);
CREATE UNIQUE INDEX experiments_by_request_id ON experiments (request_id)
  WHERE request_id <> '';
CREATE TABLE trials (
  id TEXT NOT NULL PRIMARY KEY,
  experiment_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  state INTEGER NOT NULL,
  acked_event_sequence INTEGER NOT NULL,
  trial BLOB NOT NULL
);
CREATE INDEX trials_by_experiment ON trials (experiment_id, sequence);
CREATE TABLE metrics (
  trial_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  step INTEGER NOT NULL,
  report BLOB NOT NULL,
  PRIMARY KEY (trial_id, attempt, step)
);
CREATE TABLE events (
  experiment_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  event BLOB NOT NULL,
  PRIMARY KEY (experiment_id, sequence)
);
)sql"},
};

constexpr bool MigrationsEndAtSchemaVersion() {
  int expected = 1;
  for (const Migration& m : kMigrations) {
    if (m.version != expected++) return false;
  }
  return expected - 1 == SqliteTrialStore::kSchemaVersion;
}
static_assert(MigrationsEndAtSchemaVersion(),
              "kMigrations must number 1, 2, ... up to SqliteTrialStore::kSchemaVersion");

constexpr char kUpsertExperiment[] = R"sql(
INSERT INTO experiments (id, request_id, state, create_time_seconds, experiment)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (id) DO UPDATE SET
  request_id = excluded.request_id, state = excluded.state,
  create_time_seconds = excluded.create_time_seconds, experiment = excluded.experiment)sql";
constexpr char kUpsertTrial[] = R"sql(
INSERT INTO trials (id, experiment_id, sequence, state, acked_event_sequence, trial)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (id) DO UPDATE SET
  experiment_id = excluded.experiment_id, sequence = excluded.sequence,
  state = excluded.state, acked_event_sequence = excluded.acked_event_sequence,
  trial = excluded.trial)sql";
constexpr char kUpsertMetric[] = R"sql(
INSERT INTO metrics (trial_id, attempt, step, report) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (trial_id, attempt, step) DO UPDATE SET report = excluded.report)sql";
constexpr char kUpsertEvent[] = R"sql(
INSERT INTO events (experiment_id, sequence, event) VALUES (?1, ?2, ?3)
ON CONFLICT (experiment_id, sequence) DO UPDATE SET event = excluded.event)sql";

constexpr char kSelectExperiments[] =
    "SELECT id, request_id, experiment FROM experiments ORDER BY id";
constexpr char kSelectTrials[] =
    "SELECT id, acked_event_sequence, trial FROM trials ORDER BY experiment_id, sequence, id";
constexpr char kSelectMetrics[] =
    "SELECT trial_id, attempt, report FROM metrics ORDER BY trial_id, attempt, step";
constexpr char kSelectLastSequences[] =
    "SELECT experiment_id, MAX(sequence) FROM events GROUP BY experiment_id";
constexpr char kSelectEvents[] =
    "SELECT sequence, event FROM events WHERE experiment_id = ?1 AND sequence > ?2 "
    "ORDER BY sequence LIMIT ?3";

absl::StatusCode CodeOf(int rc) {
  if (rc == SQLITE_IOERR_NOMEM) return absl::StatusCode::kResourceExhausted;
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return absl::StatusCode::kAlreadyExists;
  }
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_TOOBIG:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::StatusCode::kFailedPrecondition;
    default:
      return absl::StatusCode::kInternal;
  }
}

// `status` with "<operation>: " in front of its message.
absl::Status Annotate(const absl::Status& status, absl::string_view operation) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(operation, ": ", status.message()));
}

template <typename T>
absl::StatusOr<T> Annotate(absl::StatusOr<T> value, absl::string_view operation) {
  if (value.ok()) return value;
  return Annotate(value.status(), operation);
}

// Resets a statement when leaving scope, so it holds no lock and keeps no bindings to
// buffers that are about to go.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  sqlite3_stmt* const stmt_;
};

struct FinalizeStatement {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using OwnedStatement = std::unique_ptr<sqlite3_stmt, FinalizeStatement>;

// Binders return SQLite's code; FirstError keeps the first failure of a row's binds.
int BindText(sqlite3_stmt* stmt, int index, const std::string& text) {
  return sqlite3_bind_text64(stmt, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

int BindBlob(sqlite3_stmt* stmt, int index, const std::string& blob) {
  return sqlite3_bind_blob64(stmt, index, blob.data(), blob.size(), SQLITE_STATIC);
}

int FirstError(std::initializer_list<int> codes) {
  for (int rc : codes) {
    if (rc != SQLITE_OK) return rc;
  }
  return SQLITE_OK;
}

// The blob of column `col` of the current row, parsed into `message`.
bool ParseColumn(sqlite3_stmt* stmt, int col, google::protobuf::MessageLite& message) {
  const void* data = sqlite3_column_blob(stmt, col);
  const int size = sqlite3_column_bytes(stmt, col);
  return message.ParseFromArray(data, size);
}

std::string TextColumn(sqlite3_stmt* stmt, int col) {
  const unsigned char* text = sqlite3_column_text(stmt, col);
  const int size = sqlite3_column_bytes(stmt, col);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text), size);
}

absl::Status Serialize(const google::protobuf::MessageLite& message, std::string& out) {
  if (!message.SerializeToString(&out)) {
    return absl::InvalidArgumentError("the message does not serialize (over 2 GiB?)");
  }
  return absl::OkStatus();
}

absl::Status SyncDirectoryOf(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int error = errno;
    if (fd >= 0) ::close(fd);
    return absl::UnavailableError(absl::StrCat("fsync of directory ", dir, ": ", strerror(error)));
  }
  ::close(fd);
  return absl::OkStatus();
}

}  // namespace

// One sqlite3 handle and the statements cached on it, finalized before it closes. The
// errors it returns carry SQLite's message only; callers put the operation in front.
class Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, int flags,
                                                          absl::Duration busy_timeout) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    // Even a failed open returns a handle (holding the message) that must be closed.
    auto connection = std::unique_ptr<Connection>(new Connection(db));
    if (rc != SQLITE_OK) return connection->Error(rc);
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, static_cast<int>(std::clamp<int64_t>(
                                 absl::ToInt64Milliseconds(busy_timeout), 0, INT32_MAX)));
    return connection;
  }

  ~Connection() {
    cached_.clear();
    sqlite3_close_v2(db_);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The error of the call on this connection that just returned `rc`.
  absl::Status Error(int rc) const {
    return absl::Status(CodeOf(rc), db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  }

  // Runs statements that return nothing the caller needs.
  absl::Status Exec(const std::string& sql) {
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : Error(rc);
  }

  // Prepares `sql` once for the connection's life.
  absl::StatusOr<sqlite3_stmt*> Cache(const char* sql) {
    ASSIGN_OR_RETURN(OwnedStatement stmt, Prepare(sql, SQLITE_PREPARE_PERSISTENT));
    cached_.push_back(std::move(stmt));
    return cached_.back().get();
  }

  // Binds with `bind(stmt)` (returning SQLite's code), steps a statement that returns no
  // rows, then resets it.
  template <typename Bind>
  absl::Status Write(sqlite3_stmt* stmt, Bind bind) {
    ResetOnExit reset(stmt);
    if (const int rc = bind(stmt); rc != SQLITE_OK) {
      return absl::Status(CodeOf(rc), sqlite3_errstr(rc));
    }
    const int rc = sqlite3_step(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc);
  }

  absl::Status Run(sqlite3_stmt* stmt) {
    return Write(stmt, [](sqlite3_stmt*) { return SQLITE_OK; });
  }

  // Calls `on_row(stmt)` for each row of `stmt` (bound by the caller), then resets it.
  template <typename OnRow>
  absl::Status ForEachRow(sqlite3_stmt* stmt, OnRow on_row) {
    ResetOnExit reset(stmt);
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) return absl::OkStatus();
      if (rc != SQLITE_ROW) return Error(rc);
      RETURN_IF_ERROR(on_row(stmt));
    }
  }

  // The first column of the first row of `sql`, which runs once.
  absl::StatusOr<std::string> QueryText(const std::string& sql) {
    ASSIGN_OR_RETURN(OwnedStatement stmt, Prepare(sql.c_str(), 0));
    std::string value;
    RETURN_IF_ERROR(ForEachRow(stmt.get(), [&](sqlite3_stmt* row) {
      if (value.empty()) value = TextColumn(row, 0);
      return absl::OkStatus();
    }));
    return value;
  }

  absl::StatusOr<int64_t> QueryInt(const std::string& sql) {
    ASSIGN_OR_RETURN(OwnedStatement stmt, Prepare(sql.c_str(), 0));
    int64_t value = 0;
    RETURN_IF_ERROR(ForEachRow(stmt.get(), [&](sqlite3_stmt* row) {
      value = sqlite3_column_int64(row, 0);
      return absl::OkStatus();
    }));
    return value;
  }

  // Rolls back the open transaction, if any (SQLite itself ends it on some errors).
  void RollbackIfOpen() {
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  absl::StatusOr<OwnedStatement> Prepare(const char* sql, unsigned int flags) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, flags, &stmt, nullptr);
    if (rc != SQLITE_OK) return Annotate(Error(rc), absl::StrCat("prepare \"", sql, "\""));
    return OwnedStatement(stmt);
  }

  sqlite3* const db_;
  std::vector<OwnedStatement> cached_;
};

struct WriteStatements {
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* upsert_experiment = nullptr;
  sqlite3_stmt* upsert_trial = nullptr;
  sqlite3_stmt* upsert_metric = nullptr;
  sqlite3_stmt* upsert_event = nullptr;
};

struct ReadStatements {
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* end = nullptr;
  sqlite3_stmt* experiments = nullptr;
  sqlite3_stmt* trials = nullptr;
  sqlite3_stmt* metrics = nullptr;
  sqlite3_stmt* last_sequences = nullptr;
  sqlite3_stmt* events = nullptr;
};

namespace {

absl::Status Configure(Connection& db, const SqliteTrialStore::Options& options) {
  // The first read of the file: a file that is no database fails here.
  ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode = WAL"));
  if (absl::AsciiStrToLower(mode) != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use write-ahead logging (journal mode stays ", mode, ")"));
  }
  RETURN_IF_ERROR(db.Exec(options.synchronous == SqliteTrialStore::Synchronous::kFull
                              ? "PRAGMA synchronous = FULL"
                              : "PRAGMA synchronous = NORMAL"));
  if (options.max_database_bytes > 0) {
    ASSIGN_OR_RETURN(const int64_t page_size, db.QueryInt("PRAGMA page_size"));
    const int64_t pages = std::max<int64_t>(1, options.max_database_bytes / page_size);
    RETURN_IF_ERROR(db.Exec(absl::StrCat("PRAGMA max_page_count = ", pages)));
  }
  return absl::OkStatus();
}

// Applies the migrations after the recorded version, in the caller's transaction.
absl::Status ApplyMigrations(Connection& db) {
  RETURN_IF_ERROR(
      db.Exec("CREATE TABLE IF NOT EXISTS schema_version ("
              "version INTEGER NOT NULL PRIMARY KEY, applied_time TEXT NOT NULL)"));
  ASSIGN_OR_RETURN(const int64_t version,
                   db.QueryInt("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
  if (version > SqliteTrialStore::kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema version ", version, " is newer than this binary's ",
                     SqliteTrialStore::kSchemaVersion,
                     "; run the scheduler that wrote it, or start on a fresh data directory"));
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= version) continue;
    const std::string step = absl::StrCat("migrate to schema ", m.version);
    RETURN_IF_ERROR(Annotate(db.Exec(m.sql), step));
    RETURN_IF_ERROR(Annotate(db.Exec(absl::StrCat("INSERT INTO schema_version VALUES (", m.version,
                                                  ", datetime('now'))")),
                             step));
  }
  return absl::OkStatus();
}

// Brings the schema to kSchemaVersion in one transaction. IMMEDIATE takes the write lock
// before reading the version, so two processes opening a new file do not both migrate.
absl::Status Migrate(Connection& db) {
  RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  absl::Status status = ApplyMigrations(db);
  if (status.ok()) status = db.Exec("COMMIT");
  if (!status.ok()) db.RollbackIfOpen();
  return status;
}

template <typename Statements>
absl::Status CacheAll(
    Connection& db,
    std::initializer_list<std::pair<sqlite3_stmt * Statements::*, const char*>> fields,
    Statements& out) {
  for (const auto& [field, sql] : fields) {
    ASSIGN_OR_RETURN(out.*field, db.Cache(sql));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Connection>> OpenWriter(const std::string& path,
                                                       const SqliteTrialStore::Options& options,
                                                       WriteStatements& statements) {
  ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> db,
      Connection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout));
  RETURN_IF_ERROR(Configure(*db, options));
  RETURN_IF_ERROR(Migrate(*db));
  RETURN_IF_ERROR(SyncDirectoryOf(path));
  RETURN_IF_ERROR(
      CacheAll<WriteStatements>(*db,
                                {{&WriteStatements::begin, "BEGIN IMMEDIATE"},
                                 {&WriteStatements::commit, "COMMIT"},
                                 {&WriteStatements::upsert_experiment, kUpsertExperiment},
                                 {&WriteStatements::upsert_trial, kUpsertTrial},
                                 {&WriteStatements::upsert_metric, kUpsertMetric},
                                 {&WriteStatements::upsert_event, kUpsertEvent}},
                                statements));
  return db;
}

absl::StatusOr<std::unique_ptr<Connection>> OpenReader(const std::string& path,
                                                       const SqliteTrialStore::Options& options,
                                                       ReadStatements& statements) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> db,
                   Connection::Open(path, SQLITE_OPEN_READONLY, options.busy_timeout));
  RETURN_IF_ERROR(CacheAll<ReadStatements>(*db,
                                           {{&ReadStatements::begin, "BEGIN"},
                                            {&ReadStatements::end, "COMMIT"},
                                            {&ReadStatements::experiments, kSelectExperiments},
                                            {&ReadStatements::trials, kSelectTrials},
                                            {&ReadStatements::metrics, kSelectMetrics},
                                            {&ReadStatements::last_sequences, kSelectLastSequences},
                                            {&ReadStatements::events, kSelectEvents}},
                                           statements));
  return db;
}

absl::Status WriteExperiment(Connection& db, sqlite3_stmt* stmt, const StoredExperiment& e,
                             std::string& blob) {
  RETURN_IF_ERROR(Serialize(e.experiment, blob));
  return db.Write(stmt, [&](sqlite3_stmt* s) {
    return FirstError({BindText(s, 1, e.experiment.id()), BindText(s, 2, e.request_id),
                       sqlite3_bind_int(s, 3, e.experiment.state()),
                       sqlite3_bind_int64(s, 4, e.experiment.create_time().seconds()),
                       BindBlob(s, 5, blob)});
  });
}

absl::Status WriteTrial(Connection& db, sqlite3_stmt* stmt, const StoredTrial& t,
                        std::string& blob) {
  const v1::Trial& trial = t.trial;
  if (trial.intermediate_size() == 0) {
    RETURN_IF_ERROR(Serialize(trial, blob));
  } else {
    // Intermediate reports live in `metrics`; the snapshot is stored without them.
    v1::Trial stripped = trial;
    stripped.clear_intermediate();
    RETURN_IF_ERROR(Serialize(stripped, blob));
  }
  return db.Write(stmt, [&](sqlite3_stmt* s) {
    return FirstError({BindText(s, 1, trial.id()), BindText(s, 2, trial.experiment_id()),
                       sqlite3_bind_int64(s, 3, trial.sequence()),
                       sqlite3_bind_int(s, 4, trial.state()),
                       sqlite3_bind_int64(s, 5, t.acked_event_sequence), BindBlob(s, 6, blob)});
  });
}

absl::Status WriteMetric(Connection& db, sqlite3_stmt* stmt, const StoredMetric& m,
                         std::string& blob) {
  RETURN_IF_ERROR(Serialize(m.report, blob));
  return db.Write(stmt, [&](sqlite3_stmt* s) {
    return FirstError({BindText(s, 1, m.trial_id), sqlite3_bind_int(s, 2, m.attempt),
                       sqlite3_bind_int64(s, 3, m.report.step()), BindBlob(s, 4, blob)});
  });
}

absl::Status WriteEvent(Connection& db, sqlite3_stmt* stmt, const StoredEvent& e,
                        std::string& blob) {
  RETURN_IF_ERROR(Serialize(e.event, blob));
  return db.Write(stmt, [&](sqlite3_stmt* s) {
    return FirstError({BindText(s, 1, e.experiment_id),
                       sqlite3_bind_int64(s, 2, e.event.sequence()), BindBlob(s, 3, blob)});
  });
}

// Every row of `batch`, in the writer's open transaction.
absl::Status WriteRows(Connection& db, const WriteStatements& statements, const WriteBatch& batch) {
  std::string blob;  // reused: one allocation per batch, not per row
  for (const StoredExperiment& e : batch.experiments) {
    RETURN_IF_ERROR(Annotate(WriteExperiment(db, statements.upsert_experiment, e, blob),
                             absl::StrCat("sqlite upsert experiment ", e.experiment.id())));
  }
  for (const StoredTrial& t : batch.trials) {
    RETURN_IF_ERROR(Annotate(WriteTrial(db, statements.upsert_trial, t, blob),
                             absl::StrCat("sqlite upsert trial ", t.trial.id())));
  }
  for (const StoredMetric& m : batch.metrics) {
    RETURN_IF_ERROR(Annotate(WriteMetric(db, statements.upsert_metric, m, blob),
                             absl::StrCat("sqlite upsert metric ", m.trial_id, " attempt ",
                                          m.attempt, " step ", m.report.step())));
  }
  for (const StoredEvent& e : batch.events) {
    RETURN_IF_ERROR(Annotate(
        WriteEvent(db, statements.upsert_event, e, blob),
        absl::StrCat("sqlite upsert event ", e.experiment_id, " sequence ", e.event.sequence())));
  }
  return absl::OkStatus();
}

absl::Status ReadExperiment(sqlite3_stmt* row, StoredState& state) {
  StoredExperiment& e = state.experiments.emplace_back();
  e.request_id = TextColumn(row, 1);
  if (ParseColumn(row, 2, e.experiment)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("experiment ", TextColumn(row, 0), " does not parse"));
}

absl::Status ReadTrial(sqlite3_stmt* row, StoredState& state) {
  StoredTrial& t = state.trials.emplace_back();
  t.acked_event_sequence = sqlite3_column_int64(row, 1);
  if (ParseColumn(row, 2, t.trial)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("trial ", TextColumn(row, 0), " does not parse"));
}

absl::Status ReadMetric(sqlite3_stmt* row, StoredState& state) {
  StoredMetric& m = state.metrics.emplace_back();
  m.trial_id = TextColumn(row, 0);
  m.attempt = sqlite3_column_int(row, 1);
  if (ParseColumn(row, 2, m.report)) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("a report of trial ", m.trial_id, " attempt ", m.attempt, " does not parse"));
}

absl::Status ReadLastSequence(sqlite3_stmt* row, StoredState& state) {
  state.last_event_sequence[TextColumn(row, 0)] = sqlite3_column_int64(row, 1);
  return absl::OkStatus();
}

// Everything but the events, in the reader's open transaction.
absl::Status ReadState(Connection& db, const ReadStatements& statements, StoredState& state) {
  const std::pair<sqlite3_stmt*, absl::Status (*)(sqlite3_stmt*, StoredState&)> queries[] = {
      {statements.experiments, ReadExperiment},
      {statements.trials, ReadTrial},
      {statements.metrics, ReadMetric},
      {statements.last_sequences, ReadLastSequence},
  };
  for (const auto& [stmt, read_row] : queries) {
    RETURN_IF_ERROR(db.ForEachRow(
        stmt, [&, read_row = read_row](sqlite3_stmt* row) { return read_row(row, state); }));
  }
  return absl::OkStatus();
}

absl::Status ReadEventRows(Connection& db, sqlite3_stmt* stmt, const std::string& experiment_id,
                           int64_t after_sequence, int limit,
                           std::vector<v1::ExperimentEvent>& events) {
  ResetOnExit reset(stmt);  // also when a bind fails
  if (const int rc =
          FirstError({BindText(stmt, 1, experiment_id), sqlite3_bind_int64(stmt, 2, after_sequence),
                      sqlite3_bind_int(stmt, 3, limit)});
      rc != SQLITE_OK) {
    return absl::Status(CodeOf(rc), sqlite3_errstr(rc));
  }
  return db.ForEachRow(stmt, [&](sqlite3_stmt* row) {
    if (ParseColumn(row, 1, events.emplace_back())) return absl::OkStatus();
    return absl::DataLossError(
        absl::StrCat("event ", sqlite3_column_int64(row, 0), " does not parse"));
  });
}

}  // namespace
}  // namespace sqlite_internal

absl::StatusOr<std::unique_ptr<SqliteTrialStore>> SqliteTrialStore::Open(const std::string& path,
                                                                         Options options) {
  const std::string operation = absl::StrCat("sqlite open ", path);
  auto write = std::make_unique<WriteStatements>();
  ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> writer,
      sqlite_internal::Annotate(sqlite_internal::OpenWriter(path, options, *write), operation));
  auto read = std::make_unique<ReadStatements>();
  ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> reader,
      sqlite_internal::Annotate(sqlite_internal::OpenReader(path, options, *read), operation));
  return std::unique_ptr<SqliteTrialStore>(new SqliteTrialStore(
      std::move(writer), std::move(write), std::move(reader), std::move(read), options.group));
}

SqliteTrialStore::SqliteTrialStore(std::unique_ptr<Connection> writer,
                                   std::unique_ptr<WriteStatements> write,
                                   std::unique_ptr<Connection> reader,
                                   std::unique_ptr<ReadStatements> read,
                                   const GroupCommitter::Options& group)
    : writer_(std::move(writer)),
      write_(std::move(write)),
      reader_(std::move(reader)),
      read_(std::move(read)),
      committer_(std::make_unique<GroupCommitter>(
          [this](const std::vector<const WriteBatch*>& batches) { return WriteGroup(batches); },
          group)) {}

SqliteTrialStore::~SqliteTrialStore() { committer_.reset(); }

std::shared_future<absl::Status> SqliteTrialStore::Submit(WriteBatch batch) {
  return committer_->Submit(std::move(batch));
}

absl::Status SqliteTrialStore::Commit(const WriteBatch& batch) {
  return committer_->CommitNow(batch);
}

absl::Status SqliteTrialStore::WriteGroup(const std::vector<const WriteBatch*>& group) {
  using sqlite_internal::Annotate;
  // A ROLLBACK that failed last time would otherwise make every BEGIN fail.
  writer_->RollbackIfOpen();
  RETURN_IF_ERROR(Annotate(writer_->Run(write_->begin), "sqlite begin"));
  absl::Status status;
  for (const WriteBatch* batch : group) {
    status = sqlite_internal::WriteRows(*writer_, *write_, *batch);
    if (!status.ok()) break;
  }
  if (status.ok()) status = Annotate(writer_->Run(write_->commit), "sqlite commit");
  if (!status.ok()) writer_->RollbackIfOpen();
  return status;
}

absl::StatusOr<StoredState> SqliteTrialStore::LoadAll() {
  using sqlite_internal::Annotate;
  absl::MutexLock lock(&read_mu_);
  StoredState state;
  // One read transaction, so the four queries see the same commit.
  RETURN_IF_ERROR(Annotate(reader_->Run(read_->begin), "sqlite load"));
  absl::Status status =
      Annotate(sqlite_internal::ReadState(*reader_, *read_, state), "sqlite load");
  if (status.ok()) status = Annotate(reader_->Run(read_->end), "sqlite load");
  if (!status.ok()) {
    reader_->RollbackIfOpen();
    return status;
  }
  return state;
}

absl::StatusOr<std::vector<v1::ExperimentEvent>> SqliteTrialStore::ReadEvents(
    const std::string& experiment_id, int64_t after_sequence, int limit) {
  const std::string operation = absl::StrCat("sqlite read events of ", experiment_id);
  if (limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat(operation, ": negative limit ", limit));
  }
  std::vector<v1::ExperimentEvent> events;
  if (limit == 0) return events;
  absl::MutexLock lock(&read_mu_);
  RETURN_IF_ERROR(sqlite_internal::Annotate(
      sqlite_internal::ReadEventRows(*reader_, read_->events, experiment_id, after_sequence, limit,
                                     events),
      operation));
  return events;
}

}  // namespace autocompress::scheduler
