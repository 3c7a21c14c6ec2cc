// tuner-bench: quality and speed of the tuner, side by side with Optuna 3.1 measured in
// the same invocation (Debian's python3-optuna, run as a child process).
//
// Quality: simple regret (best - optimum) after --trials trials over --seeds seeds on
// Branin and Hartmann6, median and quartiles, for every algorithm and for Optuna's TPE.
// Speed: Suggest + Report latency p50/p99 at N = 100 and 1000 completed trials (6-D), in
// process and over loopback gRPC, beside Optuna's ask/tell overhead at the same N; and
// the request bytes per trial, which stay constant with the incremental protocol.
// Several objectives: ZDT1 hypervolume (ours, random, Optuna's multi-objective TPE and
// NSGA-II); constraints: Branin in a disc, regret of the best feasible result (ours,
// random, Optuna's constrained TPE).
// Last line: tuner-bench: regret_ratio_branin=R1 regret_ratio_hartmann6=R2
//            latency_ratio_n1000=R3 (ours / Optuna's TPE; < 1 is better)
//            hypervolume_ratio_zdt1=R4 (ours / the better of Optuna's; > 1 is better)
//            constrained_regret_ratio=R5 (ours / Optuna's; < 1 is better)
#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/pareto.h"
#include "common/server_runner.h"
#include "common/testing/command_output.h"
#include "nlohmann/json.hpp"
#include "tuner_service/study.h"
#include "tuner_service/testing/test_functions.h"
#include "tuner_service/tuner_service_impl.h"

ABSL_FLAG(int, seeds, 20, "Seeds per problem and algorithm (0..seeds-1).");
ABSL_FLAG(int, trials, 100, "Trials per optimization run.");
ABSL_FLAG(int, first_seed, 0, "Seeds are first_seed .. first_seed + seeds - 1 (a held-out check).");
ABSL_FLAG(std::string, algorithms, "tpe,tpe_univariate,random,anneal,evolution,grid_search",
          "Algorithms to measure.");
ABSL_FLAG(int, latency_window, 50, "Trials timed at each N.");
ABSL_FLAG(std::string, mo_algorithms, "tpe;random",
          "Algorithms of the multi-objective and constrained table, ';'-separated (the first "
          "is the one compared with Optuna).");
ABSL_FLAG(std::string, optuna_script, "tuner_service/bench/optuna_bench.py",
          "Optuna side of the benchmark; empty to skip.");
ABSL_FLAG(std::string, python, "/usr/bin/python3", "Interpreter with python3-optuna.");

