#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/pareto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tuner_service/algorithms/evolution_algorithm.h"
#include "tuner_service/algorithms/grid_search_algorithm.h"
#include "tuner_service/algorithms/suggestion_algorithm.h"
#include "tuner_service/algorithms/tpe_algorithm.h"
#include "tuner_service/testing/test_functions.h"

namespace autocompress::tuner {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const SearchSpace> Space(const std::string& text) {
  auto space = SearchSpace::Parse(text);
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

std::unique_ptr<SuggestionAlgorithm> Make(const std::string& name, const std::string& args,
                                          std::shared_ptr<const SearchSpace> space) {
  auto algorithm = CreateAlgorithm(name, args, space);
  EXPECT_TRUE(algorithm.ok()) << algorithm.status();
  return std::move(*algorithm);
}

void Complete(History& h, Assignment x, double loss) {
  h.trials.push_back(
      {static_cast<int64_t>(h.trials.size() + 1), std::move(x), TrialStatus::kCompleted, loss});
  ++h.completed;
}

// Best loss (regret) after `trials` sequential trials of `name` on `problem`.
double Regret(const std::string& name, const std::string& args, const testing::TestProblem& problem,
              int trials, uint64_t seed) {
  auto space = Space(problem.search_space_json);
  auto algorithm = Make(name, args, space);
  std::mt19937_64 gen(seed);
  History h;
  double best = INFINITY;
  for (int i = 0; i < trials; ++i) {
    SuggestOutcome o = algorithm->Suggest(h, gen);
    EXPECT_EQ(o.kind, SuggestOutcome::Kind::kSuggestion);
    const double y = problem.evaluate(testing::ParseX(space->Render(o.x), problem.dims));
    best = std::min(best, y);
    Complete(h, o.x, y);
    algorithm->OnTrialEnd(h, h.trials.back(), gen);
  }
  return best - problem.optimum;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(TpeTest, BeatsRandomOnBraninAcrossSeeds) {
  std::vector<double> tpe, random;
  for (uint64_t seed = 1; seed <= 9; ++seed) {
    tpe.push_back(Regret("tpe", "", testing::Branin(), 80, seed));
    random.push_back(Regret("random", "", testing::Branin(), 80, seed));
  }
  EXPECT_LT(Median(tpe), Median(random) / 2)
      << "tpe " << Median(tpe) << " random " << Median(random);
}

TEST(TpeTest, MultivariateAlsoBeatsRandomOnHartmann6) {
  std::vector<double> tpe, random;
  for (uint64_t seed = 1; seed <= 7; ++seed) {
    tpe.push_back(Regret("tpe", R"({"multivariate": true})", testing::Hartmann6(), 80, seed));
    random.push_back(Regret("random", "", testing::Hartmann6(), 80, seed));
  }
  EXPECT_LT(Median(tpe), Median(random));
}

TEST(TpeTest, SeededRunsAreDeterministic) {
  EXPECT_EQ(Regret("tpe", "", testing::Branin(), 40, 5),
            Regret("tpe", "", testing::Branin(), 40, 5));
  EXPECT_NE(Regret("tpe", "", testing::Branin(), 40, 5),
            Regret("tpe", "", testing::Branin(), 40, 6));
}

constexpr char kNested[] = R"({"algorithm_name": {"_type": "choice", "_value": [
  {"_name": "level", "sparsity": {"_type": "uniform", "_value": [0.01, 0.99]}},
  {"_name": "l1", "sparsity": {"_type": "quniform", "_value": [0.1, 0.9, 0.1]},
   "parameter::batches": {"_type": "randint", "_value": [1, 4]}},
  {"_name": "qat", "bits": {"_type": "choice", "_value": [4, 8]},
   "lr": {"_type": "loguniform", "_value": [0.0001, 0.1]}}]}})";

