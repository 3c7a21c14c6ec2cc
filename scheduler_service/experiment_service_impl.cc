#include "scheduler_service/experiment_service_impl.h"

#include <utility>

#include "common/status.h"
#include "glog/logging.h"

namespace autocompress::scheduler {
namespace {

// Converts the status once and logs what is our fault.
grpc::Status Answer(const char* method, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInternal ||
      status.code() == absl::StatusCode::kDataLoss) {
    LOG(ERROR) << "service=scheduler method=" << method << " status=" << status;
  } else if (!status.ok()) {
    VLOG(1) << "service=scheduler method=" << method << " status=" << status;
  }
  return ToGrpcStatus(status);
}

template <typename T, typename Set>
grpc::Status Reply(const char* method, absl::StatusOr<T> result, Set set) {
  if (!result.ok()) return Answer(method, result.status());
  set(std::move(*result));
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ExperimentServiceImpl::CreateExperiment(grpc::ServerContext*,
                                                     const v1::CreateExperimentRequest* request,
                                                     v1::CreateExperimentResponse* response) {
  return Reply("CreateExperiment", scheduler_->CreateExperiment(*request),
               [&](v1::Experiment e) { *response->mutable_experiment() = std::move(e); });
}

grpc::Status ExperimentServiceImpl::GetExperiment(grpc::ServerContext*,
                                                  const v1::GetExperimentRequest* request,
                                                  v1::GetExperimentResponse* response) {
  return Reply("GetExperiment", scheduler_->GetExperiment(request->experiment_id()),
               [&](v1::Experiment e) { *response->mutable_experiment() = std::move(e); });
}

grpc::Status ExperimentServiceImpl::ListExperiments(grpc::ServerContext*,
                                                    const v1::ListExperimentsRequest* request,
                                                    v1::ListExperimentsResponse* response) {
  return Reply("ListExperiments", scheduler_->ListExperiments(*request),
               [&](v1::ListExperimentsResponse r) { *response = std::move(r); });
}

grpc::Status ExperimentServiceImpl::StopExperiment(grpc::ServerContext*,
                                                   const v1::StopExperimentRequest* request,
                                                   v1::StopExperimentResponse* response) {
  return Reply("StopExperiment", scheduler_->StopExperiment(request->experiment_id()),
               [&](v1::Experiment e) { *response->mutable_experiment() = std::move(e); });
}

grpc::Status ExperimentServiceImpl::ResumeExperiment(grpc::ServerContext*,
                                                     const v1::ResumeExperimentRequest* request,
                                                     v1::ResumeExperimentResponse* response) {
  return Reply("ResumeExperiment", scheduler_->ResumeExperiment(*request),
               [&](v1::Experiment e) { *response->mutable_experiment() = std::move(e); });
}

grpc::Status ExperimentServiceImpl::UpdateExperiment(grpc::ServerContext*,
                                                     const v1::UpdateExperimentRequest* request,
                                                     v1::UpdateExperimentResponse* response) {
  return Reply("UpdateExperiment", scheduler_->UpdateExperiment(*request),
               [&](v1::Experiment e) { *response->mutable_experiment() = std::move(e); });
}

grpc::Status ExperimentServiceImpl::ListTrials(grpc::ServerContext*,
                                               const v1::ListTrialsRequest* request,
                                               v1::ListTrialsResponse* response) {
  return Reply("ListTrials", scheduler_->ListTrials(*request),
               [&](v1::ListTrialsResponse r) { *response = std::move(r); });
}

grpc::Status ExperimentServiceImpl::GetTrial(grpc::ServerContext*,
                                             const v1::GetTrialRequest* request,
                                             v1::GetTrialResponse* response) {
  return Reply("GetTrial", scheduler_->GetTrial(request->trial_id()),
               [&](v1::Trial t) { *response->mutable_trial() = std::move(t); });
}

grpc::Status ExperimentServiceImpl::ListParetoTrials(grpc::ServerContext*,
                                                     const v1::ListParetoTrialsRequest* request,
                                                     v1::ListParetoTrialsResponse* response) {
  return Reply("ListParetoTrials", scheduler_->ListParetoTrials(request->experiment_id()),
               [&](v1::ListParetoTrialsResponse r) { *response = std::move(r); });
}

grpc::Status ExperimentServiceImpl::WatchExperiment(
    grpc::ServerContext* context, const v1::WatchExperimentRequest* request,
    grpc::ServerWriter<v1::ExperimentEvent>* writer) {
  return Answer(
      "WatchExperiment",
      scheduler_->WatchExperiment(
          *request, [&](const v1::ExperimentEvent& event) { return writer->Write(event); },
          [&] { return context->IsCancelled(); }));
}

}  // namespace autocompress::scheduler
