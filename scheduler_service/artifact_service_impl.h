// ArtifactServiceImpl: the gRPC adapter of ArtifactService over the ArtifactStore. It
// frames the streams (Upload: the header exactly once, first, then chunks of at most
// kMaxChunkBytes; Download: the ArtifactRef, then chunks of kMaxChunkBytes from the
// requested offset) and converts statuses once; validation, verification and
// durability are the store's (scheduler_service/artifacts/artifact_store.h).
//
// An Upload whose artifact is already stored writes nothing (already_existed = true):
// content sent anyway is read, checked against the header's size and discarded, and a
// client that knows the artifact exists (from Stat) may send the header alone. A
// cancelled or failed Upload leaves nothing stored.
//
// Thread-safety: calls run concurrently, as the store allows.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_ARTIFACT_SERVICE_IMPL_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_ARTIFACT_SERVICE_IMPL_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "scheduler_service/artifacts/artifact_store.h"

namespace autocompress::scheduler {

class ArtifactServiceImpl final : public v1::ArtifactService::Service {
 public:
  // Largest chunk accepted by Upload and the size of Download's chunks (the last may
  // be shorter).
  static constexpr size_t kMaxChunkBytes = size_t{1} << 20;

  // `store` must outlive the service.
  explicit ArtifactServiceImpl(ArtifactStore* store) : store_(store) {}

  grpc::Status Upload(grpc::ServerContext* context, grpc::ServerReader<v1::UploadRequest>* reader,
                      v1::UploadResponse* response) override;
  grpc::Status Download(grpc::ServerContext* context, const v1::DownloadRequest* request,
                        grpc::ServerWriter<v1::DownloadResponse>* writer) override;
  grpc::Status Stat(grpc::ServerContext* context, const v1::StatRequest* request,
                    v1::StatResponse* response) override;

 private:
  absl::StatusOr<CommitResult> Receive(grpc::ServerContext* context,
                                       grpc::ServerReader<v1::UploadRequest>* reader);
  absl::Status Send(grpc::ServerContext* context, const v1::DownloadRequest& request,
                    grpc::ServerWriter<v1::DownloadResponse>* writer);

  ArtifactStore* store_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_ARTIFACT_SERVICE_IMPL_H_
