#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "tuner_service/assessors/assessor.h"
#include "tuner_service/assessors/curve_fitting_assessor.h"
#include "tuner_service/assessors/median_stop_assessor.h"

namespace autocompress::tuner {
namespace {

TEST(MedianStopTest, MaximizeComparesBestWithTheLowerMedianOfRunningAverages) {
  MedianStopAssessor assessor(/*maximize=*/true, /*start_step=*/0);
  // Running averages at step 2: (0.2+0.4)/2 = 0.3, (0.5+0.7)/2 = 0.6, (0.8+1.0)/2 = 0.9.
  assessor.OnTrialEnd(1, true, {0.2, 0.4}, 0.4);
  assessor.OnTrialEnd(2, true, {0.5, 0.7}, 0.7);
  assessor.OnTrialEnd(3, true, {0.8, 1.0}, 1.0);
  assessor.OnTrialEnd(4, false, {0.0, 0.0}, 0);        // failed trials do not count
  EXPECT_FALSE(assessor.Assess(9, {0.1, 0.61}).stop);  // best 0.61 >= median 0.6
  EXPECT_TRUE(assessor.Assess(9, {0.59, 0.1}).stop);   // best 0.59 < 0.6
  // Step 3: no completed trial reached it, so the trial is left alone.
  EXPECT_FALSE(assessor.Assess(9, {0.0, 0.0, 0.0}).stop);
}

TEST(MedianStopTest, MinimizeUsesTheUpperMedianAndStartStep) {
  MedianStopAssessor assessor(/*maximize=*/false, /*start_step=*/2);
  assessor.OnTrialEnd(1, true, {1.0, 1.0}, 1.0);
  assessor.OnTrialEnd(2, true, {3.0, 3.0}, 3.0);
  EXPECT_FALSE(assessor.Assess(9, {5.0}).stop);      // before start_step
  EXPECT_TRUE(assessor.Assess(9, {5.0, 3.5}).stop);  // best 3.5 > upper median 3.0
  EXPECT_FALSE(assessor.Assess(9, {5.0, 2.9}).stop);
}

TEST(CurveFittingTest, ExtrapolatesASaturatingCurve) {
  // pow3-shaped accuracy curve, 0.9 - 0.5 * x^-0.8, seen for 10 steps; truth at 30.
  std::vector<double> values;
  for (int x = 1; x <= 10; ++x) values.push_back(0.9 - 0.5 * std::pow(x, -0.8));
  std::mt19937_64 gen(1);
  auto prediction = PredictCurve(values, 30, 4, gen);
  ASSERT_TRUE(prediction.has_value());
  const double truth = 0.9 - 0.5 * std::pow(30, -0.8);
  EXPECT_NEAR(*prediction, truth, 0.03);
  EXPECT_GT(*prediction, values.back());
}

TEST(CurveFittingTest, StopsAHopelessCurveAndKeepsAPromisingOne) {
  auto assessor = std::move(*CreateAssessor("Curvefitting", R"({"epoch_num": 20, "start_step": 6})",
                                            /*maximize=*/true, 3));
  std::vector<double> good;
  for (int x = 1; x <= 20; ++x) good.push_back(0.9 - 0.5 * std::pow(x, -0.8));
  EXPECT_FALSE(assessor->Assess(1, std::vector<double>(good.begin(), good.begin() + 8)).stop)
      << "nothing completed yet";
  assessor->OnTrialEnd(1, true, good, good.back());

  std::vector<double> poor, promising;
  for (int x = 1; x <= 8; ++x) {
    poor.push_back(0.4 - 0.3 * std::pow(x, -0.8));
    promising.push_back(0.95 - 0.5 * std::pow(x, -0.8));
  }
  AssessorDecision verdict = assessor->Assess(2, poor);
  EXPECT_TRUE(verdict.stop);
  EXPECT_NE(verdict.reason.find("curvefitting"), std::string::npos);
  EXPECT_FALSE(assessor->Assess(3, promising).stop);
}

TEST(AssessorRegistryTest, NamesAndArguments) {
  EXPECT_EQ(*CreateAssessor("", "", true, 0), nullptr);
  EXPECT_NE(*CreateAssessor("Medianstop", R"({"optimize_mode": "maximize"})", true, 0), nullptr);
  EXPECT_FALSE(CreateAssessor("medianstop", R"({"start_stop": 1})", true, 0).ok());
  EXPECT_FALSE(CreateAssessor("curvefitting", R"({"threshold": -1})", true, 0).ok());
  EXPECT_FALSE(CreateAssessor("oracle", "", true, 0).ok());
}

}  // namespace
}  // namespace autocompress::tuner
