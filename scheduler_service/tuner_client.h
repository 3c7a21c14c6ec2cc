// TunerClient: the scheduler's view of TunerService, as an interface so the scheduler's
// logic does not link gRPC. GrpcTunerClient (grpc_tuner_client.h) is the real one. One
// attempt per call with a deadline; the callers decide about retrying (the experiment
// manager waits and retries a tuner that is down, forever; CreateExperiment answers
// UNAVAILABLE).
//
// Thread-safety: implementations must allow calls from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_TUNER_CLIENT_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_TUNER_CLIENT_H_

#include "absl/status/statusor.h"
#include "autocompress/v1/tuner.pb.h"

namespace autocompress::scheduler {

class TunerClient {
 public:
  virtual ~TunerClient() = default;

  virtual absl::StatusOr<v1::ValidateSearchSpaceResponse> ValidateSearchSpace(
      const v1::ValidateSearchSpaceRequest& request) = 0;
  virtual absl::StatusOr<v1::CreateStudyResponse> CreateStudy(
      const v1::CreateStudyRequest& request) = 0;
  virtual absl::StatusOr<v1::SuggestResponse> Suggest(const v1::SuggestRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportResponse> Report(const v1::ReportRequest& request) = 0;
  virtual absl::StatusOr<v1::DeleteStudyResponse> DeleteStudy(
      const v1::DeleteStudyRequest& request) = 0;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_TUNER_CLIENT_H_
