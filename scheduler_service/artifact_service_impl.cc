#include "scheduler_service/artifact_service_impl.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "glog/logging.h"

namespace autocompress::scheduler {
namespace {

// Converts the status once and logs what needs an operator: our bugs and corrupt files
// as errors, a full disk as a warning, the client's mistakes only at verbosity 1.
grpc::Status Answer(const char* method, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInternal ||
      status.code() == absl::StatusCode::kDataLoss) {
    LOG(ERROR) << "service=artifact method=" << method << " status=" << status;
  } else if (status.code() == absl::StatusCode::kResourceExhausted) {
    LOG(WARNING) << "service=artifact method=" << method << " status=" << status;
  } else if (!status.ok()) {
    VLOG(1) << "service=artifact method=" << method << " status=" << status;
  }
  return ToGrpcStatus(status);
}

}  // namespace

absl::StatusOr<CommitResult> ArtifactServiceImpl::Receive(
    grpc::ServerContext* context, grpc::ServerReader<v1::UploadRequest>* reader) {
  v1::UploadRequest request;
  if (!reader->Read(&request)) {
    if (context->IsCancelled()) return absl::CancelledError("upload cancelled by the client");
    return absl::InvalidArgumentError("upload: the stream ended before its header");
  }
  if (!request.has_header()) {
    return absl::InvalidArgumentError(
        "upload: the first message must be the header, got a chunk or nothing");
  }
  // Even when the artifact is already stored (the writer then only counts), the stream is
  // read to its end: over the in-process transport a client's Write blocks, until its
  // deadline, once the server has stopped reading.
  ASSIGN_OR_RETURN(std::unique_ptr<ArtifactWriter> artifact, store_->BeginWrite(request.header()));
  for (int index = 1; reader->Read(&request); ++index) {
    if (request.has_header()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "upload message ", index, ": a second header; only the first message is one"));
    }
    if (request.part_case() != v1::UploadRequest::kChunk) {
      return absl::InvalidArgumentError(
          absl::StrCat("upload message ", index, ": neither header nor chunk"));
    }
    if (request.chunk().size() > kMaxChunkBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("upload message ", index, ": chunk of ", request.chunk().size(),
                       " bytes exceeds the limit of ", kMaxChunkBytes, " bytes per chunk"));
    }
    RETURN_IF_ERROR(artifact->Append(request.chunk()));
  }
  // A cancelled call may end exactly at a chunk boundary; it must not commit.
  if (context->IsCancelled()) return absl::CancelledError("upload cancelled by the client");
  return artifact->Finish();
}

grpc::Status ArtifactServiceImpl::Upload(grpc::ServerContext* context,
                                         grpc::ServerReader<v1::UploadRequest>* reader,
                                         v1::UploadResponse* response) {
  absl::StatusOr<CommitResult> result = Receive(context, reader);
  if (!result.ok()) return Answer("Upload", result.status());
  LOG(INFO) << "service=artifact method=Upload sha256=" << result->artifact.sha256()
            << " size_bytes=" << result->artifact.size_bytes()
            << " kind=" << v1::ArtifactKind_Name(result->artifact.kind())
            << " already_existed=" << result->already_existed;
  *response->mutable_artifact() = std::move(result->artifact);
  response->set_already_existed(result->already_existed);
  return grpc::Status::OK;
}

absl::Status ArtifactServiceImpl::Send(grpc::ServerContext* context,
                                       const v1::DownloadRequest& request,
                                       grpc::ServerWriter<v1::DownloadResponse>* writer) {
  ASSIGN_OR_RETURN(std::unique_ptr<ArtifactReader> artifact,
                   store_->OpenReader(request.sha256(), request.offset()));
  const absl::Status client_gone = absl::CancelledError("download: the client went away");
  v1::DownloadResponse message;
  *message.mutable_artifact() = artifact->artifact();
  if (!writer->Write(message)) return client_gone;
  while (true) {
    RETURN_IF_ERROR(artifact->Read(kMaxChunkBytes, message.mutable_chunk()));
    if (message.chunk().empty()) return absl::OkStatus();
    if (context->IsCancelled() || !writer->Write(message)) return client_gone;
  }
}

grpc::Status ArtifactServiceImpl::Download(grpc::ServerContext* context,
                                           const v1::DownloadRequest* request,
                                           grpc::ServerWriter<v1::DownloadResponse>* writer) {
  absl::Status sent = Send(context, *request, writer);
  if (sent.ok()) {
    VLOG(1) << "service=artifact method=Download sha256=" << request->sha256()
            << " offset=" << request->offset();
  }
  return Answer("Download", sent);
}

grpc::Status ArtifactServiceImpl::Stat(grpc::ServerContext*, const v1::StatRequest* request,
                                       v1::StatResponse* response) {
  absl::StatusOr<v1::ArtifactRef> artifact = store_->Stat(request->sha256());
  if (!artifact.ok()) return Answer("Stat", artifact.status());
  *response->mutable_artifact() = *std::move(artifact);
  return grpc::Status::OK;
}

}  // namespace autocompress::scheduler
