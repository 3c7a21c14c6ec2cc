// The worker agent against a fake gateway (tests/fakes/fake_gateway.h) and a real
// ArtifactService over a real artifact store, on loopback: whole trials on a
// Fashion-MNIST subset in real child processes (worker_server --run_trial), failures
// by cause, crashes, cancels, timeouts, draining, reconnects; and, after every test,
// no process left behind.
#include <signal.h>
#include <torch/script.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/artifact_transfer.h"
#include "common/channel.h"
#include "common/proto_time.h"
#include "common/testing/processes.h"
#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "tests/fakes/worker_endpoint.h"
#include "worker/agent.h"

namespace autocompress {
namespace {

namespace fs = std::filesystem;
using testing::FakeGateway;
using ::testing::HasSubstr;
using testing::RunfilePath;
using worker::WorkerAgent;

const std::string kData = "worker/testdata/";

std::vector<pid_t> ChildrenOfThisProcess() { return testing::ChildrenOf(getpid()); }

const v1::Metric* FindMetric(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return &m;
  }
  return nullptr;
}

double MetricValue(const v1::MetricReport& report, const std::string& name) {
  const v1::Metric* m = FindMetric(report, name);
  EXPECT_NE(m, nullptr) << "no metric " << name;
  return m == nullptr ? -1 : m->value();
}

class WorkerAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempPath(::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto endpoint = testing::WorkerEndpoint::Start(dir_);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = std::move(*endpoint);
    model_ = Upload("fashion_model.pt", v1::ARTIFACT_KIND_MODEL);
    train_ = Upload("fashion_train.tar", v1::ARTIFACT_KIND_DATASET);
    test_ = Upload("fashion_test.tar", v1::ARTIFACT_KIND_DATASET);
    std::ifstream reference(RunfilePath(std::string(kData) + "fashion_reference.json"));
    reference_ = nlohmann::json::parse(reference);
  }

  void TearDown() override {
    agent_.reset();
    endpoint_.reset();
    // Whatever happened, the agent left no trial process behind.
    EXPECT_THAT(ChildrenOfThisProcess(), ::testing::IsEmpty());
  }

  // A file of worker/testdata.
  v1::ArtifactRef Upload(const std::string& file, v1::ArtifactKind kind) {
    auto ref = endpoint_->Upload(RunfilePath(kData + file), kind);
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? *ref : v1::ArtifactRef();
  }