TEST(TpeTest, ConditionalParametersFollowTheChosenBranchAndConcentrateOnTheBest) {
  auto space = Space(kNested);
  auto tpe = Make("tpe", R"({"n_startup_jobs": 10})", space);
  std::mt19937_64 gen(11);
  History h;
  int qat_after_startup = 0;
  for (int i = 0; i < 120; ++i) {
    SuggestOutcome o = tpe->Suggest(h, gen);
    for (int d = 0; d < space->size(); ++d) {
      ASSERT_EQ(space->IsActive(o.x, d), !std::isnan(o.x[d])) << d;
    }
    nlohmann::json p = nlohmann::json::parse(space->Render(o.x))["algorithm_name"];
    ASSERT_TRUE(space->Decode(space->Render(o.x)).ok());
    // Only qat is good; its lr near 1e-3 is best.
    double loss = 1.0;
    if (p["_name"] == "qat") {
      loss = std::fabs(std::log10(p["lr"].get<double>()) + 3) / 4;
      if (i >= 40) ++qat_after_startup;
    } else if (p["_name"] == "l1") {
      const double s = p["sparsity"];
      ASSERT_NEAR(s * 10, std::nearbyint(s * 10), 1e-9);
      const int batches = p["parameter::batches"];
      ASSERT_TRUE(batches >= 1 && batches <= 3);
    }
    Complete(h, o.x, loss);
  }
  EXPECT_GT(qat_after_startup, 60);  // of 80: random would give ~27
}

// A knob-less branch that is the best (naive at fixed bits, the demo's smallest models)
// can be tried once: the study refuses a duplicate and draws from the prior instead. TPE
// leaves out the branches whose whole finite sub-space is tried, so it proposes no
// duplicate of them itself (before, it kept proposing naive, the best, and every later
// trial was a prior draw).
TEST(TpeTest, LeavesOutBranchesWhoseWholeSubspaceIsTried) {
  auto space = Space(R"({"algorithm_name": {"_type": "choice", "_value": [
    {"_name": "naive"},
    {"_name": "dorefa", "bits": {"_type": "choice", "_value": [2, 4]}},
    {"_name": "level", "sparsity": {"_type": "uniform", "_value": [0, 1]}}]}})");
  auto tpe = Make("tpe", R"({"n_startup_jobs": 6})", space);
  std::mt19937_64 gen(3);
  History h;
  std::set<std::string> tried;
  int repeats = 0, proposals = 0;
  for (int i = 0; i < 40; ++i) {
    SuggestOutcome o = tpe->Suggest(h, gen);
    const std::string text = space->Render(o.x);
    nlohmann::json p = nlohmann::json::parse(text)["algorithm_name"];
    double loss = 0.0;  // naive: the best of all
    if (p["_name"] == "dorefa") loss = 0.1 * p["bits"].get<int>();
    if (p["_name"] == "level") loss = 0.5 + std::fabs(p["sparsity"].get<double>() - 0.7);
    // After the 6 start-up draws (the prior's, which may repeat as the study's would).
    if (i >= 6 && p["_name"] != "level") {
      ++proposals;
      if (tried.count(text) > 0) ++repeats;
    }
    tried.insert(text);
    Complete(h, o.x, loss);
  }
  EXPECT_EQ(repeats, 0) << "of " << proposals << " proposals of a finite branch";
}

