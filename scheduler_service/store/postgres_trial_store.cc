#include "scheduler_service/store/postgres_trial_store.h"

#include <endian.h>
#include <postgresql/libpq-fe.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace autocompress::scheduler {
namespace postgres_internal {
namespace {

// The schema, one step per version, applied in order. A released step never changes; a
// schema change is a new step at the end (and kSchemaVersion raised to it). Ids collate
// as bytes ("C"), so the orders LoadAll returns are SQLite's.
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE experiments (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  request_id TEXT COLLATE "C" NOT NULL,
  state INTEGER NOT NULL,
  create_time_seconds BIGINT NOT NULL,
  experiment BYTEA NOT NULL
);
CREATE UNIQUE INDEX experiments_by_request_id ON experiments (request_id)
  WHERE request_id <> '';
CREATE TABLE trials (
  id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
  experiment_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  state INTEGER NOT NULL,
  acked_event_sequence BIGINT NOT NULL,
  trial BYTEA NOT NULL
);
CREATE INDEX trials_by_experiment ON trials (experiment_id, sequence);
CREATE TABLE metrics (
  trial_id TEXT COLLATE "C" NOT NULL,
  attempt INTEGER NOT NULL,
  step BIGINT NOT NULL,
  report BYTEA NOT NULL,
  PRIMARY KEY (trial_id, attempt, step)
);
CREATE TABLE events (
  experiment_id TEXT COLLATE "C" NOT NULL,
  sequence BIGINT NOT NULL,
  event BYTEA NOT NULL,
  PRIMARY KEY (experiment_id, sequence)
);
)sql"},
};

constexpr bool MigrationsEndAtSchemaVersion() {
  int expected = 1;
  for (const Migration& m : kMigrations) {
    if (m.version != expected++) return false;
  }
  return expected - 1 == PostgresTrialStore::kSchemaVersion;
}
static_assert(MigrationsEndAtSchemaVersion(),
              "kMigrations must number 1, 2, ... up to PostgresTrialStore::kSchemaVersion");

// A prepared statement: its name on the connection and its SQL.
struct Statement {
  const char* name;
  const char* sql;
};

constexpr Statement kBegin = {"begin", "BEGIN"};
constexpr Statement kCommit = {"commit", "COMMIT"};
constexpr Statement kUpsertExperiment = {"upsert_experiment", R"sql(
INSERT INTO experiments (id, request_id, state, create_time_seconds, experiment)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET
  request_id = excluded.request_id, state = excluded.state,
  create_time_seconds = excluded.create_time_seconds, experiment = excluded.experiment)sql"};
constexpr Statement kUpsertTrial = {"upsert_trial", R"sql(
INSERT INTO trials (id, experiment_id, sequence, state, acked_event_sequence, trial)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET
  experiment_id = excluded.experiment_id, sequence = excluded.sequence,
  state = excluded.state, acked_event_sequence = excluded.acked_event_sequence,
  trial = excluded.trial)sql"};
constexpr Statement kUpsertMetric = {"upsert_metric", R"sql(
INSERT INTO metrics (trial_id, attempt, step, report) VALUES ($1, $2, $3, $4)
ON CONFLICT (trial_id, attempt, step) DO UPDATE SET report = excluded.report)sql"};
constexpr Statement kUpsertEvent = {"upsert_event", R"sql(
INSERT INTO events (experiment_id, sequence, event) VALUES ($1, $2, $3)
ON CONFLICT (experiment_id, sequence) DO UPDATE SET event = excluded.event)sql"};

constexpr Statement kWriteStatements[] = {kBegin,       kCommit,       kUpsertExperiment,
                                          kUpsertTrial, kUpsertMetric, kUpsertEvent};

// Read with binary results: integers come back as big-endian int8.
constexpr Statement kSelectExperiments = {
    "select_experiments", "SELECT id, request_id, experiment FROM experiments ORDER BY id"};
constexpr Statement kSelectTrials = {
    "select_trials",
    "SELECT id, acked_event_sequence, trial FROM trials ORDER BY experiment_id, sequence, id"};
constexpr Statement kSelectMetrics = {
    "select_metrics",
    "SELECT trial_id, attempt::int8, report FROM metrics ORDER BY trial_id, attempt, step"};
