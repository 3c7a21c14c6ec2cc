// autocompress: the command-line tool (CLI11). Against a scheduler (--server): submit,
// status, trials, pareto, watch, stop, resume, update, export. On this machine alone: run (the
// embedded scheduler, tuner and worker), validate, compress. `autocompress CMD --help`
// describes each.
//
// Exit codes: 0 success, 2 bad input (the message says what and where), 1 an internal
// error or a server that cannot be reached, 3 an experiment that ended FAILED, 130 after
// Ctrl-C.
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/cli_render.h"
#include "client/client.h"
#include "client/compress_command.h"
#include "client/embedded.h"
#include "client/experiment.h"
#include "client/experiment_file.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "worker/trial_pipeline.h"

namespace autocompress {
namespace {

namespace fs = std::filesystem;

constexpr int kExitFailed = 3;
constexpr int kExitInterrupted = 130;

int ExitCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAborted:
      return 2;
    case absl::StatusCode::kCancelled:
      return kExitInterrupted;
    default:
      return 1;
  }
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// ---- Options shared by the commands that talk to a scheduler ------------------------

struct Connection {
  ClientOptions client;
  double timeout_seconds = 30;

  void AddTo(CLI::App& app) {
    app.add_option("--server", client.address, "Scheduler address host:port")
        ->envname("AUTOCOMPRESS_SERVER")
        ->capture_default_str();
    app.add_option("--timeout", timeout_seconds, "Deadline of each call, seconds")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--token", client.token, "Bearer token sent with every call")
        ->envname("AUTOCOMPRESS_TOKEN");
    app.add_flag("--tls", client.tls, "Use TLS (the server's certificate is verified)");
    app.add_option("--tls_ca", client.tls_root_certs_file, "PEM roots to verify the server with")
        ->check(CLI::ExistingFile);
    app.add_option("--tls_cert", client.tls_cert_file, "Client certificate (mutual TLS)")
        ->check(CLI::ExistingFile);
    app.add_option("--tls_key", client.tls_key_file, "Client key (mutual TLS)")
        ->check(CLI::ExistingFile);
    app.add_option("--tls_server_name", client.tls_server_name,
                   "Name expected in the server's certificate");
  }

  absl::StatusOr<std::unique_ptr<Client>> Connect() {
    client.timeout = absl::Seconds(timeout_seconds);
    return Client::Connect(client);
  }
};

// Ctrl-C: the first one asks the running command to stop cleanly, the second exits.
std::atomic<int> g_interrupts{0};

void OnInterrupt(int) {
  if (g_interrupts.fetch_add(1) >= 1) _exit(kExitInterrupted);
}

// A thread that calls `stop` once Ctrl-C was pressed, until the object goes away.
class InterruptWatcher {
 public:
  explicit InterruptWatcher(std::function<void()> stop)
      : thread_([this, stop = std::move(stop)] {
          while (!done_.load()) {
            if (g_interrupts.load() > 0) {
              stop();
              return;
            }
            absl::SleepFor(absl::Milliseconds(50));
          }
        }) {
    std::signal(SIGINT, OnInterrupt);
    std::signal(SIGTERM, OnInterrupt);
  }
  ~InterruptWatcher() {
    done_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

bool Terminal(FILE* f) { return isatty(fileno(f)) != 0; }

absl::Status PrintProblems(const std::string& file, const std::vector<FileProblem>& problems) {
  for (const FileProblem& p : problems)
    std::fprintf(stderr, "%s\n", FormatProblem(file, p).c_str());
  return absl::InvalidArgumentError(
      absl::StrCat(problems.size(), problems.size() == 1 ? " problem" : " problems", " in ", file));
}

absl::StatusOr<ExperimentFile> ReadOrReport(const std::string& path) {
  std::vector<FileProblem> problems;
  ExperimentFile file = ReadExperimentFile(path, problems);
  if (!problems.empty()) return PrintProblems(path, problems);
  return file;
}

// The trials of an experiment, best first by the objective.
absl::StatusOr<std::vector<v1::Trial>> TrialsOf(Client& client, const std::string& id,
                                                const std::string& order_by = "sequence") {
  v1::ListTrialsRequest request;
  request.set_experiment_id(id);
  request.set_order_by(order_by);
  return client.ListAllTrials(request);
}

// Downloads a trial's result artifacts into `dir`; prints each path.
absl::Status ExportTrial(Client& client, const v1::Trial& trial, const std::string& dir) {
  if (trial.results().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trial ", trial.id(), " (", StateName(trial.state()), ") has no exported results"));
  }
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat("--output ", dir, ": ", error.message()));
  }
  for (const v1::ArtifactRef& ref : trial.results()) {
    const std::string name =
        ref.name().empty() ? ref.sha256() : fs::path(ref.name()).filename().string();
    const std::string path = (fs::path(dir) / name).string();
    RETURN_IF_ERROR(client.Download(ref, path));
    std::printf("%s\n", path.c_str());
  }
  // What was chosen, beside the files.
  const std::string info = (fs::path(dir) / "trial.json").string();
  FILE* f = std::fopen(info.c_str(), "w");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot write ", info));
  std::fprintf(f, "%s\n", ToJson(trial).c_str());
  std::fclose(f);
  std::printf("%s\n", info.c_str());
  return absl::OkStatus();
}

absl::StatusOr<v1::Trial> ResolveTrial(Client& client, const std::string& target,
                                       const std::string& experiment_id) {
  if (target != "best") return client.GetTrial(target);
  if (experiment_id.empty()) {
    return absl::InvalidArgumentError("export best: name the experiment with --experiment");
  }
  ASSIGN_OR_RETURN(v1::Experiment experiment, client.GetExperiment(experiment_id));
  if (experiment.best_trial_id().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("experiment ", experiment_id, " has no succeeded trial yet"));
  }
  return client.GetTrial(experiment.best_trial_id());
}

