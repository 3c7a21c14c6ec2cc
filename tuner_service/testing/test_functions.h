// Standard black-box optimization problems for tuner tests and benchmarks, with their
// NNI search spaces and known optima (minimization).
#ifndef AUTOCOMPRESS_TUNER_SERVICE_TESTING_TEST_FUNCTIONS_H_
#define AUTOCOMPRESS_TUNER_SERVICE_TESTING_TEST_FUNCTIONS_H_

#include <string>
#include <vector>

namespace autocompress::tuner::testing {

struct TestProblem {
  std::string name;
  // NNI search space: parameters x0, x1, ... as uniform ranges.
  std::string search_space_json;
  int dims;
  double optimum;
  double (*evaluate)(const std::vector<double>& x);
};

// Branin on x0 in [-5, 10], x1 in [0, 15]; minimum 0.397887.
const TestProblem& Branin();
// Hartmann6 on [0, 1]^6; minimum -3.32237.
const TestProblem& Hartmann6();

// A problem with several objectives, all minimized, and the reference point its
// hypervolume is measured against.
struct MultiObjectiveProblem {
  std::string name;
  std::string search_space_json;
  int dims;
  std::vector<double> reference;
  std::vector<double> (*evaluate)(const std::vector<double>& x);
};

// ZDT1 (Zitzler, Deb, Thiele 2000) on [0, 1]^dims: f1 = x0, g = 1 + 9 mean(x1..),
// f2 = g (1 - sqrt(f1 / g)); the front is g = 1. Reference point (1.1, 11) bounds every
// value (f1 <= 1, f2 <= g <= 10), so every trial counts. `dims` in 2..30.
const MultiObjectiveProblem& Zdt1(int dims = 30);

// A single objective with a constraint c(x) <= 0 (feasible), violation max(0, c(x)).
struct ConstrainedProblem {
  TestProblem problem;
  double (*constraint)(const std::vector<double>& x);
  // The best feasible value (found by a dense grid over the feasible set).
  double feasible_optimum;
};

// Branin restricted to the disc of radius 5 around (2.5, 7.5):
// c = (x0 - 2.5)^2 + (x1 - 7.5)^2 - 25. Two of Branin's three minima lie outside it.
const ConstrainedProblem& BraninInDisc();

// Reads x0..x{dims-1} from rendered parameters JSON.
std::vector<double> ParseX(const std::string& parameters_json, int dims);

}  // namespace autocompress::tuner::testing

#endif  // AUTOCOMPRESS_TUNER_SERVICE_TESTING_TEST_FUNCTIONS_H_