// Eight suggestions in a row while the earlier ones are pending spread further apart
// with the constant liar than without, in the sum over 9 seeds: univariate at the
// default g_weight, multivariate at g_weight 1 (at the default 0.25 its lie in g(x) is
// too weak to spread them: 214 vs 245 here, a known limit in the tuner README).
TEST(TpeTest, ConstantLiarSpreadsConcurrentSuggestions) {
  auto space = Space(testing::Branin().search_space_json);
  auto spread = [&](const std::string& liar, bool multivariate, uint64_t seed) {
    auto algorithm =
        Make("tpe",
             absl::StrCat(R"({"g_weight": 1, "n_startup_jobs": 5, "constant_liar": ")", liar,
                          R"(", "multivariate": )", multivariate ? "true" : "false", "}"),
             space);
    std::mt19937_64 gen(seed);
    History h;
    for (int i = 0; i < 30; ++i) {
      auto o = algorithm->Suggest(h, gen);
      Complete(h, o.x, testing::Branin().evaluate({o.x[0], o.x[1]}));
    }
    std::vector<Assignment> batch;
    for (int i = 0; i < 8; ++i) {
      auto o = algorithm->Suggest(h, gen);
      batch.push_back(o.x);
      h.trials.push_back({100 + i, o.x, TrialStatus::kPending, 0});
      ++h.pending;
    }
    double total = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      for (size_t j = i + 1; j < batch.size(); ++j) {
        total += std::hypot(batch[i][0] - batch[j][0], batch[i][1] - batch[j][1]);
      }
    }
    return total;
  };
  for (bool multivariate : {false, true}) {
    double liar = 0, honest = 0;
    for (uint64_t seed = 1; seed <= 9; ++seed) {
      liar += spread("worst", multivariate, seed);
      honest += spread("none", multivariate, seed);
    }
    EXPECT_GT(liar, honest) << "multivariate " << multivariate;
  }
}

TEST(TpeTest, LinearForgettingWeightsMatchHyperopt) {
  EXPECT_EQ(LinearForgettingWeights(3, 25), std::vector<double>(3, 1.0));
  std::vector<double> w = LinearForgettingWeights(30, 25);
  ASSERT_EQ(w.size(), 30u);
  EXPECT_DOUBLE_EQ(w[0], 1.0 / 30);
  EXPECT_DOUBLE_EQ(w[4], 1.0);
  for (int i = 1; i < 5; ++i) EXPECT_GT(w[i], w[i - 1]);
  for (int i = 5; i < 30; ++i) EXPECT_EQ(w[i], 1.0);
}

TEST(GridSearchTest, EnumeratesNestedSpacesExactly) {
  auto space = Space(R"({
    "a": {"_type": "choice", "_value": ["x", 2]},
    "b": {"_type": "quniform", "_value": [1, 9, 4]},
    "c": {"_type": "choice", "_value": [
       {"_name": "p", "r": {"_type": "randint", "_value": [0, 2]}},
       {"_name": "q"}]}})");
  auto grid = Make("grid_search", "", space);
  std::mt19937_64 gen(1);
  History h;
  std::set<std::string> seen;
  for (;;) {
    SuggestOutcome o = grid->Suggest(h, gen);
    if (o.kind == SuggestOutcome::Kind::kExhausted) break;
    ASSERT_TRUE(seen.insert(space->Render(o.x)).second) << "duplicate " << space->Render(o.x);
  }
  std::set<std::string> expected;
  for (const char* a : {R"("x")", "2"}) {
    for (const char* b : {"1.0", "4.0", "8.0"}) {
      for (const char* c :
           {R"({"_name":"p","r":0})", R"({"_name":"p","r":1})", R"({"_name":"q"})"}) {
        expected.insert(std::string(R"({"a":)") + a + R"(,"b":)" + b + R"(,"c":)" + c + "}");
      }
    }
  }
  EXPECT_EQ(seen, expected);
}

TEST(GridSearchTest, RejectsContinuousTypesWithTheirPath) {
  auto space = Space(R"({"algorithm_name": {"_type": "choice", "_value": [
      {"_name": "l1", "sparsity": {"_type": "uniform", "_value": [0.1, 0.9]}}]}})");
  auto grid = CreateAlgorithm("GridSearch", "", space);
  ASSERT_FALSE(grid.ok());
  EXPECT_THAT(std::string(grid.status().message()),
              HasSubstr("uniform at algorithm_name._value[0].sparsity"));
}

