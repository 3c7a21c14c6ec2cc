#include "worker/trial_process.h"

#include <signal.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/testing/processes.h"
#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::worker {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<TrialProcess> StartChild(const std::string& mode) {
  internal::ChildRequest request;
  request.mutable_trial()->set_parameters_json(mode);
  auto process =
      TrialProcess::Start({testing::RunfilePath("worker/testing/fake_trial_child")}, request);
  EXPECT_TRUE(process.ok()) << process.status();
  return process.ok() ? std::move(*process) : nullptr;
}

// Every message until the end of the child's output.
std::vector<internal::ChildMessage> ReadAll(TrialProcess& process) {
  std::vector<internal::ChildMessage> messages;
  for (;;) {
    auto next = process.Next(absl::Seconds(10));
    EXPECT_TRUE(next.ok()) << next.status();
    if (!next.ok() || !next->has_value()) return messages;
    messages.push_back(**next);
  }
}

TEST(TrialProcessTest, RelaysMessagesInOrderAndExitsCleanly) {
  auto process = StartChild("ok");
  ASSERT_NE(process, nullptr);
  std::vector<internal::ChildMessage> messages = ReadAll(*process);
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].phase(), "working");
  EXPECT_EQ(messages[1].intermediate().metrics(0).value(), 0.5);
  EXPECT_EQ(messages[2].result().state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(process->phase(), "working");
  std::optional<ChildExit> exit = process->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit.has_value());
  EXPECT_FALSE(exit->signaled);
  EXPECT_EQ(exit->code, 0);
}

TEST(TrialProcessTest, CrashNamesSignalAndPhase) {
  auto process = StartChild("segv");
  ASSERT_NE(process, nullptr);
  ReadAll(*process);
  std::optional<ChildExit> exit = process->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit.has_value());
  const v1::TrialFailure failure = DescribeExit(*exit, process->phase(), process->stderr_tail());
  EXPECT_EQ(failure.code(), v1::FAILURE_CODE_CRASH);
  EXPECT_THAT(failure.message(), HasSubstr("signal 11 (SIGSEGV) in fine-tuning epoch 2"));
}

TEST(TrialProcessTest, ExitStatusCarriesTheLastStderrLine) {
  auto process = StartChild("exit");
  ASSERT_NE(process, nullptr);
  ReadAll(*process);
  std::optional<ChildExit> exit = process->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit.has_value());
  const v1::TrialFailure failure = DescribeExit(*exit, process->phase(), process->stderr_tail());
  EXPECT_EQ(failure.message(),
            "exited with status 3 in loading model; last output: something went wrong here");
}

TEST(TrialProcessTest, StopEscalatesToSigkillAfterGrace) {
  auto process = StartChild("hang");
  ASSERT_NE(process, nullptr);
  auto phase = process->Next(absl::Seconds(10));
  ASSERT_TRUE(phase.ok() && phase->has_value());
  EXPECT_FALSE(absl::IsDeadlineExceeded(phase.status()));
  EXPECT_TRUE(absl::IsDeadlineExceeded(process->Next(absl::Milliseconds(50)).status()));
  const absl::Time start = absl::Now();
  const ChildExit exit = process->Stop(absl::Milliseconds(300));
  EXPECT_TRUE(exit.signaled);
  EXPECT_EQ(exit.code, SIGKILL);  // it ignored SIGTERM
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(TrialProcessTest, NothingTheChildStartedOutlivesIt) {
  auto process = StartChild("spawn");
  ASSERT_NE(process, nullptr);
  auto phase = process->Next(absl::Seconds(10));
  ASSERT_TRUE(phase.ok() && phase->has_value()) << phase.status();
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripPrefix((**phase).phase(), "grandchild "), &grandchild));
  ASSERT_EQ(kill(grandchild, 0), 0);
  process->Stop(absl::Milliseconds(300));
  // The grandchild was in the child's process group; it is gone (reaped by init).
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = testing::ProcessGone(grandchild);
    if (!gone) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(gone) << "grandchild " << grandchild << " survived";
}

TEST(TrialProcessTest, GarbageOnThePipeIsDataLoss) {
  auto process = StartChild("garbage");
  ASSERT_NE(process, nullptr);
  absl::StatusOr<std::optional<internal::ChildMessage>> next;
  do {
    next = process->Next(absl::Seconds(10));
  } while (next.ok() && next->has_value());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kDataLoss) << next.status();
}

TEST(TrialProcessTest, MissingBinaryExitsWith127) {
  internal::ChildRequest request;
  auto process = TrialProcess::Start({"/nonexistent/trial-binary"}, request);
  ASSERT_TRUE(process.ok());
  std::optional<ChildExit> exit = (*process)->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit.has_value());
  EXPECT_EQ(exit->code, 127);
}

}  // namespace
}  // namespace autocompress::worker
