#include "tuner_service/assessors/assessor.h"

#include "absl/strings/str_cat.h"
#include "common/args.h"
#include "common/status_macros.h"
#include "tuner_service/assessors/curve_fitting_assessor.h"
#include "tuner_service/assessors/median_stop_assessor.h"

namespace autocompress::tuner {

absl::StatusOr<std::unique_ptr<Assessor>> CreateAssessor(absl::string_view name,
                                                         absl::string_view args_json, bool maximize,
                                                         uint64_t seed) {
  const std::string key = NormalizedName(name);
  if (key.empty() || key == "none") return std::unique_ptr<Assessor>();
  if (key == "medianstop") {
    ASSIGN_OR_RETURN(Args args, Args::Parse(args_json, "medianstop"));
    ASSIGN_OR_RETURN(int start_step, args.Int("start_step", 0, 0, 1000000));
    RETURN_IF_ERROR(args.CheckAllUsed());
    return std::unique_ptr<Assessor>(std::make_unique<MedianStopAssessor>(maximize, start_step));
  }
  if (key == "curvefitting") {
    ASSIGN_OR_RETURN(Args args, Args::Parse(args_json, "curvefitting"));
    CurveFittingOptions o;
    ASSIGN_OR_RETURN(o.epoch_num, args.Int("epoch_num", o.epoch_num, 1, 1000000));
    ASSIGN_OR_RETURN(o.start_step, args.Int("start_step", o.start_step, 1, 1000000));
    ASSIGN_OR_RETURN(o.threshold, args.Double("threshold", o.threshold, 0, 1e9));
    ASSIGN_OR_RETURN(o.gap, args.Int("gap", o.gap, 1, 1000000));
    ASSIGN_OR_RETURN(o.min_models, args.Int("min_models", o.min_models, 1, 12));
    RETURN_IF_ERROR(args.CheckAllUsed());
    return std::unique_ptr<Assessor>(std::make_unique<CurveFittingAssessor>(maximize, o, seed));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown assessor '", name, "'; known: medianstop, curvefitting"));
}

}  // namespace autocompress::tuner
