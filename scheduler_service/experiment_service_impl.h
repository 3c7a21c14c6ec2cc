// ExperimentServiceImpl: the gRPC adapter of ExperimentService over the Scheduler.
// Converts requests and statuses only; the logic is in scheduler.h.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SERVICE_IMPL_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SERVICE_IMPL_H_

#include "autocompress/v1/scheduler.grpc.pb.h"
#include "scheduler_service/scheduler.h"

namespace autocompress::scheduler {

class ExperimentServiceImpl final : public v1::ExperimentService::Service {
 public:
  // `scheduler` must outlive the service.
  explicit ExperimentServiceImpl(Scheduler* scheduler) : scheduler_(scheduler) {}

  grpc::Status CreateExperiment(grpc::ServerContext* context,
                                const v1::CreateExperimentRequest* request,
                                v1::CreateExperimentResponse* response) override;
  grpc::Status GetExperiment(grpc::ServerContext* context, const v1::GetExperimentRequest* request,
                             v1::GetExperimentResponse* response) override;
  grpc::Status ListExperiments(grpc::ServerContext* context,
                               const v1::ListExperimentsRequest* request,
                               v1::ListExperimentsResponse* response) override;
  grpc::Status StopExperiment(grpc::ServerContext* context,
                              const v1::StopExperimentRequest* request,
                              v1::StopExperimentResponse* response) override;
  grpc::Status ResumeExperiment(grpc::ServerContext* context,
                                const v1::ResumeExperimentRequest* request,
                                v1::ResumeExperimentResponse* response) override;
  grpc::Status UpdateExperiment(grpc::ServerContext* context,
                                const v1::UpdateExperimentRequest* request,
                                v1::UpdateExperimentResponse* response) override;
  grpc::Status ListTrials(grpc::ServerContext* context, const v1::ListTrialsRequest* request,
                          v1::ListTrialsResponse* response) override;
  grpc::Status GetTrial(grpc::ServerContext* context, const v1::GetTrialRequest* request,
                        v1::GetTrialResponse* response) override;
  grpc::Status ListParetoTrials(grpc::ServerContext* context,
                                const v1::ListParetoTrialsRequest* request,
                                v1::ListParetoTrialsResponse* response) override;
  grpc::Status WatchExperiment(grpc::ServerContext* context,
                               const v1::WatchExperimentRequest* request,
                               grpc::ServerWriter<v1::ExperimentEvent>* writer) override;

 private:
  Scheduler* const scheduler_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_EXPERIMENT_SERVICE_IMPL_H_
