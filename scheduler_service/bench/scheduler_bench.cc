// ./dev bench scheduler: no-op trials through fake workers on loopback, measured from
// outside the scheduler process, beside Optuna 3.1 with SQLite storage doing the same
// transitions in the same run.
//
// tuner_server and scheduler_server run as child processes (the scheduler alone, so its
// CPU time and peak RSS are its own); the fake workers (tests/fakes/fake_worker.h, auto
// mode) run in this process. Phase 1 runs --trials trials of --epochs intermediate
// reports each through --workers workers; phase 2 measures the sustained metric rate
// with few trials of many epochs. Every event is acknowledged only after its durable
// commit, so the event->ack latency the workers see is the commit latency per
// transition (network and queueing included). All of it runs twice: on SQLite (the
// default store) and on PostgreSQL (a throwaway cluster on loopback, fsync on).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/channel.h"
#include "common/testing/command_output.h"
#include "common/testing/http_get.h"
#include "common/testing/processes.h"
#include "common/testing/subprocess.h"
#include "nlohmann/json.hpp"
#include "scheduler_service/store/postgres_test_server.h"
#include "tests/fakes/experiment_fixtures.h"
#include "tests/fakes/fake_worker.h"

ABSL_FLAG(int, trials, 10000, "Trials in the throughput phase.");
ABSL_FLAG(int, workers, 50, "Fake workers (in this process).");
ABSL_FLAG(int, slots, 2, "Slots per fake worker.");
ABSL_FLAG(int, epochs, 5, "Intermediate reports per trial in the throughput phase.");
ABSL_FLAG(int, paced_trials, 1000, "Trials in the latency phase (reports paced, not flooded).");
ABSL_FLAG(int, paced_epoch_ms, 100, "Milliseconds between a trial's reports there.");
ABSL_FLAG(int, sustained_trials, 100, "Trials in the sustained-metrics phase.");
ABSL_FLAG(int, sustained_epochs, 200, "Intermediate reports per trial there.");
ABSL_FLAG(std::string, sqlite_synchronous, "full", "The scheduler's --sqlite_synchronous.");
ABSL_FLAG(bool, postgres, true,
          "Also run on PostgreSQL (a throwaway local cluster; needs the postgresql package).");
ABSL_FLAG(std::string, scheduler_server, "scheduler_service/scheduler_server", "Binary.");
ABSL_FLAG(std::string, tuner_server, "tuner_service/tuner_server", "Binary.");
ABSL_FLAG(std::string, optuna_script, "scheduler_service/bench/optuna_bench.py",
          "Optuna baseline; empty = skip it.");
ABSL_FLAG(int, optuna_transitions, 10000, "Transitions Optuna does (ask, reports, tell).");
ABSL_FLAG(std::string, python, "/usr/bin/python3", "Interpreter with python3-optuna.");

namespace autocompress {
namespace {

using testing::FakeWorker;

struct ProcessStats {
  double cpu_seconds = 0;
  double peak_rss_mib = 0;
};

ProcessStats StatsOf(pid_t pid) {
  return {testing::ProcessCpuSeconds(pid), testing::ProcessMemoryMiB(pid, "VmHWM")};
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(q * values.size()))];
}

// A Prometheus histogram's cumulative buckets: (upper bound, count).
using Histogram = std::vector<std::pair<double, double>>;

Histogram Buckets(const std::string& text, const std::string& name) {
  Histogram buckets;
  std::istringstream lines(text);
  std::string line;
  const std::string prefix = name + "_bucket{le=\"";
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    const size_t quote = line.find('"', prefix.size());
    const std::string bound = line.substr(prefix.size(), quote - prefix.size());
    const double count = std::stod(line.substr(line.rfind(' ') + 1));
    buckets.push_back({bound == "+Inf" ? 1e9 : std::stod(bound), count});
  }
  return buckets;
}

Histogram Minus(Histogram after, const Histogram& before) {
  for (size_t i = 0; i < after.size() && i < before.size(); ++i)
    after[i].second -= before[i].second;
  return after;
}

// Quantile `q`, interpolated within its bucket.
double Quantile(const Histogram& buckets, double q) {
  if (buckets.empty() || buckets.back().second <= 0) return 0;
  const double target = q * buckets.back().second;
  double lower = 0, below = 0;
  for (const auto& [upper, count] : buckets) {
    if (count >= target) {
      const double in_bucket = count - below;
      return in_bucket <= 0 ? upper : lower + (upper - lower) * (target - below) / in_bucket;
    }
    lower = upper;
    below = count;
  }
  return buckets.back().first;
}

