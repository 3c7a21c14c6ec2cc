#include "tuner_service/study.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tuner_service/testing/test_functions.h"

namespace autocompress::tuner {
namespace {

using ::testing::HasSubstr;

v1::CreateStudyRequest Request(const std::string& space, const std::string& algorithm,
                               v1::OptimizeMode mode = v1::OPTIMIZE_MODE_MAXIMIZE,
                               const std::string& args = "") {
  v1::CreateStudyRequest request;
  request.set_study_id("s");
  request.mutable_config()->set_search_space_json(space);
  request.mutable_config()->mutable_tuner()->set_name(algorithm);
  request.mutable_config()->mutable_tuner()->set_args_json(args);
  request.mutable_config()->set_mode(mode);
  request.mutable_config()->set_seed(7);
  return request;
}

v1::Observation Obs(int64_t id, v1::ObservationKind kind, double value, int64_t step = 0) {
  v1::Observation o;
  o.set_parameter_id(id);
  o.set_kind(kind);
  o.set_value(value);
  o.set_step(step);
  return o;
}

v1::ReportRequest Report(std::initializer_list<v1::Observation> observations) {
  v1::ReportRequest request;
  for (const auto& o : observations) *request.add_observations() = o;
  return request;
}

constexpr char kSmall[] = R"({"x": {"_type": "choice", "_value": [1, 2, 3]}})";

TEST(StudyTest, SuggestionsGetIncreasingIdsAndAvoidDuplicatesWhilePossible) {
  auto study = Study::Create(Request(kSmall, "random"));
  ASSERT_TRUE(study.ok()) << study.status();
  auto batch = (*study)->Suggest(3);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->suggestions_size(), 3);
  std::set<std::string> distinct;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(batch->suggestions(i).parameter_id(), i + 1);
    distinct.insert(batch->suggestions(i).parameters_json());
  }
  EXPECT_EQ(distinct.size(), 3u);
  // The space is used up: a fourth suggestion must repeat one, and still comes.
  auto more = (*study)->Suggest(1);
  ASSERT_TRUE(more.ok());
  ASSERT_EQ(more->suggestions_size(), 1);
  EXPECT_EQ(more->suggestions(0).parameter_id(), 4);
}

TEST(StudyTest, GridSearchReportsExhaustion) {
  auto study = Study::Create(Request(kSmall, "grid_search"));
  ASSERT_TRUE(study.ok());
  auto batch = (*study)->Suggest(10);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->suggestions_size(), 3);
  EXPECT_TRUE(batch->exhausted());
  auto after = (*study)->Suggest(1);
  EXPECT_EQ(after->suggestions_size(), 0);
  EXPECT_TRUE(after->exhausted());
}

TEST(StudyTest, ReportIsIdempotentAndValidatedAsAWhole) {
  auto study = std::move(*Study::Create(Request(kSmall, "random")));
  ASSERT_TRUE(study->Suggest(2).ok());
  ASSERT_TRUE(study->Report(Report({Obs(1, v1::OBSERVATION_KIND_FINAL, 0.5)})).ok());
  ASSERT_TRUE(study->Report(Report({Obs(1, v1::OBSERVATION_KIND_FINAL, 0.9)})).ok());
  EXPECT_EQ(study->completed(), 1);

  // One bad observation rejects the request and applies nothing of it.
  auto bad = study->Report(
      Report({Obs(2, v1::OBSERVATION_KIND_FINAL, 0.1), Obs(99, v1::OBSERVATION_KIND_FINAL, 0.1)}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("observations[1]"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("never suggested"));
  EXPECT_EQ(study->completed(), 1);

  EXPECT_FALSE(study->Report(Report({Obs(2, v1::OBSERVATION_KIND_FINAL, NAN)})).ok());
  EXPECT_FALSE(study->Report(Report({Obs(2, v1::OBSERVATION_KIND_UNSPECIFIED, 1)})).ok());
  EXPECT_FALSE(study->Report(Report({Obs(2, v1::OBSERVATION_KIND_INTERMEDIATE, 1, -1)})).ok());
  EXPECT_FALSE(study->Suggest(0).ok());
  EXPECT_FALSE(study->Suggest(1001).ok());
}

TEST(StudyTest, MedianStopDecidesOnIntermediateResults) {
  v1::CreateStudyRequest request = Request(kSmall, "random");
  request.mutable_config()->mutable_assessor()->set_name("medianstop");
  auto study = std::move(*Study::Create(request));
  ASSERT_TRUE(study->Suggest(3).ok());
  // Two completed curves: 0.8 and 0.6 at step 0; running averages are what count.
  ASSERT_TRUE(study
                  ->Report(Report({Obs(1, v1::OBSERVATION_KIND_INTERMEDIATE, 0.8, 0),
                                   Obs(1, v1::OBSERVATION_KIND_FINAL, 0.8),
                                   Obs(2, v1::OBSERVATION_KIND_INTERMEDIATE, 0.6, 0),
                                   Obs(2, v1::OBSERVATION_KIND_FINAL, 0.6)}))
                  .ok());
  auto judged = study->Report(Report({Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.5, 0)}));
  ASSERT_TRUE(judged.ok());
  ASSERT_EQ(judged->decisions_size(), 1);
  EXPECT_EQ(judged->decisions(0).parameter_id(), 3);
  EXPECT_TRUE(judged->decisions(0).stop());  // 0.5 < lower median 0.6
  EXPECT_THAT(judged->decisions(0).reason(), HasSubstr("medianstop"));
  // The same observation again (a retry after a lost response) changes nothing and
  // gets the same verdict back.
  auto again = study->Report(Report({Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.5, 0)}));
  ASSERT_EQ(again->decisions_size(), 1);
  EXPECT_TRUE(again->decisions(0).stop());
  EXPECT_EQ(again->decisions(0).reason(), judged->decisions(0).reason());
}

