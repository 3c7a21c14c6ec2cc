// TunerService over a real in-process gRPC server: every rpc, the NOT_FOUND recovery of
// a restarted tuner, bad input, and the tuner's metrics.
#include "tuner_service/tuner_service_impl.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "common/server_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::tuner {
namespace {

using ::testing::HasSubstr;

constexpr char kSpace[] = R"({"algorithm_name": {"_type": "choice", "_value": [
  {"_name": "level", "config_list::default::::sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}},
  {"_name": "qat", "config_list::weight::Conv2d::::quant_bits": {"_type": "choice", "_value": [4, 8]}}]}})";

class TunerServiceTest : public ::testing::Test {
 protected:
  void Start() {
    service_ = std::make_unique<TunerServiceImpl>(registry_);
    ServerOptions options;
    options.host = "127.0.0.1";
    runner_ = std::make_unique<ServerRunner>(options);
    runner_->AddService(service_.get(), "autocompress.v1.TunerService");
    ASSERT_TRUE(runner_->Start().ok());
    stub_ = v1::TunerService::NewStub(runner_->InProcessChannel());
  }
  void SetUp() override { Start(); }

  // Simulates a tuner restart: a new service with no studies on a new server.
  void Restart() {
    runner_.reset();
    Start();
  }

  v1::CreateStudyRequest Create(const std::string& algorithm = "tpe") {
    v1::CreateStudyRequest request;
    request.set_study_id("exp-1");
    request.mutable_config()->set_search_space_json(kSpace);
    request.mutable_config()->mutable_tuner()->set_name(algorithm);
    v1::Objective* primary = request.mutable_config()->mutable_objective()->mutable_primary();
    primary->set_metric("accuracy");
    primary->set_mode(v1::OPTIMIZE_MODE_MAXIMIZE);
    request.mutable_config()->set_seed(3);
    return request;
  }

  grpc::Status Call(const v1::CreateStudyRequest& r, v1::CreateStudyResponse* out) {
    grpc::ClientContext c;
    return stub_->CreateStudy(&c, r, out);
  }
  grpc::Status Call(const v1::SuggestRequest& r, v1::SuggestResponse* out) {
    grpc::ClientContext c;
    return stub_->Suggest(&c, r, out);
  }
  grpc::Status Call(const v1::ReportRequest& r, v1::ReportResponse* out) {
    grpc::ClientContext c;
    return stub_->Report(&c, r, out);
  }

  v1::SuggestRequest SuggestN(int n) {
    v1::SuggestRequest r;
    r.set_study_id("exp-1");
    r.set_count(n);
    return r;
  }

  prometheus::Registry registry_;
  std::unique_ptr<TunerServiceImpl> service_;
  std::unique_ptr<ServerRunner> runner_;
  std::unique_ptr<v1::TunerService::Stub> stub_;
};

TEST_F(TunerServiceTest, ValidateSearchSpaceListsIssuesWithPaths) {
  grpc::ClientContext c1;
  v1::ValidateSearchSpaceRequest ok_request;
  ok_request.set_search_space_json(kSpace);
  v1::ValidateSearchSpaceResponse ok;
  ASSERT_TRUE(stub_->ValidateSearchSpace(&c1, ok_request, &ok).ok());
  EXPECT_TRUE(ok.valid());
  EXPECT_EQ(ok.parameter_count(), 3);

  grpc::ClientContext c2;
  v1::ValidateSearchSpaceRequest bad_request;
  bad_request.set_search_space_json(
      R"({"a": {"_type": "uniform", "_value": [1, 0]}, "b": {"_type": "nope", "_value": []}})");
  v1::ValidateSearchSpaceResponse bad;
  ASSERT_TRUE(stub_->ValidateSearchSpace(&c2, bad_request, &bad).ok());
  EXPECT_FALSE(bad.valid());
  ASSERT_EQ(bad.issues_size(), 2);
  EXPECT_EQ(bad.issues(0).path(), "a._value");
  EXPECT_EQ(bad.issues(1).path(), "b._type");

  grpc::ClientContext c3;
  v1::ValidateSearchSpaceRequest grid_request;
  grid_request.set_search_space_json(kSpace);
  grid_request.set_algorithm("grid_search");
  v1::ValidateSearchSpaceResponse grid;
  ASSERT_TRUE(stub_->ValidateSearchSpace(&c3, grid_request, &grid).ok());
  EXPECT_FALSE(grid.valid());
  EXPECT_THAT(grid.issues(0).message(), HasSubstr("cannot enumerate uniform"));
}

