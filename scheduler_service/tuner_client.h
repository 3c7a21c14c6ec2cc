// TunerClient: the scheduler's calls to TunerService. One attempt per call with a
// deadline; the callers decide about retrying (the experiment manager waits and retries
// a tuner that is down, forever; CreateExperiment answers UNAVAILABLE).
//
// Thread-safety: all methods may be called from any thread.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_TUNER_CLIENT_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_TUNER_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "autocompress/v1/tuner.grpc.pb.h"

namespace autocompress::scheduler {

class TunerClient {
 public:
  TunerClient(std::shared_ptr<grpc::Channel> channel, absl::Duration call_timeout);

  absl::StatusOr<v1::ValidateSearchSpaceResponse> ValidateSearchSpace(
      const v1::ValidateSearchSpaceRequest& request);
  absl::StatusOr<v1::CreateStudyResponse> CreateStudy(const v1::CreateStudyRequest& request);
  absl::StatusOr<v1::SuggestResponse> Suggest(const v1::SuggestRequest& request);
  absl::StatusOr<v1::ReportResponse> Report(const v1::ReportRequest& request);
  absl::StatusOr<v1::DeleteStudyResponse> DeleteStudy(const v1::DeleteStudyRequest& request);

 private:
  std::unique_ptr<v1::TunerService::Stub> stub_;
  const absl::Duration call_timeout_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_TUNER_CLIENT_H_