// Issue 16's bad input: a grid of exactly the limit (10^6 points) is enumerated; one
// point more, and a grid whose size overflows 64 bits, are refused by size, not by
// running out of memory.
TEST(GridSearchTest, AMillionPointGridWorksAndLargerOnesAreRefused) {
  auto million = Space(R"({"a": {"_type": "randint", "_value": [0, 1000]},
                           "b": {"_type": "randint", "_value": [0, 1000]}})");
  auto grid = CreateAlgorithm("grid_search", "", million);
  ASSERT_TRUE(grid.ok()) << grid.status();
  std::mt19937_64 gen(1);
  History h;
  SuggestOutcome first = (*grid)->Suggest(h, gen);
  ASSERT_EQ(first.kind, SuggestOutcome::Kind::kSuggestion);

  auto over = Space(R"({"a": {"_type": "randint", "_value": [0, 1000]},
                        "b": {"_type": "randint", "_value": [0, 1000]},
                        "c": {"_type": "choice", "_value": [{"_name": "x"}, {"_name": "y",
                              "d": {"_type": "randint", "_value": [0, 2]}}]}})");
  auto refused = CreateAlgorithm("grid_search", "", over);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("1000000"));

  std::string huge = "{";
  for (int i = 0; i < 8; ++i) {
    huge += absl::StrCat(i ? "," : "", R"("p)", i,
                         R"(": {"_type": "randint", "_value": [0, 1000000]})");
  }
  huge += "}";
  auto overflowing = CreateAlgorithm("grid_search", "", Space(huge));
  ASSERT_FALSE(overflowing.ok());
  EXPECT_EQ(overflowing.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GridSearchTest, RestoreSkipsPointsHandedOutBefore) {
  auto space = Space(R"({"a": {"_type": "randint", "_value": [0, 5]}})");
  auto grid = Make("grid_search", "", space);
  History h;
  h.trials.push_back({1, {3}, TrialStatus::kCompleted, 0});
  h.trials.push_back({2, {0}, TrialStatus::kPending, 0});
  std::mt19937_64 gen(1);
  grid->Restore(h, gen);
  std::vector<double> rest;
  for (SuggestOutcome o = grid->Suggest(h, gen); o.kind == SuggestOutcome::Kind::kSuggestion;
       o = grid->Suggest(h, gen)) {
    rest.push_back(o.x[0]);
  }
  EXPECT_EQ(rest, (std::vector<double>{1, 2, 4}));
}

// qlognormal(mu 0, sigma 1, q 10) rounds most draws to 0, whose log is -inf: the model
// space floors it (Dimension::ToModel), so TPE and anneal keep suggesting finite values.
TEST(TpeTest, QlognormalZerosStayFiniteInTpeAndAnneal) {
  auto space = Space(R"({"x": {"_type": "qlognormal", "_value": [0, 1, 10]}})");
  for (const char* name : {"tpe", "anneal"}) {
    auto algorithm = Make(name, "", space);
    std::mt19937_64 gen(3);
    History h;
    int zeros = 0;
    for (int i = 0; i < 40; ++i) {
      SuggestOutcome o = algorithm->Suggest(h, gen);
      ASSERT_EQ(o.kind, SuggestOutcome::Kind::kSuggestion) << name;
      const double x = o.x[0];
      ASSERT_TRUE(std::isfinite(x) && x >= 0 && std::fmod(x, 10) == 0) << name << " " << x;
      zeros += x == 0;
      Complete(h, o.x, std::abs(x - 10));
      algorithm->OnTrialEnd(h, h.trials.back(), gen);
    }
    EXPECT_GT(zeros, 0) << name << ": the test must exercise the zero floor";
  }
}

TEST(AnnealTest, ConcentratesAroundTheBestObservation) {
  auto space = Space(R"({"x": {"_type": "uniform", "_value": [0, 100]}})");
  auto anneal = Make("anneal", "", space);
  std::mt19937_64 gen(2);
  History h;
  for (int i = 0; i < 60; ++i) {
    auto o = anneal->Suggest(h, gen);
    ASSERT_TRUE(o.x[0] >= 0 && o.x[0] <= 100);
    Complete(h, o.x, std::fabs(o.x[0] - 70));
  }
  int near = 0;
  for (int i = 0; i < 50; ++i) near += std::fabs(anneal->Suggest(h, gen).x[0] - 70) < 10;
  EXPECT_GT(near, 35);  // the prior would put ~10 of 50 there
}