TEST_F(TunerServiceTest, CreateSuggestReportDelete) {
  v1::CreateStudyResponse created;
  ASSERT_TRUE(Call(Create(), &created).ok());

  v1::SuggestResponse suggested;
  ASSERT_TRUE(Call(SuggestN(4), &suggested).ok());
  ASSERT_EQ(suggested.suggestions_size(), 4);
  EXPECT_FALSE(suggested.exhausted());
  EXPECT_THAT(suggested.suggestions(0).parameters_json(), HasSubstr("\"_name\""));

  v1::ReportRequest report;
  report.set_study_id("exp-1");
  for (int i = 0; i < 4; ++i) {
    v1::Observation* o = report.add_observations();
    o->set_parameter_id(suggested.suggestions(i).parameter_id());
    o->set_kind(i == 3 ? v1::OBSERVATION_KIND_INTERMEDIATE : v1::OBSERVATION_KIND_FINAL);
    o->set_value(0.5 + i * 0.1);
  }
  v1::ReportResponse reported;
  ASSERT_TRUE(Call(report, &reported).ok());
  ASSERT_EQ(reported.decisions_size(), 1);
  EXPECT_FALSE(reported.decisions(0).stop());  // no assessor configured

  grpc::ClientContext c;
  v1::DeleteStudyRequest del;
  del.set_study_id("exp-1");
  v1::DeleteStudyResponse deleted;
  ASSERT_TRUE(stub_->DeleteStudy(&c, del, &deleted).ok());
  EXPECT_TRUE(deleted.existed());
  grpc::ClientContext c2;
  ASSERT_TRUE(stub_->DeleteStudy(&c2, del, &deleted).ok());
  EXPECT_FALSE(deleted.existed());
  EXPECT_EQ(Call(SuggestN(1), &suggested).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TunerServiceTest, RestartedTunerAnswersNotFoundAndRecoversFromHistory) {
  v1::CreateStudyResponse created;
  ASSERT_TRUE(Call(Create(), &created).ok());
  v1::SuggestResponse first;
  ASSERT_TRUE(Call(SuggestN(5), &first).ok());
  v1::ReportRequest report;
  report.set_study_id("exp-1");
  for (int i = 0; i < 3; ++i) {
    v1::Observation* o = report.add_observations();
    o->set_parameter_id(first.suggestions(i).parameter_id());
    o->set_kind(v1::OBSERVATION_KIND_FINAL);
    o->set_value(i);
  }
  v1::ReportResponse reported;
  ASSERT_TRUE(Call(report, &reported).ok());

  Restart();
  v1::SuggestResponse lost;
  grpc::Status status = Call(SuggestN(1), &lost);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("re-create it"));

  // The caller re-creates the study from its store, once, and carries on.
  v1::CreateStudyRequest recreate = Create();
  for (const auto& s : first.suggestions()) *recreate.add_past_suggestions() = s;
  for (const auto& o : report.observations()) *recreate.add_past_observations() = o;
  // The store may hold a retried report twice: it counts, and applies, once.
  *recreate.add_past_observations() = report.observations(0);
  ASSERT_TRUE(Call(recreate, &created).ok());
  EXPECT_EQ(created.replayed_observations(), 3);
  v1::SuggestResponse next;
  ASSERT_TRUE(Call(SuggestN(1), &next).ok());
  EXPECT_EQ(next.suggestions(0).parameter_id(), 6);
  // Trials pending before the restart report normally.
  v1::ReportRequest late;
  late.set_study_id("exp-1");
  v1::Observation* o = late.add_observations();
  o->set_parameter_id(5);
  o->set_kind(v1::OBSERVATION_KIND_ABANDONED);
  EXPECT_TRUE(Call(late, &reported).ok());
}

