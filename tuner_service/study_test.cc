#include "tuner_service/study.h"

#include <set>

#include "absl/strings/str_cat.h"
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
  v1::Objective* primary = request.mutable_config()->mutable_objective()->mutable_primary();
  primary->set_metric("accuracy");
  primary->set_mode(mode);
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

// A random-search study judged by medianstop, parameter ids 1..3 handed out.
std::unique_ptr<Study> MedianStopStudyWithThreeSuggestions() {
  v1::CreateStudyRequest request = Request(kSmall, "random");
  request.mutable_config()->mutable_assessor()->set_name("medianstop");
  auto study = std::move(*Study::Create(request));
  EXPECT_EQ(study->Suggest(3)->suggestions_size(), 3);
  return study;
}

TEST(StudyTest, MedianStopDecidesOnIntermediateResults) {
  auto study = MedianStopStudyWithThreeSuggestions();
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
  EXPECT_THAT(std::string(no_mode.status().message()),
              HasSubstr("config.objective.primary.mode: must be MAXIMIZE or MINIMIZE"));
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

TEST(StudyTest, ObjectiveIsValidatedWithFieldPaths) {
  auto message = [](const v1::CreateStudyRequest& request) {
    return std::string(Study::Create(request).status().message());
  };
  v1::CreateStudyRequest unnamed = Request(kSmall, "tpe");
  unnamed.mutable_config()->mutable_objective()->mutable_primary()->clear_metric();
  EXPECT_THAT(message(unnamed), HasSubstr("config.objective.primary.metric: must name a metric"));
  v1::CreateStudyRequest no_primary = Request(kSmall, "tpe");
  no_primary.mutable_config()->mutable_objective()->clear_primary();
  EXPECT_THAT(message(no_primary), HasSubstr("config.objective.primary: must be set"));
  v1::CreateStudyRequest secondary = Request(kSmall, "tpe");
  secondary.mutable_config()->mutable_objective()->add_secondary()->set_metric("latency");
  EXPECT_THAT(message(secondary), HasSubstr("config.objective.secondary[0].mode"));

  v1::CreateStudyRequest constrained = Request(kSmall, "tpe");
  v1::MetricConstraint* c = constrained.mutable_config()->mutable_objective()->add_constraints();
  c->set_metric("sparsity");
  c->set_comparison(v1::COMPARISON_GREATER_EQUAL);
  c->set_bound(0.5);
  EXPECT_TRUE(Study::Create(constrained).ok());
  c->set_bound(INFINITY);
  EXPECT_THAT(message(constrained),
              HasSubstr("config.objective.constraints[0].bound: inf is not a finite number"));
  c->set_bound(0.5);
  c->set_comparison(v1::COMPARISON_UNSPECIFIED);
  EXPECT_THAT(message(constrained), HasSubstr("config.objective.constraints[0].comparison"));
  c->set_comparison(v1::COMPARISON_LESS_EQUAL);
  c->clear_metric();
  EXPECT_THAT(message(constrained), HasSubstr("config.objective.constraints[0].metric"));
}

v1::CreateStudyRequest Constrained(const std::string& space, const std::string& algorithm,
                                   const std::string& metric, double at_least, uint64_t seed) {
  v1::CreateStudyRequest request = Request(space, algorithm);
  request.mutable_config()->set_seed(seed);
  v1::MetricConstraint* c = request.mutable_config()->mutable_objective()->add_constraints();
  c->set_metric(metric);
  c->set_comparison(v1::COMPARISON_GREATER_EQUAL);
  c->set_bound(at_least);
  return request;
}

v1::Observation Final(int64_t id, double value, const std::string& metric, double metric_value) {
  v1::Observation o = Obs(id, v1::OBSERVATION_KIND_FINAL, value);
  v1::Metric* m = o.add_metrics();
  m->set_name(metric);
  m->set_value(metric_value);
  return o;
}

TEST(StudyTest, FeasibilityOfFinalObservationsIsCheckedWithTheirPath) {
  auto study = std::move(*Study::Create(Constrained(kSmall, "random", "sparsity", 0.5, 1)));
  ASSERT_TRUE(study->Suggest(3).ok());
  // A constrained metric the report lacks is an error naming the constraint.
  v1::Observation missing = Final(1, 0.9, "accuracy", 0.9);
  auto no_metric = study->Report(Report({Obs(2, v1::OBSERVATION_KIND_FINAL, 0.5), missing}));
  ASSERT_EQ(no_metric.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_metric.status().message()),
              HasSubstr("observations[0]: parameter_id 2: metrics: no metric 'sparsity', which "
                        "config.objective.constraints[0] needs"));
  v1::Observation nan_metric = Final(1, 0.9, "sparsity", NAN);
  EXPECT_THAT(std::string(study->Report(Report({nan_metric})).status().message()),
              HasSubstr("observations[0]: parameter_id 1: metrics[0].value: nan"));
  v1::Observation inconsistent = Final(1, 0.9, "sparsity", 0.7);
  inconsistent.set_feasibility(v1::FEASIBILITY_FEASIBLE);
  inconsistent.set_constraint_violation(0.2);
  EXPECT_THAT(std::string(study->Report(Report({inconsistent})).status().message()),
              HasSubstr("constraint_violation: 0.2 must be 0 for a FEASIBLE observation"));
  inconsistent.set_feasibility(v1::FEASIBILITY_INFEASIBLE);
  inconsistent.set_constraint_violation(-1);
  EXPECT_FALSE(study->Report(Report({inconsistent})).ok());
  EXPECT_EQ(study->completed(), 0);

  // Infeasible results are completed trials (they reach the algorithm), whether the study
  // judged them or the caller did; no metric is needed when the caller gives a verdict.
  ASSERT_TRUE(study->Report(Report({Final(1, 0.9, "sparsity", 0.1)})).ok());
  v1::Observation judged = Obs(2, v1::OBSERVATION_KIND_FINAL, 0.8);
  judged.set_feasibility(v1::FEASIBILITY_INFEASIBLE);
  judged.set_constraint_violation(0.3);
  ASSERT_TRUE(study->Report(Report({judged})).ok());
  EXPECT_EQ(study->completed(), 2);
}

