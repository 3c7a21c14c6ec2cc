// SchedulerHarness: a real tuner server and a real scheduler server in the test's
// process, on loopback ports that survive restarts of either (so fake workers and the
// scheduler keep their addresses), with a fake clock for leases and limits, plus
// helpers to upload a model, build a spec and wait for states.
#ifndef AUTOCOMPRESS_TESTS_FAKES_SCHEDULER_HARNESS_H_
#define AUTOCOMPRESS_TESTS_FAKES_SCHEDULER_HARNESS_H_

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/testing/fake_clock.h"
#include "scheduler_service/scheduler_server.h"
#include "tests/fakes/fake_worker.h"
#include "tuner_service/tuner_server.h"

namespace autocompress::testing {

class SchedulerHarness {
 public:
  // `data_dir` empty = a fresh temporary directory.
  explicit SchedulerHarness(std::string data_dir = "");
  ~SchedulerHarness();

  // Options used by the next StartScheduler (fast ticks, the fake clock).
  scheduler::SchedulerServer::Options& scheduler_options() { return scheduler_options_; }

  void StartTuner();
  void StopTuner();
  void StartScheduler();
  void StopScheduler();
  scheduler::SchedulerServer& server() { return *scheduler_; }
  // The registry of the running scheduler (a fresh one per StartScheduler).
  prometheus::Registry& scheduler_registry() { return *scheduler_registry_; }
  // The registry of the running tuner (a fresh one per StartTuner).
  prometheus::Registry& tuner_registry() { return *tuner_registry_; }

  FakeClock& clock() { return clock_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string scheduler_address() const;
  std::shared_ptr<grpc::Channel> Channel() const;
  v1::ExperimentService::Stub& experiments() { return *experiments_; }

  std::unique_ptr<FakeWorker> Worker(FakeWorker::Options options);

  // Uploads `content` as a model artifact through ArtifactService.
  v1::ArtifactRef Upload(const std::string& content, v1::ArtifactKind kind);
  // A valid spec over a one-parameter space, maximizing "accuracy", with uploaded model
  // and dataset artifacts.
  v1::ExperimentSpec Spec(int concurrency, int max_trials);

  absl::StatusOr<v1::Experiment> Create(const v1::ExperimentSpec& spec,
                                        const std::string& request_id = "");
  absl::StatusOr<v1::Experiment> Get(const std::string& id);
  std::vector<v1::Trial> Trials(const std::string& id);
  // Polls until the experiment is in `state` (or the timeout passes; then the last seen).
  v1::Experiment WaitForState(const std::string& id, v1::ExperimentState state,
                              absl::Duration timeout = absl::Seconds(30));
  // Polls until `done(experiment)`.
  bool WaitUntil(const std::string& id, const std::function<bool(const v1::Experiment&)>& done,
                 absl::Duration timeout = absl::Seconds(30));

 private:
  std::string data_dir_;
  FakeClock clock_;
  prometheus::Registry registry_;
  int tuner_port_ = 0;
  int scheduler_port_ = 0;
  scheduler::SchedulerServer::Options scheduler_options_;
  std::unique_ptr<tuner::TunerServer> tuner_;
  std::unique_ptr<scheduler::SchedulerServer> scheduler_;
  prometheus::Registry* scheduler_registry_ = nullptr;
  prometheus::Registry* tuner_registry_ = nullptr;
  std::unique_ptr<v1::ExperimentService::Stub> experiments_;
  std::vector<std::unique_ptr<prometheus::Registry>> registries_;
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAKES_SCHEDULER_HARNESS_H_