TEST(RankTest, FeasibleByLossThenInfeasibleByViolation) {
  std::vector<TrialRecord> trials(5);
  trials[0].loss = 3;
  trials[1].loss = -9, trials[1].feasible = false, trials[1].violation = 0.5;
  trials[2].loss = 1;
  trials[3].loss = -20, trials[3].feasible = false, trials[3].violation = 2;
  trials[4].loss = 7, trials[4].feasible = false, trials[4].violation = 0.1;
  for (int i = 0; i < 5; ++i) trials[i].id = i;
  std::stable_sort(trials.begin(), trials.end(), RanksBefore);
  std::vector<int64_t> order;
  for (const TrialRecord& t : trials) order.push_back(t.id);
  EXPECT_EQ(order, (std::vector<int64_t>{2, 0, 4, 1, 3}));
}

// Completed trials on x in [0, 100] with loss x, infeasible below 50 (violation 50 - x,
// or, with `all_infeasible`, infeasible everywhere with violation 100 - x): the best
// loss lies where the constraints fail.
History ConstrainedHistory(bool all_infeasible) {
  History h;
  std::mt19937_64 gen(11);
  for (int i = 0; i < 40; ++i) {
    const double x = std::uniform_real_distribution<double>(0, 100)(gen);
    Complete(h, {x}, x);
    TrialRecord& t = h.trials.back();
    if (all_infeasible || x < 50) {
      t.feasible = false;
      t.violation = all_infeasible ? 100 - x : 50 - x;
    }
  }
  return h;
}

TEST(RankTest, TpeAndAnnealLeaveTheInfeasibleRegionThatHasTheBestLoss) {
  auto space = Space(R"({"x": {"_type": "uniform", "_value": [0, 100]}})");
  for (const char* name : {"tpe", "anneal"}) {
    auto algorithm = Make(name, "", space);
    std::mt19937_64 gen(4);
    History h = ConstrainedHistory(/*all_infeasible=*/false);
    algorithm->Restore(h, gen);
    int feasible = 0;
    for (int i = 0; i < 50; ++i) feasible += algorithm->Suggest(h, gen).x[0] >= 50;
    // Ranking by loss alone would propose near x = 0 nearly always.
    EXPECT_GT(feasible, 30) << name;
  }
  // Without any feasible trial, TPE's good set is the least violating ones (near 100).
  auto tpe = Make("tpe", "", space);
  std::mt19937_64 gen(5);
  History h = ConstrainedHistory(/*all_infeasible=*/true);
  int high = 0;
  for (int i = 0; i < 50; ++i) high += tpe->Suggest(h, gen).x[0] >= 50;
  EXPECT_GT(high, 30);
}

// Hypervolume after `trials` sequential trials of `name` on ZDT1 with 5 parameters.
double Zdt1Hypervolume(const std::string& name, int trials, uint64_t seed) {
  const testing::MultiObjectiveProblem& zdt1 = testing::Zdt1(5);
  auto space = Space(zdt1.search_space_json);
  auto algorithm = Make(name, "", space);
  std::mt19937_64 gen(seed);
  History h;
  std::vector<Point> points;
  for (int i = 0; i < trials; ++i) {
    Assignment x = algorithm->Suggest(h, gen).x;
    // x0..x4 are the space's dimensions in order.
    const std::vector<double> f = zdt1.evaluate(x);
    Complete(h, std::move(x), f[0]);
    h.trials.back().losses = f;
    points.push_back(f);
    algorithm->OnTrialEnd(h, h.trials.back(), gen);
  }
  return Hypervolume(points, zdt1.reference);
}

// The good set by non-domination rank (and hypervolume within the last rank) drives
// proposals towards the whole front: after 60 trials the front covers more than random
// search's, on the median of 7 seeds.
TEST(MultiObjectiveTpeTest, BeatsRandomSearchOnZdt1Hypervolume) {
  std::vector<double> tpe, random;
  for (uint64_t seed = 1; seed <= 7; ++seed) {
    tpe.push_back(Zdt1Hypervolume("tpe", 60, seed));
    random.push_back(Zdt1Hypervolume("random", 60, seed));
  }
  std::sort(tpe.begin(), tpe.end());
  std::sort(random.begin(), random.end());
  EXPECT_GT(tpe[3], random[3]);
}

