#include "tuner_service/testing/test_functions.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include "nlohmann/json.hpp"

namespace autocompress::tuner::testing {
namespace {

double BraninValue(const std::vector<double>& x) {
  const double a = 1, b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, r = 6, s = 10, t = 1 / (8 * M_PI);
  const double u = x[1] - b * x[0] * x[0] + c * x[0] - r;
  return a * u * u + s * (1 - t) * std::cos(x[0]) + s;
}

double Hartmann6Value(const std::vector<double>& x) {
  static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
  static const double a[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                 {0.05, 10, 17, 0.1, 8, 14},
                                 {3, 3.5, 1.7, 10, 17, 8},
                                 {17, 8, 0.05, 10, 0.1, 14}};
  static const double p[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                 {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                 {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                 {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
  double total = 0;
  for (int i = 0; i < 4; ++i) {
    double inner = 0;
    for (int j = 0; j < 6; ++j) inner += a[i][j] * (x[j] - p[i][j]) * (x[j] - p[i][j]);
    total -= alpha[i] * std::exp(-inner);
  }
  return total;
}

std::vector<double> Zdt1Value(const std::vector<double>& x) {
  double sum = 0;
  for (size_t i = 1; i < x.size(); ++i) sum += x[i];
  const double g = 1 + 9 * sum / static_cast<double>(x.size() - 1);
  return {x[0], g * (1 - std::sqrt(x[0] / g))};
}

double DiscConstraint(const std::vector<double>& x) {
  return (x[0] - 2.5) * (x[0] - 2.5) + (x[1] - 7.5) * (x[1] - 7.5) - 25;
}

std::string UniformSpace(int dims, double lo, double hi) {
  nlohmann::json space = nlohmann::json::object();
  for (int i = 0; i < dims; ++i) {
    space["x" + std::to_string(i)] = {{"_type", "uniform"}, {"_value", {lo, hi}}};
  }
  return space.dump();
}

}  // namespace

const MultiObjectiveProblem& Zdt1(int dims) {
  static auto* problems = new std::map<int, MultiObjectiveProblem>();
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = problems->find(dims);
  if (it == problems->end()) {
    it = problems
             ->emplace(dims,
                       MultiObjectiveProblem{
                           "zdt1", UniformSpace(dims, 0, 1), dims, {1.1, 11.0}, Zdt1Value})
             .first;
  }
  return it->second;
}

const ConstrainedProblem& BraninInDisc() {
  static const auto* problem = [] {
    double best = std::numeric_limits<double>::infinity();
    constexpr int kSteps = 3000;
    for (int i = 0; i <= kSteps; ++i) {
      for (int j = 0; j <= kSteps; ++j) {
        const std::vector<double> x = {-2.5 + 10.0 * i / kSteps, 2.5 + 10.0 * j / kSteps};
        if (DiscConstraint(x) <= 0) best = std::min(best, BraninValue(x));
      }
    }
    return new ConstrainedProblem{
        {"branin_disc", Branin().search_space_json, 2, best, BraninValue}, DiscConstraint, best};
  }();
  return *problem;
}

const TestProblem& Branin() {
  static const auto* problem = new TestProblem{"branin",
                                               R"({"x0": {"_type": "uniform", "_value": [-5, 10]},
          "x1": {"_type": "uniform", "_value": [0, 15]}})",
                                               2, 0.397887, BraninValue};
  return *problem;
}

const TestProblem& Hartmann6() {
  static const auto* problem = new TestProblem{
      "hartmann6",
      R"({"x0": {"_type": "uniform", "_value": [0, 1]}, "x1": {"_type": "uniform", "_value": [0, 1]},
          "x2": {"_type": "uniform", "_value": [0, 1]}, "x3": {"_type": "uniform", "_value": [0, 1]},
          "x4": {"_type": "uniform", "_value": [0, 1]}, "x5": {"_type": "uniform", "_value": [0, 1]}})",
      6, -3.32237, Hartmann6Value};
  return *problem;
}

std::vector<double> ParseX(const std::string& parameters_json, int dims) {
  const nlohmann::json params = nlohmann::json::parse(parameters_json);
  std::vector<double> x(dims);
  for (int i = 0; i < dims; ++i) x[i] = params["x" + std::to_string(i)].get<double>();
  return x;
}

}  // namespace autocompress::tuner::testing