  v1::ArtifactRef UploadText(const std::string& content, const std::string& name,
                             v1::ArtifactKind kind) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    auto ref = endpoint_->Upload(path, kind);
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? *ref : v1::ArtifactRef();
  }

  // An agent offering two CPU slots; `fake_child` runs tests/worker/testing's fake trial
  // child instead of the real pipeline.
  void StartAgent(bool fake_child = false) {
    WorkerAgent::Options options;
    options.worker_id = "test-worker";
    options.hostname = "test-host";
    options.version = "test";
    v1::Device cpu;
    cpu.set_name("cpu");
    cpu.set_slots(2);
    options.devices = {cpu};
    options.cpu_threads = 2;
    options.labels = {{"zone", "a"}};
    options.trial_command =
        fake_child ? std::vector<std::string>{RunfilePath("worker/testing/fake_trial_child")}
                   : std::vector<std::string>{RunfilePath("worker/worker_server"), "--run_trial"};
    options.work_dir = dir_ + "/worker";
    options.stop_grace = absl::Milliseconds(500);
    auto agent = WorkerAgent::Start(options, endpoint_->channel(), registry_);
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = std::move(*agent);
    ASSERT_TRUE(endpoint_->gateway().WaitForSession());
  }

  // A trial of the reference recipe (fashion_reference.json) with `parameters`.
  v1::TrialSpec Trial(const std::string& id, const std::string& parameters) {
    v1::TrialSpec trial;
    trial.set_experiment_id("exp");
    trial.set_trial_id(id);
    trial.set_attempt(1);
    trial.set_parameters_json(parameters);
    *trial.mutable_model() = model_;
    v1::TrainingRecipe& recipe = *trial.mutable_recipe();
    v1::DatasetSpec& data = *recipe.mutable_dataset();
    data.set_format(v1::DATASET_FORMAT_IDX);
    *data.mutable_train() = train_;
    *data.mutable_eval() = test_;
    data.add_mean(reference_["mean"].get<float>());
    data.add_stddev(reference_["std"].get<float>());
    data.set_batch_size(reference_["batch_size"].get<int>());
    data.set_eval_batch_size(250);
    data.set_shuffle(false);
    recipe.mutable_optimizer()->set_name("sgd");
    recipe.mutable_optimizer()->set_learning_rate(reference_["lr"].get<double>());
    recipe.set_criterion("cross_entropy");
    recipe.set_evaluator("top1_accuracy");
    recipe.set_finetune_epochs(reference_["finetune_epochs"].get<int>());
    trial.mutable_export_options()->set_model(true);
    trial.mutable_export_options()->set_report(true);
    trial.add_devices("cpu");
    trial.set_cpu_threads(reference_["threads"].get<int>());
    trial.set_seed(1);
    return trial;
  }

  static std::string Level(double sparsity) {
    return absl::StrCat(
        R"({"algorithm_name": {"_name": "level", "config_list::default::::sparsity": )", sparsity,
        "}}");
  }

  // The pid of the running trial child: the oldest trial child, since the agent starts
  // a spare one (waiting for the next attempt) after each it hands out.
  pid_t TrialChild() {
    for (int i = 0; i < 500; ++i) {
      pid_t oldest = 0;
      uint64_t oldest_start = UINT64_MAX;
      for (pid_t pid : ChildrenOfThisProcess()) {
        const std::string command = testing::ProcessCommandLine(pid);
        if (!absl::StrContains(command, "run_trial") &&
            !absl::StrContains(command, "fake_trial_child")) {
          continue;
        }
        const uint64_t start = testing::ProcessStartTime(pid);
        if (start < oldest_start) oldest = pid, oldest_start = start;
      }
      if (oldest != 0 && (i > 0 || agent_->children_running() > 0)) return oldest;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return 0;
  }

  bool WaitForStep(const std::string& trial_id, int64_t step) {
    return endpoint_->gateway().WaitFor([&](const std::vector<v1::WorkerMessage>& messages) {
      for (const v1::WorkerMessage& m : messages) {
        const v1::TrialEvent& e = m.trial_event();
        if (e.trial_id() == trial_id && e.has_intermediate() && e.intermediate().step() == step) {
          return true;
        }
      }
      return false;
    });
  }

  std::string dir_;
  std::unique_ptr<testing::WorkerEndpoint> endpoint_;
  prometheus::Registry registry_;
  std::unique_ptr<WorkerAgent> agent_;
  v1::ArtifactRef model_, train_, test_;
  nlohmann::json reference_;
};

TEST_F(WorkerAgentTest, HelloOffersDevicesThreadsAndLabels) {
  StartAgent();
  const std::vector<v1::WorkerHello> hellos = endpoint_->gateway().hellos();
  ASSERT_EQ(hellos.size(), 1u);
  EXPECT_EQ(hellos[0].worker_id(), "test-worker");
  ASSERT_EQ(hellos[0].devices_size(), 1);
  EXPECT_EQ(hellos[0].devices(0).name(), "cpu");
  EXPECT_EQ(hellos[0].devices(0).slots(), 2);
  EXPECT_EQ(hellos[0].cpu_threads(), 2);
  EXPECT_EQ(hellos[0].labels().at("zone"), "a");
  EXPECT_TRUE(endpoint_->gateway().WaitFor([](const std::vector<v1::WorkerMessage>& messages) {
    return std::count_if(messages.begin(), messages.end(),
                         [](const v1::WorkerMessage& m) { return m.has_heartbeat(); }) >= 2;
  }));
}