TEST(StudyTest, SecondaryObjectivesNeedTheirMetricInEveryFinalReport) {
  v1::CreateStudyRequest request = Request(kSmall, "tpe");
  v1::Objective* size = request.mutable_config()->mutable_objective()->add_secondary();
  size->set_metric("effective_bytes");
  size->set_mode(v1::OPTIMIZE_MODE_MINIMIZE);
  auto study = std::move(*Study::Create(request));
  ASSERT_TRUE(study->Suggest(2).ok());
  auto missing = study->Report(Report({Final(1, 0.9, "accuracy", 0.9)}));
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("observations[0]: parameter_id 1: metrics: no metric 'effective_bytes', "
                        "which config.objective.secondary[0] needs"));
  EXPECT_THAT(
      std::string(
          study->Report(Report({Final(1, 0.9, "effective_bytes", INFINITY)})).status().message()),
      HasSubstr("metrics[0].value: inf ('effective_bytes') is not a finite number"));
  ASSERT_TRUE(study->Report(Report({Final(1, 0.9, "effective_bytes", 1000)})).ok());
  EXPECT_EQ(study->completed(), 1);
}

// Maximize 1 - x on [0, 1] subject to x >= 0.6: the best-valued region is infeasible.
// Returns how many of the suggestions after the first `warmup` were infeasible.
int InfeasibleSuggestions(bool teach, uint64_t seed, int trials, int warmup) {
  constexpr char kLine[] = R"({"x0": {"_type": "uniform", "_value": [0, 1]}})";
  auto study = std::move(*Study::Create(Constrained(kLine, "tpe", "x", 0.6, seed)));
  int infeasible = 0;
  for (int i = 0; i < trials; ++i) {
    const v1::Suggestion s = study->Suggest(1)->suggestions(0);
    const double x = testing::ParseX(s.parameters_json(), 1)[0];
    if (x < 0.6 && i >= warmup) ++infeasible;
    // Without teaching, an infeasible result is dropped (the trial reports no result).
    const v1::Observation o = teach || x >= 0.6
                                  ? Final(s.parameter_id(), 1 - x, "x", x)
                                  : Obs(s.parameter_id(), v1::OBSERVATION_KIND_ABANDONED, 0);
    EXPECT_TRUE(study->Report(Report({o})).ok());
  }
  return infeasible;
}

TEST(StudyTest, InfeasibleResultsTeachTpeToLeaveTheBestValuedRegion) {
  int taught = 0, dropped = 0;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    taught += InfeasibleSuggestions(/*teach=*/true, seed, 60, 20);
    dropped += InfeasibleSuggestions(/*teach=*/false, seed, 60, 20);
  }
  // 5 seeds x 40 judged suggestions each. Dropped results leave the infeasible region
  // looking unexplored, so TPE keeps proposing it (> 90% here); taught, it stays near
  // the boundary.
  EXPECT_LT(taught, 200 / 2) << "dropped: " << dropped;
  EXPECT_LT(3 * taught, 2 * dropped) << "taught: " << taught << ", dropped: " << dropped;
}

