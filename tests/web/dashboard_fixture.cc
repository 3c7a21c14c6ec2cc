// dashboard_fixture: a real tuner and scheduler (with its web server) in one process,
// fake workers that run every trial by themselves, and one small compression-like
// experiment, for the dashboard's browser test (web/test/dashboard_browser_test.mjs).
//
// Prints "READY {json}" with the dashboard's URL, token and experiment id once the
// first `--trials` trials have finished, then reads commands on stdin, answering each
// with "OK ..." or "ERROR ...":
//   resume N     resume the experiment with max_trial_number N (the baseline is extra)
//   restart      stop the scheduler (and its web server) and start it again on the
//                same data directory and ports; the workers reconnect
//   wait N       wait until N trials (with the baseline) have ended
//   quit         shut down
// Trials' metrics follow from their parameters: accuracy falls with sparsity and with
// fewer bits, effective_bytes shrinks with both, so the Pareto front is a real curve.
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/channel.h"
#include "nlohmann/json.hpp"
#include "scheduler_service/scheduler_server.h"
#include "tests/fakes/experiment_fixtures.h"
#include "tests/fakes/fake_worker.h"
#include "tuner_service/tuner_server.h"

ABSL_FLAG(std::string, static_dir, "", "The built page (web/dist).");
ABSL_FLAG(std::string, token, "", "Token the web API requires; empty = none.");
ABSL_FLAG(std::string, data_dir, "", "Scheduler data directory; empty = a fresh temp dir.");
ABSL_FLAG(int, trials, 8, "Trials run before READY (max_trial_number; the baseline is extra).");
ABSL_FLAG(int, workers, 2, "Fake workers.");
ABSL_FLAG(int, epochs, 4, "Intermediate reports per trial.");
ABSL_FLAG(int, epoch_ms, 100, "Time of each epoch of a trial.");

namespace autocompress {
namespace {

using nlohmann::json;

constexpr const char* kSearchSpace = R"({"algorithm_name": {"_type": "choice", "_value": [
  {"_name": "level", "sparsity": {"_type": "uniform", "_value": [0.1, 0.9]}},
  {"_name": "l1", "sparsity": {"_type": "uniform", "_value": [0.1, 0.9]}},
  {"_name": "naive", "quant_bits": {"_type": "choice", "_value": [4, 8]}}]}})";

constexpr double kModelBytes = 4.0e6;

// Finds the first number under a key named `name` anywhere in `value`.
std::optional<double> FindNumber(const json& value, const std::string& name) {
  if (!value.is_object()) return std::nullopt;
  for (const auto& [key, v] : value.items()) {
    const std::vector<std::string> parts = absl::StrSplit(key, "::");
    if (parts.back() == name && v.is_number()) return v.get<double>();
    if (auto found = FindNumber(v, name)) return found;
  }
  return std::nullopt;
}

std::vector<v1::Metric> Metrics(const v1::TrialSpec& trial, int step, int epochs) {
  const json parameters = json::parse(trial.parameters_json(), nullptr, false);
  const double sparsity = FindNumber(parameters, "sparsity").value_or(0);
  const double bits = FindNumber(parameters, "quant_bits").value_or(32);
  const double accuracy = 0.92 - 0.12 * sparsity * sparsity - (bits < 32 ? 0.16 / bits : 0);
  const double bytes = kModelBytes * (1 - sparsity) * bits / 32;
  using testing::FakeWorker;
  if (step >= 0) {
    // A curve that climbs towards the final accuracy.
    const double progress = static_cast<double>(step + 1) / epochs;
    return {FakeWorker::MetricOf("accuracy", accuracy - 0.3 * std::pow(1 - progress, 2)),
            FakeWorker::MetricOf("loss", 1.2 * (1 - progress) + 0.2)};
  }
  return {FakeWorker::MetricOf("accuracy", accuracy),
          FakeWorker::MetricOf("effective_bytes", bytes),
          FakeWorker::MetricOf("sparsity", sparsity),
          FakeWorker::MetricOf("compression_ratio", kModelBytes / bytes),
          FakeWorker::MetricOf("latency_ms", 2.0 * (1 - 0.5 * sparsity) * (bits < 32 ? 0.6 : 1))};
}

