// ArtifactStore: content-addressed files (models, datasets, trial results) in one
// directory, named by the lowercase hex SHA-256 of their content. ArtifactService is
// its gRPC adapter; the scheduler asks it whether an experiment's artifacts exist.
//
// Layout under `dir`, fanned out by the digest's first two hex characters:
//   <dir>/ab/ab12...ef         the content, exactly as uploaded
//   <dir>/ab/ab12...ef.meta    its metadata: an encoded ArtifactRef (size, kind, name)
//   <dir>/ab/.tmp-ab12...-*    an upload in progress (or a crashed process's leftover)
//   <dir>/.lock                flock()ed by the one store that owns the directory
// An artifact is visible once its .meta file exists. A writer streams the content into
// its own temp file, hashing as it goes; Finish checks size and digest, fsyncs, renames
// the content into place, then hard-links the metadata into place (link() fails if
// another writer committed first, so exactly one upload reports already_existed =
// false) and fsyncs the directory. A crash at any point leaves either nothing visible
// or the whole artifact; Open removes what a crash left behind (temp files, content
// without metadata), which is safe because the lock keeps other stores out.
//
// Errors name the field or file: header.sha256, header.size_bytes, header.kind, content
// (the bytes sent), sha256 and offset of reads. Codes: malformed input InvalidArgument,
// size over the kind's limit (or the process's file size limit) ResourceExhausted, a
// full disk or quota Unavailable (it passes when space is freed), content whose digest
// differs DataLoss, absent artifact NotFound, offset past the end OutOfRange, a
// directory owned by another store FailedPrecondition, other I/O errors by errno.
//
// Thread-safety: ArtifactStore's methods may be called from any thread, concurrently
// (uploads of the same content included). One writer or reader is used by one thread
// at a time; both must be destroyed before the store.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_ARTIFACTS_ARTIFACT_STORE_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_ARTIFACTS_ARTIFACT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "autocompress/v1/common.pb.h"
#include "autocompress/v1/scheduler.pb.h"
#include "common/sha256.h"

namespace autocompress::scheduler {

class ArtifactStore;

// What ArtifactWriter::Finish stored (or found stored).
struct CommitResult {
  // The stored artifact. When it already existed, its metadata as first stored (the
  // kind and name of the first upload).
  v1::ArtifactRef artifact;
  // True when the content was already stored, before or during this upload, and this
  // writer added nothing.
  bool already_existed = false;
};

// One upload: Append the content in order, then Finish. A writer destroyed without a
// successful Finish, or whose Append or Finish failed, leaves nothing behind; after a
// failure every further call returns FailedPrecondition.
class ArtifactWriter {
 public:
  ~ArtifactWriter();

  ArtifactWriter(const ArtifactWriter&) = delete;
  ArtifactWriter& operator=(const ArtifactWriter&) = delete;

  // True when the artifact was already stored at BeginWrite: nothing is written, the
  // content need not be sent (Append only checks it stays within the announced size)
  // and Finish acknowledges the stored artifact.
  bool already_existed() const { return existed_at_begin_; }

  // Adds the next piece of content. InvalidArgument as soon as the content exceeds
  // header.size_bytes; Unavailable on a full disk, ResourceExhausted over the file size
  // limit (both with the temp file's path).
  absl::Status Append(absl::string_view data);

  // Verifies that exactly header.size_bytes arrived (InvalidArgument otherwise) with
  // header.sha256 as their digest (DataLoss naming both digests otherwise), then makes
  // the artifact visible durably. Should only the last step (the directory's fsync)
  // fail, the artifact may be visible although Finish failed; a retry then reports
  // already_existed.
  absl::StatusOr<CommitResult> Finish();

  // Content bytes appended so far.
  int64_t bytes_received() const { return received_; }

 private:
  friend class ArtifactStore;
  enum class State { kWriting, kExisting, kFailed, kDone };