namespace autocompress::tuner {
namespace {

using testing::TestProblem;

struct Quartiles {
  double q25 = 0, median = 0, q75 = 0;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

Quartiles Summarize(const std::vector<double>& v) {
  return {Percentile(v, 0.25), Percentile(v, 0.5), Percentile(v, 0.75)};
}

// The same problem on a q-grid, for grid search (which cannot enumerate continuous
// ranges): ~trials points for Branin (10 x 10), 3 levels per dimension for Hartmann6.
std::string GridSpace(const TestProblem& problem) {
  if (problem.name == "branin") {
    return R"({"x0": {"_type": "quniform", "_value": [-5, 10, 1.6666666666666667]},
               "x1": {"_type": "quniform", "_value": [0, 15, 1.6666666666666667]}})";
  }
  std::vector<std::string> dims;
  for (int i = 0; i < problem.dims; ++i) {
    dims.push_back(absl::StrCat("\"x", i, R"(": {"_type": "quniform", "_value": [0, 1, 0.5]})"));
  }
  return "{" + absl::StrJoin(dims, ",") + "}";
}

// A bench label is an algorithm name, or "tpe_univariate" (TPE with multivariate off).
struct Labelled {
  std::string name;
  std::string args_json;
};
Labelled AlgorithmOf(const std::string& label) {
  if (label == "tpe_univariate") return {"tpe", R"({"multivariate": false})"};
  // "name:{json}" passes arguments (for trying settings: --mo_algorithms='tpe:{"gamma":0.2}').
  if (const size_t colon = label.find(':'); colon != std::string::npos) {
    return {label.substr(0, colon), label.substr(colon + 1)};
  }
  return {label, ""};
}

v1::CreateStudyRequest StudyRequest(const std::string& space, const std::string& label,
                                    uint64_t seed) {
  v1::CreateStudyRequest request;
  request.set_study_id("bench");
  request.mutable_config()->set_search_space_json(space);
  const Labelled algorithm = AlgorithmOf(label);
  request.mutable_config()->mutable_tuner()->set_name(algorithm.name);
  request.mutable_config()->mutable_tuner()->set_args_json(algorithm.args_json);
  v1::Objective* primary = request.mutable_config()->mutable_objective()->mutable_primary();
  primary->set_metric("y");
  primary->set_mode(v1::OPTIMIZE_MODE_MINIMIZE);
  request.mutable_config()->set_seed(seed);
  return request;
}

v1::ReportRequest FinalReport(int64_t id, double value) {
  v1::ReportRequest report;
  report.set_study_id("bench");
  v1::Observation* o = report.add_observations();
  o->set_parameter_id(id);
  o->set_kind(v1::OBSERVATION_KIND_FINAL);
  o->set_value(value);
  return report;
}

double Regret(const TestProblem& problem, const std::string& algorithm, uint64_t seed, int trials) {
  const std::string space =
      algorithm == "grid_search" ? GridSpace(problem) : problem.search_space_json;
  auto study = Study::Create(StudyRequest(space, algorithm, seed));
  if (!study.ok()) {
    std::fprintf(stderr, "%s\n", study.status().ToString().c_str());
    std::exit(1);
  }
  double best = INFINITY;
  for (int i = 0; i < trials; ++i) {
    auto batch = (*study)->Suggest(1);
    if (!batch.ok() || batch->suggestions_size() == 0) break;  // grid exhausted
    const v1::Suggestion& s = batch->suggestions(0);
    const double y = problem.evaluate(testing::ParseX(s.parameters_json(), problem.dims));
    best = std::min(best, y);
    (void)(*study)->Report(FinalReport(s.parameter_id(), y));
  }
  return best - problem.optimum;
}

v1::Metric MetricOf(const std::string& name, double value) {
  v1::Metric m;
  m.set_name(name);
  m.set_value(value);
  return m;
}

// Hypervolume of every result after `trials` trials of `label` on ZDT1, both objectives
// given to the study (primary f1, secondary f2).
double Zdt1Hypervolume(const std::string& label, uint64_t seed, int trials) {
  const testing::MultiObjectiveProblem& zdt1 = testing::Zdt1();
  v1::CreateStudyRequest request = StudyRequest(zdt1.search_space_json, label, seed);
  v1::Objective* f2 = request.mutable_config()->mutable_objective()->add_secondary();
  f2->set_metric("f2");
  f2->set_mode(v1::OPTIMIZE_MODE_MINIMIZE);
  auto study = std::move(*Study::Create(request));
  std::vector<Point> points;
  for (int i = 0; i < trials; ++i) {
    const v1::Suggestion s = study->Suggest(1)->suggestions(0);
    const std::vector<double> f = zdt1.evaluate(testing::ParseX(s.parameters_json(), zdt1.dims));
    points.push_back(f);
    v1::ReportRequest report = FinalReport(s.parameter_id(), f[0]);
    *report.mutable_observations(0)->add_metrics() = MetricOf("f2", f[1]);
    (void)study->Report(report);
  }
  return Hypervolume(points, zdt1.reference);
}

// Best feasible value minus the feasible optimum after `trials` trials of `label` on
// Branin in a disc, the constraint `c <= 0` given to the study; inf when no trial was
// feasible.
double ConstrainedRegret(const std::string& label, uint64_t seed, int trials) {
  const testing::ConstrainedProblem& problem = testing::BraninInDisc();
  v1::CreateStudyRequest request = StudyRequest(problem.problem.search_space_json, label, seed);
  v1::MetricConstraint* c = request.mutable_config()->mutable_objective()->add_constraints();
  c->set_metric("c");
  c->set_comparison(v1::COMPARISON_LESS_EQUAL);
  c->set_bound(0);
  auto study = std::move(*Study::Create(request));
  double best = INFINITY;
  for (int i = 0; i < trials; ++i) {
    const v1::Suggestion s = study->Suggest(1)->suggestions(0);
    const std::vector<double> x = testing::ParseX(s.parameters_json(), 2);
    const double y = problem.problem.evaluate(x), violation = problem.constraint(x);
    if (violation <= 0) best = std::min(best, y);
    v1::ReportRequest report = FinalReport(s.parameter_id(), y);
    *report.mutable_observations(0)->add_metrics() = MetricOf("c", violation);
    (void)study->Report(report);
  }
  return best - problem.feasible_optimum;
}

std::string Cell(const std::vector<double>& v, const char* format = "%.4g") {
  const Quartiles q = Summarize(v);
  return absl::StrCat(absl::StrFormat(format, q.median), " [", absl::StrFormat(format, q.q25), ", ",
                      absl::StrFormat(format, q.q75), "]");
}

struct Latency {
  double p50_ms = 0, p99_ms = 0;
  size_t request_bytes = 0;
};

// Suggest(1) + Report(1 final) per trial; `call` performs one such round and returns
// its request bytes. Trials before each N are run untimed.
template <typename Round>
std::vector<Latency> MeasureRounds(const std::vector<int>& ns, int window, Round round) {
  std::vector<Latency> out;
  int done = 0;
  for (int n : ns) {
    std::vector<double> ms;
    size_t bytes = 0;
    while (done < n + window) {
      const absl::Time start = absl::Now();
      bytes = round();
      const double elapsed = absl::ToDoubleMilliseconds(absl::Now() - start);
      if (done >= n) ms.push_back(elapsed);
      ++done;
    }
    out.push_back({Percentile(ms, 0.5), Percentile(ms, 0.99), bytes});
  }
  return out;
}

std::vector<Latency> InProcessLatency(const std::vector<int>& ns, int window) {
  const TestProblem& problem = testing::Hartmann6();
  auto study = std::move(*Study::Create(StudyRequest(problem.search_space_json, "tpe", 1)));
  return MeasureRounds(ns, window, [&]() -> size_t {
    v1::Suggestion s = study->Suggest(1)->suggestions(0);
    const double y = problem.evaluate(testing::ParseX(s.parameters_json(), problem.dims));
    v1::ReportRequest report = FinalReport(s.parameter_id(), y);
    (void)study->Report(report);
    return 0;
  });
}

std::vector<Latency> GrpcLatency(const std::vector<int>& ns, int window) {
  const TestProblem& problem = testing::Hartmann6();
  prometheus::Registry registry;
  TunerServiceImpl service(registry);
  ServerOptions options;
  options.host = "127.0.0.1";
  ServerRunner runner(options);
  runner.AddService(&service, "autocompress.v1.TunerService");
  if (!runner.Start().ok()) std::exit(1);
  auto stub = v1::TunerService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", runner.port()), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    v1::CreateStudyResponse created;
    if (!stub->CreateStudy(&context, StudyRequest(problem.search_space_json, "tpe", 1), &created)
             .ok()) {
      std::exit(1);
    }
  }
  return MeasureRounds(ns, window, [&]() -> size_t {
    v1::SuggestRequest request;
    request.set_study_id("bench");
    request.set_count(1);
    v1::SuggestResponse suggested;
    grpc::ClientContext c1;
    c1.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!stub->Suggest(&c1, request, &suggested).ok()) std::exit(1);
    const v1::Suggestion& s = suggested.suggestions(0);
    const double y = problem.evaluate(testing::ParseX(s.parameters_json(), problem.dims));
    v1::ReportRequest report = FinalReport(s.parameter_id(), y);
    v1::ReportResponse reported;
    grpc::ClientContext c2;
    c2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!stub->Report(&c2, report, &reported).ok()) std::exit(1);
    return request.ByteSizeLong() + report.ByteSizeLong();
  });
}

