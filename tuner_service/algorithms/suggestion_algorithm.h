// The interface every suggestion algorithm implements, the history it learns from, and
// the registry that creates one by name (random, tpe, anneal, evolution, grid_search).
//
// Algorithms minimize `loss`; the study converts the user's objective (loss = -value
// when maximizing). A completed trial may be infeasible (it violates the objective's
// constraints): it still teaches the algorithm, ranked by RankOf below every feasible
// one. Algorithms that rank trials (tpe, anneal, evolution) compare them only through
// RankOf; random and grid_search do not rank. They are driven by one study at a time under the
// study's lock, so implementations need no locking of their own; all randomness comes from the
// `gen` passed in, so a seeded study is deterministic.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_SUGGESTION_ALGORITHM_H_
#define AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_SUGGESTION_ALGORITHM_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tuner_service/search_space/search_space.h"

namespace autocompress::tuner {

enum class TrialStatus { kPending, kCompleted, kAbandoned };

// One suggestion and what became of it.
struct TrialRecord {
  int64_t id = 0;
  Assignment x;
  TrialStatus status = TrialStatus::kPending;
  // Lower is better; meaningful when completed.
  double loss = 0;
  // False for a completed trial whose result violates the objective's constraints.
  bool feasible = true;
  // Total constraint violation (>= 0) of an infeasible trial; 0 when feasible.
  double violation = 0;
  // A completed trial of a multi-objective study: the loss of every objective, primary
  // first (losses[0] == loss); empty in a single-objective study.
  std::vector<double> losses = {};
};

// Where a completed trial ranks, best first: every feasible trial before every infeasible
// one (Optuna 3.1's constrained TPE); feasible ones by loss, infeasible ones by total
// violation (smaller is better). Between feasible trials this is exactly `loss <`, so
// unconstrained studies rank as they did before constraints existed.
struct RankKey {
  bool infeasible = false;
  // The loss of a feasible trial, the violation of an infeasible one.
  double value = 0;

  friend bool operator<(const RankKey& a, const RankKey& b) {
    if (a.infeasible != b.infeasible) return b.infeasible;
    return a.value < b.value;
  }
};

inline RankKey RankOf(const TrialRecord& trial) {
  return trial.feasible ? RankKey{false, trial.loss} : RankKey{true, trial.violation};
}

// Strict weak order of completed trials by RankOf, for sorts.
inline bool RanksBefore(const TrialRecord& a, const TrialRecord& b) {
  return RankOf(a) < RankOf(b);
}

// All suggestions of a study, in the order they were made.
struct History {
  std::vector<TrialRecord> trials;
  int completed = 0;
  int pending = 0;
};

struct SuggestOutcome {
  enum class Kind {
    kSuggestion,  // `x` holds the proposal
    kDeferred,    // nothing now; ask again after results arrive (evolution)
    kExhausted,   // nothing ever again (grid search)
  };
  Kind kind = Kind::kSuggestion;
  Assignment x;
};

class SuggestionAlgorithm {
 public:
  virtual ~SuggestionAlgorithm() = default;

  // Proposes the next assignment given everything observed so far.
  virtual SuggestOutcome Suggest(const History& history, absl::BitGenRef gen) = 0;

  // A trial completed or was abandoned (`history` already shows it).
  virtual void OnTrialEnd(const History& history, const TrialRecord& trial, absl::BitGenRef gen) {}

  // Rebuilds internal state from a history replayed after a tuner restart.
  virtual void Restore(const History& history, absl::BitGenRef gen) {}
};

// Creates an algorithm by registry name (case-insensitive; NNI's "TPE", "GridSearch" are
// accepted). InvalidArgument for an unknown name, bad arguments, or a search space the
// algorithm cannot handle (grid search over continuous types).
absl::StatusOr<std::unique_ptr<SuggestionAlgorithm>> CreateAlgorithm(
    absl::string_view name, absl::string_view args_json, std::shared_ptr<const SearchSpace> space);

// Canonical names of the registered algorithms.
std::vector<std::string> AlgorithmNames();

// Canonical name for `name` ("TPE" -> "tpe", "GridSearch" -> "grid_search"), or "".
std::string CanonicalAlgorithmName(absl::string_view name);

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_ALGORITHMS_SUGGESTION_ALGORITHM_H_