TEST_F(WorkerAgentTest, WholeTrialOnFashionMnistMatchesPyTorch) {
  StartAgent();
  ASSERT_TRUE(endpoint_->gateway().Assign(Trial("t1", Level(0.5))));
  std::optional<v1::TrialFinished> finished =
      endpoint_->gateway().WaitForFinished("t1", 1, absl::Seconds(120));
  ASSERT_TRUE(finished.has_value());
  ASSERT_EQ(finished->state(), v1::TRIAL_STATE_SUCCEEDED) << finished->failure().message();

  // Events numbered 1.. without gaps: started, step 0 (zero-shot), one per epoch, finished.
  const std::vector<v1::TrialEvent> events = endpoint_->gateway().Events("t1", 1);
  ASSERT_EQ(events.size(), 5u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].event_sequence(), i + 1);
  EXPECT_TRUE(events[0].has_started());
  for (int step = 0; step <= 2; ++step) {
    ASSERT_TRUE(events[step + 1].has_intermediate());
    EXPECT_EQ(events[step + 1].intermediate().step(), step);
    EXPECT_NE(FindMetric(events[step + 1].intermediate(), "accuracy"), nullptr);
  }

  // The accuracy is real: far above chance (0.1), and what PyTorch gets for the same
  // model, data, pruning and recipe.
  const v1::MetricReport& report = finished->final_report();
  const double accuracy = MetricValue(report, "accuracy");
  std::printf("fashion-mnist trial: accuracy %.4f (pytorch %.4f), zero-shot %.4f (pytorch %.4f)\n",
              accuracy, reference_["accuracy"].get<double>(),
              MetricValue(report, "accuracy_zero_shot"),
              reference_["zero_shot_accuracy"].get<double>());
  EXPECT_GT(accuracy, 0.5);
  EXPECT_NEAR(accuracy, reference_["accuracy"].get<double>(), 0.02);
  EXPECT_NEAR(MetricValue(report, "accuracy_zero_shot"),
              reference_["zero_shot_accuracy"].get<double>(), 0.005);
  EXPECT_NEAR(MetricValue(report, "sparsity"), 0.5, 0.01);
  EXPECT_GT(MetricValue(report, "latency_ms"), 0);
  EXPECT_GT(MetricValue(report, "model_bytes"), 1000);
  EXPECT_LT(MetricValue(report, "nonzero_parameters"), MetricValue(report, "parameters"));
  EXPECT_GE(MetricValue(report, "seconds_finetune"), 0);

  // The exported model reloads and has zeros exactly where the report says.
  ASSERT_EQ(finished->results_size(), 2);
  std::map<std::string, std::string> files;
  for (const v1::ArtifactRef& ref : finished->results()) {
    EXPECT_EQ(ref.kind(), v1::ARTIFACT_KIND_RESULT);
    const std::string path = dir_ + "/" + fs::path(ref.name()).filename().string();
    ASSERT_TRUE(DownloadArtifact(endpoint_->artifacts(), ref, path, absl::Seconds(30)).ok());
    files[fs::path(ref.name()).filename().string()] = path;
  }
  ASSERT_EQ(files.count("model.pt"), 1u);
  ASSERT_EQ(files.count("report.json"), 1u);
  torch::jit::Module model = torch::jit::load(files["model.pt"]);
  std::ifstream report_file(files["report.json"]);
  const nlohmann::json layers = nlohmann::json::parse(report_file)["layers"];
  ASSERT_EQ(layers.size(), 4u);  // conv1, conv2, fc1, fc2
  int64_t zeros = 0, elements = 0;
  for (const auto& named : model.named_modules()) {
    for (const nlohmann::json& layer : layers) {
      if (layer["name"] != named.name) continue;
      const torch::Tensor weight = named.value.attr("weight").toTensor();
      const double fraction = weight.eq(0).sum().item<double>() / weight.numel();
      EXPECT_DOUBLE_EQ(fraction, layer["weight_sparsity"].get<double>()) << named.name;
      EXPECT_NEAR(fraction, 0.5, 1.0 / weight.numel() + 1e-9) << named.name;
      zeros += weight.eq(0).sum().item<int64_t>();
      elements += weight.numel();
    }
  }
  EXPECT_DOUBLE_EQ(MetricValue(report, "sparsity"), static_cast<double>(zeros) / elements);

  // Once everything is acknowledged the agent holds nothing.
  for (int i = 0; i < 200 && agent_->attempts_held() > 0; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(agent_->attempts_held(), 0);
}

