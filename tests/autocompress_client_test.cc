// The `autocompress` CLI against real server processes on loopback (tuner_server,
// scheduler_server, one worker_server running real trials on the Fashion-MNIST subset):
// submit, stop, resume with a raised limit, watch to the end, trials --json, status,
// update, and export of the best trial, whose model reloads in LibTorch with exactly the
// zeros the trial's report and final metrics claim. Also embedded `run`, interrupted with
// SIGINT mid-experiment and run again on the same --data_dir: it finishes with every
// trial accounted for once.
#include <signal.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/testing/runfiles.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using testing::RunfilePath;
using testing::Subprocess;
using testing::TempPath;

struct Cli {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs autocompress with stdout and stderr captured in files.
Cli RunCli(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(120)) {
  static int runs = 0;
  const std::string out = TempPath(absl::StrCat("cli.out.", runs));
  const std::string err = TempPath(absl::StrCat("cli.err.", runs++));
  std::vector<std::string> argv = {"/bin/sh",
                                   "-c",
                                   "o=$1; e=$2; shift 2; exec \"$@\" >\"$o\" 2>\"$e\"",
                                   "sh",
                                   out,
                                   err,
                                   RunfilePath("client/autocompress")};
  argv.insert(argv.end(), args.begin(), args.end());
  Cli result;
  auto process = Subprocess::Start(argv);
  if (!process.ok()) return result;
  auto code = (*process)->Wait(timeout);
  result.code = code.ok() ? *code : -1;
  result.out = Slurp(out);
  result.err = Slurp(err);
  return result;
}

// An experiment on the Fashion-MNIST subset: level and l1, one fine-tuning epoch.
std::string WriteExperiment(const std::string& name, int max_trials, int concurrency,
                            int finetune_epochs = 1, const std::string& objective = "") {
  const std::string path = TempPath(name + ".yaml");
  std::ofstream(path) << absl::StrCat(R"(experiment_name: )", name, R"(
search_space:
  - algorithm: level
    config_list:
      - {sparsity: {_type: uniform, _value: [0.3, 0.8]}, op_types: [default]}
  - algorithm: l1
    config_list:
      - {sparsity: {_type: uniform, _value: [0.2, 0.5]}, op_types: [Conv2d]}
tuner: {name: random}
)",
                                      objective, R"(
trial_concurrency: )",
                                      concurrency, R"(
max_trial_number: )",
                                      max_trials, R"(
model: )",
                                      RunfilePath("worker/testdata/fashion_model.pt"), R"(
data:
  format: idx
  train: )",
                                      RunfilePath("worker/testdata/fashion_train.tar"), R"(
  eval: )",
                                      RunfilePath("worker/testdata/fashion_test.tar"), R"(
  mean: [0.286]
  std: [0.353]
  batch_size: 32
training: {optimizer: {name: sgd, learning_rate: 0.02}, finetune_epochs: )",
                                      finetune_epochs, R"(}
seed: 3
)");
  return path;
}

Json TrialsJson(const std::string& server, const std::string& id) {
  Cli trials = RunCli({"trials", id, "--server", server, "--json"});
  EXPECT_EQ(trials.code, 0) << trials.err;
  Json parsed = Json::parse(trials.out, nullptr, false);
  EXPECT_TRUE(parsed.is_array()) << trials.out;
  return parsed.is_array() ? parsed : Json::array();
}

double Metric(const Json& trial, const std::string& name) {
  for (const Json& m : trial["final_report"]["metrics"]) {
    if (m["name"] == name) return m.value("value", 0.0);
  }
  ADD_FAILURE() << "no metric " << name << " in " << trial.dump();
  return -1;
}