constexpr Statement kSelectLastSequences = {
    "select_last_sequences",
    "SELECT experiment_id, MAX(sequence) FROM events GROUP BY experiment_id"};
constexpr Statement kSelectEvents = {
    "select_events",
    "SELECT sequence, event FROM events WHERE experiment_id = $1 AND sequence > $2 "
    "ORDER BY sequence LIMIT $3"};

constexpr Statement kReadStatements[] = {kSelectExperiments, kSelectTrials, kSelectMetrics,
                                         kSelectLastSequences, kSelectEvents};

absl::StatusCode CodeOfSqlState(absl::string_view state) {
  if (state == "23505") return absl::StatusCode::kAlreadyExists;
  if (state == "XX001" || state == "XX002") return absl::StatusCode::kDataLoss;
  if (state == "42501" || state == "25006") return absl::StatusCode::kFailedPrecondition;
  if (state == "57P01" || state == "57P02" || state == "57P03") {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "53")) return absl::StatusCode::kResourceExhausted;
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "40")) {
    return absl::StatusCode::kUnavailable;
  }
  return absl::StatusCode::kInternal;
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

std::string TrimmedMessage(const char* message) {
  return std::string(absl::StripTrailingAsciiWhitespace(message == nullptr ? "" : message));
}

// Who and where `conninfo` points at, without its password: "user@host:port/dbname".
std::string Describe(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return "(unparsable connection string)";
  }
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const absl::string_view keyword = o->keyword;
    if (keyword == "user") user = o->val;
    if (keyword == "host" || (keyword == "hostaddr" && host.empty())) host = o->val;
    if (keyword == "port") port = o->val;
    if (keyword == "dbname") dbname = o->val;
  }
  PQconninfoFree(options);
  return absl::StrCat(user, user.empty() ? "" : "@", host.empty() ? "localhost" : host,
                      port.empty() ? "" : ":", port, "/", dbname);
}

struct ClearResult {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ClearResult>;

// The parameters of one statement. Text and Bytes keep a view of the caller's string,
// which must outlive the send (libpq copies it into its buffer then); Int owns its text.
class Params {
 public:
  Params& Text(const std::string& value) { return Add(value.c_str(), value.size(), 0); }
  Params& Bytes(const std::string& value) { return Add(value.data(), value.size(), 1); }
  Params& Int(int64_t value) {
    const std::string& text = numbers_.emplace_back(absl::StrCat(value));
    return Add(text.c_str(), text.size(), 0);
  }

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  Params& Add(const char* data, size_t size, int format) {
    values_.push_back(data);
    lengths_.push_back(static_cast<int>(size));
    formats_.push_back(format);
    return *this;
  }

  std::deque<std::string> numbers_;  // stable addresses
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// Binary-format columns of a result row.
std::string TextValue(const PGresult* result, int row, int col) {
  return std::string(PQgetvalue(result, row, col), PQgetlength(result, row, col));
}

int64_t IntValue(const PGresult* result, int row, int col) {
  const char* data = PQgetvalue(result, row, col);
  if (PQgetlength(result, row, col) == 4) {
    uint32_t value;
    std::memcpy(&value, data, sizeof(value));
    return static_cast<int32_t>(be32toh(value));
  }
  uint64_t value = 0;
  if (PQgetlength(result, row, col) == 8) std::memcpy(&value, data, sizeof(value));
  return static_cast<int64_t>(be64toh(value));
}

bool ParseValue(const PGresult* result, int row, int col, google::protobuf::MessageLite& message) {
  return message.ParseFromArray(PQgetvalue(result, row, col), PQgetlength(result, row, col));
}

absl::Status Serialize(const google::protobuf::MessageLite& message, std::string& out) {
  if (!message.SerializeToString(&out)) {
    return absl::InvalidArgumentError("the message does not serialize (over 2 GiB?)");
  }
  return absl::OkStatus();
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

// One libpq connection, re-established when lost. `setup` runs after every connect
// (session settings, the writer lock, prepared statements). Errors carry the server's
// message only; callers put the operation in front.
class Connection {
 public:
  using Setup = std::function<absl::Status(Connection&)>;

  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& conninfo,
                                                          absl::Duration connect_timeout,
                                                          Setup setup) {
    const std::string timeout = absl::StrCat(std::max<int64_t>(
        2, absl::ToInt64Seconds(connect_timeout)));  // libpq takes whole seconds, >= 2
    // Ours first, so that what `conninfo` sets wins (expand_dbname).
    const char* keywords[] = {"connect_timeout", "fallback_application_name", "dbname", nullptr};
    const char* values[] = {timeout.c_str(), "autocompress-scheduler", conninfo.c_str(), nullptr};
    auto connection = std::unique_ptr<Connection>(
        new Connection(PQconnectdbParams(keywords, values, /*expand_dbname=*/1), std::move(setup)));
    if (connection->conn_ == nullptr) return absl::ResourceExhaustedError("out of memory");
    if (PQstatus(connection->conn_) != CONNECTION_OK) return connection->ConnectionError();
    RETURN_IF_ERROR(connection->RunSetup());
    return connection;
  }

  ~Connection() { PQfinish(conn_); }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  PGconn* get() { return conn_; }

  // Reconnects (and runs the setup again) when the connection was lost or left mid-way.
  absl::Status EnsureConnected() {
    if (PQstatus(conn_) == CONNECTION_OK && PQpipelineStatus(conn_) == PQ_PIPELINE_OFF &&
        PQtransactionStatus(conn_) == PQTRANS_IDLE) {
      return absl::OkStatus();
    }
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) return ConnectionError();
    return RunSetup();
  }

