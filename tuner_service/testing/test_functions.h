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

// Reads x0..x{dims-1} from rendered parameters JSON.
std::vector<double> ParseX(const std::string& parameters_json, int dims);

}  // namespace autocompress::tuner::testing

#endif  // AUTOCOMPRESS_TUNER_SERVICE_TESTING_TEST_FUNCTIONS_H_
