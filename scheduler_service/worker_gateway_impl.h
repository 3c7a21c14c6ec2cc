// WorkerGatewayImpl: the gRPC adapter of WorkerGateway.Connect over the Scheduler. One
// stream per worker: this thread reads the worker's messages and hands them to the
// scheduler; a writer thread sends the session's queued messages, each once the commit
// it announces is durable.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_WORKER_GATEWAY_IMPL_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_WORKER_GATEWAY_IMPL_H_

#include "autocompress/v1/worker.grpc.pb.h"
#include "scheduler_service/scheduler.h"

namespace autocompress::scheduler {

class WorkerGatewayImpl final : public v1::WorkerGateway::Service {
 public:
  // `scheduler` must outlive the service.
  explicit WorkerGatewayImpl(Scheduler* scheduler) : scheduler_(scheduler) {}

  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SchedulerMessage, v1::WorkerMessage>* stream) override;

 private:
  Scheduler* const scheduler_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_WORKER_GATEWAY_IMPL_H_