TEST(StudyTest, NewerAttemptReplacesTheCurveAndOlderAttemptsAreIgnored) {
  auto study = MedianStopStudyWithThreeSuggestions();
  ASSERT_TRUE(study
                  ->Report(Report({Obs(1, v1::OBSERVATION_KIND_INTERMEDIATE, 0.8, 0),
                                   Obs(1, v1::OBSERVATION_KIND_INTERMEDIATE, 0.8, 1),
                                   Obs(1, v1::OBSERVATION_KIND_FINAL, 0.8),
                                   Obs(2, v1::OBSERVATION_KIND_INTERMEDIATE, 0.6, 0),
                                   Obs(2, v1::OBSERVATION_KIND_INTERMEDIATE, 0.6, 1),
                                   Obs(2, v1::OBSERVATION_KIND_FINAL, 0.6)}))
                  .ok());
  auto attempt = [](v1::Observation o, int32_t n) {
    o.set_attempt(n);
    return o;
  };
  auto stop = [&](std::initializer_list<v1::Observation> observations) {
    auto response = study->Report(Report(observations));
    EXPECT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->decisions_size(), 1);
    return response->decisions_size() == 1 && response->decisions(0).stop();
  };
  // Attempt 1 (sent as 0, read as 1) does well; then its worker is lost.
  EXPECT_FALSE(stop({Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.9, 0)}));
  // Attempt 2's step 0 is no duplicate of attempt 1's: its curve replaces the old one
  // (judged alone, 0.1 is below the median 0.6).
  EXPECT_TRUE(stop({attempt(Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.1, 0), 2)}));
  // A late report of attempt 1 is ignored: it neither joins nor replaces the curve, and
  // the verdict it gets back names the attempt it judges (2), not the late one.
  {
    auto late =
        study->Report(Report({attempt(Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.95, 1), 1)}));
    ASSERT_TRUE(late.ok()) << late.status();
    ASSERT_EQ(late->decisions_size(), 1);
    EXPECT_TRUE(late->decisions(0).stop());
    EXPECT_EQ(late->decisions(0).attempt(), 2);
  }
  // The same observation of attempt 2 again is a duplicate and gets the same verdict.
  EXPECT_TRUE(stop({attempt(Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.1, 0), 2)}));
  // Attempt 3 starts afresh, with a fresh verdict.
  EXPECT_FALSE(stop({attempt(Obs(3, v1::OBSERVATION_KIND_INTERMEDIATE, 0.9, 0), 3)}));
  // A final result of a superseded attempt is ignored; the current attempt's counts.
  ASSERT_TRUE(study->Report(Report({attempt(Obs(3, v1::OBSERVATION_KIND_FINAL, 0.1), 2)})).ok());
  EXPECT_EQ(study->completed(), 2);
  ASSERT_TRUE(study->Report(Report({attempt(Obs(3, v1::OBSERVATION_KIND_FINAL, 0.9), 3)})).ok());
  EXPECT_EQ(study->completed(), 3);
  EXPECT_FALSE(study->Report(Report({attempt(Obs(3, v1::OBSERVATION_KIND_FINAL, 0.5), -1)})).ok());
}

TEST(StudyTest, SuggestWithARequestIdIsIdempotent) {
  auto study = std::move(*Study::Create(Request(kSmall, "random")));
  auto first = study->Suggest(2, "req-1");
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->suggestions_size(), 2);
  // The retry after a lost response gets the same parameter ids and parameters, and
  // mints no new pending trials.
  auto retry = study->Suggest(2, "req-1");
  ASSERT_TRUE(retry.ok());
  ASSERT_EQ(retry->suggestions_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(retry->suggestions(i).parameter_id(), first->suggestions(i).parameter_id());
    EXPECT_EQ(retry->suggestions(i).parameters_json(), first->suggestions(i).parameters_json());
  }
  EXPECT_EQ(study->suggested(), 2);
  auto other_count = study->Suggest(3, "req-1");
  EXPECT_EQ(other_count.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(other_count.status().message()), HasSubstr("request_id 'req-1'"));
  EXPECT_EQ(study->Suggest(1, "req-2")->suggestions(0).parameter_id(), 3);
  // Without a request id every call mints new suggestions, as before.
  EXPECT_EQ(study->Suggest(1)->suggestions(0).parameter_id(), 4);
  EXPECT_EQ(study->Suggest(1)->suggestions(0).parameter_id(), 5);
  EXPECT_FALSE(study->Suggest(1, std::string(Study::kMaxRequestIdBytes + 1, 'r')).ok());

  // The memory is bounded: after kRememberedRequests newer ids, req-1 is forgotten.
  for (int i = 0; i < Study::kRememberedRequests; ++i) {
    ASSERT_TRUE(study->Suggest(1, absl::StrCat("fill-", i)).ok());
  }
  const int before = study->suggested();
  EXPECT_EQ(study->Suggest(1, "fill-1000")->suggestions_size(), 1);
  EXPECT_EQ(study->suggested(), before);         // still remembered
  ASSERT_TRUE(study->Suggest(2, "req-1").ok());  // a new call now: new count, new ids
  EXPECT_EQ(study->suggested(), before + 2);
}

TEST(StudyTest, ADeferredSuggestIsNotRememberedUnderItsRequestId) {
  auto study = std::move(*Study::Create(
      Request(kSmall, "evolution", v1::OPTIMIZE_MODE_MAXIMIZE, R"({"population_size": 2})")));
  ASSERT_EQ(study->Suggest(2, "gen-0")->suggestions_size(), 2);
  // The whole first generation is pending: evolution waits for a result.
  ASSERT_EQ(study->Suggest(1, "next")->suggestions_size(), 0);
  ASSERT_TRUE(study->Report(Report({Obs(1, v1::OBSERVATION_KIND_FINAL, 0.5)})).ok());
  // The same key asked again after the result gets a suggestion, not the remembered "none".
  auto retry = study->Suggest(1, "next");
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->suggestions_size(), 1);
}

}  // namespace
}  // namespace autocompress::tuner