  // The error of a call that failed without a result (or with `result`).
  absl::Status ConnectionError() const {
    return absl::UnavailableError(TrimmedMessage(PQerrorMessage(conn_)));
  }

  absl::Status ResultError(const PGresult* result) const {
    if (result == nullptr) return ConnectionError();
    const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    std::string message =
        primary != nullptr ? std::string(primary) : TrimmedMessage(PQresultErrorMessage(result));
    if (message.empty()) message = TrimmedMessage(PQerrorMessage(conn_));
    absl::StatusCode code =
        state != nullptr ? CodeOfSqlState(state) : absl::StatusCode::kUnavailable;
    if (PQstatus(conn_) != CONNECTION_OK) code = absl::StatusCode::kUnavailable;
    return absl::Status(code, message);
  }

  // Runs `sql` (one or more statements, simple protocol), discarding rows.
  absl::Status Exec(const std::string& sql) {
    Result result(PQexec(conn_, sql.c_str()));
    const ExecStatusType status = PQresultStatus(result.get());
    if (result != nullptr && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)) {
      return absl::OkStatus();
    }
    return ResultError(result.get());
  }

  // The first column of the first row of `sql` as text ("" when no row).
  absl::StatusOr<std::string> QueryText(const std::string& sql) {
    Result result(PQexec(conn_, sql.c_str()));
    if (result == nullptr || PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
      return ResultError(result.get());
    }
    if (PQntuples(result.get()) == 0 || PQgetisnull(result.get(), 0, 0)) return std::string();
    return std::string(PQgetvalue(result.get(), 0, 0));
  }

  absl::StatusOr<int64_t> QueryInt(const std::string& sql) {
    ASSIGN_OR_RETURN(const std::string text, QueryText(sql));
    int64_t value = 0;
    if (!text.empty() && !absl::SimpleAtoi(text, &value)) {
      return absl::InternalError(absl::StrCat("\"", sql, "\" returned \"", text, "\""));
    }
    return value;
  }

  absl::Status Prepare(const Statement& statement) {
    Result result(PQprepare(conn_, statement.name, statement.sql, 0, nullptr));
    if (result != nullptr && PQresultStatus(result.get()) == PGRES_COMMAND_OK) {
      return absl::OkStatus();
    }
    return Annotate(ResultError(result.get()), absl::StrCat("prepare ", statement.name));
  }

  // Runs a prepared statement, binary results; calls `on_row(result, row)` per row.
  template <typename OnRow>
  absl::Status Query(const Statement& statement, const Params& params, OnRow on_row) {
    Result result(PQexecPrepared(conn_, statement.name, params.size(), params.values(),
                                 params.lengths(), params.formats(), /*resultFormat=*/1));
    if (result == nullptr || PQresultStatus(result.get()) != PGRES_TUPLES_OK) {
      return ResultError(result.get());
    }
    const int rows = PQntuples(result.get());
    for (int row = 0; row < rows; ++row) RETURN_IF_ERROR(on_row(result.get(), row));
    return absl::OkStatus();
  }