TEST_F(TunerServiceTest, RetriedSuggestWithTheSameRequestIdGetsTheSameSuggestions) {
  v1::CreateStudyResponse created;
  ASSERT_TRUE(Call(Create(), &created).ok());
  v1::SuggestRequest request = SuggestN(3);
  request.set_request_id("sched-42");
  v1::SuggestResponse first, retried;
  ASSERT_TRUE(Call(request, &first).ok());
  // The response was lost; the scheduler retries the same call.
  ASSERT_TRUE(Call(request, &retried).ok());
  ASSERT_EQ(retried.suggestions_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(retried.suggestions(i).parameter_id(), first.suggestions(i).parameter_id());
    EXPECT_EQ(retried.suggestions(i).parameters_json(), first.suggestions(i).parameters_json());
  }
  // No pending trials were minted by the retry: the next new call continues at 4.
  v1::SuggestResponse next;
  ASSERT_TRUE(Call(SuggestN(1), &next).ok());
  EXPECT_EQ(next.suggestions(0).parameter_id(), 4);
  request.set_count(2);
  grpc::Status status = Call(request, &retried);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("request_id 'sched-42'"));
}

TEST_F(TunerServiceTest, BadInputGetsPreciseCodes) {
  v1::CreateStudyResponse created;
  v1::CreateStudyRequest no_id = Create();
  no_id.clear_study_id();
  EXPECT_EQ(Call(no_id, &created).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateStudyRequest bad_space = Create();
  bad_space.mutable_config()->set_search_space_json("{");
  grpc::Status status = Call(bad_space, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("not valid JSON"));
  EXPECT_EQ(Call(Create("nonesuch"), &created).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(Call(Create(), &created).ok());
  v1::SuggestResponse suggested;
  EXPECT_EQ(Call(SuggestN(0), &suggested).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ReportRequest unknown;
  unknown.set_study_id("exp-1");
  unknown.add_observations()->set_parameter_id(77);
  unknown.mutable_observations(0)->set_kind(v1::OBSERVATION_KIND_FINAL);
  v1::ReportResponse reported;
  EXPECT_EQ(Call(unknown, &reported).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateStudyRequest no_objective = Create();
  no_objective.mutable_config()->clear_objective();
  status = Call(no_objective, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("config.objective.primary"));
  unknown.set_study_id("other");
  EXPECT_EQ(Call(unknown, &reported).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TunerServiceTest, RecordsSuggestLatencyStudiesAndObservations) {
  v1::CreateStudyResponse created;
  ASSERT_TRUE(Call(Create("random"), &created).ok());
  v1::SuggestResponse suggested;
  ASSERT_TRUE(Call(SuggestN(2), &suggested).ok());
  v1::ReportRequest report;
  report.set_study_id("exp-1");
  v1::Observation* o = report.add_observations();
  o->set_parameter_id(1);
  o->set_kind(v1::OBSERVATION_KIND_FINAL);
  o->set_value(1);
  v1::ReportResponse reported;
  ASSERT_TRUE(Call(report, &reported).ok());
  const std::string text = prometheus::TextSerializer().Serialize(registry_.Collect());
  EXPECT_THAT(
      text, HasSubstr("autocompress_tuner_suggest_duration_seconds_count{algorithm=\"random\"} 1"));
  EXPECT_THAT(text, HasSubstr("autocompress_tuner_studies 1"));
  EXPECT_THAT(text, HasSubstr("autocompress_tuner_observations_total{kind=\"final\"} 1"));
}

}  // namespace
}  // namespace autocompress::tuner
