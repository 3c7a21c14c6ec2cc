#include "scheduler_service/worker_gateway_impl.h"

#include <atomic>
#include <memory>
#include <thread>

#include "common/status.h"
#include "glog/logging.h"

namespace autocompress::scheduler {

grpc::Status WorkerGatewayImpl::Connect(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SchedulerMessage, v1::WorkerMessage>* stream) {
  v1::WorkerMessage first;
  if (!stream->Read(&first)) return grpc::Status::OK;  // closed before saying anything
  if (!first.has_hello()) {
    return ToGrpcStatus(absl::InvalidArgumentError("the first message must be hello"));
  }
  absl::StatusOr<std::shared_ptr<WorkerSession>> opened = scheduler_->ConnectWorker(first.hello());
  if (!opened.ok()) {
    LOG(WARNING) << "service=scheduler event=worker_refused worker=" << first.hello().worker_id()
                 << " status=" << opened.status();
    return ToGrpcStatus(opened.status());
  }
  std::shared_ptr<WorkerSession> session = *opened;
  std::atomic<bool> reading{true};
  std::thread writer([&] {
    while (std::optional<v1::SchedulerMessage> message = session->Next()) {
      if (!stream->Write(*message)) {
        session->Close(absl::UnavailableError("the stream to the worker broke"));
        break;
      }
    }
    // The scheduler ended the session (replaced, shutdown): unblock the reader.
    if (reading && !session->close_status().ok()) context->TryCancel();
  });
  absl::Status end;
  v1::WorkerMessage message;
  while (!session->closed() && stream->Read(&message)) {
    end = scheduler_->HandleWorkerMessage(*session, message);
    if (!end.ok()) break;
  }
  reading = false;
  scheduler_->DisconnectWorker(*session);
  session->Close(end);
  writer.join();
  if (end.ok()) end = session->close_status();
  return ToGrpcStatus(end);
}

}  // namespace autocompress::scheduler