  ArtifactWriter(const ArtifactStore* store, v1::ArtifactRef announced);
  absl::Status Fail(absl::Status status);
  absl::Status Commit(bool* already_existed);
  void RemoveTemps();

  const ArtifactStore* store_;
  const v1::ArtifactRef announced_;  // From the header.
  v1::ArtifactRef existing_;         // When already stored at BeginWrite (kExisting).
  State state_ = State::kWriting;
  bool existed_at_begin_ = false;
  int fd_ = -1;
  std::string temp_path_;
  std::string meta_temp_path_;
  Sha256Hasher hasher_;
  int64_t received_ = 0;
};

// Sequential reads of one artifact's content from an offset. The open file stays
// readable even if the artifact is replaced by identical content meanwhile.
class ArtifactReader {
 public:
  ~ArtifactReader();

  ArtifactReader(const ArtifactReader&) = delete;
  ArtifactReader& operator=(const ArtifactReader&) = delete;

  const v1::ArtifactRef& artifact() const { return artifact_; }

  // Offset of the next byte Read returns.
  int64_t position() const { return position_; }

  // Replaces `*chunk` with the next up to `max_bytes` bytes; an empty chunk means the
  // end. DataLoss if the file turns out shorter than its metadata says.
  absl::Status Read(size_t max_bytes, std::string* chunk);

 private:
  friend class ArtifactStore;
  ArtifactReader(int fd, std::string path, v1::ArtifactRef artifact, int64_t offset);

  int fd_;
  std::string path_;
  v1::ArtifactRef artifact_;
  int64_t position_;
};

class ArtifactStore {
 public:
  // Largest artifact accepted per kind, in bytes.
  struct Options {
    int64_t max_model_bytes = int64_t{2} << 30;
    int64_t max_dataset_bytes = int64_t{8} << 30;
    int64_t max_result_bytes = int64_t{2} << 30;
  };

  // Opens the store in `dir`, creating the directory if missing, takes its lock and
  // removes what crashed uploads left. FailedPrecondition when the directory cannot be
  // created or another store (in this or another process) holds it; InvalidArgument
  // for a negative limit.
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(const std::string& dir,
                                                             Options options);
  static absl::StatusOr<std::unique_ptr<ArtifactStore>> Open(const std::string& dir) {
    return Open(dir, Options());
  }
  ~ArtifactStore();

  ArtifactStore(const ArtifactStore&) = delete;
  ArtifactStore& operator=(const ArtifactStore&) = delete;

  // The stored artifact's metadata; NotFound when absent, InvalidArgument for a
  // malformed digest, DataLoss when its files disagree.
  absl::StatusOr<v1::ArtifactRef> Stat(absl::string_view sha256) const;

  // Validates the header (digest form, size within the kind's limit, kind set) and
  // starts an upload. When the artifact is already stored the writer says so
  // (already_existed()) and writes nothing.
  absl::StatusOr<std::unique_ptr<ArtifactWriter>> BeginWrite(const v1::UploadHeader& header);

  // Opens the artifact's content for reading from `offset` (0 ..= size; at size the
  // reader is at the end at once). NotFound when absent, OutOfRange past the end,
  // InvalidArgument for a malformed digest or negative offset.
  absl::StatusOr<std::unique_ptr<ArtifactReader>> OpenReader(absl::string_view sha256,
                                                             int64_t offset) const;

  const std::string& dir() const { return dir_; }
  const Options& options() const { return options_; }

 private:
  friend class ArtifactWriter;
  ArtifactStore(std::string dir, Options options, int lock_fd);

  absl::Status RemoveLeftovers() const;
  std::string FanOutDir(absl::string_view sha256) const;
  std::string ContentPath(absl::string_view sha256) const;
  std::string MetaPath(absl::string_view sha256) const;

  const std::string dir_;
  const Options options_;
  const int lock_fd_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_ARTIFACTS_ARTIFACT_STORE_H_