TEST(StudyTest, MaximizeAndMinimizeBothOptimize) {
  for (v1::OptimizeMode mode : {v1::OPTIMIZE_MODE_MAXIMIZE, v1::OPTIMIZE_MODE_MINIMIZE}) {
    const testing::TestProblem& branin = testing::Branin();
    auto study = std::move(*Study::Create(Request(branin.search_space_json, "tpe", mode)));
    double best = INFINITY;
    for (int i = 0; i < 60; ++i) {
      auto batch = study->Suggest(1);
      ASSERT_TRUE(batch.ok());
      const auto& s = batch->suggestions(0);
      const double y = branin.evaluate(testing::ParseX(s.parameters_json(), 2));
      best = std::min(best, y);
      const double reported = mode == v1::OPTIMIZE_MODE_MAXIMIZE ? -y : y;
      ASSERT_TRUE(
          study->Report(Report({Obs(s.parameter_id(), v1::OBSERVATION_KIND_FINAL, reported)}))
              .ok());
    }
    EXPECT_LT(best - branin.optimum, 0.5) << v1::OptimizeMode_Name(mode);
  }
}

TEST(StudyTest, RecreatedStudyContinuesFromItsHistory) {
  const testing::TestProblem& branin = testing::Branin();
  auto original = std::move(*Study::Create(Request(branin.search_space_json, "tpe")));
  v1::CreateStudyRequest recreate = Request(branin.search_space_json, "tpe");
  for (int i = 0; i < 25; ++i) {
    auto s = original->Suggest(1)->suggestions(0);
    *recreate.add_past_suggestions() = s;
    if (i < 22) {
      v1::Observation o = Obs(s.parameter_id(), v1::OBSERVATION_KIND_FINAL,
                              -branin.evaluate(testing::ParseX(s.parameters_json(), 2)));
      ASSERT_TRUE(original->Report(Report({o})).ok());
      *recreate.add_past_observations() = o;
    }
  }
  auto restored = Study::Create(recreate);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->completed(), 22);
  EXPECT_EQ((*restored)->suggested(), 25);
  auto next = (*restored)->Suggest(1);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->suggestions(0).parameter_id(), 26);
  // Pending trials from before the restart can still report.
  EXPECT_TRUE((*restored)->Report(Report({Obs(24, v1::OBSERVATION_KIND_FINAL, -3)})).ok());
}

TEST(StudyTest, BadConfigsAreClearErrors) {
  auto no_mode = Study::Create(Request(kSmall, "tpe", v1::OPTIMIZE_MODE_UNSPECIFIED));
  EXPECT_THAT(std::string(no_mode.status().message()), HasSubstr("config.mode"));
  auto bad_space =
      Study::Create(Request(R"({"x": {"_type": "uniform", "_value": [1, 0]}})", "tpe"));
  EXPECT_THAT(std::string(bad_space.status().message()),
              HasSubstr("config.search_space_json: invalid search space"));
  auto bad_algorithm = Study::Create(Request(kSmall, "bogus"));
  EXPECT_THAT(std::string(bad_algorithm.status().message()), HasSubstr("config.tuner: unknown"));
  v1::CreateStudyRequest bad_assessor = Request(kSmall, "tpe");
  bad_assessor.mutable_config()->mutable_assessor()->set_name("oracle");
  EXPECT_THAT(std::string(Study::Create(bad_assessor).status().message()),
              HasSubstr("config.assessor: unknown assessor"));
  v1::CreateStudyRequest bad_history = Request(kSmall, "tpe");
  bad_history.add_past_suggestions()->set_parameters_json(R"({"x": 9})");
  bad_history.mutable_past_suggestions(0)->set_parameter_id(1);
  EXPECT_THAT(std::string(Study::Create(bad_history).status().message()),
              HasSubstr("past_suggestions[0]: x: 9 is not an option"));
}

}  // namespace
}  // namespace autocompress::tuner