std::unique_ptr<grpc::ClientContext> Context(int seconds = 30) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

struct PhaseResult {
  int trials = 0;
  int64_t metric_messages = 0;
  double seconds = 0;
  double cpu_seconds = 0;
  std::vector<double> ack_ms;
};

// Runs one experiment to DONE through `workers` and checks every trial succeeded.
PhaseResult RunPhase(v1::ExperimentService::Stub& experiments, v1::ArtifactService::Stub& artifacts,
                     pid_t scheduler_pid, const std::string& address, int trials, int epochs,
                     absl::Duration epoch_time = absl::ZeroDuration()) {
  const int workers = absl::GetFlag(FLAGS_workers), slots = absl::GetFlag(FLAGS_slots);
  std::vector<std::unique_ptr<FakeWorker>> fleet;
  for (int w = 0; w < workers; ++w) {
    FakeWorker::Options options;
    options.worker_id = absl::StrCat("bench-", epochs, "-", w);
    options.cpu_slots = slots;
    options.auto_run = true;
    options.auto_heartbeat = true;
    options.epochs = epochs;
    options.epoch_time = epoch_time;
    fleet.push_back(std::make_unique<FakeWorker>(CreateChannel(address), options));
    if (!fleet.back()->Connect().ok()) {
      std::fprintf(stderr, "worker %d could not connect\n", w);
      std::exit(1);
    }
  }
  absl::StatusOr<v1::ExperimentSpec> spec =
      testing::NoOpExperimentSpec(artifacts, workers * slots, trials);
  if (!spec.ok()) {
    std::fprintf(stderr, "uploads failed: %s\n", std::string(spec.status().message()).c_str());
    std::exit(1);
  }
  const double cpu_before = StatsOf(scheduler_pid).cpu_seconds;
  const absl::Time start = absl::Now();
  v1::CreateExperimentRequest create;
  *create.mutable_spec() = *spec;
  v1::CreateExperimentResponse created;
  if (!experiments.CreateExperiment(Context().get(), create, &created).ok()) {
    std::fprintf(stderr, "CreateExperiment failed\n");
    std::exit(1);
  }
  const std::string id = created.experiment().id();
  v1::Experiment experiment;
  for (;;) {
    v1::GetExperimentRequest get;
    get.set_experiment_id(id);
    v1::GetExperimentResponse got;
    if (experiments.GetExperiment(Context().get(), get, &got).ok()) {
      experiment = got.experiment();
      if (experiment.state() != v1::EXPERIMENT_STATE_RUNNING) break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  PhaseResult result;
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  result.cpu_seconds = StatsOf(scheduler_pid).cpu_seconds - cpu_before;
  result.trials = trials;
  result.metric_messages = static_cast<int64_t>(trials) * epochs;
  for (auto& worker : fleet) {
    std::vector<double> ms = worker->TakeAckLatenciesMs();
    result.ack_ms.insert(result.ack_ms.end(), ms.begin(), ms.end());
  }
  if (experiment.state() != v1::EXPERIMENT_STATE_DONE ||
      experiment.trial_counts().succeeded() != trials) {
    std::fprintf(stderr, "experiment ended wrong: %s\n", experiment.DebugString().c_str());
    std::exit(1);
  }
  return result;
}

nlohmann::json RunOptuna() {
  const std::string script = absl::GetFlag(FLAGS_optuna_script);
  if (script.empty()) return nullptr;
  const std::string command = absl::StrCat(
      absl::GetFlag(FLAGS_python), " ", script, " --transitions ",
      absl::GetFlag(FLAGS_optuna_transitions), " --epochs ", absl::GetFlag(FLAGS_epochs));
  std::fprintf(stderr, "running Optuna: %s\n", command.c_str());
  absl::StatusOr<std::string> output = testing::CommandOutput(command);
  if (!output.ok()) {
    std::fprintf(stderr, "Optuna run failed (is python3-optuna installed?): %s\n",
                 std::string(output.status().message()).c_str());
    return nullptr;
  }
  return nlohmann::json::parse(*output, nullptr, false);
}

// The disk's own floor for a durable commit: one 4 KiB write + fdatasync, p50 in ms, on
// the filesystem that holds `dir`. Measured in the same run, because this VM's disk
// latency varies from day to day by more than the margin under the 1 ms target.
double FdatasyncP50Ms(const std::string& dir, int rounds) {
  const std::string path = dir + "/fdatasync-probe";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 0;
  const std::string page(4096, 'x');
  std::vector<double> ms;
  for (int i = 0; i < rounds; ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size())) break;
    if (fdatasync(fd) != 0) break;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  close(fd);
  unlink(path.c_str());
  return Percentile(ms, 0.5);
}

// What one scheduler (on one store) measured.
struct StoreRun {
  bool ok = false;
  PhaseResult main;
  PhaseResult sustained;
  double commit_p50 = 0, commit_p99 = 0, write_p50 = 0, write_p99 = 0;
  double paced_rate = 0, paced_ack_p50 = 0, paced_ack_p99 = 0;
  ProcessStats stats;

  double ms_per_trial() const { return 1000 * main.seconds / main.trials; }
  double cpu_ms_per_trial() const { return 1000 * main.cpu_seconds / main.trials; }
  double sustained_rate() const { return sustained.metric_messages / sustained.seconds; }
};

// Starts a scheduler on `data_dir` with `store_flags` and runs the three phases on it.
StoreRun RunScheduler(int tuner_port, const std::string& data_dir,
                      const std::vector<std::string>& store_flags) {
  StoreRun run;
  std::vector<std::string> argv = {absl::GetFlag(FLAGS_scheduler_server),
                                   "--host=127.0.0.1",
                                   "--port=0",
                                   "--metrics_port=0",
                                   absl::StrCat("--data_dir=", data_dir),
                                   absl::StrCat("--tuner_address=127.0.0.1:", tuner_port)};
  argv.insert(argv.end(), store_flags.begin(), store_flags.end());
  auto scheduler = testing::StartReadyServer(argv);
  if (!scheduler.ok()) {
    std::fprintf(stderr, "scheduler: %s\n", std::string(scheduler.status().message()).c_str());
    return run;
  }
  const pid_t pid = scheduler->process->pid();
  const std::string address = absl::StrCat("127.0.0.1:", scheduler->ports.grpc);
  auto channel = CreateChannel(address);
  auto experiments = v1::ExperimentService::NewStub(channel);
  auto artifacts = v1::ArtifactService::NewStub(channel);

  const int trials = absl::GetFlag(FLAGS_trials), epochs = absl::GetFlag(FLAGS_epochs);
  std::fprintf(stderr, "phase 1: %d trials x %d reports, %d workers x %d slots\n", trials, epochs,
               absl::GetFlag(FLAGS_workers), absl::GetFlag(FLAGS_slots));
  run.main = RunPhase(*experiments, *artifacts, pid, address, trials, epochs);
  // Commit latency at a realistic load: reports paced, as real epochs are, so what is
  // measured is the commit, not the backlog of a deliberate flood.
  const int paced_trials = absl::GetFlag(FLAGS_paced_trials);
  const int paced_ms = absl::GetFlag(FLAGS_paced_epoch_ms);
  std::fprintf(stderr, "latency phase: %d trials x %d reports, %d ms apart\n", paced_trials, epochs,
               paced_ms);
  auto scrape = [&](const char* histogram) {
    auto metrics = testing::HttpGet("127.0.0.1", scheduler->ports.metrics, "/metrics");
    return metrics.ok() ? Buckets(metrics->body, histogram) : Histogram();
  };
  const char* commit_histogram = "autocompress_scheduler_store_commit_latency_seconds";
  const char* write_histogram = "autocompress_scheduler_store_write_seconds";
  const Histogram commit_before = scrape(commit_histogram);
  const Histogram write_before = scrape(write_histogram);
  const PhaseResult paced = RunPhase(*experiments, *artifacts, pid, address, paced_trials, epochs,
                                     absl::Milliseconds(paced_ms));
  const Histogram commit_during = Minus(scrape(commit_histogram), commit_before);
  const Histogram write_during = Minus(scrape(write_histogram), write_before);
  run.commit_p50 = 1000 * Quantile(commit_during, 0.5);
  run.commit_p99 = 1000 * Quantile(commit_during, 0.99);
  run.write_p50 = 1000 * Quantile(write_during, 0.5);
  run.write_p99 = 1000 * Quantile(write_during, 0.99);
  run.paced_ack_p50 = Percentile(paced.ack_ms, 0.5);
  run.paced_ack_p99 = Percentile(paced.ack_ms, 0.99);
  // Worker events: started, the reports, finished; plus the assignment.
  run.paced_rate = (paced.metric_messages + 3.0 * paced.trials) / paced.seconds;
  std::fprintf(stderr, "phase 2: %d trials x %d reports\n", absl::GetFlag(FLAGS_sustained_trials),
               absl::GetFlag(FLAGS_sustained_epochs));
  run.sustained =
      RunPhase(*experiments, *artifacts, pid, address, absl::GetFlag(FLAGS_sustained_trials),
               absl::GetFlag(FLAGS_sustained_epochs));
  run.stats = StatsOf(pid);
  scheduler->process->Signal(SIGTERM);
  (void)scheduler->process->Wait(absl::Seconds(10));
  run.ok = true;
  return run;
}

int Main() {
  char dir_template[] = "/tmp/scheduler-bench-XXXXXX";
  const std::string data_dir = mkdtemp(dir_template);
  auto tuner = testing::StartReadyServer(
      {absl::GetFlag(FLAGS_tuner_server), "--host=127.0.0.1", "--port=0", "--metrics_port=0"});
  if (!tuner.ok()) {
    std::fprintf(stderr, "tuner: %s\n", std::string(tuner.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "== SQLite (synchronous=%s)\n",
               absl::GetFlag(FLAGS_sqlite_synchronous).c_str());
  const StoreRun sqlite = RunScheduler(
      tuner->ports.grpc, data_dir + "/sqlite",
      {"--store=sqlite",
       absl::StrCat("--sqlite_synchronous=", absl::GetFlag(FLAGS_sqlite_synchronous))});
  if (!sqlite.ok) return 1;
  // PostgreSQL 15 on loopback, fsync on, in a throwaway cluster on the same disk.
  StoreRun postgres;
  if (absl::GetFlag(FLAGS_postgres)) {
    std::fprintf(stderr, "== PostgreSQL\n");
    auto server = scheduler::PostgresTestServer::Start();
    if (server.ok() && (*server)->CreateDatabase("bench").ok()) {
      postgres = RunScheduler(tuner->ports.grpc, data_dir + "/postgres",
                              {absl::StrCat("--store=", (*server)->Url("bench"))});
    } else {
      std::fprintf(
          stderr, "postgres: %s\n",
          server.ok() ? "CREATE DATABASE failed" : std::string(server.status().message()).c_str());
    }
  }
  tuner->process->Signal(SIGTERM);
  (void)tuner->process->Wait(absl::Seconds(10));
  const double fdatasync_p50 = FdatasyncP50Ms(data_dir, 2000);
  const nlohmann::json optuna = RunOptuna();
  const bool have_optuna = optuna.is_object();
  const double optuna_ms = have_optuna ? optuna["ms_per_trial"].get<double>() : 0;
  auto verdict = [](bool ok) { return ok ? "yes" : "NO"; };
  // A PostgreSQL cell, or "-" when it did not run.
  auto pg = [&](double value, const char* format = "%.3f") {
    if (!postgres.ok) return std::string("-");
    char cell[64];
    std::snprintf(cell, sizeof(cell), format, value);
    return std::string(cell);
  };
  auto pg2 = [&](double a, double b) { return postgres.ok ? pg(a) + " / " + pg(b) : "-"; };

  std::printf(
      "\n## Scheduler: %d no-op trials x %d reports, %d fake workers x %d slots, "
      "SQLite synchronous=%s; PostgreSQL 15 on loopback (fsync on)\n\n",
      absl::GetFlag(FLAGS_trials), absl::GetFlag(FLAGS_epochs), absl::GetFlag(FLAGS_workers),
      absl::GetFlag(FLAGS_slots), absl::GetFlag(FLAGS_sqlite_synchronous).c_str());
  std::printf(
      "| measure | AutoCompress on SQLite | AutoCompress on PostgreSQL | Optuna 3.1 + SQLite | "
      "target (SQLite) | met |\n");
  std::printf("|---|---|---|---|---|---|\n");
  std::printf("| wall ms per trial | %.3f | %s | %.1f | | |\n", sqlite.ms_per_trial(),
              pg(postgres.ms_per_trial()).c_str(), optuna_ms);
  std::printf("| trials/s | %.0f | %s | %.1f | | |\n", 1000 / sqlite.ms_per_trial(),
              pg(1000 / postgres.ms_per_trial(), "%.0f").c_str(),
              have_optuna ? 1000 / optuna_ms : 0.0);
  std::printf("| scheduler CPU ms per trial | %.3f | %s | | <= 1 | %s |\n",
              sqlite.cpu_ms_per_trial(), pg(postgres.cpu_ms_per_trial()).c_str(),
              verdict(sqlite.cpu_ms_per_trial() <= 1));
  std::printf("| metric messages/s (phase 1) | %.0f | %s | | | |\n",
              sqlite.main.metric_messages / sqlite.main.seconds,
              pg(postgres.main.metric_messages / postgres.main.seconds, "%.0f").c_str());
  std::printf("| metric messages/s sustained (%d x %d) | %.0f | %s | | >= 10000 | %s |\n",
              absl::GetFlag(FLAGS_sustained_trials), absl::GetFlag(FLAGS_sustained_epochs),
              sqlite.sustained_rate(), pg(postgres.sustained_rate(), "%.0f").c_str(),
              verdict(sqlite.sustained_rate() >= 10000));
  std::printf(
      "| commit latency p50 ms (paced: %d trials, %.0f events/s) | %.3f | %s | | <= 1 | %s |\n",
      absl::GetFlag(FLAGS_paced_trials), sqlite.paced_rate, sqlite.commit_p50,
      pg(postgres.commit_p50).c_str(), verdict(sqlite.commit_p50 <= 1));
  std::printf("| commit latency p99 ms (paced) | %.3f | %s | | | |\n", sqlite.commit_p99,
              pg(postgres.commit_p99).c_str());
  std::printf(
      "| store write p50 / p99 ms per commit (paced, fsync included) | %.3f / %.3f | %s | | | |\n",
      sqlite.write_p50, sqlite.write_p99, pg2(postgres.write_p50, postgres.write_p99).c_str());
  std::printf(
      "| disk floor: 4 KiB write + fdatasync p50 ms (same disk, same run) | %.3f | | | | |\n",
      fdatasync_p50);
  std::printf("| event->ack p50 / p99 ms (paced, worker side) | %.3f / %.3f | %s | | | |\n",
              sqlite.paced_ack_p50, sqlite.paced_ack_p99,
              pg2(postgres.paced_ack_p50, postgres.paced_ack_p99).c_str());
  std::printf(
      "| event->ack p50 / p99 ms (phase 1 flood, backlog included) | %.3f / %.3f | %s | | | |\n",
      Percentile(sqlite.main.ack_ms, 0.5), Percentile(sqlite.main.ack_ms, 0.99),
      pg2(Percentile(postgres.main.ack_ms, 0.5), Percentile(postgres.main.ack_ms, 0.99)).c_str());
  std::printf("| scheduler peak RSS MiB | %.1f | %s | | | |\n", sqlite.stats.peak_rss_mib,
              pg(postgres.stats.peak_rss_mib, "%.1f").c_str());
  if (have_optuna) {
    std::printf("| Optuna ms per transition | | | %.2f (%d trials, %d transitions) | | |\n",
                optuna["ms_per_transition"].get<double>(), optuna["trials"].get<int>(),
                optuna["transitions"].get<int>());
    std::printf("| Optuna / AutoCompress wall per trial | %.0fx | %s | | | |\n",
                optuna_ms / sqlite.ms_per_trial(),
                pg(optuna_ms / postgres.ms_per_trial(), "%.0fx").c_str());
  }
  std::printf(
      "\nscheduler-bench: metric_msgs_per_s=%.0f commit_p50_ms=%.3f commit_p99_ms=%.3f "
      "cpu_ms_per_trial=%.3f trials_per_s=%.0f optuna_sqlite_ms_per_trial=%.1f "
      "fdatasync_p50_ms=%.3f postgres_commit_p50_ms=%s postgres_commit_p99_ms=%s\n",
      sqlite.sustained_rate(), sqlite.commit_p50, sqlite.commit_p99, sqlite.cpu_ms_per_trial(),
      1000 / sqlite.ms_per_trial(), optuna_ms, fdatasync_p50, pg(postgres.commit_p50).c_str(),
      pg(postgres.commit_p99).c_str());
  return 0;
}

}  // namespace
}  // namespace autocompress

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return autocompress::Main();
}
