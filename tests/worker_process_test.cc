// worker_server as users run it: a real process dialing a gateway (the fake one, with a
// real ArtifactService) on loopback. SIGTERM mid-trial drains it: the running trial is
// announced as finishing, handed back when the grace period ends, the process exits 0
// and no trial process outlives it. Its /metrics carries the agent's metrics.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/testing/http_get.h"
#include "common/testing/processes.h"
#include "common/testing/runfiles.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/worker_endpoint.h"

namespace autocompress {
namespace {

using ::testing::HasSubstr;
using testing::RunfilePath;

TEST(WorkerProcessTest, SigtermDrainsHandsBackAndLeavesNoProcess) {
  const std::string dir = testing::TempPath("worker-process");
  std::filesystem::create_directories(dir);
  auto endpoint = testing::WorkerEndpoint::Start(dir);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  testing::FakeGateway& gateway = (*endpoint)->gateway();
  auto upload = [&](const std::string& file, v1::ArtifactKind kind) {
    auto ref = (*endpoint)->Upload(RunfilePath("worker/testdata/" + file), kind);
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref.ok() ? *ref : v1::ArtifactRef();
  };

  auto worker = testing::StartReadyServer(
      {RunfilePath("worker/worker_server"), "--host=127.0.0.1", "--port=0", "--metrics_port=0",
       absl::StrCat("--scheduler=", (*endpoint)->address()), "--worker_id=process-worker",
       "--cpu_slots=1", "--threads_per_trial=1", absl::StrCat("--work_dir=", dir, "/worker"),
       "--drain_grace=1s", "--labels=pool=test"});
  ASSERT_TRUE(worker.ok()) << worker.status();
  ASSERT_TRUE(gateway.WaitForSession());
  const v1::WorkerHello hello = gateway.hellos()[0];
  EXPECT_EQ(hello.worker_id(), "process-worker");
  EXPECT_EQ(hello.cpu_threads(), 1);
  EXPECT_EQ(hello.labels().at("pool"), "test");
  ASSERT_EQ(hello.devices_size(), 1);  // no GPU here
  EXPECT_EQ(hello.devices(0).name(), "cpu");

  v1::TrialSpec trial;
  trial.set_experiment_id("exp");
  trial.set_trial_id("long");
  trial.set_attempt(1);
  trial.set_parameters_json(
      R"({"algorithm_name": {"_name": "level", "config_list::default::::sparsity": 0.5}})");
  *trial.mutable_model() = upload("fashion_model.pt", v1::ARTIFACT_KIND_MODEL);
  v1::DatasetSpec& data = *trial.mutable_recipe()->mutable_dataset();
  data.set_format(v1::DATASET_FORMAT_IDX);
  *data.mutable_train() = upload("fashion_train.tar", v1::ARTIFACT_KIND_DATASET);
  *data.mutable_eval() = upload("fashion_test.tar", v1::ARTIFACT_KIND_DATASET);
  trial.mutable_recipe()->set_finetune_epochs(1000);
  trial.add_devices("cpu");
  trial.set_cpu_threads(1);
  ASSERT_TRUE(gateway.Assign(trial));
  ASSERT_TRUE(gateway.WaitFor([](const std::vector<v1::WorkerMessage>& messages) {
    for (const v1::WorkerMessage& m : messages) {
      if (m.trial_event().has_intermediate() && m.trial_event().intermediate().step() == 1)
        return true;
    }
    return false;
  }));

  // The agent's metrics while the trial runs.
  auto metrics = testing::HttpGet("127.0.0.1", worker->ports.metrics, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_THAT(metrics->body, HasSubstr("autocompress_worker_slots{use=\"busy\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("autocompress_worker_artifact_cache_misses_total 3"));
  EXPECT_THAT(metrics->body,
              HasSubstr("autocompress_worker_trial_phase_seconds_count{phase=\"fetch\"} 1"));

  const std::vector<pid_t> children = testing::ChildrenOf(worker->process->pid());
  EXPECT_GE(children.size(), 1u);  // the running trial (and the spare started ahead)
  worker->process->Signal(SIGTERM);
  absl::StatusOr<int> exit = worker->process->Wait(absl::Seconds(20));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(*exit, 0);
  for (pid_t child : children)
    EXPECT_TRUE(testing::ProcessGone(child)) << "trial process " << child << " survived";

  std::vector<v1::WorkerDraining> drains;
  for (const v1::WorkerMessage& m : gateway.messages()) {
    if (m.has_draining()) drains.push_back(m.draining());
  }
  ASSERT_EQ(drains.size(), 2u);
  ASSERT_EQ(drains[0].finishing_size(), 1);
  EXPECT_EQ(drains[0].reason(), "shutdown");
  ASSERT_EQ(drains[1].handed_back_size(), 1);
  EXPECT_EQ(drains[1].handed_back(0).trial_id(), "long");
}

}  // namespace
}  // namespace autocompress