class Fixture {
 public:
  absl::Status Start() {
    data_dir_ = absl::GetFlag(FLAGS_data_dir);
    if (data_dir_.empty()) {
      char pattern[] = "/tmp/dashboard-fixture-XXXXXX";
      data_dir_ = mkdtemp(pattern);
    }
    tuner::TunerServer::Options tuner_options;
    tuner_options.server = ServerOptions::Loopback(0);
    auto tuner = tuner::TunerServer::BuildAndStart(tuner_options, registry_);
    if (!tuner.ok()) return tuner.status();
    tuner_ = std::move(*tuner);
    if (absl::Status status = StartScheduler(); !status.ok()) return status;
    for (int i = 0; i < absl::GetFlag(FLAGS_workers); ++i) {
      testing::FakeWorker::Options options;
      options.worker_id = absl::StrCat("fake-", i);
      options.auto_run = true;
      options.auto_heartbeat = true;
      options.epochs = absl::GetFlag(FLAGS_epochs);
      options.epoch_time = absl::Milliseconds(absl::GetFlag(FLAGS_epoch_ms));
      const int epochs = options.epochs;
      options.result = [epochs](const v1::TrialSpec& trial, int step) {
        return Metrics(trial, step, epochs);
      };
      options.results = [this](const v1::TrialSpec& trial) { return Results(trial); };
      workers_.push_back(std::make_unique<testing::FakeWorker>(channel_, options));
      if (absl::Status status = workers_.back()->Connect(); !status.ok()) return status;
    }
    return CreateExperiment();
  }

  absl::Status StartScheduler() {
    scheduler::SchedulerServer::Options options;
    options.server = ServerOptions::Loopback(scheduler_port_);
    options.server.shutdown_grace = absl::Seconds(1);
    options.data_dir = data_dir_;
    options.tuner_address = absl::StrCat("127.0.0.1:", tuner_->port());
    options.scheduler.lease_timeout = absl::Seconds(30);
    scheduler::WebServer::Options web;
    web.port = web_port_;
    web.token = absl::GetFlag(FLAGS_token);
    web.static_dir = absl::GetFlag(FLAGS_static_dir);
    options.web = web;
    auto server = scheduler::SchedulerServer::BuildAndStart(options, registry_);
    if (!server.ok()) return server.status();
    scheduler_ = std::move(*server);
    scheduler_port_ = scheduler_->port();
    web_port_ = scheduler_->web()->port();
    if (channel_ == nullptr) channel_ = CreateChannel(absl::StrCat("127.0.0.1:", scheduler_port_));
    experiments_ = v1::ExperimentService::NewStub(channel_);
    artifacts_ = v1::ArtifactService::NewStub(channel_);
    return absl::OkStatus();
  }