TEST(EvolutionTest, SeedsRandomlyThenMutatesOneDimensionOfAWinner) {
  auto space = Space(testing::Hartmann6().search_space_json);
  EvolutionAlgorithm evolution(space, {.population_size = 8});
  std::mt19937_64 gen(4);
  History h;
  for (int i = 0; i < 8; ++i) {
    auto o = evolution.Suggest(h, gen);
    Complete(h, o.x, testing::Hartmann6().evaluate(o.x));
    evolution.OnTrialEnd(h, h.trials.back(), gen);
  }
  for (int i = 0; i < 20; ++i) {
    auto o = evolution.Suggest(h, gen);
    ASSERT_EQ(o.kind, SuggestOutcome::Kind::kSuggestion);
    int best_match = 0;
    for (const TrialRecord& t : h.trials) {
      int same = 0;
      for (int d = 0; d < 6; ++d) same += t.x[d] == o.x[d];
      best_match = std::max(best_match, same);
    }
    EXPECT_GE(best_match, 5) << "a child differs from some parent in one dimension";
    Complete(h, o.x, testing::Hartmann6().evaluate(o.x));
    evolution.OnTrialEnd(h, h.trials.back(), gen);
  }
}

TEST(EvolutionTest, DefersWhenAPopulationOfTrialsIsRunning) {
  auto space = Space(R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
  EvolutionAlgorithm evolution(space, {.population_size = 3});
  std::mt19937_64 gen(4);
  History h;
  for (int i = 0; i < 3; ++i) {
    auto o = evolution.Suggest(h, gen);
    ASSERT_EQ(o.kind, SuggestOutcome::Kind::kSuggestion);
    h.trials.push_back({i + 1, o.x, TrialStatus::kPending, 0});
    ++h.pending;
  }
  EXPECT_EQ(evolution.Suggest(h, gen).kind, SuggestOutcome::Kind::kDeferred);
}

TEST(RegistryTest, NamesArgumentsAndErrors) {
  auto space = Space(R"({"x": {"_type": "uniform", "_value": [0, 1]}})");
  for (const char* name : {"TPE", "tpe", "Random", "Anneal", "Evolution", "GridSearch"}) {
    auto algorithm = CreateAlgorithm(name, R"({"optimize_mode": "maximize"})",
                                     name == std::string("GridSearch")
                                         ? Space(R"({"x": {"_type": "choice", "_value": [1]}})")
                                         : space);
    EXPECT_TRUE(algorithm.ok()) << name << ": " << algorithm.status();
  }
  EXPECT_THAT(std::string(CreateAlgorithm("smac", "", space).status().message()),
              HasSubstr("unknown tuner algorithm 'smac'"));
  EXPECT_THAT(std::string(CreateAlgorithm("tpe", R"({"gama": 0.3})", space).status().message()),
              HasSubstr("unknown key(s) gama"));
  EXPECT_THAT(std::string(CreateAlgorithm("tpe", R"({"gamma": 2})", space).status().message()),
              HasSubstr("gamma: 2 is outside"));
  EXPECT_THAT(
      std::string(
          CreateAlgorithm("evolution", R"({"population_size": "x"})", space).status().message()),
      HasSubstr("must be an integer"));
  EXPECT_FALSE(CreateAlgorithm("tpe", "[1]", space).ok());
  EXPECT_EQ(CanonicalAlgorithmName("Grid_Search"), "grid_search");
  EXPECT_EQ(CanonicalAlgorithmName("grid"), "grid_search");
  EXPECT_EQ(CanonicalAlgorithmName("NaiveEvolution"), "evolution");
  EXPECT_EQ(CanonicalAlgorithmName(""), "");
  EXPECT_EQ(CanonicalAlgorithmName("smac"), "");
}

}  // namespace
}  // namespace autocompress::tuner
