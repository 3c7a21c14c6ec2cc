#include "scheduler_service/grpc_tuner_client.h"

#include <chrono>
#include <utility>

#include "common/status.h"

namespace autocompress::scheduler {
namespace {

template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> Call(v1::TunerService::Stub* stub, Method method, const Request& request,
                              absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  Response response;
  grpc::Status status = (stub->*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace

GrpcTunerClient::GrpcTunerClient(std::shared_ptr<grpc::Channel> channel,
                                 absl::Duration call_timeout)
    : stub_(v1::TunerService::NewStub(std::move(channel))), call_timeout_(call_timeout) {}

absl::StatusOr<v1::ValidateSearchSpaceResponse> GrpcTunerClient::ValidateSearchSpace(
    const v1::ValidateSearchSpaceRequest& request) {
  return Call<v1::ValidateSearchSpaceRequest, v1::ValidateSearchSpaceResponse>(
      stub_.get(), &v1::TunerService::Stub::ValidateSearchSpace, request, call_timeout_);
}

absl::StatusOr<v1::CreateStudyResponse> GrpcTunerClient::CreateStudy(
    const v1::CreateStudyRequest& request) {
  return Call<v1::CreateStudyRequest, v1::CreateStudyResponse>(
      stub_.get(), &v1::TunerService::Stub::CreateStudy, request, call_timeout_);
}

absl::StatusOr<v1::SuggestResponse> GrpcTunerClient::Suggest(const v1::SuggestRequest& request) {
  return Call<v1::SuggestRequest, v1::SuggestResponse>(
      stub_.get(), &v1::TunerService::Stub::Suggest, request, call_timeout_);
}

absl::StatusOr<v1::ReportResponse> GrpcTunerClient::Report(const v1::ReportRequest& request) {
  return Call<v1::ReportRequest, v1::ReportResponse>(stub_.get(), &v1::TunerService::Stub::Report,
                                                     request, call_timeout_);
}

absl::StatusOr<v1::DeleteStudyResponse> GrpcTunerClient::DeleteStudy(
    const v1::DeleteStudyRequest& request) {
  return Call<v1::DeleteStudyRequest, v1::DeleteStudyResponse>(
      stub_.get(), &v1::TunerService::Stub::DeleteStudy, request, call_timeout_);
}

}  // namespace autocompress::scheduler