bool MultiObjective(const v1::Experiment& experiment) {
  return experiment.spec().objective().secondary_size() > 0;
}

absl::Status WriteFile(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size() ||
      std::fclose(f) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// The trials table with the baseline, the front and the best feasible trial marked, the
// summary, and with several objectives the front's table and plot (`plot`, if named).
absl::Status PrintResults(Client& client, const v1::Experiment& experiment,
                          const std::string& plot = "") {
  ASSIGN_OR_RETURN(std::vector<v1::Trial> trials, TrialsOf(client, experiment.id()));
  ASSIGN_OR_RETURN(v1::ListParetoTrialsResponse front, client.ListParetoTrials(experiment.id()));
  const v1::Trial* best = nullptr;
  for (const v1::Trial& t : trials) {
    if (t.id() == experiment.best_trial_id()) best = &t;
  }
  std::printf("\n%s\n%s",
              TrialsTable(trials, experiment.spec().objective().primary().metric(),
                          TrialMarks(experiment, &front))
                  .c_str(),
              ExperimentSummary(experiment, best).c_str());
  if (!MultiObjective(experiment)) return absl::OkStatus();
  std::printf("\nPareto front:\n%s", ParetoTable(front).c_str());
  if (!plot.empty()) {
    RETURN_IF_ERROR(WriteFile(plot, ParetoSvg(trials, front, experiment)));
    std::printf("front plotted in %s\n", plot.c_str());
  }
  return absl::OkStatus();
}

int FinalCode(const v1::Experiment& experiment) {
  return experiment.state() == v1::EXPERIMENT_STATE_FAILED ? kExitFailed : 0;
}

// ---- Commands -----------------------------------------------------------------------

struct RunArgs {
  std::string file;
  std::string data_dir = "./autocompress-data";
  std::string output;
  int slots = 1;
  int threads_per_trial = 0;
  int port = 0;
  int http_port = 8088;
  std::string web_dir;
  bool cpu_only = false;
  bool plain = false;
};

// Embedded mode. The experiment's identity is the digest of its spec with its artifacts,
// so `run` again with the same file and data on the same --data_dir finds it: a RUNNING
// one (interrupted) carries on, a STOPPED one resumes, a DONE one prints its results.
int Run(const RunArgs& args) {
  absl::StatusOr<ExperimentFile> file = ReadOrReport(args.file);
  if (!file.ok()) return ExitCode(file.status());
  // The services' logs go to DATA_DIR/logs (errors also to stderr); the terminal shows
  // the experiment.
  std::error_code error;
  fs::create_directories(fs::path(args.data_dir) / "logs", error);
  if (!error) {
    FLAGS_logtostderr = false;
    FLAGS_stderrthreshold = google::ERROR;
    google::SetLogDestination(google::INFO,
                              (fs::path(args.data_dir) / "logs" / "autocompress.").c_str());
  }
  EmbeddedCluster::Options options;
  options.data_dir = args.data_dir;
  options.slots = args.slots;
  options.threads_per_trial = args.threads_per_trial;
  options.use_gpus = !args.cpu_only;
  options.scheduler_port = args.port;
  options.http_port = args.http_port;
  options.web_dir = args.web_dir;
  auto cluster = EmbeddedCluster::Start(options);
  if (!cluster.ok()) {
    std::fprintf(stderr, "autocompress run: %s\n", std::string(cluster.status().message()).c_str());
    return ExitCode(cluster.status());
  }
  Client& client = (*cluster)->client();
  std::fprintf(stderr,
               "scheduler on 127.0.0.1:%d (autocompress --server 127.0.0.1:%d status), store %s\n",
               (*cluster)->scheduler_port(), (*cluster)->scheduler_port(), args.data_dir.c_str());
  if (const std::string url = (*cluster)->dashboard_url(); !url.empty()) {
    std::fprintf(stderr, "dashboard: %s\n", url.c_str());
  }
  std::atomic<bool> interrupted{false};
  InterruptWatcher watcher([&] {
    interrupted = true;
    client.CancelWatches();
  });

  Experiment experiment(*std::move(file));
  auto fail = [&](const absl::Status& status) {
    std::fprintf(stderr, "autocompress run: %s\n", std::string(status.message()).c_str());
    return ExitCode(status);
  };
  if (absl::Status uploaded = experiment.Upload(client); !uploaded.ok()) return fail(uploaded);
  const std::string request_id =
      absl::StrCat("run-", Sha256Hex(experiment.spec().SerializeAsString()).substr(0, 32));
  absl::StatusOr<v1::Experiment> created = client.CreateExperiment(experiment.spec(), request_id);
  if (!created.ok()) return fail(created.status());
  std::string id = created->id();
  if (created->state() == v1::EXPERIMENT_STATE_STOPPED) {
    std::fprintf(stderr, "resuming experiment %s\n", id.c_str());
    if (auto resumed = client.ResumeExperiment(id); !resumed.ok()) return fail(resumed.status());
  } else if (created->state() == v1::EXPERIMENT_STATE_RUNNING &&
             created->trial_counts().succeeded() + created->trial_counts().failed() > 0) {
    std::fprintf(stderr, "continuing experiment %s\n", id.c_str());
  } else {
    std::fprintf(stderr, "experiment %s\n", id.c_str());
  }
  LiveView view(stdout, !args.plain && Terminal(stdout));
  absl::StatusOr<v1::Experiment> done =
      Experiment::Follow(client, id, [&](const v1::ExperimentEvent& e) { view.OnEvent(e); });
  view.Finish();
  if (interrupted) {
    // Running trials are handed back by the worker's drain and re-run next time.
    std::fprintf(stderr,
                 "\ninterrupted: experiment %s is kept in %s; run the same command again to "
                 "resume it\n",
                 id.c_str(), args.data_dir.c_str());
    (*cluster)->Shutdown();
    return kExitInterrupted;
  }
  if (!done.ok()) return fail(done.status());
  if (absl::Status printed =
          PrintResults(client, *done, (fs::path(args.data_dir) / "pareto.svg").string());
      !printed.ok()) {
    return fail(printed);
  }
  if (!done->best_trial_id().empty()) {
    const std::string out =
        args.output.empty() ? (fs::path(args.data_dir) / "best").string() : args.output;
    std::printf("\nbest model and report (trial %s):\n", done->best_trial_id().c_str());
    auto best = client.GetTrial(done->best_trial_id());
    absl::Status exported = best.ok() ? ExportTrial(client, *best, out) : best.status();
    if (!exported.ok()) return fail(exported);
  }
  (*cluster)->Shutdown();
  return FinalCode(*done);
}

int Validate(const std::string& path) {
  std::vector<FileProblem> problems;
  ExperimentFile file = ReadExperimentFile(path, problems);
  if (!problems.empty()) {
    (void)PrintProblems(path, problems);
    std::fprintf(stderr, "%zu problem%s\n", problems.size(), problems.size() == 1 ? "" : "s");
    return 2;
  }
  std::printf("%s: valid (%s, tuner %s, %d trials at most, %d at a time)\n", path.c_str(),
              file.spec.name().c_str(), file.spec.tuner().name().c_str(),
              file.spec.limits().max_trial_number(), file.spec.limits().trial_concurrency());
  return 0;
}

// Limits named on the command line, as a mask.
struct LimitFlags {
  std::optional<int> trial_concurrency, max_trial_number, max_retries;
  std::optional<std::string> max_experiment_duration, max_trial_duration;

  void AddTo(CLI::App& app) {
    app.add_option("--trial_concurrency", trial_concurrency, "Trials at once")
        ->check(CLI::PositiveNumber);
    app.add_option("--max_trial_number", max_trial_number, "Trials in all (0 = no limit)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--max_retries", max_retries, "Attempts per trial after the first")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--max_experiment_duration", max_experiment_duration, "e.g. 2h, 90m");
    app.add_option("--max_trial_duration", max_trial_duration, "e.g. 10m");
  }

  absl::Status Fill(v1::ExperimentLimits& limits, std::vector<std::string>& paths) const {
    if (trial_concurrency)
      limits.set_trial_concurrency(*trial_concurrency), paths.push_back("trial_concurrency");
    if (max_trial_number)
      limits.set_max_trial_number(*max_trial_number), paths.push_back("max_trial_number");
    if (max_retries) limits.set_max_retries(*max_retries), paths.push_back("max_retries");
    for (const auto& [flag, value, field] :
         {std::tuple<const char*, const std::optional<std::string>*, google::protobuf::Duration*>{
              "max_experiment_duration", &max_experiment_duration,
              limits.mutable_max_experiment_duration()},
          {"max_trial_duration", &max_trial_duration, limits.mutable_max_trial_duration()}}) {
      if (!*value) continue;
      absl::Duration d;
      if (!absl::ParseDuration(**value, &d) || d <= absl::ZeroDuration()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, "=", **value, " is not a positive duration such as 90m"));
      }
      field->set_seconds(absl::ToInt64Seconds(d));
      paths.push_back(flag);
    }
    return absl::OkStatus();
  }
};

}  // namespace
}  // namespace autocompress

