// GrpcTunerClient: TunerClient over a gRPC channel to tuner_server.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_GRPC_TUNER_CLIENT_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_GRPC_TUNER_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/time/time.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "scheduler_service/tuner_client.h"

namespace autocompress::scheduler {

class GrpcTunerClient final : public TunerClient {
 public:
  GrpcTunerClient(std::shared_ptr<grpc::Channel> channel, absl::Duration call_timeout);

  absl::StatusOr<v1::ValidateSearchSpaceResponse> ValidateSearchSpace(
      const v1::ValidateSearchSpaceRequest& request) override;
  absl::StatusOr<v1::CreateStudyResponse> CreateStudy(
      const v1::CreateStudyRequest& request) override;
  absl::StatusOr<v1::SuggestResponse> Suggest(const v1::SuggestRequest& request) override;
  absl::StatusOr<v1::ReportResponse> Report(const v1::ReportRequest& request) override;
  absl::StatusOr<v1::DeleteStudyResponse> DeleteStudy(
      const v1::DeleteStudyRequest& request) override;

 private:
  std::unique_ptr<v1::TunerService::Stub> stub_;
  const absl::Duration call_timeout_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_GRPC_TUNER_CLIENT_H_
