// A trial child for TrialProcess and agent tests: reads the ChildRequest like
// `worker_server --run_trial` and behaves as its parameters_json says:
//   ok       a phase, one intermediate report, a SUCCEEDED result
//   segv     enters "fine-tuning epoch 2", then dies of SIGSEGV
//   exit     prints a line to stderr and exits with status 3
//   hang     enters "fine-tuning epoch 1", ignores SIGTERM, sleeps (needs SIGKILL)
//   spawn    forks a grandchild that sleeps, announces it as phase "grandchild <pid>",
//            then sleeps
//   garbage  writes bytes that are not a ChildMessage
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "autocompress/internal/trial_child.pb.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/util/delimited_message_util.h"

namespace {

using autocompress::internal::ChildMessage;

void Send(const ChildMessage& message) {
  google::protobuf::util::SerializeDelimitedToFileDescriptor(message, 3);
}

void Phase(const std::string& phase) {
  ChildMessage message;
  message.set_phase(phase);
  Send(message);
}

}  // namespace

int main() {
  autocompress::internal::ChildRequest request;
  google::protobuf::io::FileInputStream input(0);
  if (!google::protobuf::util::ParseDelimitedFromZeroCopyStream(&request, &input, nullptr)) {
    return 2;
  }
  const std::string mode = request.trial().parameters_json();
  if (mode == "ok") {
    Phase("working");
    ChildMessage report;
    report.mutable_intermediate()->set_step(1);
    auto* metric = report.mutable_intermediate()->add_metrics();
    metric->set_name("accuracy");
    metric->set_value(0.5);
    Send(report);
    ChildMessage result;
    result.mutable_result()->set_state(autocompress::v1::TRIAL_STATE_SUCCEEDED);
    auto* final_metric = result.mutable_result()->mutable_final_report()->add_metrics();
    final_metric->set_name("accuracy");
    final_metric->set_value(0.75);
    Send(result);
    return 0;
  }
  if (mode == "segv") {
    Phase("fine-tuning epoch 2");
    raise(SIGSEGV);
  }
  if (mode == "exit") {
    Phase("loading model");
    std::fprintf(stderr, "something went wrong here\n");
    return 3;
  }
  if (mode == "hang") {
    signal(SIGTERM, SIG_IGN);
    Phase("fine-tuning epoch 1");
    for (;;) pause();
  }
  if (mode == "spawn") {
    const pid_t grandchild = fork();
    if (grandchild == 0) {
      for (;;) pause();
    }
    Phase("grandchild " + std::to_string(grandchild));
    for (;;) pause();
  }
  if (mode == "garbage") {
    const char bytes[] = "\x05\xff\xff\xff\xff\xff";
    write(3, bytes, sizeof(bytes) - 1);
    return 0;
  }
  return 4;
}
