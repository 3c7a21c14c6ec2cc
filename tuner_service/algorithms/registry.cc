// The algorithm registry: maps names (and NNI's spellings) to factories that read and
// validate each algorithm's arguments.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/args.h"
#include "common/status_macros.h"
#include "tuner_service/algorithms/anneal_algorithm.h"
#include "tuner_service/algorithms/evolution_algorithm.h"
#include "tuner_service/algorithms/grid_search_algorithm.h"
#include "tuner_service/algorithms/random_algorithm.h"
#include "tuner_service/algorithms/suggestion_algorithm.h"
#include "tuner_service/algorithms/tpe_algorithm.h"

namespace autocompress::tuner {
namespace {

constexpr int64_t kMaxGridPoints = 1000000;

absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> NewTpe(
    Args& args, std::shared_ptr<const SearchSpace> space) {
  TpeOptions o;
  ASSIGN_OR_RETURN(o.n_startup_jobs, args.Int("n_startup_jobs", o.n_startup_jobs, 1, 100000));
  ASSIGN_OR_RETURN(o.gamma, args.Double("gamma", o.gamma, 1e-6, 1.0));
  ASSIGN_OR_RETURN(o.gamma_mode, args.OneOf("gamma_mode", o.gamma_mode, {"sqrt", "linear"}));
  ASSIGN_OR_RETURN(o.max_below, args.Int("max_below", o.max_below, 1, 100000));
  ASSIGN_OR_RETURN(o.n_ei_candidates, args.Int("n_ei_candidates", o.n_ei_candidates, 1, 100000));
  ASSIGN_OR_RETURN(o.g_weight, args.Double("g_weight", o.g_weight, 0.0, 10.0));
  ASSIGN_OR_RETURN(o.multi_objective_gamma,
                   args.Double("multi_objective_gamma", o.multi_objective_gamma, 1e-6, 1.0));
  ASSIGN_OR_RETURN(o.multi_objective_g_weight,
                   args.Double("multi_objective_g_weight", o.multi_objective_g_weight, 0.0, 10.0));
  ASSIGN_OR_RETURN(o.prior_weight, args.Double("prior_weight", o.prior_weight, 1e-9, 1e9));
  ASSIGN_OR_RETURN(o.linear_forgetting,
                   args.Int("linear_forgetting", o.linear_forgetting, 0, 1000000));
  ASSIGN_OR_RETURN(o.multivariate, args.Bool("multivariate", o.multivariate));
  // NNI's names: parallel_optimize switches the liar on or off; constant_liar_type names
  // a statistic of rewards in maximize mode (min = the worst result, max = the best).
  ASSIGN_OR_RETURN(bool parallel, args.Bool("parallel_optimize", true));
  ASSIGN_OR_RETURN(std::string nni_liar,
                   args.OneOf("constant_liar_type", "", {"", "min", "max", "mean"}));
  const std::string liar_default = nni_liar == "min"    ? "worst"
                                   : nni_liar == "max"  ? "best"
                                   : nni_liar == "mean" ? "mean"
                                                        : o.constant_liar;
  ASSIGN_OR_RETURN(o.constant_liar,
                   args.OneOf("constant_liar", liar_default, {"none", "worst", "best", "mean"}));
  if (!parallel) o.constant_liar = "none";
  RETURN_IF_ERROR(args.CheckAllUsed());
  return std::make_unique<TpeAlgorithm>(std::move(space), o);
}

absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> NewAnneal(
    Args& args, std::shared_ptr<const SearchSpace> space) {
  AnnealOptions o;
  ASSIGN_OR_RETURN(o.avg_best_idx, args.Double("avg_best_idx", o.avg_best_idx, 1.0, 1e6));
  ASSIGN_OR_RETURN(o.shrink_coef, args.Double("shrink_coef", o.shrink_coef, 0.0, 1e6));
  RETURN_IF_ERROR(args.CheckAllUsed());
  return std::make_unique<AnnealAlgorithm>(std::move(space), o);
}

absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> NewEvolution(
    Args& args, std::shared_ptr<const SearchSpace> space) {
  EvolutionOptions o;
  ASSIGN_OR_RETURN(o.population_size, args.Int("population_size", o.population_size, 2, 100000));
  RETURN_IF_ERROR(args.CheckAllUsed());
  return std::make_unique<EvolutionAlgorithm>(std::move(space), o);
}

absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> NewRandom(
    Args& args, std::shared_ptr<const SearchSpace> space) {
  // NNI's Random takes a seed; the study's seed already determines every draw.
  ASSIGN_OR_RETURN(int ignored_seed, args.Int("seed", 0, 0, 2147483647));
  (void)ignored_seed;
  RETURN_IF_ERROR(args.CheckAllUsed());
  return std::make_unique<RandomAlgorithm>(std::move(space));
}

absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> NewGrid(
    Args& args, std::shared_ptr<const SearchSpace> space) {
  ASSIGN_OR_RETURN(int max_points, args.Int("max_points", kMaxGridPoints, 1, kMaxGridPoints));
  RETURN_IF_ERROR(args.CheckAllUsed());
  ASSIGN_OR_RETURN(auto grid, GridSearchAlgorithm::Create(std::move(space), max_points));
  return std::unique_ptr<SuggestionAlgorithm>(std::move(grid));
}

struct Entry {
  const char* name;
  absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> (*factory)(
      Args&, std::shared_ptr<const SearchSpace>);
  const char* alias;  // another accepted spelling (NNI's class names), or ""
};

constexpr Entry kRegistry[] = {
    {"random", NewRandom, ""},        {"tpe", NewTpe, ""},
    {"anneal", NewAnneal, ""},        {"evolution", NewEvolution, "naive_evolution"},
    {"grid_search", NewGrid, "grid"},
};

}  // namespace

std::string CanonicalAlgorithmName(absl::string_view name) {
  const std::string key = NormalizedName(name);
  for (const Entry& e : kRegistry) {
    if (key == NormalizedName(e.name) || (*e.alias != '\0' && key == NormalizedName(e.alias))) {
      return e.name;
    }
  }
  return "";
}

std::vector<std::string> AlgorithmNames() {
  std::vector<std::string> names;
  for (const Entry& e : kRegistry) names.push_back(e.name);
  return names;
}

absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> CreateAlgorithm(
    absl::string_view name, absl::string_view args_json, std::shared_ptr<const SearchSpace> space) {
  const std::string canonical = CanonicalAlgorithmName(name);
  for (const Entry& e : kRegistry) {
    if (canonical != e.name) continue;
    ASSIGN_OR_RETURN(Args args, Args::Parse(args_json, e.name));
    return e.factory(args, std::move(space));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown tuner algorithm '", name, "'; known: ", absl::StrJoin(AlgorithmNames(), ", ")));
}

}  // namespace autocompress::tuner