TEST_F(WorkerAgentTest, BadInputsFailWithTheirCodeAndTheAgentServesTheNextTrial) {
  StartAgent();
  struct Case {
    std::string name;
    v1::TrialSpec trial;
    v1::FailureCode code;
    std::string message;
  };
  std::vector<Case> cases;
  {
    v1::TrialSpec t = Trial("corrupt-model", Level(0.5));
    *t.mutable_model() = UploadText("not a model", "bad.pt", v1::ARTIFACT_KIND_MODEL);
    cases.push_back({"corrupt model", t, v1::FAILURE_CODE_INVALID_INPUT, "model bad.pt ("});
  }
  {
    // The first half of a real TorchScript file (a cut-off upload or copy).
    std::ifstream in(RunfilePath(kData + std::string("fashion_model.pt")), std::ios::binary);
    const std::string model((std::istreambuf_iterator<char>(in)), {});
    v1::TrialSpec t = Trial("truncated-model", Level(0.5));
    *t.mutable_model() =
        UploadText(model.substr(0, model.size() / 2), "truncated.pt", v1::ARTIFACT_KIND_MODEL);
    cases.push_back({"truncated model", t, v1::FAILURE_CODE_INVALID_INPUT, "model truncated.pt ("});
  }
  {
    // A stored artifact whose bytes rotted on the scheduler's disk: the download does not
    // match its digest, and nothing corrupt reaches the trial.
    v1::TrialSpec t = Trial("rotten-model", Level(0.5));
    *t.mutable_model() = UploadText("model bytes that will rot", "rot.pt", v1::ARTIFACT_KIND_MODEL);
    const std::string blob =
        absl::StrCat(dir_, "/artifacts/", t.model().sha256().substr(0, 2), "/", t.model().sha256());
    std::fstream file(blob, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.good()) << blob;
    file.seekp(3);
    file.put('X');
    file.close();
    cases.push_back({"rotten artifact", t, v1::FAILURE_CODE_INFRASTRUCTURE, t.model().sha256()});
  }
  {
    v1::TrialSpec t = Trial("missing-artifact", Level(0.5));
    t.mutable_model()->set_sha256(std::string(64, 'a'));
    cases.push_back({"missing artifact", t, v1::FAILURE_CODE_INVALID_INPUT, "fetching artifacts"});
  }
  {
    v1::TrialSpec t = Trial("wrong-size", Level(0.5));
    t.mutable_model()->set_size_bytes(t.model().size_bytes() + 1);
    cases.push_back({"wrong size", t, v1::FAILURE_CODE_INFRASTRUCTURE, "expected"});
  }
  {
    v1::TrialSpec t = Trial("wrong-shape", Level(0.5));
    *t.mutable_recipe()->mutable_dataset()->mutable_eval() =
        Upload("cropped_test.tar", v1::ARTIFACT_KIND_DATASET);
    cases.push_back({"wrong input shape", t, v1::FAILURE_CODE_INVALID_INPUT, "14"});
  }
  {
    v1::TrialSpec t = Trial("nan-loss", Level(0.5));
    t.mutable_recipe()->mutable_optimizer()->set_learning_rate(1e12);
    cases.push_back({"NaN loss", t, v1::FAILURE_CODE_INVALID_INPUT, "fine-tuning epoch 1"});
  }
  {
    v1::TrialSpec t = Trial(
        "unknown-layer",
        R"({"algorithm_name": {"_name": "l1", "config_list::Conv2d::conv9::sparsity": 0.5}})");
    cases.push_back({"unknown layer", t, v1::FAILURE_CODE_INVALID_INPUT, "conv9"});
  }
  for (const Case& c : cases) {
    ASSERT_TRUE(endpoint_->gateway().Assign(c.trial)) << c.name;
    std::optional<v1::TrialFinished> finished =
        endpoint_->gateway().WaitForFinished(c.trial.trial_id(), 1, absl::Seconds(120));
    ASSERT_TRUE(finished.has_value()) << c.name;
    EXPECT_EQ(finished->state(), v1::TRIAL_STATE_FAILED) << c.name;
    EXPECT_EQ(finished->failure().code(), c.code)
        << c.name << ": " << finished->failure().message();
    EXPECT_THAT(finished->failure().message(), HasSubstr(c.message)) << c.name;
  }
  v1::TrialSpec good = Trial("good", Level(0.3));
  good.mutable_recipe()->set_finetune_epochs(0);
  ASSERT_TRUE(endpoint_->gateway().Assign(good));
  std::optional<v1::TrialFinished> finished =
      endpoint_->gateway().WaitForFinished("good", 1, absl::Seconds(120));
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->state(), v1::TRIAL_STATE_SUCCEEDED) << finished->failure().message();
}