TEST(AutocompressClientTest, SubmitStopResumeWatchTrialsAndExportAgainstRealServers) {
  auto tuner = testing::StartReadyServer({RunfilePath("tuner_service/tuner_server"),
                                          "--host=127.0.0.1", "--port=0", "--metrics_port=0"});
  ASSERT_TRUE(tuner.ok()) << tuner.status();
  auto scheduler = testing::StartReadyServer(
      {RunfilePath("scheduler_service/scheduler_server"), "--host=127.0.0.1", "--port=0",
       "--metrics_port=0", absl::StrCat("--data_dir=", TempPath("scheduler-data")),
       absl::StrCat("--tuner_address=127.0.0.1:", tuner->ports.grpc)});
  ASSERT_TRUE(scheduler.ok()) << scheduler.status();
  const std::string server = absl::StrCat("127.0.0.1:", scheduler->ports.grpc);
  auto worker = testing::StartReadyServer(
      {RunfilePath("worker/worker_server"), "--host=127.0.0.1", "--port=0", "--metrics_port=0",
       absl::StrCat("--scheduler=", server), "--worker_id=cli-worker", "--cpu_slots=2",
       "--threads_per_trial=1", absl::StrCat("--work_dir=", TempPath("worker"))});
  ASSERT_TRUE(worker.ok()) << worker.status();

  // submit prints the id; a retry with the same request id creates nothing new.
  // Two objectives: accuracy against effective_bytes, a Pareto front.
  const std::string file =
      WriteExperiment("cli", /*max_trials=*/3, /*concurrency=*/1, /*finetune_epochs=*/1,
                      "objective: {metric: accuracy, mode: maximize, secondary: "
                      "[{metric: effective_bytes, mode: minimize}], constraints: "
                      "[\"accuracy_drop <= 0.5\"]}");
  Cli submitted = RunCli({"submit", file, "--server", server, "--request_id", "cli-test-1"});
  ASSERT_EQ(submitted.code, 0) << submitted.err;
  const std::string id(absl::StripAsciiWhitespace(submitted.out));
  ASSERT_FALSE(id.empty());
  Cli again = RunCli({"submit", file, "--server", server, "--request_id", "cli-test-1"});
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(again.out)), id) << again.err;

  // Stop it at once (a trial may be running: it is canceled), then resume it with one more
  // trial allowed.
  Cli stopped = RunCli({"stop", id, "--server", server});
  ASSERT_EQ(stopped.code, 0) << stopped.err;
  EXPECT_THAT(stopped.out, HasSubstr("STOPPED"));
  Cli status = RunCli({"status", id, "--server", server, "--json"});
  ASSERT_EQ(status.code, 0) << status.err;
  EXPECT_EQ(Json::parse(status.out)["state"], "EXPERIMENT_STATE_STOPPED");

  Cli resumed = RunCli({"resume", id, "--server", server, "--max_trial_number", "4"});
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_THAT(resumed.out, HasSubstr("RUNNING"));
  // update with a stale version is refused (exit 2), with the current one applied.
  Cli stale = RunCli(
      {"update", id, "--server", server, "--trial_concurrency", "2", "--expected_version", "1"});
  EXPECT_EQ(stale.code, 2) << stale.out;
  EXPECT_THAT(stale.err, HasSubstr("re-read and retry"));
  Cli updated = RunCli({"update", id, "--server", server, "--trial_concurrency", "2"});
  EXPECT_EQ(updated.code, 0) << updated.err;

  // watch follows it to the end; piped, it prints plain lines without escape codes.
  Cli watched = RunCli({"watch", id, "--server", server}, absl::Minutes(5));
  ASSERT_EQ(watched.code, 0) << watched.err;
  EXPECT_THAT(watched.out, HasSubstr("experiment " + id + " DONE"));
  EXPECT_THAT(watched.out, HasSubstr("SUCCEEDED"));
  EXPECT_EQ(watched.out.find('\x1b'), std::string::npos);

  // Four suggested trials and the baseline (sequence 0).
  const Json trials = TrialsJson(server, id);
  ASSERT_EQ(trials.size(), 5u) << trials.dump(1);
  EXPECT_TRUE(trials[0].value("baseline", false)) << trials[0].dump(1);
  std::set<std::string> states;
  int succeeded = 0;
  for (const Json& t : trials) {
    states.insert(t.value("state", ""));
    if (t.value("state", "") == "TRIAL_STATE_SUCCEEDED") ++succeeded;
  }
  // Every trial ended; only one running at the stop may have been canceled.
  for (const std::string& state : states) {
    EXPECT_TRUE(state == "TRIAL_STATE_SUCCEEDED" || state == "TRIAL_STATE_CANCELED") << state;
  }
  EXPECT_GE(succeeded, 4) << trials.dump(1);
  Cli table = RunCli({"trials", id, "--server", server});
  EXPECT_THAT(table.out, HasSubstr("algorithm"));
  EXPECT_THAT(table.out, HasSubstr("sparsity"));
  EXPECT_THAT(table.out, HasSubstr("SUCCEEDED"));

  // export best: the model reloads with the zeros the report and the metrics claim.
  const std::string out = TempPath("exported");
  Cli exported = RunCli({"export", "best", "-e", id, "--server", server, "--output", out});
  ASSERT_EQ(exported.code, 0) << exported.err;
  const Json best = Json::parse(Slurp(out + "/trial.json"));
  const Json report = Json::parse(Slurp(out + "/report.json"));
  torch::jit::Module model = torch::jit::load(out + "/model.pt");
  int64_t nonzero = 0;
  for (const torch::Tensor& p : model.parameters()) nonzero += p.count_nonzero().item<int64_t>();
  EXPECT_EQ(static_cast<double>(nonzero), Metric(best, "nonzero_parameters"));
  ASSERT_FALSE(report["layers"].empty());
  for (const Json& layer : report["layers"]) {
    for (const auto& item : model.named_modules()) {
      if (item.name != layer["name"].get<std::string>()) continue;
      const torch::Tensor w = item.value.attr("weight").toTensor();
      EXPECT_NEAR(w.eq(0).sum().item<double>() / w.numel(), layer["weight_sparsity"].get<double>(),
                  1e-12)
          << layer["name"];
    }
  }
  EXPECT_GT(Metric(best, "sparsity"), 0);  // level or l1: some weights are zero

  // pareto: the front equals the non-dominated succeeded trials found here by brute force;
  // the plot has a point per succeeded trial (baseline included) and the front's line.
  std::set<std::string> expected_front;
  for (const Json& a : trials) {
    if (a.value("baseline", false) || a.value("state", "") != "TRIAL_STATE_SUCCEEDED") continue;
    bool dominated = false;
    for (const Json& b : trials) {
      if (b.value("baseline", false) || b.value("state", "") != "TRIAL_STATE_SUCCEEDED") continue;
      const double ab = Metric(a, "effective_bytes"), bb = Metric(b, "effective_bytes");
      const double aa = Metric(a, "accuracy"), ba = Metric(b, "accuracy");
      dominated = dominated || (ba >= aa && bb <= ab && (ba > aa || bb < ab));
    }
    if (!dominated) expected_front.insert(a.value("id", ""));
  }
  const std::string plot = TempPath("front.svg");
  Cli pareto = RunCli({"pareto", id, "--server", server, "--json", "--plot", plot});
  ASSERT_EQ(pareto.code, 0) << pareto.err;
  const Json front = Json::parse(pareto.out);
  std::set<std::string> front_ids;
  for (const Json& t : front["trials"]) front_ids.insert(t.value("id", ""));
  EXPECT_EQ(front_ids, expected_front) << pareto.out;
  const std::string svg = Slurp(plot);
  EXPECT_THAT(svg, HasSubstr("<svg"));
  size_t circles = 0;
  for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1))
    ++circles;
  // One per succeeded trial (the baseline is one of them), plus the best trial's ring.
  EXPECT_EQ(circles, static_cast<size_t>(succeeded) + 1) << svg;
  EXPECT_THAT(svg, HasSubstr("baseline"));
  EXPECT_THAT(svg, HasSubstr("accuracy_drop &lt;= 0.5"));  // the constraint's line
  // Well-formed XML, as a browser needs it (Debian's Python parses it).
  auto parsed =
      Subprocess::Start({"/usr/bin/python3", "-c",
                         "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])", plot});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)->Wait(absl::Seconds(30)).value_or(-1), 0) << svg;
  Cli pareto_table = RunCli({"pareto", id, "--server", server});
  EXPECT_THAT(pareto_table.out, HasSubstr("effective_bytes (min)"));
  EXPECT_THAT(pareto_table.out, HasSubstr(" on the front, of "));
  // export --pareto: every front model with its trial.json, and the front.
  const std::string front_dir = TempPath("front");
  Cli front_export =
      RunCli({"export", "--pareto", "-e", id, "--server", server, "--output", front_dir});
  ASSERT_EQ(front_export.code, 0) << front_export.err;
  for (const std::string& trial_id : expected_front) {
    EXPECT_TRUE(std::filesystem::exists(front_dir + "/" + trial_id + "/model.pt")) << trial_id;
    EXPECT_TRUE(std::filesystem::exists(front_dir + "/" + trial_id + "/trial.json")) << trial_id;
  }
  EXPECT_EQ(Json::parse(Slurp(front_dir + "/front.json"))["trials"].size(), expected_front.size());

  // Bad input: an unknown experiment is exit 2 with the server's message.
  Cli unknown = RunCli({"status", "no-such-experiment", "--server", server});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("no-such-experiment"));

  worker->process->Signal(SIGTERM);
  scheduler->process->Signal(SIGTERM);
  tuner->process->Signal(SIGTERM);
}

