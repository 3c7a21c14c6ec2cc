// A Study is one tuning problem held in the tuner's memory: a search space, a suggestion
// algorithm, an optional assessor, a seeded generator, and the history of suggestions and
// observations. It implements the semantics of TunerService (reference §5.1) without
// any gRPC: the service adapter converts requests and statuses only.
//
// - Suggest hands out parameter sets with increasing parameter ids; a set equal to one
//   already handed out is re-drawn (NNI's duplicate avoidance) unless the space is too
//   small to avoid it. A call with a request id seen among the last kRememberedRequests
//   returns the same suggestions again (a retry mints no new pending trials).
// - Report applies FINAL, INTERMEDIATE and ABANDONED observations in order and is
//   idempotent: an observation seen before (same parameter id, attempt, kind and step)
//   is ignored. Attempts (0 read as 1): a newer attempt's intermediate values replace
//   the older attempt's curve; an observation of an older attempt than the newest seen
//   is ignored; after the trial ended, everything is. A whole request is validated
//   before anything is applied.
// - Values become losses (loss = -value when the primary objective maximizes) for the
//   algorithm. FINAL observations carry a feasibility verdict (the caller's, or computed
//   from their metrics and the objective's constraints); infeasible ones reach the
//   algorithm too, which ranks them below every feasible one (RankOf).
//
// Thread-safety: all methods are safe to call concurrently (one mutex per study).
#ifndef AUTOCOMPRESS_TUNER_SERVICE_STUDY_H_
#define AUTOCOMPRESS_TUNER_SERVICE_STUDY_H_

#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "autocompress/v1/tuner.pb.h"
#include "tuner_service/algorithms/suggestion_algorithm.h"
#include "tuner_service/assessors/assessor.h"
#include "tuner_service/objective.h"
#include "tuner_service/search_space/search_space.h"

namespace autocompress::tuner {

class Study {
 public:
  // Request ids remembered per study for idempotent Suggest (the most recent ones).
  static constexpr int kRememberedRequests = 1024;
  static constexpr size_t kMaxRequestIdBytes = 256;

  // Validates the config (search space, algorithm, assessor, objective) and replays the
  // given history. InvalidArgument on any problem, with its location.
  static absl::StatusOr<std::unique_ptr<Study>> Create(const v1::CreateStudyRequest& request);

  // Up to `count` new suggestions (1..1000). A non-empty `request_id` makes the call
  // idempotent: repeating it returns the first call's response; repeating it with another
  // count is InvalidArgument.
  absl::StatusOr<v1::SuggestResponse> Suggest(int count, absl::string_view request_id = "");

  // Applies observations; returns one early-stop decision per parameter id that got
  // intermediate observations in this request.
  absl::StatusOr<v1::ReportResponse> Report(const v1::ReportRequest& request);

  // Canonical algorithm name, for metrics labels.
  const std::string& algorithm_name() const { return algorithm_name_; }

  int completed() const;
  int suggested() const;
  // Observations of the CreateStudy request that were new (retried ones count once).
  int replayed_observations() const { return replayed_; }

 private:
  Study() = default;

  struct TrialState {
    size_t index = 0;                        // into history_.trials
    int32_t attempt = 1;                     // newest attempt seen
    std::map<int64_t, double> intermediate;  // step -> value, of `attempt`
    bool ended = false;
    double final_value = 0;
    // The assessor's last verdict, returned again when a report is retried.
    bool stop = false;
    std::string stop_reason;
  };

  // What an observation teaches: its feasibility, and for a FINAL one of a study with
  // secondary objectives their losses (minimized: negated when maximizing), in order.
  struct FinalVerdict : FeasibilityVerdict {
    std::vector<double> secondary_losses;
  };

  struct RememberedSuggest {
    int count = 0;
    v1::SuggestResponse response;
  };

  // Checks one observation; its feasibility verdict (feasible unless FINAL) when valid.
  absl::StatusOr<FinalVerdict> Validate(const v1::Observation& observation) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Applies one validated observation; true when it was new. The algorithm hears of an
  // ended trial only when `tell_algorithm` (a replay rebuilds it with Restore instead).
  bool Apply(const v1::Observation& observation, const FinalVerdict& verdict, bool tell_algorithm)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<FinalVerdict> JudgeFinal(const v1::Observation& observation) const;
  // Validates a whole list of observations, prefixing errors with `field`[i].
  absl::StatusOr<std::vector<FinalVerdict>> ValidateAll(
      const google::protobuf::RepeatedPtrField<v1::Observation>& observations,
      absl::string_view field) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::SuggestResponse> SuggestNew(int count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remember(std::string request_id, int count, const v1::SuggestResponse& response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a suggestion and its rendered JSON (for the duplicate check).
  absl::Status AddSuggestion(int64_t id, Assignment x, std::string rendered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<double> IntermediateValues(const TrialState& state) const;

  mutable absl::Mutex mu_;
  std::shared_ptr<const SearchSpace> space_;
  std::unique_ptr<SuggestionAlgorithm> algorithm_;
  std::unique_ptr<Assessor> assessor_;
  std::string algorithm_name_;
  v1::ObjectiveSpec objective_;  // set in Create, constant after
  bool maximize_ = true;
  int replayed_ = 0;  // set in Create, constant after
  std::mt19937_64 gen_ ABSL_GUARDED_BY(mu_);
  History history_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, TrialState> trials_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> rendered_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool exhausted_ ABSL_GUARDED_BY(mu_) = false;
  // Idempotent Suggest: request id -> the call's response, and ids oldest first.
  absl::flat_hash_map<std::string, RememberedSuggest> requests_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> request_order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_STUDY_H_