TEST_F(WorkerAgentTest, SigkillOfTheChildIsACrashNamingThePhase) {
  StartAgent();
  v1::TrialSpec trial = Trial("killed", Level(0.5));
  trial.mutable_recipe()->set_finetune_epochs(100);
  ASSERT_TRUE(endpoint_->gateway().Assign(trial));
  ASSERT_TRUE(WaitForStep("killed", 1));
  const pid_t child = TrialChild();
  ASSERT_GT(child, 0);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  std::optional<v1::TrialFinished> finished = endpoint_->gateway().WaitForFinished("killed", 1);
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(finished->failure().code(), v1::FAILURE_CODE_CRASH);
  EXPECT_THAT(finished->failure().message(), HasSubstr("signal 9 (SIGKILL)"));
  EXPECT_THAT(finished->failure().message(), HasSubstr("in fine-tuning epoch "));
}

TEST_F(WorkerAgentTest, CancelEndsTheChildWithinTwoSeconds) {
  StartAgent();
  v1::TrialSpec trial = Trial("canceled", Level(0.5));
  trial.mutable_recipe()->set_finetune_epochs(100);
  ASSERT_TRUE(endpoint_->gateway().Assign(trial));
  ASSERT_TRUE(WaitForStep("canceled", 1));
  const pid_t child = TrialChild();
  ASSERT_GT(child, 0);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(endpoint_->gateway().Cancel("canceled", 1, "assessor"));
  std::optional<v1::TrialFinished> finished = endpoint_->gateway().WaitForFinished("canceled", 1);
  ASSERT_TRUE(finished.has_value());
  EXPECT_LE(absl::Now() - start, absl::Seconds(2));  // the contract, not a speed target
  EXPECT_EQ(finished->state(), v1::TRIAL_STATE_CANCELED);
  EXPECT_EQ(finished->failure().code(), v1::FAILURE_CODE_STOPPED);
  EXPECT_THAT(finished->failure().message(), HasSubstr("assessor"));
  EXPECT_NE(kill(child, 0), 0);  // reaped
}

