// fake_worker: a worker agent process that runs no real trials (tests/fakes/
// fake_worker.h in auto mode): each assignment reports `--epochs` intermediate metrics
// `--epoch_ms` apart and then succeeds. It reconnects whenever its stream breaks
// (scheduler restarts) and re-sends what was not acknowledged. For process-level tests
// and the scheduler benchmark. Prints "READY worker=<id>" once first connected; exits on
// SIGTERM or SIGINT.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "tests/fakes/fake_worker.h"

ABSL_FLAG(std::string, scheduler_address, "127.0.0.1:7400", "WorkerGateway address");
ABSL_FLAG(std::string, worker_id, "fake-worker", "Stable worker id");
ABSL_FLAG(int, slots, 1, "CPU slots offered");
ABSL_FLAG(int, epochs, 2, "Intermediate reports per trial");
ABSL_FLAG(int, epoch_ms, 0, "Milliseconds between reports");

namespace {
std::atomic<bool> stop{false};
void OnSignal(int) { stop = true; }
}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  autocompress::testing::FakeWorker::Options options;
  options.worker_id = absl::GetFlag(FLAGS_worker_id);
  options.cpu_slots = absl::GetFlag(FLAGS_slots);
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.epoch_time = absl::Milliseconds(absl::GetFlag(FLAGS_epoch_ms));
  options.auto_run = true;
  options.auto_heartbeat = true;
  autocompress::ChannelOptions channel_options;
  channel_options.min_reconnect_backoff = absl::Milliseconds(100);
  channel_options.max_reconnect_backoff = absl::Milliseconds(500);
  autocompress::testing::FakeWorker worker(
      autocompress::CreateChannel(absl::GetFlag(FLAGS_scheduler_address), channel_options),
      options);
  bool announced = false;
  while (!stop) {
    if (!worker.connected()) {
      if (worker.Connect(absl::Seconds(2)).ok() && !announced) {
        std::printf("READY worker=%s\n", options.worker_id.c_str());
        std::fflush(stdout);
        announced = true;
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return 0;
}