nlohmann::json RunOptuna(int seeds, int trials, const std::vector<int>& ns, int window) {
  const std::string script = absl::GetFlag(FLAGS_optuna_script);
  if (script.empty()) return nullptr;
  const std::string command =
      absl::StrCat(absl::GetFlag(FLAGS_python), " ", script, " --seeds ", seeds, " --first_seed ",
                   absl::GetFlag(FLAGS_first_seed), " --trials ", trials, " --latency_n ",
                   absl::StrJoin(ns, ","), " --latency_window ", window);
  std::fprintf(stderr, "running Optuna: %s\n", command.c_str());
  absl::StatusOr<std::string> output = autocompress::testing::CommandOutput(command);
  if (!output.ok()) {
    std::fprintf(stderr, "Optuna run failed (is python3-optuna installed?): %s\n",
                 std::string(output.status().message()).c_str());
    return nullptr;
  }
  return nlohmann::json::parse(*output);
}

int Main() {
  const int seeds = absl::GetFlag(FLAGS_seeds), trials = absl::GetFlag(FLAGS_trials);
  const int first_seed = absl::GetFlag(FLAGS_first_seed);
  const int window = absl::GetFlag(FLAGS_latency_window);
  const std::vector<int> ns = {100, 1000};
  const std::vector<std::string> algorithms = absl::StrSplit(absl::GetFlag(FLAGS_algorithms), ',');

  nlohmann::json optuna = RunOptuna(seeds, trials, ns, std::min(window, 10));

  std::printf("\n## Quality: simple regret after %d trials, %d seeds (median [q25, q75])\n\n",
              trials, seeds);
  std::printf("| algorithm | Branin (opt 0.397887) | Hartmann6 (opt -3.32237) |\n|---|---|---|\n");
  double ours_median[2] = {0, 0}, optuna_median[2] = {0, 0};
  const TestProblem* problems[2] = {&testing::Branin(), &testing::Hartmann6()};
  for (const std::string& algorithm : algorithms) {
    std::printf("| %s |", algorithm.c_str());
    for (int p = 0; p < 2; ++p) {
      std::vector<double> regrets;
      for (int seed = first_seed; seed < first_seed + seeds; ++seed) {
        regrets.push_back(Regret(*problems[p], algorithm, seed, trials));
      }
      Quartiles q = Summarize(regrets);
      if (algorithm == "tpe") ours_median[p] = q.median;
      std::printf(" %.4g [%.4g, %.4g] |", q.median, q.q25, q.q75);
    }
    std::printf("%s\n", algorithm == "grid_search" ? " (on a q-grid: 10x10 / 3^6 points)" : "");
  }
  if (!optuna.is_null()) {
    std::printf("| Optuna %s TPE |", optuna["optuna_version"].get<std::string>().c_str());
    for (int p = 0; p < 2; ++p) {
      Quartiles q = Summarize(optuna["quality"][problems[p]->name].get<std::vector<double>>());
      optuna_median[p] = q.median;
      std::printf(" %.4g [%.4g, %.4g] |", q.median, q.q25, q.q75);
    }
    std::printf("\n");
  }

  // Several objectives and constraints: ours (TPE, random) beside Optuna's samplers.
  std::printf(
      "\n## Multi-objective and constrained, %d trials, %d seeds (median [q25, q75])\n\n"
      "ZDT1: 30 parameters, hypervolume of all results against (1.1, 11), higher is better.\n"
      "Branin in a disc: x within radius 5 of (2.5, 7.5), feasible optimum %.6f; regret of\n"
      "the best feasible result (inf: none feasible).\n\n",
      trials, seeds, testing::BraninInDisc().feasible_optimum);
  std::printf("| sampler | ZDT1 hypervolume | Branin-in-disc feasible regret |\n|---|---|---|\n");
  double ours_hv = 0, ours_constrained = 0;
  const std::vector<std::string> mo_algorithms =
      absl::StrSplit(absl::GetFlag(FLAGS_mo_algorithms), ';');
  for (const std::string& label : mo_algorithms) {
    std::vector<double> hv, regret;
    for (int seed = first_seed; seed < first_seed + seeds; ++seed) {
      hv.push_back(Zdt1Hypervolume(label, seed, trials));
      regret.push_back(ConstrainedRegret(label, seed, trials));
    }
    if (label == mo_algorithms.front()) {
      ours_hv = Summarize(hv).median;
      ours_constrained = Summarize(regret).median;
    }
    std::printf("| ours %s | %s | %s |\n", label.c_str(), Cell(hv, "%.3f").c_str(),
                Cell(regret).c_str());
  }
  double optuna_hv = NAN, optuna_constrained = NAN;
  if (!optuna.is_null()) {
    const auto& mo = optuna["multi_objective"];
    const std::vector<double> tpe_hv = mo["tpe"].get<std::vector<double>>();
    const std::vector<double> nsga_hv = mo["nsga2"].get<std::vector<double>>();
    std::vector<double> constrained;
    for (const auto& v : optuna["constrained"]["tpe"]) {
      constrained.push_back(v.is_null() ? INFINITY : v.get<double>());
    }
    optuna_hv = std::max(Summarize(tpe_hv).median, Summarize(nsga_hv).median);
    optuna_constrained = Summarize(constrained).median;
    std::printf("| Optuna TPE (multi-objective / constrained) | %s | %s |\n",
                Cell(tpe_hv, "%.3f").c_str(), Cell(constrained).c_str());
    std::printf("| Optuna NSGA-II | %s | n/a |\n", Cell(nsga_hv, "%.3f").c_str());
  }

  std::printf("\n## Speed: Suggest + Report per trial, TPE, 6-D, N completed trials\n\n");
  const std::vector<Latency> in_process = InProcessLatency(ns, window);
  const std::vector<Latency> over_grpc = GrpcLatency(ns, window);
  std::printf(
      "| N | in process p50 / p99 | loopback gRPC p50 / p99 | request bytes | Optuna ask+tell p50 "
      "/ p99 |\n");
  std::printf("|---|---|---|---|---|\n");
  double optuna_p50_1000 = 0;
  for (size_t i = 0; i < ns.size(); ++i) {
    std::string optuna_cell = "n/a";
    if (!optuna.is_null()) {
      const auto& l = optuna["latency"][std::to_string(ns[i])];
      optuna_cell = absl::StrCat(
          absl::StrFormat("%.2f / %.2f ms", l["p50_ms"].get<double>(), l["p99_ms"].get<double>()));
      if (ns[i] == 1000) optuna_p50_1000 = l["p50_ms"].get<double>();
    }
    std::printf("| %d | %.3f / %.3f ms | %.3f / %.3f ms | %zu | %s |\n", ns[i],
                in_process[i].p50_ms, in_process[i].p99_ms, over_grpc[i].p50_ms,
                over_grpc[i].p99_ms, over_grpc[i].request_bytes, optuna_cell.c_str());
  }
  const double r1 = optuna_median[0] > 0 ? ours_median[0] / optuna_median[0] : NAN;
  const double r2 = optuna_median[1] > 0 ? ours_median[1] / optuna_median[1] : NAN;
  const double r3 = optuna_p50_1000 > 0 ? in_process[1].p50_ms / optuna_p50_1000 : NAN;
  std::printf(
      "\ntuner-bench: regret_ratio_branin=%.3f regret_ratio_hartmann6=%.3f "
      "latency_ratio_n1000=%.4f hypervolume_ratio_zdt1=%.3f constrained_regret_ratio=%.3f\n",
      r1, r2, r3, ours_hv / optuna_hv, ours_constrained / optuna_constrained);
  return 0;
}

}  // namespace
}  // namespace autocompress::tuner

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return autocompress::tuner::Main();
}