  // Ends a failed transaction (or one left open by a lost answer).
  void RollbackIfOpen() {
    if (PQstatus(conn_) == CONNECTION_OK && PQpipelineStatus(conn_) == PQ_PIPELINE_OFF &&
        PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      Result(PQexec(conn_, "ROLLBACK"));
    }
  }

 private:
  Connection(PGconn* conn, Setup setup) : conn_(conn), setup_(std::move(setup)) {
    if (conn_ != nullptr) PQsetNoticeProcessor(conn_, IgnoreNotice, nullptr);
  }

  absl::Status RunSetup() { return setup_ ? setup_(*this) : absl::OkStatus(); }

  PGconn* const conn_;
  const Setup setup_;
};

namespace {

// The writer's statements of one group, pipelined: a sync point every kPipelineChunk
// statements, where the results so far are read. After the first error the server skips
// everything up to the next sync; Send then refuses further statements.
class Pipeline {
 public:
  explicit Pipeline(Connection& db) : db_(db) {
    if (PQenterPipelineMode(db_.get()) != 1) error_ = db_.ConnectionError();
  }

  ~Pipeline() {
    if (!labels_.empty()) Sync().IgnoreError();
    PQexitPipelineMode(db_.get());
  }

  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Queues `statement`; `label` names it in its error.
  absl::Status Send(const Statement& statement, const Params& params, std::string label) {
    if (!error_.ok()) return error_;
    if (PQsendQueryPrepared(db_.get(), statement.name, params.size(), params.values(),
                            params.lengths(), params.formats(), /*resultFormat=*/0) != 1) {
      error_ = Annotate(db_.ConnectionError(), label);
      return error_;
    }
    labels_.push_back(std::move(label));
    if (labels_.size() >= PostgresTrialStore::kPipelineChunk) return Sync();
    return absl::OkStatus();
  }

  // Sends a sync point and reads every result up to it; the first error.
  absl::Status Sync() {
    if (!error_.ok() || labels_.empty()) return error_;
    if (PQpipelineSync(db_.get()) != 1) {
      error_ = db_.ConnectionError();
      labels_.clear();
      return error_;
    }
    size_t next = 0;  // the statement whose results come next
    for (;;) {
      Result result(PQgetResult(db_.get()));
      if (result == nullptr) {
        // The end of one statement's results, or of the connection.
        if (PQstatus(db_.get()) != CONNECTION_OK) {
          if (error_.ok()) error_ = db_.ConnectionError();
          break;
        }
        ++next;
        continue;
      }
      const ExecStatusType status = PQresultStatus(result.get());
      if (status == PGRES_PIPELINE_SYNC) break;
      if (status == PGRES_FATAL_ERROR && error_.ok()) {
        error_ = Annotate(db_.ResultError(result.get()),
                          next < labels_.size() ? labels_[next] : "postgres");
      }
    }
    labels_.clear();
    return error_;
  }

