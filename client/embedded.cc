#include "client/embedded.h"

#include <prometheus/registry.h>

#include <algorithm>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "scheduler_service/scheduler_server.h"
#include "scheduler_service/web/web_server.h"
#include "tuner_service/tuner_server.h"
#include "worker/worker_server.h"

namespace autocompress {
namespace {

ServerOptions Loopback(int port) {
  ServerOptions options = ServerOptions::Loopback(port);
  options.shutdown_grace = absl::Seconds(1);
  return options;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddedCluster>> EmbeddedCluster::Start(const Options& options) {
  if (options.slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--slots is ", options.slots, ", must be >= 1"));
  }
  std::unique_ptr<EmbeddedCluster> cluster(new EmbeddedCluster());
  cluster->registry_ = std::make_unique<prometheus::Registry>();
  prometheus::Registry& registry = *cluster->registry_;

  tuner::TunerServer::Options tuner_options;
  tuner_options.server = Loopback(0);
  auto tuner = tuner::TunerServer::BuildAndStart(tuner_options, registry);
  if (!tuner.ok()) return tuner.status();
  cluster->tuner_ = std::move(*tuner);

  scheduler::SchedulerServer::Options scheduler_options;
  scheduler_options.server = Loopback(options.scheduler_port);
  scheduler_options.data_dir = options.data_dir;
  scheduler_options.tuner_address = absl::StrCat("127.0.0.1:", cluster->tuner_->port());
  auto scheduler = scheduler::SchedulerServer::BuildAndStart(scheduler_options, registry);
  if (!scheduler.ok()) return scheduler.status();
  cluster->scheduler_ = std::move(*scheduler);
  if (options.http_port >= 0) {
    scheduler::WebServer::Options web;
    web.port = options.http_port;
    web.static_dir =
        options.web_dir.empty() ? scheduler::WebServer::DefaultStaticDir() : options.web_dir;
    absl::Status started = cluster->scheduler_->StartWeb(web);
    if (absl::IsUnavailable(started) && web.port != 0) {
      // Taken (another run, or NNI's portal): any free port rather than no dashboard.
      web.port = 0;
      started = cluster->scheduler_->StartWeb(web);
    }
    if (!started.ok()) return started;
  }

  worker::WorkerServer::Options worker_options;
  worker_options.server = Loopback(0);
  worker_options.scheduler_address = absl::StrCat("127.0.0.1:", cluster->scheduler_->port());
  worker_options.devices.cpu_slots = options.slots;
  worker_options.devices.gpu_slots = options.use_gpus ? options.slots : 0;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  worker_options.threads_per_trial = options.threads_per_trial > 0
                                         ? options.threads_per_trial
                                         : std::max(1, cores / options.slots);
  worker_options.drain_grace = options.drain_grace;
  worker_options.agent.worker_id = "local";
  worker_options.agent.trial_command = options.trial_command;
  worker_options.agent.work_dir = absl::StrCat(options.data_dir, "/worker");
  auto worker = worker::WorkerServer::BuildAndStart(worker_options, registry);
  if (!worker.ok()) return worker.status();
  cluster->worker_ = std::move(*worker);

  ClientOptions client_options;
  client_options.address = absl::StrCat("127.0.0.1:", cluster->scheduler_->port());
  cluster->client_ =
      std::make_unique<Client>(cluster->scheduler_->InProcessChannel(), client_options);
  return cluster;
}

int EmbeddedCluster::scheduler_port() const { return scheduler_->port(); }

std::string EmbeddedCluster::dashboard_url() const {
  return scheduler_->web() != nullptr ? scheduler_->web()->url() : "";
}

void EmbeddedCluster::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (client_ != nullptr) client_->CancelWatches();
  if (worker_ != nullptr) {
    worker_->Shutdown();
    worker_->Wait();
  }
  if (scheduler_ != nullptr) {
    scheduler_->Shutdown();
    scheduler_->Wait();
  }
  if (tuner_ != nullptr) {
    tuner_->Shutdown();
    tuner_->Wait();
  }
}

EmbeddedCluster::~EmbeddedCluster() { Shutdown(); }

}  // namespace autocompress