TEST_F(WorkerAgentTest, ChildIgnoringSigtermIsKilledOnCancel) {
  StartAgent(/*fake_child=*/true);
  v1::TrialSpec trial = Trial("stubborn", "hang");
  ASSERT_TRUE(endpoint_->gateway().Assign(trial));
  ASSERT_GT(TrialChild(), 0);
  absl::SleepFor(absl::Milliseconds(100));  // past its signal(SIGTERM, SIG_IGN)
  const absl::Time start = absl::Now();
  ASSERT_TRUE(endpoint_->gateway().Cancel("stubborn", 1, "user"));
  std::optional<v1::TrialFinished> finished = endpoint_->gateway().WaitForFinished("stubborn", 1);
  ASSERT_TRUE(finished.has_value());
  EXPECT_LE(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(finished->state(), v1::TRIAL_STATE_CANCELED);
}

TEST_F(WorkerAgentTest, PastMaxDurationIsATimeout) {
  StartAgent(/*fake_child=*/true);
  v1::TrialSpec trial = Trial("slow", "hang");
  *trial.mutable_max_duration() = ToProtoDuration(absl::Milliseconds(500));
  ASSERT_TRUE(endpoint_->gateway().Assign(trial));
  std::optional<v1::TrialFinished> finished = endpoint_->gateway().WaitForFinished("slow", 1);
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(finished->failure().code(), v1::FAILURE_CODE_TIMEOUT);
  EXPECT_THAT(finished->failure().message(),
              HasSubstr("max_duration 500ms in fine-tuning epoch 1"));
}

TEST_F(WorkerAgentTest, RepeatedAssignmentIsIgnored) {
  StartAgent(/*fake_child=*/true);
  v1::TrialSpec trial = Trial("twice", "ok");
  ASSERT_TRUE(endpoint_->gateway().Assign(trial));
  ASSERT_TRUE(endpoint_->gateway().Assign(trial));
  ASSERT_TRUE(endpoint_->gateway().WaitForFinished("twice", 1).has_value());
  absl::SleepFor(absl::Milliseconds(200));
  int started = 0;
  for (const v1::TrialEvent& e : endpoint_->gateway().Events("twice", 1))
    started += e.has_started();
  EXPECT_EQ(started, 1);
}

TEST_F(WorkerAgentTest, ReconnectReportsHeldAttemptsAndResendsUnacknowledgedEvents) {
  endpoint_->gateway().set_auto_ack(false);
  StartAgent(/*fake_child=*/true);
  ASSERT_TRUE(endpoint_->gateway().Assign(Trial("resent", "ok")));
  ASSERT_TRUE(endpoint_->gateway().WaitForFinished("resent", 1).has_value());
  const std::vector<v1::TrialEvent> first = endpoint_->gateway().Events("resent", 1);
  ASSERT_EQ(first.size(), 3u);  // started, intermediate, finished
  endpoint_->gateway().Disconnect();
  endpoint_->gateway().set_auto_ack(true);
  ASSERT_TRUE(endpoint_->gateway().WaitFor([](const std::vector<v1::WorkerMessage>& messages) {
    return std::count_if(messages.begin(), messages.end(), [](const v1::WorkerMessage& m) {
             return m.trial_event().trial_id() == "resent";
           }) == 6;
  }));
  ASSERT_EQ(endpoint_->gateway().hellos().size(), 2u);
  const v1::WorkerHello hello = endpoint_->gateway().hellos()[1];
  ASSERT_EQ(hello.running_size(), 1);  // ended, but its events were not acknowledged
  EXPECT_EQ(hello.running(0).trial_id(), "resent");
  const std::vector<v1::TrialEvent> all = endpoint_->gateway().Events("resent", 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(all[3 + i].event_sequence(), first[i].event_sequence());
    EXPECT_EQ(all[3 + i].SerializeAsString(), first[i].SerializeAsString());
  }
  for (int i = 0; i < 200 && agent_->attempts_held() > 0; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(agent_->attempts_held(), 0);
}

TEST_F(WorkerAgentTest, DrainHandsBackWhatDoesNotFinishInTime) {
  StartAgent(/*fake_child=*/true);
  ASSERT_TRUE(endpoint_->gateway().Assign(Trial("long", "hang")));
  ASSERT_GT(TrialChild(), 0);
  agent_->Drain("SIGTERM", absl::Milliseconds(300));
  EXPECT_EQ(agent_->children_running(), 0);
  std::vector<v1::WorkerDraining> drains;
  for (const v1::WorkerMessage& m : endpoint_->gateway().messages()) {
    if (m.has_draining()) drains.push_back(m.draining());
  }
  ASSERT_EQ(drains.size(), 2u);
  ASSERT_EQ(drains[0].finishing_size(), 1);
  EXPECT_EQ(drains[0].finishing(0).trial_id(), "long");
  ASSERT_EQ(drains[1].handed_back_size(), 1);
  EXPECT_EQ(drains[1].handed_back(0).trial_id(), "long");
  // A handed-back attempt sends nothing more.
  for (const v1::TrialEvent& e : endpoint_->gateway().Events("long", 1))
    EXPECT_FALSE(e.has_finished());
}

}  // namespace
}  // namespace autocompress