 private:
  Connection& db_;
  std::vector<std::string> labels_;  // of the statements sent since the last sync
  absl::Status error_;
};

absl::Status SendExperiment(Pipeline& pipeline, const StoredExperiment& e, std::string& blob) {
  RETURN_IF_ERROR(Serialize(e.experiment, blob));
  Params params;
  params.Text(e.experiment.id())
      .Text(e.request_id)
      .Int(e.experiment.state())
      .Int(e.experiment.create_time().seconds())
      .Bytes(blob);
  return pipeline.Send(kUpsertExperiment, params,
                       absl::StrCat("postgres upsert experiment ", e.experiment.id()));
}

absl::Status SendTrial(Pipeline& pipeline, const StoredTrial& t, std::string& blob) {
  const v1::Trial& trial = t.trial;
  if (trial.intermediate_size() == 0) {
    RETURN_IF_ERROR(Serialize(trial, blob));
  } else {
    // Intermediate reports live in `metrics`; the snapshot is stored without them.
    v1::Trial stripped = trial;
    stripped.clear_intermediate();
    RETURN_IF_ERROR(Serialize(stripped, blob));
  }
  Params params;
  params.Text(trial.id())
      .Text(trial.experiment_id())
      .Int(trial.sequence())
      .Int(trial.state())
      .Int(t.acked_event_sequence)
      .Bytes(blob);
  return pipeline.Send(kUpsertTrial, params, absl::StrCat("postgres upsert trial ", trial.id()));
}

absl::Status SendMetric(Pipeline& pipeline, const StoredMetric& m, std::string& blob) {
  RETURN_IF_ERROR(Serialize(m.report, blob));
  Params params;
  params.Text(m.trial_id).Int(m.attempt).Int(m.report.step()).Bytes(blob);
  return pipeline.Send(kUpsertMetric, params,
                       absl::StrCat("postgres upsert metric ", m.trial_id, " attempt ", m.attempt,
                                    " step ", m.report.step()));
}

absl::Status SendEvent(Pipeline& pipeline, const StoredEvent& e, std::string& blob) {
  RETURN_IF_ERROR(Serialize(e.event, blob));
  Params params;
  params.Text(e.experiment_id).Int(e.event.sequence()).Bytes(blob);
  return pipeline.Send(
      kUpsertEvent, params,
      absl::StrCat("postgres upsert event ", e.experiment_id, " sequence ", e.event.sequence()));
}

// Every row of `batch`. The blob is copied into libpq's buffer by each send, so one
// buffer serves every row.
absl::Status SendRows(Pipeline& pipeline, const WriteBatch& batch, std::string& blob) {
  for (const StoredExperiment& e : batch.experiments) {
    RETURN_IF_ERROR(SendExperiment(pipeline, e, blob));
  }
  for (const StoredTrial& t : batch.trials) RETURN_IF_ERROR(SendTrial(pipeline, t, blob));
  for (const StoredMetric& m : batch.metrics) RETURN_IF_ERROR(SendMetric(pipeline, m, blob));
  for (const StoredEvent& e : batch.events) RETURN_IF_ERROR(SendEvent(pipeline, e, blob));
  return absl::OkStatus();
}

// Takes the writer lock, waiting up to `wait` for another session to let it go.
absl::Status TakeWriterLock(Connection& db, absl::Duration wait) {
  const std::string take =
      absl::StrCat("SELECT pg_try_advisory_lock(", PostgresTrialStore::kWriterLockKey, ")");
  const absl::Time deadline = absl::Now() + wait;
  for (;;) {
    ASSIGN_OR_RETURN(const std::string taken, db.QueryText(take));
    if (taken == "t") return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  // Who holds it, for the message.
  const uint64_t key = static_cast<uint64_t>(PostgresTrialStore::kWriterLockKey);
  absl::StatusOr<std::string> holder = db.QueryText(absl::StrCat(
      "SELECT a.pid || ' (' || COALESCE(a.application_name, '') || ' from ' || "
      "COALESCE(host(a.client_addr), 'a local socket') || ')' FROM pg_locks l JOIN "
      "pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND "
      "l.classid = ",
      key >> 32, " AND l.objid = ", key & 0xffffffff));
  return absl::FailedPreconditionError(absl::StrCat(
      "another scheduler holds this database's writer lock (session ",
      holder.ok() && !holder->empty() ? *holder : "unknown", ") after waiting ",
      absl::FormatDuration(wait), "; stop it, or point this scheduler at another database"));
}

// Applies the migrations after the recorded version, in one transaction.
absl::Status Migrate(Connection& db) {
  RETURN_IF_ERROR(db.Exec("BEGIN"));
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(
        db.Exec("CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER NOT NULL PRIMARY KEY, "
                "applied_time TIMESTAMPTZ NOT NULL DEFAULT now())"));
    ASSIGN_OR_RETURN(const int64_t version,
                     db.QueryInt("SELECT COALESCE(MAX(version), 0) FROM schema_version"));
    if (version > PostgresTrialStore::kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("database schema version ", version, " is newer than this binary's ",
                       PostgresTrialStore::kSchemaVersion,
                       "; run the scheduler that wrote it, or point this one at a fresh database"));
    }
    for (const Migration& m : kMigrations) {
      if (m.version <= version) continue;
      const std::string step = absl::StrCat("migrate to schema ", m.version);
      RETURN_IF_ERROR(Annotate(db.Exec(m.sql), step));
      RETURN_IF_ERROR(Annotate(
          db.Exec(absl::StrCat("INSERT INTO schema_version (version) VALUES (", m.version, ")")),
          step));
    }
    return db.Exec("COMMIT");
  }();
  if (!status.ok()) db.RollbackIfOpen();
  return status;
}

