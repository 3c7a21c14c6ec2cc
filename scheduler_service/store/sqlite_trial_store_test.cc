#include "scheduler_service/store/sqlite_trial_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler_service/store/trial_store_contract.h"

namespace autocompress::scheduler {
namespace {

using ::testing::HasSubstr;

std::string DatabasePath(const std::string& dir) { return dir + "/trials.db"; }

// A connection of its own to the database under `dir`, the way another process would
// open it.
class SideConnection {
 public:
  explicit SideConnection(const std::string& dir) {
    rc_ = sqlite3_open_v2(DatabasePath(dir).c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
    sqlite3_busy_timeout(db_, 10000);
  }
  ~SideConnection() { sqlite3_close_v2(db_); }
  SideConnection(const SideConnection&) = delete;
  SideConnection& operator=(const SideConnection&) = delete;

  absl::Status Exec(const std::string& sql) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    return Status();
  }

  absl::StatusOr<int64_t> QueryInt(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    int64_t value = -1;
    if (rc_ == SQLITE_OK) rc_ = sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr);
    if (rc_ == SQLITE_OK && (rc_ = sqlite3_step(stmt)) == SQLITE_ROW) {
      value = sqlite3_column_int64(stmt, 0);
      rc_ = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    RETURN_IF_ERROR(Status());
    return value;
  }

 private:
  absl::Status Status() const {
    if (rc_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("side connection: ", sqlite3_errmsg(db_)));
  }

  sqlite3* db_ = nullptr;
  int rc_ = SQLITE_OK;
};

// A trigger fails the poisoned event's INSERT after the batch's earlier rows.
absl::Status PoisonEvents(const std::string& dir) {
  return SideConnection(dir).Exec(
      absl::StrCat("CREATE TRIGGER poison_events BEFORE INSERT ON events WHEN NEW.sequence = ",
                   kPoisonEventSequence, " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"));
}

TrialStoreContractParam SqliteParam(std::string name, SqliteTrialStore::Synchronous synchronous) {
  return {std::move(name),
          [synchronous](const std::string& dir) -> absl::StatusOr<std::unique_ptr<TrialStore>> {
            SqliteTrialStore::Options options;
            options.synchronous = synchronous;
            return SqliteTrialStore::Open(DatabasePath(dir), options);
          },
          PoisonEvents};
}

INSTANTIATE_TEST_SUITE_P(
    Sqlite, TrialStoreContractTest,
    ::testing::Values(SqliteParam("Full", SqliteTrialStore::Synchronous::kFull),
                      SqliteParam("Normal", SqliteTrialStore::Synchronous::kNormal)),
    TrialStoreContractParamName);

class SqliteTrialStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "sqlite_store_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path() const { return DatabasePath(dir_); }

  std::string dir_;
};

WriteBatch TrialBatch(const std::string& id, size_t parameters_bytes = 16) {
  WriteBatch batch;
  StoredTrial& trial = batch.trials.emplace_back();
  trial.trial.set_id(id);
  trial.trial.set_experiment_id("e1");
  trial.trial.set_parameters_json(std::string(parameters_bytes, 'x'));
  return batch;
}

TEST_F(SqliteTrialStoreTest, OpenRecordsSchemaVersionAndUsesWal) {
  {
    absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path());
    ASSERT_TRUE(store.ok()) << store.status();
  }
  absl::StatusOr<int64_t> version =
      SideConnection(dir_).QueryInt("SELECT MAX(version) FROM schema_version");
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, SqliteTrialStore::kSchemaVersion);
  // Reopening applies nothing twice.
  ASSERT_TRUE(SqliteTrialStore::Open(path()).ok());
  absl::StatusOr<int64_t> rows =
      SideConnection(dir_).QueryInt("SELECT COUNT(*) FROM schema_version");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, SqliteTrialStore::kSchemaVersion);
  // The file format's read and write versions (bytes 18 and 19) are 2 in WAL mode.
  std::ifstream file(path(), std::ios::binary);
  char header[20] = {};
  ASSERT_TRUE(file.read(header, sizeof(header)));
  EXPECT_EQ(header[18], 2);
  EXPECT_EQ(header[19], 2);
}

TEST_F(SqliteTrialStoreTest, RefusesDatabaseFromNewerSchema) {
  ASSERT_TRUE(SqliteTrialStore::Open(path()).ok());
  const int newer = SqliteTrialStore::kSchemaVersion + 6;
  ASSERT_TRUE(
      SideConnection(dir_)
          .Exec(absl::StrCat("INSERT INTO schema_version VALUES (", newer, ", datetime('now'))"))
          .ok());

  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(path()));
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("schema version ", newer, " is newer than this binary's ",
                                     SqliteTrialStore::kSchemaVersion)));
}

TEST_F(SqliteTrialStoreTest, RefusesFileThatIsNoDatabase) {
  {
    std::ofstream file(path(), std::ios::binary);
    for (int i = 0; i < 1000; ++i) file << "this is a log file, not a database\n";
  }
  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("sqlite open ", path())));
  EXPECT_THAT(store.status().message(), HasSubstr("file is not a database"));
}

TEST_F(SqliteTrialStoreTest, MissingDirectoryIsFailedPrecondition) {
  const std::string missing = dir_ + "/no/such/dir/trials.db";
  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(missing);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(missing));
  EXPECT_THAT(store.status().message(), HasSubstr("unable to open database file"));
}

TEST_F(SqliteTrialStoreTest, FullDatabaseIsResourceExhaustedAndRecoverable) {
  SqliteTrialStore::Options options;
  options.max_database_bytes = 1 << 20;
  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Commit(TrialBatch("small-1")).ok());

  const absl::Status full = (*store)->Commit(TrialBatch("huge", 2 << 20));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_THAT(full.message(), HasSubstr("database or disk is full"));
  EXPECT_THAT(full.message(), HasSubstr("sqlite upsert trial huge"));

  // Rolled back: the space is free again for smaller batches.
  const absl::Status after = (*store)->Commit(TrialBatch("small-2"));
  EXPECT_TRUE(after.ok()) << after;
  store->reset();

  // Without the cap, the big batch fits; nothing of the failed one was kept.
  store = SqliteTrialStore::Open(path());
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<StoredState> state = (*store)->LoadAll();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->trials.size(), 2u);
  EXPECT_EQ(state->trials[0].trial.id(), "small-1");
  EXPECT_EQ(state->trials[1].trial.id(), "small-2");
  EXPECT_TRUE((*store)->Commit(TrialBatch("huge", 2 << 20)).ok());
}

TEST_F(SqliteTrialStoreTest, LockedByAnotherProcessIsUnavailableAndRecoverable) {
  SqliteTrialStore::Options options;
  options.busy_timeout = absl::Milliseconds(50);
  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path(), options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Commit(TrialBatch("t1")).ok());
  SideConnection other(dir_);
  ASSERT_TRUE(other.Exec("BEGIN IMMEDIATE").ok());

  const absl::Status locked = (*store)->Commit(TrialBatch("t2"));
  EXPECT_EQ(locked.code(), absl::StatusCode::kUnavailable) << locked;
  EXPECT_THAT(locked.message(), HasSubstr("sqlite begin: database is locked"));
  // Reads do not wait for the writer (WAL).
  absl::StatusOr<StoredState> state = (*store)->LoadAll();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->trials.size(), 1u);

  ASSERT_TRUE(other.Exec("COMMIT").ok());
  EXPECT_TRUE((*store)->Commit(TrialBatch("t2")).ok());
}

}  // namespace
}  // namespace autocompress::scheduler
