// PostgresTrialStore against a real server: a throwaway cluster this test starts
// (postgres_test_server.h), one database per test. The contract suite, then what only
// PostgreSQL has: the writer lock, reconnecting after a server restart, schema versions,
// errors without the password.
#include "scheduler_service/store/postgres_trial_store.h"

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler_service/store/postgres_test_server.h"
#include "scheduler_service/store/trial_store_contract.h"

namespace autocompress::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The one server of this test binary: started before the first test, stopped (and its
// directory removed) after the last.
class ServerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PostgresTestServer>> started = PostgresTestServer::Start();
    ASSERT_TRUE(started.ok()) << "cannot start PostgreSQL: " << started.status();
    server = std::move(*started);
  }
  void TearDown() override { server.reset(); }

  std::unique_ptr<PostgresTestServer> server;
};

ServerEnvironment* const environment =
    static_cast<ServerEnvironment*>(::testing::AddGlobalTestEnvironment(new ServerEnvironment()));

PostgresTestServer& Server() { return *environment->server; }

// Gives every contract test directory a database of its own, the same one on reopen.
std::string DatabaseFor(const std::string& dir) {
  static absl::Mutex mu;
  static auto* databases = new std::map<std::string, std::string>();
  absl::MutexLock lock(&mu);
  auto [it, added] = databases->emplace(dir, absl::StrCat("contract_", databases->size()));
  if (added) {
    const absl::Status created = Server().CreateDatabase(it->second);
    EXPECT_TRUE(created.ok()) << created;
  }
  return it->second;
}

// A trigger fails the poisoned event's INSERT after the batch's earlier rows.
absl::Status PoisonEvents(const std::string& dir) {
  return Server().Exec(
      DatabaseFor(dir),
      absl::StrCat("CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF NEW.sequence = ",
                   kPoisonEventSequence,
                   " THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; "
                   "CREATE TRIGGER poison_events BEFORE INSERT ON events FOR EACH ROW "
                   "EXECUTE FUNCTION poison()"));
}

absl::StatusOr<std::unique_ptr<TrialStore>> OpenContractStore(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> store =
      PostgresTrialStore::Open(Server().Url(DatabaseFor(dir)));
  if (!store.ok()) return store.status();
  return std::unique_ptr<TrialStore>(std::move(*store));
}

INSTANTIATE_TEST_SUITE_P(Postgres, TrialStoreContractTest,
                         ::testing::Values(TrialStoreContractParam{"Server", OpenContractStore,
                                                                   PoisonEvents}),
                         TrialStoreContractParamName);

class PostgresTrialStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int next = 0;
    database_ = absl::StrCat("store_", next++);
    ASSERT_TRUE(Server().CreateDatabase(database_).ok());
  }

  std::string url() const { return Server().Url(database_); }

  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> Open(
      absl::Duration lock_wait = absl::Seconds(10)) {
    PostgresTrialStore::Options options;
    options.lock_wait = lock_wait;
    return PostgresTrialStore::Open(url(), options);
  }

  std::string database_;
};

WriteBatch TrialBatch(const std::string& id) {
  WriteBatch batch;
  StoredTrial& trial = batch.trials.emplace_back();
  trial.trial.set_id(id);
  trial.trial.set_experiment_id("e1");
  trial.trial.set_parameters_json("{}");
  return batch;
}

TEST(PostgresUrlTest, SelectsPostgresSchemesOnly) {
  EXPECT_TRUE(PostgresTrialStore::IsPostgresUrl("postgres://u@h/db"));
  EXPECT_TRUE(PostgresTrialStore::IsPostgresUrl("postgresql://h:5432/db?sslmode=require"));
  EXPECT_FALSE(PostgresTrialStore::IsPostgresUrl("sqlite"));
  EXPECT_FALSE(PostgresTrialStore::IsPostgresUrl("host=h dbname=db"));
  EXPECT_FALSE(PostgresTrialStore::IsPostgresUrl(""));
}

TEST_F(PostgresTrialStoreTest, OpenRecordsSchemaVersionOnce) {
  ASSERT_TRUE(Open().ok());
  ASSERT_TRUE(Open().ok());
  absl::StatusOr<std::string> rows =
      Server().QueryText(database_, "SELECT COUNT(*) || ' ' || MAX(version) FROM schema_version");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(*rows, absl::StrCat(PostgresTrialStore::kSchemaVersion, " ",
                                PostgresTrialStore::kSchemaVersion));
}