template <size_t N>
absl::Status PrepareAll(Connection& db, const Statement (&statements)[N]) {
  for (const Statement& statement : statements) RETURN_IF_ERROR(db.Prepare(statement));
  return absl::OkStatus();
}

absl::Status ReadExperiment(const PGresult* result, int row, StoredState& state) {
  StoredExperiment& e = state.experiments.emplace_back();
  e.request_id = TextValue(result, row, 1);
  if (ParseValue(result, row, 2, e.experiment)) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("experiment ", TextValue(result, row, 0), " does not parse"));
}

absl::Status ReadTrial(const PGresult* result, int row, StoredState& state) {
  StoredTrial& t = state.trials.emplace_back();
  t.acked_event_sequence = IntValue(result, row, 1);
  if (ParseValue(result, row, 2, t.trial)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("trial ", TextValue(result, row, 0), " does not parse"));
}

absl::Status ReadMetric(const PGresult* result, int row, StoredState& state) {
  StoredMetric& m = state.metrics.emplace_back();
  m.trial_id = TextValue(result, row, 0);
  m.attempt = static_cast<int32_t>(IntValue(result, row, 1));
  if (ParseValue(result, row, 2, m.report)) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("a report of trial ", m.trial_id, " attempt ", m.attempt, " does not parse"));
}

absl::Status ReadLastSequence(const PGresult* result, int row, StoredState& state) {
  state.last_event_sequence[TextValue(result, row, 0)] = IntValue(result, row, 1);
  return absl::OkStatus();
}

// Everything but the events, in one snapshot.
absl::Status ReadState(Connection& db, StoredState& state) {
  RETURN_IF_ERROR(db.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  const std::pair<Statement, absl::Status (*)(const PGresult*, int, StoredState&)> queries[] = {
      {kSelectExperiments, ReadExperiment},
      {kSelectTrials, ReadTrial},
      {kSelectMetrics, ReadMetric},
      {kSelectLastSequences, ReadLastSequence},
  };
  for (const auto& [statement, read_row] : queries) {
    absl::Status status =
        db.Query(statement, Params(), [&, read_row = read_row](const PGresult* result, int row) {
          return read_row(result, row, state);
        });
    if (!status.ok()) {
      db.RollbackIfOpen();
      return status;
    }
  }
  return db.Exec("COMMIT");
}

absl::Status ReadEventRows(Connection& db, const std::string& experiment_id, int64_t after_sequence,
                           int limit, std::vector<v1::ExperimentEvent>& events) {
  Params params;
  params.Text(experiment_id).Int(after_sequence).Int(limit);
  return db.Query(kSelectEvents, params, [&](const PGresult* result, int row) {
    if (ParseValue(result, row, 1, events.emplace_back())) return absl::OkStatus();
    return absl::DataLossError(absl::StrCat("event ", IntValue(result, row, 0), " does not parse"));
  });
}

// Runs `read` on `db`, reconnecting first when needed; once more after a reconnect when
// the connection broke under it (reads change nothing, so a repeat is harmless).
template <typename Read>
absl::Status WithReconnect(Connection& db, Read read) {
  absl::Status status;
  for (int attempt = 0; attempt < 2; ++attempt) {
    RETURN_IF_ERROR(db.EnsureConnected());
    status = read();
    if (status.ok() || PQstatus(db.get()) == CONNECTION_OK) return status;
  }
  return status;
}

}  // namespace
}  // namespace postgres_internal

bool PostgresTrialStore::IsPostgresUrl(absl::string_view store) {
  return absl::StartsWith(store, "postgres://") || absl::StartsWith(store, "postgresql://");
}

