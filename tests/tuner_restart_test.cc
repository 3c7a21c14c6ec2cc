// tuner_server as a real process: a study survives a SIGKILL of the tuner the way the
// scheduler will drive it. The restarted tuner answers NOT_FOUND, the caller re-creates
// the study from the suggestions and observations it stored, and carries on with fresh
// parameter ids.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/testing/subprocess.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using testing::RunfilePath;
using testing::Subprocess;

constexpr char kSpace[] = R"({"algorithm_name": {"_type": "choice", "_value": [
  {"_name": "l1", "config_list::Conv2d::::sparsity": {"_type": "uniform", "_value": [0.1, 0.9]}},
  {"_name": "qat", "config_list::weight::Conv2d::::quant_bits": {"_type": "choice", "_value": [4, 8]}}]}})";

struct Tuner {
  std::unique_ptr<Subprocess> process;
  std::unique_ptr<v1::TunerService::Stub> stub;
};

Tuner StartTuner() {
  Tuner tuner;
  auto server = testing::StartReadyServer({RunfilePath("tuner_service/tuner_server"),
                                           "--host=127.0.0.1", "--port=0", "--metrics_port=0"});
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return tuner;
  }
  tuner.process = std::move(server->process);
  tuner.stub = v1::TunerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", server->ports.grpc), grpc::InsecureChannelCredentials()));
  return tuner;
}

v1::CreateStudyRequest Create() {
  v1::CreateStudyRequest request;
  request.set_study_id("exp-7");
  request.mutable_config()->set_search_space_json(kSpace);
  request.mutable_config()->mutable_tuner()->set_name("TPE");
  v1::ObjectiveSpec* objective = request.mutable_config()->mutable_objective();
  objective->mutable_primary()->set_metric("accuracy");
  objective->mutable_primary()->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
  // A constraint, so the replayed history carries infeasible results too.
  v1::MetricConstraint* constraint = objective->add_constraints();
  constraint->set_metric("sparsity");
  constraint->set_comparison(v1::COMPARISON_GREATER_EQUAL);
  constraint->set_bound(0.5);
  return request;
}

grpc::Status Suggest(Tuner& tuner, int count, v1::SuggestResponse* response,
                     const std::string& request_id = "") {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::SuggestRequest request;
  request.set_study_id("exp-7");
  request.set_count(count);
  request.set_request_id(request_id);
  return tuner.stub->Suggest(&context, request, response);
}

TEST(TunerRestartTest, StudyIsRebuiltFromStoredHistoryAfterSigkill) {
  Tuner tuner = StartTuner();
  ASSERT_NE(tuner.stub, nullptr);
  v1::CreateStudyResponse created;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(tuner.stub->CreateStudy(&context, Create(), &created).ok());
  }
  // What the scheduler would have stored.
  std::vector<v1::Suggestion> stored_suggestions;
  std::vector<v1::Observation> stored_observations;
  v1::SuggestResponse batch;
  ASSERT_TRUE(Suggest(tuner, 6, &batch, "batch-1").ok());
  // A retry after a lost response returns the same parameter ids.
  v1::SuggestResponse retried;
  ASSERT_TRUE(Suggest(tuner, 6, &retried, "batch-1").ok());
  ASSERT_EQ(retried.suggestions_size(), 6);
  EXPECT_EQ(retried.suggestions(5).parameter_id(), batch.suggestions(5).parameter_id());
  v1::ReportRequest report;
  report.set_study_id("exp-7");
  for (int i = 0; i < batch.suggestions_size(); ++i) {
    stored_suggestions.push_back(batch.suggestions(i));
    if (i % 2 == 0) {
      v1::Observation* o = report.add_observations();
      o->set_parameter_id(batch.suggestions(i).parameter_id());
      o->set_kind(v1::OBSERVATION_KIND_FINAL);
      o->set_value(0.5 + 0.01 * i);
      // Suggestion 2 (i == 2) misses the sparsity constraint.
      v1::Metric* sparsity = o->add_metrics();
      sparsity->set_name("sparsity");
      sparsity->set_value(i == 2 ? 0.3 : 0.7);
      stored_observations.push_back(*o);
    } else if (i == 1) {
      // A re-queued trial: attempt 2's step 0 replaces attempt 1's, it is no duplicate.
      for (int attempt : {1, 2}) {
        v1::Observation* o = report.add_observations();
        o->set_parameter_id(batch.suggestions(i).parameter_id());
        o->set_kind(v1::OBSERVATION_KIND_INTERMEDIATE);
        o->set_attempt(attempt);
        o->set_value(0.2 * attempt);
        stored_observations.push_back(*o);
      }
    }
  }
  {
    grpc::ClientContext context;
    v1::ReportResponse reported;
    ASSERT_TRUE(tuner.stub->Report(&context, report, &reported).ok());
  }

  tuner.process->Signal(SIGKILL);
  auto killed = tuner.process->Wait(absl::Seconds(10));
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(*killed, 128 + SIGKILL);

  Tuner restarted = StartTuner();
  ASSERT_NE(restarted.stub, nullptr);
  v1::SuggestResponse lost;
  ASSERT_EQ(Suggest(restarted, 1, &lost).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::CreateStudyRequest recreate = Create();
  for (const auto& s : stored_suggestions) *recreate.add_past_suggestions() = s;
  for (const auto& o : stored_observations) *recreate.add_past_observations() = o;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(restarted.stub->CreateStudy(&context, recreate, &created).ok());
  }
  EXPECT_EQ(created.replayed_observations(), 5);
  v1::SuggestResponse next;
  ASSERT_TRUE(Suggest(restarted, 2, &next).ok());
  ASSERT_EQ(next.suggestions_size(), 2);
  EXPECT_EQ(next.suggestions(0).parameter_id(), 7);
  EXPECT_EQ(next.suggestions(1).parameter_id(), 8);

  restarted.process->Signal(SIGTERM);
  auto stopped = restarted.process->Wait(absl::Seconds(5));
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(*stopped, 0);
}

}  // namespace
}  // namespace autocompress
