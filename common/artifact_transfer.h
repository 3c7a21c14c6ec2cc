// Moving artifact content through ArtifactService: Download into a local file,
// verified against the reference's size and SHA-256 before it is kept, and Upload of a
// local file (streamed in chunks, hashed first so the service can verify it).
//
// Both take a deadline for the whole transfer. Errors: NotFound for an artifact the
// scheduler lacks; DataLoss for content that does not match its digest;
// Unavailable/DeadlineExceeded for transport problems (the caller retries those);
// Internal for local file errors. Thread-safe (stubs are).
#ifndef AUTOCOMPRESS_COMMON_ARTIFACT_TRANSFER_H_
#define AUTOCOMPRESS_COMMON_ARTIFACT_TRANSFER_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "autocompress/v1/scheduler.grpc.pb.h"

namespace autocompress {

// Writes the content of `ref` to `path` (created or truncated); on error `path` is
// removed.
absl::Status DownloadArtifact(v1::ArtifactService::StubInterface& artifacts,
                              const v1::ArtifactRef& ref, const std::string& path,
                              absl::Duration timeout);

// Uploads the file at `path` as `name` of `kind`; returns the stored reference.
absl::StatusOr<v1::ArtifactRef> UploadArtifact(v1::ArtifactService::StubInterface& artifacts,
                                               const std::string& path, const std::string& name,
                                               v1::ArtifactKind kind, absl::Duration timeout);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_ARTIFACT_TRANSFER_H_