  absl::Status Restart() {
    scheduler_->Shutdown();
    scheduler_->Wait();
    scheduler_.reset();
    if (absl::Status status = StartScheduler(); !status.ok()) return status;
    for (auto& worker : workers_) {
      worker->Disconnect();
      if (absl::Status status = worker->Connect(); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status CreateExperiment() {
    auto spec =
        testing::NoOpExperimentSpec(*artifacts_, /*concurrency=*/2, absl::GetFlag(FLAGS_trials));
    if (!spec.ok()) return spec.status();
    spec->set_name("dashboard fixture");
    spec->set_search_space_json(kSearchSpace);
    spec->set_skip_baseline(false);
    spec->set_seed(7);
    v1::Objective* secondary = spec->mutable_objective()->add_secondary();
    secondary->set_metric("effective_bytes");
    secondary->set_mode(v1::OPTIMIZE_MODE_MINIMIZE);
    v1::MetricConstraint* drop = spec->mutable_objective()->add_constraints();
    drop->set_metric("accuracy_drop");
    drop->set_comparison(v1::COMPARISON_LESS_EQUAL);
    drop->set_bound(0.05);
    grpc::ClientContext context;
    v1::CreateExperimentRequest request;
    *request.mutable_spec() = *spec;
    v1::CreateExperimentResponse response;
    const grpc::Status status = experiments_->CreateExperiment(&context, request, &response);
    if (!status.ok()) return absl::InternalError(status.error_message());
    experiment_id_ = response.experiment().id();
    return WaitEnded(absl::GetFlag(FLAGS_trials) + 1);
  }

  // A small "compressed model" per trial, uploaded like a worker's export.
  std::vector<v1::ArtifactRef> Results(const v1::TrialSpec& trial) {
    auto stub = v1::ArtifactService::NewStub(channel_);
    auto ref = testing::UploadBlob(*stub, absl::StrCat("compressed model of ", trial.trial_id()),
                                   v1::ARTIFACT_KIND_RESULT);
    if (!ref.ok()) return {};
    ref->set_name(absl::StrCat(trial.trial_id(), ".pt"));
    return {*ref};
  }

  absl::StatusOr<v1::Experiment> Get() {
    grpc::ClientContext context;
    v1::GetExperimentRequest request;
    request.set_experiment_id(experiment_id_);
    v1::GetExperimentResponse response;
    const grpc::Status status = experiments_->GetExperiment(&context, request, &response);
    if (!status.ok()) return absl::InternalError(status.error_message());
    return response.experiment();
  }

  absl::Status WaitEnded(int trials) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      auto experiment = Get();
      if (experiment.ok()) {
        const v1::TrialCounts& c = experiment->trial_counts();
        if (c.succeeded() + c.failed() + c.early_stopped() + c.canceled() >= trials) {
          return absl::OkStatus();
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return absl::DeadlineExceededError(absl::StrCat("fewer than ", trials, " trials ended"));
  }

  absl::Status Resume(int max_trials) {
    grpc::ClientContext context;
    v1::ResumeExperimentRequest request;
    request.set_experiment_id(experiment_id_);
    request.mutable_limits()->set_max_trial_number(max_trials);
    request.mutable_update_mask()->add_paths("max_trial_number");
    v1::ResumeExperimentResponse response;
    const grpc::Status status = experiments_->ResumeExperiment(&context, request, &response);
    if (!status.ok()) return absl::InternalError(status.error_message());
    return absl::OkStatus();
  }

  void Shutdown() {
    workers_.clear();
    if (scheduler_ != nullptr) scheduler_->Shutdown(), scheduler_->Wait();
    if (tuner_ != nullptr) tuner_->Shutdown(), tuner_->Wait();
    std::error_code error;
    if (absl::GetFlag(FLAGS_data_dir).empty()) std::filesystem::remove_all(data_dir_, error);
  }

  std::string ReadyJson() const {
    return json{{"url", scheduler_->web()->url()},
                {"port", web_port_},
                {"token", absl::GetFlag(FLAGS_token)},
                {"experiment_id", experiment_id_}}
        .dump();
  }

 private:
  prometheus::Registry registry_;
  std::string data_dir_;
  int scheduler_port_ = 0;
  int web_port_ = 0;
  std::unique_ptr<tuner::TunerServer> tuner_;
  std::unique_ptr<scheduler::SchedulerServer> scheduler_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ExperimentService::Stub> experiments_;
  std::unique_ptr<v1::ArtifactService::Stub> artifacts_;
  std::vector<std::unique_ptr<testing::FakeWorker>> workers_;
  std::string experiment_id_;
};

int Main() {
  Fixture fixture;
  if (absl::Status status = fixture.Start(); !status.ok()) {
    std::cout << "ERROR " << status << std::endl;
    fixture.Shutdown();
    return 1;
  }
  std::cout << "READY " << fixture.ReadyJson() << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    const std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.empty()) continue;
    int n = 0;
    absl::Status status;
    if (words[0] == "quit") break;
    if (words[0] == "restart") {
      status = fixture.Restart();
    } else if (words.size() == 2 && absl::SimpleAtoi(words[1], &n) && words[0] == "resume") {
      status = fixture.Resume(n);
    } else if (words.size() == 2 && absl::SimpleAtoi(words[1], &n) && words[0] == "wait") {
      status = fixture.WaitEnded(n);
    } else {
      status = absl::InvalidArgumentError(absl::StrCat("unknown command: ", line));
    }
    if (status.ok()) {
      std::cout << "OK " << line << std::endl;
    } else {
      std::cout << "ERROR " << status << std::endl;
    }
  }
  fixture.Shutdown();
  return 0;
}

}  // namespace
}  // namespace autocompress

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return autocompress::Main();
}