TEST(AutocompressClientTest, EmbeddedRunInterruptedBySigintResumesAndAccountsForEveryTrial) {
  // Longer trials, so that the interrupt comes while two of them run.
  const std::string file =
      WriteExperiment("embedded", /*max_trials=*/6, /*concurrency=*/2, /*finetune_epochs=*/4);
  const std::string data_dir = TempPath("embedded-data");
  const std::string out = TempPath("embedded.out");
  auto process = Subprocess::Start({"/bin/sh", "-c", "o=$1; shift; exec \"$@\" >\"$o\" 2>&1", "sh",
                                    out, RunfilePath("client/autocompress"), "run", file, "--slots",
                                    "2", "--threads_per_trial", "1", "--data_dir", data_dir});
  ASSERT_TRUE(process.ok()) << process.status();
  // Interrupt after the first trial finished, while others run.
  const absl::Time deadline = absl::Now() + absl::Minutes(3);
  while (absl::Now() < deadline && Slurp(out).find("SUCCEEDED") == std::string::npos) {
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_THAT(Slurp(out), HasSubstr("SUCCEEDED"));
  (*process)->Signal(SIGINT);
  const std::string first = Slurp(out);
  auto code = (*process)->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 130) << Slurp(out);
  EXPECT_THAT(Slurp(out), HasSubstr("run the same command again to resume"));
  EXPECT_THAT(first, ::testing::Not(HasSubstr(" DONE"))) << "it ended before the interrupt";

  // Again on the same store: it carries on to the end.
  Cli second = RunCli({"run", file, "--slots", "2", "--threads_per_trial", "1", "--data_dir",
                       data_dir, "--output", TempPath("embedded-best")},
                      absl::Minutes(5));
  ASSERT_EQ(second.code, 0) << second.out << second.err;
  // The final table: one row per trial, the baseline 0 and 1..6, each once, all ended.
  std::map<std::string, int> rows;
  int succeeded = 0;
  for (absl::string_view line : absl::StrSplit(second.out, '\n')) {
    std::vector<std::string> cells = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cells.size() < 3 || cells[1].find('-') == std::string::npos) continue;
    if (cells[0].find_first_not_of("0123456789") != std::string::npos) continue;
    ++rows[cells[0]];
    if (cells[2] == "SUCCEEDED") ++succeeded;
  }
  ASSERT_EQ(rows.size(), 7u) << second.out;
  for (const auto& [sequence, count] : rows) EXPECT_EQ(count, 1) << sequence;
  EXPECT_EQ(succeeded, 7) << second.out;
  EXPECT_THAT(second.out,
              HasSubstr("(baseline)"));  // interrupted trials were handed back and re-run
  EXPECT_TRUE(std::filesystem::exists(TempPath("embedded-best") + "/model.pt"));
}

}  // namespace
}  // namespace autocompress
