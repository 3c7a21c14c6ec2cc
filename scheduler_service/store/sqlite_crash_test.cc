// Crash test of SqliteTrialStore: the binary re-executes itself as a child that commits
// numbered batches from several threads and prints each batch's number once its commit
// returned OK. The parent reads those acknowledgements for a while, SIGKILLs the child
// mid-loop, reopens the database and checks that every acknowledged batch is there,
// whole, and that no batch is there in part.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler_service/store/sqlite_trial_store.h"

namespace autocompress::scheduler {
namespace {

constexpr char kChildFlag[] = "--crash_child";
constexpr int kChildThreads = 8;
// Bounds the child's loop; far more than the parent waits for.
constexpr int64_t kChildMaxBatches = 1000000;
constexpr size_t kAcksWanted = 2000;
constexpr auto kMaxWait = std::chrono::seconds(5);
constexpr int kMetricsPerBatch = 3;
constexpr char kEventExperiment[] = "crash";

SqliteTrialStore::Synchronous ParseMode(const std::string& mode) {
  return mode == "normal" ? SqliteTrialStore::Synchronous::kNormal
                          : SqliteTrialStore::Synchronous::kFull;
}

// Batch `id`: one row in each table, and several metrics, all derived from `id`.
WriteBatch NumberedBatch(int64_t id) {
  WriteBatch batch;
  StoredExperiment& experiment = batch.experiments.emplace_back();
  experiment.experiment.set_id(absl::StrCat("e", id));
  experiment.experiment.set_version(id);
  StoredTrial& trial = batch.trials.emplace_back();
  trial.trial.set_id(absl::StrCat("t", id));
  trial.trial.set_experiment_id(absl::StrCat("e", id));
  trial.trial.set_parameter_id(id);
  trial.trial.set_parameters_json(std::string(200, 'p'));
  trial.acked_event_sequence = id;
  for (int step = 0; step < kMetricsPerBatch; ++step) {
    StoredMetric& metric = batch.metrics.emplace_back();
    metric.trial_id = absl::StrCat("t", id);
    metric.attempt = 1;
    metric.report.set_step(step);
    metric.report.add_metrics()->set_value(id);
  }
  StoredEvent& event = batch.events.emplace_back();
  event.experiment_id = kEventExperiment;
  event.event.set_sequence(id + 1);
  event.event.mutable_trial()->set_id(absl::StrCat("t", id));
  return batch;
}

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(4);  // the parent is gone
    done += n;
  }
}

// The child: commits numbered batches until killed (or the bound), acknowledging each on
// stdout after its commit returned OK.
int RunChild(const std::string& path, const std::string& mode) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  SqliteTrialStore::Options options;
  options.synchronous = ParseMode(mode);
  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path, options);
  if (!store.ok()) {
    std::fprintf(stderr, "crash child: %s\n", store.status().ToString().c_str());
    return 2;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kChildThreads; ++t) {
    threads.emplace_back([&] {
      for (int64_t id = next++; id < kChildMaxBatches; id = next++) {
        const absl::Status status = (*store)->Commit(NumberedBatch(id));
        if (!status.ok()) {
          std::fprintf(stderr, "crash child: batch %ld: %s\n", static_cast<long>(id),
                       status.ToString().c_str());
          _exit(3);
        }
        // One write of a short line: atomic on a pipe, so lines never interleave.
        WriteAll(STDOUT_FILENO, absl::StrCat(id, "\n"));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return 0;
}

// Moves the complete lines of `pending` into `acks`.
void TakeLines(std::string& pending, std::vector<int64_t>& acks) {
  size_t newline;
  while ((newline = pending.find('\n')) != std::string::npos) {
    int64_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(pending.substr(0, newline), &id)) << pending;
    acks.push_back(id);
    pending.erase(0, newline + 1);
  }
}

// Reads acknowledgements from `fd` until `enough` of them, EOF or `deadline`.
void ReadAcks(int fd, std::string& pending, std::vector<int64_t>& acks, size_t enough,
              std::chrono::steady_clock::time_point deadline) {
  while (acks.size() < enough) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd poll_fd = {fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return;
    char buffer[4096];
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    pending.append(buffer, n);
    TakeLines(pending, acks);
  }
}

// Reads what is left in the pipe of a dead child, up to EOF.
void DrainAcks(int fd, std::string& pending, std::vector<int64_t>& acks) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buffer, n);
  }
  TakeLines(pending, acks);
}