TEST_F(PostgresTrialStoreTest, RefusesDatabaseFromNewerSchema) {
  ASSERT_TRUE(Open().ok());
  const int newer = PostgresTrialStore::kSchemaVersion + 6;
  ASSERT_TRUE(Server()
                  .Exec(database_,
                        absl::StrCat("INSERT INTO schema_version (version) VALUES (", newer, ")"))
                  .ok());
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> store = Open();
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("postgres open autocompress@127.0.0.1:", Server().port(), "/",
                                     database_)));
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("schema version ", newer, " is newer than this binary's ",
                                     PostgresTrialStore::kSchemaVersion)));
}

TEST_F(PostgresTrialStoreTest, SecondWriterIsRefusedUntilTheFirstCloses) {
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> first = Open();
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> second = Open(absl::Milliseconds(300));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("another scheduler holds this database"));
  EXPECT_THAT(second.status().message(), HasSubstr("autocompress-scheduler from 127.0.0.1"));

  // The second waits for the lock and gets it once the first closes.
  std::thread close_later([&] {
    absl::SleepFor(absl::Milliseconds(300));
    first->reset();
  });
  second = Open(absl::Seconds(10));
  close_later.join();
  EXPECT_TRUE(second.ok()) << second.status();
}

TEST_F(PostgresTrialStoreTest, UnreachableServerIsUnavailableWithoutPassword) {
  PostgresTrialStore::Options options;
  options.connect_timeout = absl::Seconds(2);
  // A port nothing listens on (the test server's port + 1 may be taken; 1 is not ours).
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> store =
      PostgresTrialStore::Open("postgres://scheduler:s3cret-pw@127.0.0.1:1/db", options);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr("postgres open scheduler@127.0.0.1:1/db"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr("s3cret-pw")));
}

TEST_F(PostgresTrialStoreTest, UnknownDatabaseNamesIt) {
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> store =
      PostgresTrialStore::Open(Server().Url("no_such_database"));
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("no_such_database"));
}

// More rows than one pipeline chunk: the sync points in the middle keep one transaction.
TEST_F(PostgresTrialStoreTest, GroupLongerThanOneChunkIsOneTransaction) {
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  WriteBatch batch;
  for (int i = 0; i < 3 * PostgresTrialStore::kPipelineChunk; ++i) {
    StoredMetric& m = batch.metrics.emplace_back();
    m.trial_id = "t1";
    m.attempt = 1;
    m.report.set_step(i);
  }
  batch.trials = TrialBatch("t1").trials;
  ASSERT_TRUE((*store)->Commit(batch).ok());
  // A failure in the last chunk takes the earlier chunks with it.
  ASSERT_TRUE(
      Server()
          .Exec(database_, absl::StrCat("CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql "
                                        "AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$; "
                                        "CREATE TRIGGER poison_events BEFORE INSERT ON events FOR "
                                        "EACH ROW EXECUTE FUNCTION poison()"))
          .ok());
  for (StoredMetric& m : batch.metrics) m.attempt = 2;
  StoredEvent& event = batch.events.emplace_back();
  event.experiment_id = "e1";
  event.event.set_sequence(1);
  const absl::Status failed = (*store)->Commit(batch);
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal) << failed;
  EXPECT_THAT(failed.message(), HasSubstr("postgres upsert event e1 sequence 1: injected failure"));
  absl::StatusOr<StoredState> state = (*store)->LoadAll();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->metrics.size(), 3u * PostgresTrialStore::kPipelineChunk);
  for (const StoredMetric& m : state->metrics) ASSERT_EQ(m.attempt, 1);
}

// Restarts the shared server; every other test opens connections of its own.
TEST_F(PostgresTrialStoreTest, ReconnectsAfterServerRestart) {
  absl::StatusOr<std::unique_ptr<PostgresTrialStore>> store = Open();
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Commit(TrialBatch("before")).ok());

  ASSERT_TRUE(Server().Stop().ok());
  const absl::Status down = (*store)->Commit(TrialBatch("while-down"));
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable) << down;
  EXPECT_EQ((*store)->LoadAll().status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(Server().Restart().ok());
  const absl::Status after = (*store)->Commit(TrialBatch("after"));
  EXPECT_TRUE(after.ok()) << after;
  absl::StatusOr<StoredState> state = (*store)->LoadAll();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->trials.size(), 2u);
  EXPECT_EQ(state->trials[0].trial.id(), "after");
  EXPECT_EQ(state->trials[1].trial.id(), "before");
  // Still the only writer: the lock was taken again on the new session.
  EXPECT_FALSE(Open(absl::Milliseconds(200)).ok());
}

}  // namespace
}  // namespace autocompress::scheduler
