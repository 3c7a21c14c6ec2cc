#include "tests/faults/fault_cluster.h"

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/testing/processes.h"
#include "common/testing/runfiles.h"

namespace autocompress::testing {
namespace {

// Fixed ports inside namespaces (each host has its own address); on loopback the first
// start takes port 0 and later starts reuse what it got.
constexpr int kSchedulerPort = 7400;
constexpr int kTunerPort = 7410;

std::string OutputPath(const std::string& name) {
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  return outputs != nullptr ? absl::StrCat(outputs, "/", name) : TempPath(name);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FaultCluster>> FaultCluster::Start(Options options) {
  if (options.data_dir.empty()) options.data_dir = TempPath(options.name + "-scheduler-data");
  std::unique_ptr<FaultCluster> cluster(new FaultCluster(std::move(options)));
  std::vector<std::string> names = {"tuner", "scheduler"};
  for (int i = 1; i <= cluster->options_.workers; ++i) names.push_back(WorkerHost(i));
  for (int i = 1; i <= cluster->options_.fake_workers; ++i) names.push_back(FakeWorkerHost(i));
  absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create(names);
  if (!network.ok()) return network.status();
  cluster->network_ = std::move(*network);
  const bool namespaces = cluster->network_->namespaces();
  for (const std::string& name : names) {
    Host host;
    host.name = name;
    if (namespaces && name == "tuner") host.port = kTunerPort;
    if (namespaces && name == "scheduler") host.port = kSchedulerPort;
    cluster->hosts_.push_back(std::move(host));
  }
  for (const std::string& name : names) {
    if (absl::Status started = cluster->StartHost(name); !started.ok()) return started;
  }
  ClientOptions client_options;
  client_options.address = cluster->scheduler_address();
  client_options.timeout = absl::Seconds(10);
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(client_options);
  if (!client.ok()) return client.status();
  cluster->client_ = std::move(*client);
  return cluster;
}

FaultCluster::~FaultCluster() {
  client_.reset();
  // Workers first, so none is left dialing; Subprocess's destructor SIGKILLs and reaps.
  for (auto it = hosts_.rbegin(); it != hosts_.rend(); ++it) it->process.reset();
  network_.reset();
}

std::string FaultCluster::scheduler_address() const {
  for (const Host& host : hosts_) {
    if (host.name == "scheduler") {
      return absl::StrCat(network_->Address("scheduler"), ":", host.port);
    }
  }
  return "";
}

FaultCluster::Host* FaultCluster::Find(const std::string& name) {
  for (Host& host : hosts_) {
    if (host.name == name) return &host;
  }
  return nullptr;
}

Subprocess* FaultCluster::process(const std::string& host) {
  Host* found = Find(host);
  return found == nullptr ? nullptr : found->process.get();
}

int FaultCluster::metrics_port(const std::string& host) const {
  for (const Host& h : hosts_) {
    if (h.name == host) return h.metrics_port;
  }
  return 0;
}

std::vector<std::string> FaultCluster::Argv(const Host& host) const {
  const std::string address = network_->Address(host.name);
  std::vector<std::string> argv;
  if (host.name == "tuner") {
    argv = {RunfilePath("tuner_service/tuner_server"), absl::StrCat("--port=", host.port)};
  } else if (host.name == "scheduler") {
    std::string tuner_port;
    for (const Host& h : hosts_) {
      if (h.name == "tuner") tuner_port = absl::StrCat(h.port);
    }
    argv = {
        RunfilePath("scheduler_service/scheduler_server"),
        absl::StrCat("--port=", host.port),
        absl::StrCat("--data_dir=", options_.data_dir),
        absl::StrCat("--tuner_address=", network_->Address("tuner"), ":", tuner_port),
        absl::StrCat("--lease_timeout=", absl::FormatDuration(options_.lease_timeout)),
        absl::StrCat("--heartbeat_interval=", absl::FormatDuration(options_.heartbeat_interval))};
    argv.insert(argv.end(), options_.store_flags.begin(), options_.store_flags.end());
  } else if (host.name.rfind("fake-", 0) == 0) {
    argv = {RunfilePath("tests/fakes/fake_worker_main"),
            absl::StrCat("--scheduler_address=", scheduler_address()),
            absl::StrCat("--worker_id=", host.name),
            absl::StrCat("--slots=", options_.fake_slots),
            absl::StrCat("--epochs=", options_.fake_epochs),
            absl::StrCat("--epoch_ms=", absl::ToInt64Milliseconds(options_.fake_epoch))};
  } else {
    argv = {RunfilePath("worker/worker_server"),
            "--port=0",
            absl::StrCat("--scheduler=", scheduler_address()),
            absl::StrCat("--worker_id=", host.name),
            "--cpu_slots=1",
            "--threads_per_trial=1",
            absl::StrCat("--drain_grace=", absl::FormatDuration(options_.drain_grace)),
            absl::StrCat("--work_dir=", TempPath(options_.name + "-" + host.name))};
  }
  if (host.name.rfind("fake-", 0) != 0) {
    argv.insert(argv.begin() + 1, {absl::StrCat("--host=", address), "--metrics_port=0"});
  }
  // The server's stderr appended to its log; every `exec` keeps the pid the server's,
  // and setpriv has the kernel SIGKILL it if the test dies (a crash, Bazel's timeout).
  std::vector<std::string> logged = {
      "/bin/sh", "-c", "exec /usr/bin/setpriv --pdeathsig KILL -- \"$@\" 2>>\"$0\"",
      OutputPath(absl::StrCat(options_.name, "-", host.name, ".log"))};
  std::vector<std::string> wrapped = network_->Wrap(host.name, argv);
  logged.insert(logged.end(), wrapped.begin(), wrapped.end());
  return logged;
}

absl::Status FaultCluster::StartHost(const std::string& name) {
  Host* host = Find(name);
  if (host == nullptr) return absl::NotFoundError(absl::StrCat("no host ", name));
  if (host->process != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(name, " is running"));
  }
  if (name.rfind("fake-", 0) == 0) {  // no ports: it says READY once connected
    absl::StatusOr<std::unique_ptr<Subprocess>> fake = Subprocess::Start(Argv(*host));
    if (!fake.ok()) return fake.status();
    absl::StatusOr<std::string> ready = (*fake)->ReadLineStartingWith("READY", absl::Seconds(60));
    if (!ready.ok()) {
      return absl::Status(ready.status().code(),
                          absl::StrCat("start ", name, ": ", ready.status().message()));
    }
    host->process = std::move(*fake);
    return absl::OkStatus();
  }
  absl::StatusOr<ReadyServer> server = StartReadyServer(Argv(*host), absl::Seconds(60));
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat("start ", name, ": ", server.status().message()));
  }
  host->process = std::move(server->process);
  const bool fixed_port = name == "tuner" || name == "scheduler";
  if (fixed_port && host->port == 0) host->port = server->ports.grpc;
  host->metrics_port = server->ports.metrics;
  return absl::OkStatus();
}

absl::StatusOr<int> FaultCluster::Stop(const std::string& name, int signal,
                                       absl::Duration timeout) {
  Host* host = Find(name);
  if (host == nullptr || host->process == nullptr) {
    return absl::NotFoundError(absl::StrCat(name, " is not running"));
  }
  host->process->Signal(signal);
  if (signal != SIGKILL && signal != SIGTERM && signal != SIGINT) return 0;
  absl::StatusOr<int> code = host->process->Wait(timeout);
  if (code.ok()) host->process.reset();
  return code;
}

absl::StatusOr<pid_t> FaultCluster::TrialChildOf(const std::string& worker_host) {
  Subprocess* worker = process(worker_host);
  if (worker == nullptr) return absl::NotFoundError(absl::StrCat(worker_host, " is not running"));
  std::vector<pid_t> children = ChildrenOf(worker->pid());
  if (children.empty()) return absl::NotFoundError(absl::StrCat(worker_host, " has no child"));
  return *std::min_element(children.begin(), children.end(), [](pid_t a, pid_t b) {
    return ProcessStartTime(a) < ProcessStartTime(b);
  });
}

}  // namespace autocompress::testing