std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  std::string result = "cannot open";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db);
  return result;
}

class SqliteCrashTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "sqlite_crash_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

// Starts the child writing to `path`; returns its pid and the read end of its stdout.
pid_t StartChild(const std::string& path, const std::string& mode, int& read_fd) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return -1;
  const char* argv[] = {"/proc/self/exe", kChildFlag, path.c_str(), mode.c_str(), nullptr};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
    ::execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  ::close(fds[1]);
  read_fd = fds[0];
  return pid;
}

TEST_P(SqliteCrashTest, AcknowledgedBatchesSurviveSigkill) {
  const std::string path = dir_ + "/trials.db";
  int read_fd = -1;
  const pid_t child = StartChild(path, GetParam(), read_fd);
  ASSERT_GT(child, 0) << strerror(errno);

  std::vector<int64_t> acks;
  std::string pending;
  ReadAcks(read_fd, pending, acks, kAcksWanted, std::chrono::steady_clock::now() + kMaxWait);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
  // What the child acknowledged before it died still counts.
  DrainAcks(read_fd, pending, acks);
  ::close(read_fd);
  ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL)
      << "the child ended on its own (status " << wait_status << "); see its stderr above";
  ASSERT_FALSE(acks.empty()) << "the child acknowledged nothing before the kill";
  std::printf("%s: %zu batches acknowledged before SIGKILL\n", GetParam().c_str(), acks.size());

  EXPECT_EQ(IntegrityCheck(path), "ok");
  SqliteTrialStore::Options options;
  options.synchronous = ParseMode(GetParam());
  absl::StatusOr<std::unique_ptr<SqliteTrialStore>> store = SqliteTrialStore::Open(path, options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<StoredState> state = (*store)->LoadAll();
  ASSERT_TRUE(state.ok()) << state.status();
  absl::StatusOr<std::vector<v1::ExperimentEvent>> events =
      (*store)->ReadEvents(kEventExperiment, 0, kChildMaxBatches + 1);
  ASSERT_TRUE(events.ok()) << events.status();

  // Which parts of each batch are stored.
  std::map<int64_t, int> experiments, trials, metrics, event_rows;
  for (const StoredExperiment& e : state->experiments) ++experiments[e.experiment.version()];
  for (const StoredTrial& t : state->trials) {
    EXPECT_EQ(t.trial.id(), absl::StrCat("t", t.trial.parameter_id()));
    EXPECT_EQ(t.acked_event_sequence, t.trial.parameter_id());
    ++trials[t.trial.parameter_id()];
  }
  for (const StoredMetric& m : state->metrics) {
    ++metrics[static_cast<int64_t>(m.report.metrics(0).value())];
  }
  for (const v1::ExperimentEvent& e : *events) ++event_rows[e.sequence() - 1];

  for (int64_t id : acks) {
    EXPECT_EQ(experiments[id], 1) << "acknowledged batch " << id;
    EXPECT_EQ(trials[id], 1) << "acknowledged batch " << id;
    EXPECT_EQ(metrics[id], kMetricsPerBatch) << "acknowledged batch " << id;
    EXPECT_EQ(event_rows[id], 1) << "acknowledged batch " << id;
  }
  // Atomic: every batch present at all (acknowledged or not) is present whole.
  for (const auto& [id, count] : trials) {
    EXPECT_EQ(experiments[id], 1) << "batch " << id;
    EXPECT_EQ(metrics[id], kMetricsPerBatch) << "batch " << id;
    EXPECT_EQ(event_rows[id], 1) << "batch " << id;
  }
  EXPECT_EQ(state->experiments.size(), state->trials.size());
  EXPECT_EQ(state->metrics.size(), state->trials.size() * kMetricsPerBatch);
  EXPECT_EQ(events->size(), state->trials.size());
  EXPECT_GE(state->trials.size(), std::set<int64_t>(acks.begin(), acks.end()).size());

  // And the store takes writes again.
  EXPECT_TRUE((*store)->Commit(NumberedBatch(kChildMaxBatches)).ok());
}

INSTANTIATE_TEST_SUITE_P(Modes, SqliteCrashTest, ::testing::Values("full", "normal"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace autocompress::scheduler

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], autocompress::scheduler::kChildFlag) == 0) {
    return autocompress::scheduler::RunChild(argv[2], argv[3]);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