int main(int argc, char** argv) {
  using namespace autocompress;
  // A trial attempt's child process (the embedded worker starts this binary so).
  if (argc >= 2 && std::string(argv[1]) == "--run_trial") {
    return worker::RunTrialChild(/*in_fd=*/0, /*out_fd=*/3);
  }
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  CLI::App app{"AutoCompress: automatic pruning and quantization search for TorchScript models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "autocompress 0.1");
  Connection connection;
  int code = 0;
  auto report = [&](const absl::Status& status, const char* command) {
    if (!status.ok()) {
      std::fprintf(stderr, "autocompress %s: %s\n", command, std::string(status.message()).c_str());
    }
    code = ExitCode(status);
  };
  auto with_client = [&](const char* command, const std::function<absl::Status(Client&)>& body) {
    auto client = connection.Connect();
    if (!client.ok()) return report(client.status(), command);
    report(body(**client), command);
  };

  // run
  RunArgs run_args;
  CLI::App* run = app.add_subcommand(
      "run", "Run an experiment on this machine: scheduler, tuner and worker in this process");
  run->add_option("file", run_args.file, "Experiment file (YAML or JSON)")
      ->required()
      ->check(CLI::ExistingFile);
  run->add_option("--slots", run_args.slots, "Trials at once on this machine")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  run->add_option("--threads_per_trial", run_args.threads_per_trial,
                  "LibTorch threads per trial (0 = cores / slots)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--data_dir", run_args.data_dir,
                  "Store (SQLite) and artifacts; run again on it to resume")
      ->capture_default_str();
  run->add_option("--output", run_args.output,
                  "Where the best model is exported (default DATA_DIR/best)");
  run->add_option("--port", run_args.port, "Scheduler port on 127.0.0.1 (0 = any free one)");
  run->add_option("--http_port", run_args.http_port,
                  "Dashboard port on 127.0.0.1 (any free one if taken; -1 = no dashboard)")
      ->capture_default_str();
  run->add_option("--web_dir", run_args.web_dir, "The built dashboard page (default web/dist)");
  run->add_flag("--cpu_only", run_args.cpu_only, "Do not use GPUs even when present");
  run->add_flag("--plain", run_args.plain, "Line-per-event output even on a terminal");
  run->callback([&] { code = Run(run_args); });

  // validate
  std::string validate_file;
  CLI::App* validate = app.add_subcommand(
      "validate",
      "Check an experiment file: every problem with its field path and line:column (exit 2)");
  validate->add_option("file", validate_file, "Experiment file")->required();
  validate->callback([&] { code = Validate(validate_file); });

  // submit
  std::string submit_file, request_id;
  bool submit_follow = false;
  CLI::App* submit =
      app.add_subcommand("submit", "Upload an experiment's files and start it on --server");
  connection.AddTo(*submit);
  submit->add_option("file", submit_file, "Experiment file")->required()->check(CLI::ExistingFile);
  submit->add_option("--request_id", request_id,
                     "Idempotency key (a retried submit creates nothing new)");
  submit->add_flag("--follow", submit_follow, "Watch it to the end, then print the trials table");
  submit->callback([&] {
    absl::StatusOr<ExperimentFile> file = ReadOrReport(submit_file);
    if (!file.ok()) return report(file.status(), "submit");
    with_client("submit", [&](Client& client) -> absl::Status {
      Experiment experiment(*std::move(file));
      ASSIGN_OR_RETURN(v1::Experiment created, experiment.Start(client, request_id));
      std::printf("%s\n", created.id().c_str());
      std::fflush(stdout);
      if (!submit_follow) return absl::OkStatus();
      LiveView view(stdout, Terminal(stdout));
      ASSIGN_OR_RETURN(v1::Experiment done,
                       Experiment::Follow(client, created.id(),
                                          [&](const v1::ExperimentEvent& e) { view.OnEvent(e); }));
      view.Finish();
      return PrintResults(client, done);
    });
  });

  // status
  std::string status_id;
  bool status_json = false;
  CLI::App* status = app.add_subcommand("status", "One experiment in detail, or every experiment");
  connection.AddTo(*status);
  status->add_option("experiment", status_id, "Experiment id (none = list all)");
  status->add_flag("--json", status_json, "JSON output");
  status->callback([&] {
    with_client("status", [&](Client& client) -> absl::Status {
      if (status_id.empty()) {
        ASSIGN_OR_RETURN(std::vector<v1::Experiment> all, client.ListAllExperiments({}));
        if (status_json) {
          std::vector<std::string> items;
          for (const auto& e : all) items.push_back(ToJson(e));
          std::printf("[%s]\n", absl::StrJoin(items, ",\n").c_str());
        } else {
          std::printf("%s", ExperimentsTable(all).c_str());
        }
        return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(v1::Experiment e, client.GetExperiment(status_id));
      if (status_json) {
        std::printf("%s\n", ToJson(e).c_str());
        return absl::OkStatus();
      }
      std::optional<v1::Trial> best;
      if (!e.best_trial_id().empty()) {
        ASSIGN_OR_RETURN(best, client.GetTrial(e.best_trial_id()));
      }
      std::printf("%s", ExperimentSummary(e, best ? &*best : nullptr).c_str());
      return absl::OkStatus();
    });
  });

  // trials
  std::string trials_id, order_by = "sequence";
  bool trials_json = false;
  CLI::App* trials = app.add_subcommand("trials", "The trials table of an experiment");
  connection.AddTo(*trials);
  trials->add_option("experiment", trials_id, "Experiment id")->required();
  trials
      ->add_option("--order_by", order_by,
                   "sequence, objective, or a final metric as \"accuracy desc\"")
      ->capture_default_str();
  trials->add_flag("--json", trials_json, "A JSON array of trials (every field, every metric)");
  trials->callback([&] {
    with_client("trials", [&](Client& client) -> absl::Status {
      ASSIGN_OR_RETURN(v1::Experiment e, client.GetExperiment(trials_id));
      ASSIGN_OR_RETURN(std::vector<v1::Trial> list, TrialsOf(client, trials_id, order_by));
      if (trials_json) {
        std::vector<std::string> items;
        for (const auto& t : list) items.push_back(ToJson(t));
        std::printf("[%s]\n", absl::StrJoin(items, ",\n").c_str());
      } else {
        ASSIGN_OR_RETURN(v1::ListParetoTrialsResponse front, client.ListParetoTrials(trials_id));
        std::printf(
            "%s", TrialsTable(list, e.spec().objective().primary().metric(), TrialMarks(e, &front))
                      .c_str());
      }
      return absl::OkStatus();
    });
  });

  // watch
  std::string watch_id;
  bool watch_json = false, watch_follow_resumes = false;
  int64_t after_sequence = 0;
  CLI::App* watch = app.add_subcommand("watch", "Follow an experiment's events until it ends");
  connection.AddTo(*watch);
  watch->add_option("experiment", watch_id, "Experiment id")->required();
  watch->add_option("--after_sequence", after_sequence, "Only events after this sequence");
  watch->add_flag("--follow_resumes", watch_follow_resumes,
                  "Keep following after it ends (resumes)");
  watch->add_flag("--json", watch_json, "One JSON event per line");
  watch->callback([&] {
    with_client("watch", [&](Client& client) -> absl::Status {
      InterruptWatcher watcher([&] { client.CancelWatches(); });
      LiveView view(stdout, !watch_json && Terminal(stdout));
      absl::Status s = client.Watch(watch_id, after_sequence, watch_follow_resumes,
                                    [&](const v1::ExperimentEvent& e) {
                                      if (watch_json) {
                                        std::printf("%s\n", ToJson(e).c_str());
                                        std::fflush(stdout);
                                      } else {
                                        view.OnEvent(e);
                                      }
                                      return true;
                                    });
      if (!watch_json) view.Finish();
      return s;
    });
  });

  // stop, resume, update
  std::string stop_id;
  CLI::App* stop = app.add_subcommand("stop", "Stop an experiment (running trials are canceled)");
  connection.AddTo(*stop);
  stop->add_option("experiment", stop_id, "Experiment id")->required();
  stop->callback([&] {
    with_client("stop", [&](Client& client) -> absl::Status {
      ASSIGN_OR_RETURN(v1::Experiment e, client.StopExperiment(stop_id));
      std::printf("%s %s\n", e.id().c_str(), StateName(e.state()).c_str());
      return absl::OkStatus();
    });
  });
  std::string resume_id;
  LimitFlags resume_limits;
  CLI::App* resume = app.add_subcommand(
      "resume", "Resume a STOPPED or DONE experiment, optionally with raised limits");
  connection.AddTo(*resume);
  resume->add_option("experiment", resume_id, "Experiment id")->required();
  resume_limits.AddTo(*resume);
  resume->callback([&] {
    with_client("resume", [&](Client& client) -> absl::Status {
      v1::ExperimentLimits limits;
      std::vector<std::string> paths;
      RETURN_IF_ERROR(resume_limits.Fill(limits, paths));
      ASSIGN_OR_RETURN(v1::Experiment e, client.ResumeExperiment(resume_id, limits, paths));
      std::printf("%s %s\n", e.id().c_str(), StateName(e.state()).c_str());
      return absl::OkStatus();
    });
  });
  std::string update_id;
  LimitFlags update_limits;
  int64_t expected_version = 0;
  CLI::App* update = app.add_subcommand("update", "Change a running experiment's limits");
  connection.AddTo(*update);
  update->add_option("experiment", update_id, "Experiment id")->required();
  update_limits.AddTo(*update);
  update->add_option("--expected_version", expected_version,
                     "Apply only to this version (else exit 2)");
  update->callback([&] {
    with_client("update", [&](Client& client) -> absl::Status {
      v1::ExperimentLimits limits;
      std::vector<std::string> paths;
      RETURN_IF_ERROR(update_limits.Fill(limits, paths));
      if (paths.empty()) return absl::InvalidArgumentError("name at least one limit to change");
      ASSIGN_OR_RETURN(v1::Experiment e,
                       client.UpdateExperiment(update_id, limits, paths, expected_version));
      std::printf("%s version %lld\n", e.id().c_str(), static_cast<long long>(e.version()));
      return absl::OkStatus();
    });
  });

  // pareto
  std::string pareto_id, pareto_plot;
  bool pareto_json = false;
  CLI::App* pareto = app.add_subcommand(
      "pareto", "The Pareto front of an experiment's objectives: a table and an SVG plot");
  connection.AddTo(*pareto);
  pareto->add_option("experiment", pareto_id, "Experiment id")->required();
  pareto->add_option("--plot", pareto_plot,
                     "Write the front (with every trial, the baseline and the constraints) as "
                     "an SVG file a browser opens");
  pareto->add_flag("--json", pareto_json, "The ListParetoTrials response as JSON");
  pareto->callback([&] {
    with_client("pareto", [&](Client& client) -> absl::Status {
      ASSIGN_OR_RETURN(v1::Experiment e, client.GetExperiment(pareto_id));
      ASSIGN_OR_RETURN(v1::ListParetoTrialsResponse front, client.ListParetoTrials(pareto_id));
      if (pareto_json) {
        std::printf("%s\n", ToJson(front).c_str());
      } else {
        std::printf("%s", ParetoTable(front).c_str());
      }
      if (!pareto_plot.empty()) {
        ASSIGN_OR_RETURN(std::vector<v1::Trial> all, TrialsOf(client, pareto_id));
        RETURN_IF_ERROR(WriteFile(pareto_plot, ParetoSvg(all, front, e)));
        std::fprintf(stderr, "front plotted in %s\n", pareto_plot.c_str());
      }
      return absl::OkStatus();
    });
  });

  // export
  std::string export_target, export_experiment, export_output;
  bool export_pareto = false;
  CLI::App* exp = app.add_subcommand(
      "export", "Download a trial's compressed model, report and calibration (or the front's)");
  connection.AddTo(*exp);
  exp->add_option("trial", export_target, "Trial id, or best (with --experiment)");
  exp->add_option("--experiment,-e", export_experiment, "Experiment of `best` or --pareto");
  exp->add_option("--output,-o", export_output, "Folder to write into")->required();
  exp->add_flag("--pareto", export_pareto,
                "Every trial on the experiment's front, each into OUTPUT/TRIAL_ID/ with its "
                "trial.json, and OUTPUT/front.json");
  exp->callback([&] {
    with_client("export", [&](Client& client) -> absl::Status {
      if (export_pareto) {
        if (export_experiment.empty() || !export_target.empty()) {
          return absl::InvalidArgumentError(
              "export --pareto: name the experiment with --experiment, and no trial");
        }
        ASSIGN_OR_RETURN(v1::ListParetoTrialsResponse front,
                         client.ListParetoTrials(export_experiment));
        if (front.trials().empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "experiment ", export_experiment, " has no feasible succeeded trial yet"));
        }
        for (const v1::Trial& trial : front.trials()) {
          RETURN_IF_ERROR(
              ExportTrial(client, trial, (fs::path(export_output) / trial.id()).string()));
        }
        const std::string summary = (fs::path(export_output) / "front.json").string();
        RETURN_IF_ERROR(WriteFile(summary, ToJson(front) + "\n"));
        std::printf("%s\n", summary.c_str());
        return absl::OkStatus();
      }
      if (export_target.empty()) {
        return absl::InvalidArgumentError("export: name a trial id, best, or --pareto");
      }
      ASSIGN_OR_RETURN(v1::Trial trial, ResolveTrial(client, export_target, export_experiment));
      return ExportTrial(client, trial, export_output);
    });
  });

  // compress: its own flags (compress_command.h), passed through.
  CLI::App* compress =
      app.add_subcommand("compress", "Compress one model with one algorithm and config list");
  compress->allow_extras();
  compress->prefix_command();
  compress->footer(kCompressUsage);
  compress->callback([&] { code = RunCompress(compress->remaining()); });

  CLI::App* speedup =
      app.add_subcommand("speedup", "Make a filter-pruned model physically smaller and measure it");
  speedup->allow_extras();
  speedup->prefix_command();
  speedup->footer(kSpeedupUsage);
  speedup->callback([&] { code = RunSpeedup(speedup->remaining()); });

  CLI::App* train = app.add_subcommand(
      "train", "Train a TorchScript model on a data set (the demo's pre-training)");
  train->allow_extras();
  train->prefix_command();
  train->footer(kTrainUsage);
  train->callback([&] { code = RunTrain(train->remaining()); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return code;
}
