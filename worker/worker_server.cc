#include "worker/worker_server.h"

#include <limits.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace autocompress::worker {
namespace {

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  return gethostname(name, sizeof(name)) == 0 ? name : "worker";
}

std::string SelfExecutable() {
  char path[PATH_MAX + 1] = {};
  const ssize_t n = readlink("/proc/self/exe", path, PATH_MAX);
  return n > 0 ? std::string(path, n) : "/proc/self/exe";
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::BuildAndStart(
    const Options& options, prometheus::Registry& registry) {
  if (options.scheduler_address.empty()) {
    return absl::InvalidArgumentError(
        "scheduler_address: must name the scheduler's WorkerGateway (host:port)");
  }
  if (options.threads_per_trial < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads_per_trial: ", options.threads_per_trial, " must be >= 1"));
  }
  WorkerAgent::Options agent = options.agent;
  if (agent.hostname.empty()) agent.hostname = HostName();
  if (agent.worker_id.empty()) agent.worker_id = agent.hostname;
  if (agent.trial_command.empty()) agent.trial_command = {SelfExecutable(), "--run_trial"};
  if (agent.work_dir.empty())
    agent.work_dir = absl::StrCat("/tmp/autocompress-worker-", agent.worker_id);
  if (agent.devices.empty()) agent.devices = DiscoverDevices(options.devices);
  if (agent.devices.empty()) {
    return absl::InvalidArgumentError("devices: no GPU found and cpu_slots is 0: nothing to offer");
  }
  int cpu_slots = 0;
  bool gpus = false;
  for (const v1::Device& d : agent.devices) {
    if (d.name() == "cpu") cpu_slots += d.slots();
    gpus |= d.name() != "cpu";
  }
  if (agent.cpu_threads == 0) {
    agent.cpu_threads = gpus ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                             : cpu_slots * options.threads_per_trial;
  }
  if (!agent.device_status && gpus) {
    const std::vector<v1::Device> offered = agent.devices;
    agent.device_status = [offered] { return GpuStatus(offered); };
  }
  ChannelOptions channel;
  // Reconnect quickly after a scheduler restart: workers are few and the session is
  // the only traffic.
  channel.min_reconnect_backoff = absl::Milliseconds(100);
  channel.max_reconnect_backoff = absl::Seconds(2);
  RETURN_IF_ERROR(ApplyClientSecurity(options.scheduler_security, "scheduler_", &channel));
  std::unique_ptr<WorkerServer> server(new WorkerServer());
  server->drain_grace_ = options.drain_grace;
  RETURN_IF_ERROR(server->Start(options.server, registry, {}));
  std::string devices;
  for (const v1::Device& d : agent.devices)
    absl::StrAppend(&devices, devices.empty() ? "" : ",", d.name(), "x", d.slots());
  LOG(INFO) << "service=worker scheduler=" << options.scheduler_address
            << " worker_id=" << agent.worker_id << " devices=" << devices
            << " cpu_threads=" << agent.cpu_threads;
  ASSIGN_OR_RETURN(server->agent_,
                   WorkerAgent::Start(std::move(agent),
                                      CreateChannel(options.scheduler_address, channel), registry));
  return server;
}

WorkerServer::~WorkerServer() {
  Shutdown();
  Wait();
}

void WorkerServer::Shutdown() {
  if (agent_ != nullptr) agent_->Drain("shutdown", drain_grace_);
  Server::Shutdown();
}

}  // namespace autocompress::worker