absl::StatusOr<std::unique_ptr<PostgresTrialStore>> PostgresTrialStore::Open(
    const std::string& conninfo, Options options) {
  using postgres_internal::Annotate;
  const std::string operation =
      absl::StrCat("postgres open ", postgres_internal::Describe(conninfo));
  const absl::Duration lock_wait = options.lock_wait;
  ASSIGN_OR_RETURN(
      std::unique_ptr<Connection> writer,
      Annotate(Connection::Open(
                   conninfo, options.connect_timeout,
                   [lock_wait, migrated = false](Connection& db) mutable -> absl::Status {
                     RETURN_IF_ERROR(
                         db.Exec("SET synchronous_commit = on; SET client_min_messages = warning"));
                     RETURN_IF_ERROR(postgres_internal::TakeWriterLock(db, lock_wait));
                     // The first time only (a reconnect finds the schema in place).
                     if (!migrated) RETURN_IF_ERROR(postgres_internal::Migrate(db));
                     migrated = true;
                     return postgres_internal::PrepareAll(db, postgres_internal::kWriteStatements);
                   }),
               operation));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> reader,
                   Annotate(Connection::Open(conninfo, options.connect_timeout,
                                             [](Connection& db) -> absl::Status {
                                               RETURN_IF_ERROR(db.Exec(
                                                   "SET default_transaction_read_only = on"));
                                               return postgres_internal::PrepareAll(
                                                   db, postgres_internal::kReadStatements);
                                             }),
                            operation));
  return std::unique_ptr<PostgresTrialStore>(
      new PostgresTrialStore(std::move(writer), std::move(reader), options.group));
}

PostgresTrialStore::PostgresTrialStore(std::unique_ptr<Connection> writer,
                                       std::unique_ptr<Connection> reader,
                                       const GroupCommitter::Options& group)
    : writer_(std::move(writer)),
      reader_(std::move(reader)),
      committer_(std::make_unique<GroupCommitter>(
          [this](const std::vector<const WriteBatch*>& batches) { return WriteGroup(batches); },
          group)) {}

PostgresTrialStore::~PostgresTrialStore() { committer_.reset(); }

std::shared_future<absl::Status> PostgresTrialStore::Submit(WriteBatch batch) {
  return committer_->Submit(std::move(batch));
}

absl::Status PostgresTrialStore::Commit(const WriteBatch& batch) {
  return committer_->CommitNow(batch);
}

absl::Status PostgresTrialStore::WriteGroup(const std::vector<const WriteBatch*>& group) {
  using postgres_internal::Annotate;
  using postgres_internal::Params;
  RETURN_IF_ERROR(Annotate(writer_->EnsureConnected(), "postgres reconnect"));
  absl::Status status;
  {
    postgres_internal::Pipeline pipeline(*writer_);
    status = pipeline.Send(postgres_internal::kBegin, Params(), "postgres begin");
    std::string blob;  // reused: one allocation per group, not per row
    for (const WriteBatch* batch : group) {
      if (!status.ok()) break;
      status = postgres_internal::SendRows(pipeline, *batch, blob);
    }
    if (status.ok())
      status = pipeline.Send(postgres_internal::kCommit, Params(), "postgres commit");
    if (status.ok()) status = pipeline.Sync();
  }
  if (!status.ok()) writer_->RollbackIfOpen();
  return status;
}

absl::StatusOr<StoredState> PostgresTrialStore::LoadAll() {
  absl::MutexLock lock(&read_mu_);
  StoredState state;
  RETURN_IF_ERROR(postgres_internal::Annotate(
      postgres_internal::WithReconnect(*reader_,
                                       [&] {
                                         state = StoredState();
                                         return postgres_internal::ReadState(*reader_, state);
                                       }),
      "postgres load"));
  return state;
}

absl::StatusOr<std::vector<v1::ExperimentEvent>> PostgresTrialStore::ReadEvents(
    const std::string& experiment_id, int64_t after_sequence, int limit) {
  const std::string operation = absl::StrCat("postgres read events of ", experiment_id);
  if (limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat(operation, ": negative limit ", limit));
  }
  std::vector<v1::ExperimentEvent> events;
  if (limit == 0) return events;
  absl::MutexLock lock(&read_mu_);
  RETURN_IF_ERROR(postgres_internal::Annotate(
      postgres_internal::WithReconnect(*reader_,
                                       [&] {
                                         events.clear();
                                         return postgres_internal::ReadEventRows(
                                             *reader_, experiment_id, after_sequence, limit,
                                             events);
                                       }),
      operation));
  return events;
}

}  // namespace autocompress::scheduler
