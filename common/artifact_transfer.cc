#include "common/artifact_transfer.h"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status.h"
#include "common/status_macros.h"

namespace autocompress {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

std::chrono::system_clock::time_point DeadlineAfter(absl::Duration timeout) {
  return absl::ToChronoTime(absl::Now() + timeout);
}

absl::Status FileError(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

}  // namespace

absl::Status DownloadArtifact(v1::ArtifactService::StubInterface& artifacts,
                              const v1::ArtifactRef& ref, const std::string& path,
                              absl::Duration timeout) {
  const std::string what = absl::StrCat("artifact ", ref.name(), " (", ref.sha256(), ")");
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "wb"), fclose);
  if (file == nullptr) return FileError("cannot create", path);
  auto fail = [&](absl::Status status) {
    file.reset();
    std::remove(path.c_str());
    return status;
  };
  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(timeout));
  v1::DownloadRequest request;
  request.set_sha256(ref.sha256());
  std::unique_ptr<grpc::ClientReaderInterface<v1::DownloadResponse>> reader =
      artifacts.Download(&context, request);
  Sha256Hasher hasher;
  int64_t bytes = 0;
  v1::DownloadResponse response;
  while (reader->Read(&response)) {
    if (!response.has_chunk()) continue;  // the header
    const std::string& chunk = response.chunk();
    hasher.Update(chunk);
    bytes += static_cast<int64_t>(chunk.size());
    if (fwrite(chunk.data(), 1, chunk.size(), file.get()) != chunk.size()) {
      return fail(FileError("cannot write", path));
    }
  }
  if (grpc::Status status = reader->Finish(); !status.ok()) {
    absl::Status s = FromGrpcStatus(status);
    return fail(absl::Status(s.code(), absl::StrCat("downloading ", what, ": ", s.message())));
  }
  if (fflush(file.get()) != 0) return fail(FileError("cannot write", path));
  const std::string digest = hasher.FinishHex();
  if (bytes != ref.size_bytes() || digest != ref.sha256()) {
    return fail(absl::DataLossError(absl::StrCat("downloaded ", what, " has ", bytes,
                                                 " bytes with SHA-256 ", digest, ", expected ",
                                                 ref.size_bytes(), " bytes")));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ArtifactRef> UploadArtifact(v1::ArtifactService::StubInterface& artifacts,
                                               const std::string& path, const std::string& name,
                                               v1::ArtifactKind kind, absl::Duration timeout) {
  ASSIGN_OR_RETURN(std::string digest, Sha256HexOfFile(path));
  std::unique_ptr<FILE, int (*)(FILE*)> file(fopen(path.c_str(), "rb"), fclose);
  if (file == nullptr) return FileError("cannot open", path);
  fseek(file.get(), 0, SEEK_END);
  const int64_t size = ftell(file.get());
  fseek(file.get(), 0, SEEK_SET);

  grpc::ClientContext context;
  context.set_deadline(DeadlineAfter(timeout));
  v1::UploadResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<v1::UploadRequest>> writer =
      artifacts.Upload(&context, &response);
  v1::UploadRequest header;
  header.mutable_header()->set_name(name);
  header.mutable_header()->set_kind(kind);
  header.mutable_header()->set_sha256(digest);
  header.mutable_header()->set_size_bytes(size);
  bool open = writer->Write(header);
  std::string buffer(kChunkBytes, '\0');
  while (open) {
    const size_t n = fread(buffer.data(), 1, buffer.size(), file.get());
    if (n == 0) break;
    v1::UploadRequest chunk;
    chunk.set_chunk(buffer.data(), n);
    open = writer->Write(chunk);
  }
  if (ferror(file.get())) {
    context.TryCancel();
    return FileError("cannot read", path);
  }
  writer->WritesDone();
  if (grpc::Status status = writer->Finish(); !status.ok()) {
    absl::Status s = FromGrpcStatus(status);
    return absl::Status(s.code(), absl::StrCat("uploading ", path, ": ", s.message()));
  }
  return response.artifact();
}

}  // namespace autocompress
