#include "scheduler_service/artifacts/artifact_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"

namespace autocompress::scheduler {
namespace {

constexpr char kTempPrefix[] = ".tmp-";
constexpr char kMetaSuffix[] = ".meta";
constexpr char kLockName[] = ".lock";
// Names are informative; the bound keeps a hostile header from bloating metadata.
constexpr size_t kMaxNameBytes = 1024;
// Metadata files hold one small ArtifactRef.
constexpr int64_t kMaxMetaBytes = 64 << 10;

// An errno as a status naming the operation and the file. A full disk or quota is the
// scheduler's state, not the caller's, and passes when space is freed: Unavailable, which
// clients and workers retry with backoff (a finished trial's result waits rather than
// failing the attempt). A file over the process's size limit stays ResourceExhausted.
absl::Status ErrnoError(int error, absl::string_view operation, absl::string_view path) {
  absl::Status status = absl::ErrnoToStatus(error, absl::StrCat(operation, " ", path));
  if (error == ENOSPC || error == EDQUOT) {
    return absl::UnavailableError(absl::StrCat(
        "the scheduler's disk is full (retry when space is freed): ", status.message()));
  }
  if (error == EFBIG) return absl::ResourceExhaustedError(status.message());
  return status;
}

absl::Status CheckSha256(absl::string_view field, absl::string_view value) {
  if (IsSha256Hex(value)) return absl::OkStatus();
  constexpr size_t kEcho = 80;
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": '", value.substr(0, kEcho), value.size() > kEcho ? "...'" : "'", " (", value.size(),
      " characters) is not a SHA-256 digest of ", kSha256HexLength, " lowercase hex characters"));
}

std::string KindName(v1::ArtifactKind kind) {
  const std::string& name = v1::ArtifactKind_Name(kind);
  return name.empty() ? absl::StrCat(static_cast<int>(kind)) : name;
}

struct Limit {
  int64_t bytes;
  const char* option;
};

absl::StatusOr<Limit> LimitOf(const ArtifactStore::Options& options, v1::ArtifactKind kind) {
  switch (kind) {
    case v1::ARTIFACT_KIND_MODEL:
      return Limit{options.max_model_bytes, "max_model_bytes"};
    case v1::ARTIFACT_KIND_DATASET:
      return Limit{options.max_dataset_bytes, "max_dataset_bytes"};
    case v1::ARTIFACT_KIND_RESULT:
      return Limit{options.max_result_bytes, "max_result_bytes"};
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "header.kind: ", KindName(kind),
          " is not a kind of artifact; use ARTIFACT_KIND_MODEL, ARTIFACT_KIND_DATASET or "
          "ARTIFACT_KIND_RESULT"));
  }
}

absl::Status CheckHeader(const ArtifactStore::Options& options, const v1::UploadHeader& header) {
  RETURN_IF_ERROR(CheckSha256("header.sha256", header.sha256()));
  ASSIGN_OR_RETURN(const Limit limit, LimitOf(options, header.kind()));
  if (header.size_bytes() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.size_bytes: ", header.size_bytes(), " is negative"));
  }
  if (header.size_bytes() > limit.bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "header.size_bytes: ", header.size_bytes(), " bytes exceed the limit of ", limit.bytes,
        " bytes for ", KindName(header.kind()), " (ArtifactStore::Options::", limit.option, ")"));
  }
  if (header.name().size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat("header.name: ", header.name().size(),
                                                   " bytes exceed the limit of ", kMaxNameBytes));
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "writing", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "opening directory", path);
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0) return ErrnoError(error, "fsyncing directory", path);
  return absl::OkStatus();
}

// Creates a unique temp file from `prefix` + "XXXXXX"; sets `*path` and returns its fd.
absl::StatusOr<int> MakeTemp(const std::string& prefix, std::string* path) {
  std::string name = prefix + "XXXXXX";
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "creating", name);
  *path = std::move(name);
  return fd;
}

// The metadata at `path` for `sha256`; NotFound when absent.
absl::StatusOr<v1::ArtifactRef> ReadMeta(const std::string& path, absl::string_view sha256) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    return absl::NotFoundError(absl::StrCat("artifact ", sha256, " is not stored"));
  }
  if (fd < 0) return ErrnoError(errno, "opening", path);
  std::string bytes(kMaxMetaBytes, '\0');
  size_t length = 0;
  while (length < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + length, bytes.size() - length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return ErrnoError(error, "reading", path);
    }
    if (n == 0) break;
    length += static_cast<size_t>(n);
  }
  ::close(fd);
  bytes.resize(length);
  v1::ArtifactRef artifact;
  if (!artifact.ParseFromString(bytes) || artifact.sha256() != sha256 ||
      artifact.size_bytes() < 0) {
    return absl::DataLossError(
        absl::StrCat("metadata ", path, ": not a valid ArtifactRef of artifact ", sha256));
  }
  return artifact;
}

absl::Status MissingContent(const v1::ArtifactRef& artifact, const std::string& path) {
  return absl::DataLossError(absl::StrCat("artifact ", artifact.sha256(),
                                          ": metadata present but content ", path, " missing"));
}

// The content file (stat()ed into `info`) must have the size its metadata says.
absl::Status CheckContentSize(const struct stat& info, const std::string& path,
                              const v1::ArtifactRef& artifact) {
  if (info.st_size == artifact.size_bytes()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("artifact ", artifact.sha256(), ": content ", path,
                                          " has ", info.st_size, " bytes, metadata says ",
                                          artifact.size_bytes()));
}

// Names of the entries of directory `path`.
absl::StatusOr<std::vector<std::string>> ListDir(const std::filesystem::path& path) {
  std::vector<std::string> names;
  std::error_code error;
  for (std::filesystem::directory_iterator it(path, error), end; !error && it != end;
       it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("artifact store: cannot list ", path.string(), ": ", error.message()));
  }
  return names;
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsFanOutName(absl::string_view name) {
  return name.size() == 2 && IsLowerHex(name[0]) && IsLowerHex(name[1]);
}

void Unlink(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    LOG(WARNING) << "artifact store: " << ErrnoError(errno, "cannot remove", path).message();
  }
}

}  // namespace

// ---- ArtifactWriter ------------------------------------------------------------------

ArtifactWriter::ArtifactWriter(const ArtifactStore* store, v1::ArtifactRef announced)
    : store_(store), announced_(std::move(announced)) {}

ArtifactWriter::~ArtifactWriter() { RemoveTemps(); }

void ArtifactWriter::RemoveTemps() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) Unlink(temp_path_);
  temp_path_.clear();
  if (!meta_temp_path_.empty()) Unlink(meta_temp_path_);
  meta_temp_path_.clear();
}

absl::Status ArtifactWriter::Fail(absl::Status status) {
  state_ = State::kFailed;
  RemoveTemps();
  return status;
}

absl::Status ArtifactWriter::Append(absl::string_view data) {
  if (state_ == State::kFailed || state_ == State::kDone) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload of ", announced_.sha256(), ": the writer has ",
                     state_ == State::kFailed ? "failed" : "finished"));
  }
  if (static_cast<int64_t>(data.size()) > announced_.size_bytes() - received_) {
    return Fail(
        absl::InvalidArgumentError(absl::StrCat("content: more than the ", announced_.size_bytes(),
                                                " bytes announced in header.size_bytes")));
  }
  received_ += static_cast<int64_t>(data.size());
  if (state_ == State::kExisting) return absl::OkStatus();
  hasher_.Update(data);
  absl::Status written = WriteAll(fd_, data, temp_path_);
  if (!written.ok()) return Fail(std::move(written));
  return absl::OkStatus();
}

absl::StatusOr<CommitResult> ArtifactWriter::Finish() {
  if (state_ == State::kFailed || state_ == State::kDone) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload of ", announced_.sha256(), ": the writer has ",
                     state_ == State::kFailed ? "failed" : "finished"));
  }
  if (state_ == State::kExisting) {
    state_ = State::kDone;
    return CommitResult{existing_, true};
  }
  if (received_ != announced_.size_bytes()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("content: ", received_, " bytes received, header.size_bytes announced ",
                     announced_.size_bytes())));
  }
  const std::string digest = hasher_.FinishHex();
  if (digest != announced_.sha256()) {
    return Fail(absl::DataLossError(absl::StrCat("content: SHA-256 is ", digest,
                                                 ", header.sha256 says ", announced_.sha256())));
  }
  bool already_existed = false;
  absl::Status committed = Commit(&already_existed);
  if (!committed.ok()) return Fail(std::move(committed));
  state_ = State::kDone;
  if (!already_existed) return CommitResult{announced_, false};
  absl::StatusOr<v1::ArtifactRef> stored = store_->Stat(announced_.sha256());
  if (!stored.ok()) return Fail(stored.status());
  return CommitResult{*std::move(stored), true};
}

// Content first, metadata last: the link of the metadata is the commit point, and the
// one writer whose link succeeds is the one that stored the artifact.
absl::Status ArtifactWriter::Commit(bool* already_existed) {
  const std::string& sha256 = announced_.sha256();
  absl::StatusOr<v1::ArtifactRef> stored = store_->Stat(sha256);
  if (stored.ok()) {
    *already_existed = true;
    RemoveTemps();
    return absl::OkStatus();
  }
  if (stored.status().code() != absl::StatusCode::kNotFound) return stored.status();

  if (::fsync(fd_) != 0) return ErrnoError(errno, "fsyncing", temp_path_);
  const int closed = ::close(fd_);
  fd_ = -1;
  if (closed != 0) return ErrnoError(errno, "closing", temp_path_);

  const std::string fan_out = store_->FanOutDir(sha256);
  ASSIGN_OR_RETURN(const int meta_fd,
                   MakeTemp(absl::StrCat(fan_out, "/", kTempPrefix, sha256, kMetaSuffix, "-"),
                            &meta_temp_path_));
  absl::Status meta_written = WriteAll(meta_fd, announced_.SerializeAsString(), meta_temp_path_);
  if (meta_written.ok() && ::fsync(meta_fd) != 0) {
    meta_written = ErrnoError(errno, "fsyncing", meta_temp_path_);
  }
  ::close(meta_fd);
  RETURN_IF_ERROR(meta_written);

  const std::string content_path = store_->ContentPath(sha256);
  if (::rename(temp_path_.c_str(), content_path.c_str()) != 0) {
    return ErrnoError(errno, "renaming into place", content_path);
  }
  temp_path_.clear();
  const std::string meta_path = store_->MetaPath(sha256);
  if (::link(meta_temp_path_.c_str(), meta_path.c_str()) != 0) {
    if (errno != EEXIST) return ErrnoError(errno, "linking into place", meta_path);
    *already_existed = true;
  }
  RemoveTemps();
  return FsyncDir(fan_out);
}

// ---- ArtifactReader ------------------------------------------------------------------

ArtifactReader::ArtifactReader(int fd, std::string path, v1::ArtifactRef artifact, int64_t offset)
    : fd_(fd), path_(std::move(path)), artifact_(std::move(artifact)), position_(offset) {}

ArtifactReader::~ArtifactReader() { ::close(fd_); }

absl::Status ArtifactReader::Read(size_t max_bytes, std::string* chunk) {
  if (max_bytes == 0) return absl::InvalidArgumentError("max_bytes: must be positive");
  const uint64_t remaining = static_cast<uint64_t>(artifact_.size_bytes() - position_);
  const size_t length = static_cast<size_t>(std::min<uint64_t>(max_bytes, remaining));
  chunk->resize(length);
  size_t done = 0;
  while (done < length) {
    const ssize_t n = ::pread(fd_, chunk->data() + done, length - done,
                              static_cast<off_t>(position_) + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "reading", path_);
    if (n == 0) {
      return absl::DataLossError(absl::StrCat("reading ", path_, ": ends at ",
                                              position_ + static_cast<int64_t>(done),
                                              " bytes, metadata says ", artifact_.size_bytes()));
    }
    done += static_cast<size_t>(n);
  }
  position_ += static_cast<int64_t>(length);
  return absl::OkStatus();
}

// ---- ArtifactStore -------------------------------------------------------------------

ArtifactStore::ArtifactStore(std::string dir, Options options, int lock_fd)
    : dir_(std::move(dir)), options_(options), lock_fd_(lock_fd) {}

ArtifactStore::~ArtifactStore() { ::close(lock_fd_); }

absl::StatusOr<std::unique_ptr<ArtifactStore>> ArtifactStore::Open(const std::string& dir,
                                                                   Options options) {
  if (dir.empty()) return absl::InvalidArgumentError("artifact store dir: must not be empty");
  for (const auto& [bytes, name] :
       {std::pair<int64_t, const char*>{options.max_model_bytes, "max_model_bytes"},
        {options.max_dataset_bytes, "max_dataset_bytes"},
        {options.max_result_bytes, "max_result_bytes"}}) {
    if (bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("ArtifactStore::Options::", name, ": ", bytes, " is negative"));
    }
  }
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("artifact store ", dir, ": cannot create: ", error.message()));
  }
  const std::string lock_path = absl::StrCat(dir, "/", kLockName);
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::FailedPreconditionError(
        ErrnoError(errno, "artifact store: opening", lock_path).message());
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int lock_error = errno;
    ::close(lock_fd);
    if (lock_error == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "artifact store ", dir, ": in use by another store (", lock_path, " is locked)"));
    }
    return ErrnoError(lock_error, "artifact store: locking", lock_path);
  }
  std::unique_ptr<ArtifactStore> store(new ArtifactStore(dir, options, lock_fd));
  RETURN_IF_ERROR(store->RemoveLeftovers());
  RETURN_IF_ERROR(FsyncDir(dir));
  return store;
}

// Temp files are uploads a crashed process never finished; content without metadata is
// a commit interrupted between its rename and its link. Neither was ever visible.
absl::Status ArtifactStore::RemoveLeftovers() const {
  int removed = 0;
  ASSIGN_OR_RETURN(const std::vector<std::string> fan_outs, ListDir(dir_));
  for (const std::string& fan_name : fan_outs) {
    const std::filesystem::path fan_out = std::filesystem::path(dir_) / fan_name;
    std::error_code error;
    if (!IsFanOutName(fan_name) || !std::filesystem::is_directory(fan_out, error)) continue;
    ASSIGN_OR_RETURN(const std::vector<std::string> names, ListDir(fan_out));
    for (const std::string& name : names) {
      const bool temp = absl::StartsWith(name, kTempPrefix);
      const bool orphan = IsSha256Hex(name) &&
                          std::find(names.begin(), names.end(), name + kMetaSuffix) == names.end();
      if (!temp && !orphan) continue;
      Unlink((fan_out / name).string());
      ++removed;
    }
  }
  if (removed > 0) {
    LOG(INFO) << "artifact store " << dir_ << ": removed " << removed
              << " leftovers of interrupted uploads";
  }
  return absl::OkStatus();
}

std::string ArtifactStore::FanOutDir(absl::string_view sha256) const {
  return absl::StrCat(dir_, "/", sha256.substr(0, 2));
}

std::string ArtifactStore::ContentPath(absl::string_view sha256) const {
  return absl::StrCat(FanOutDir(sha256), "/", sha256);
}

std::string ArtifactStore::MetaPath(absl::string_view sha256) const {
  return absl::StrCat(ContentPath(sha256), kMetaSuffix);
}

absl::StatusOr<v1::ArtifactRef> ArtifactStore::Stat(absl::string_view sha256) const {
  RETURN_IF_ERROR(CheckSha256("sha256", sha256));
  ASSIGN_OR_RETURN(v1::ArtifactRef artifact, ReadMeta(MetaPath(sha256), sha256));
  const std::string path = ContentPath(sha256);
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    return errno == ENOENT ? MissingContent(artifact, path) : ErrnoError(errno, "stat of", path);
  }
  RETURN_IF_ERROR(CheckContentSize(info, path, artifact));
  return artifact;
}

absl::StatusOr<std::unique_ptr<ArtifactWriter>> ArtifactStore::BeginWrite(
    const v1::UploadHeader& header) {
  RETURN_IF_ERROR(CheckHeader(options_, header));
  v1::ArtifactRef announced;
  announced.set_sha256(header.sha256());
  announced.set_size_bytes(header.size_bytes());
  announced.set_kind(header.kind());
  announced.set_name(header.name());
  std::unique_ptr<ArtifactWriter> writer(new ArtifactWriter(this, std::move(announced)));

  absl::StatusOr<v1::ArtifactRef> stored = Stat(header.sha256());
  if (stored.ok()) {
    if (stored->size_bytes() != header.size_bytes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("header.size_bytes: ", header.size_bytes(), ", but artifact ",
                       header.sha256(), " is stored with ", stored->size_bytes(), " bytes"));
    }
    writer->existing_ = *std::move(stored);
    writer->state_ = ArtifactWriter::State::kExisting;
    writer->existed_at_begin_ = true;
    return writer;
  }
  if (stored.status().code() != absl::StatusCode::kNotFound) return stored.status();

  const std::string fan_out = FanOutDir(header.sha256());
  if (::mkdir(fan_out.c_str(), 0755) == 0) {
    RETURN_IF_ERROR(FsyncDir(dir_));
  } else if (errno != EEXIST) {
    return ErrnoError(errno, "creating directory", fan_out);
  }
  ASSIGN_OR_RETURN(
      writer->fd_,
      MakeTemp(absl::StrCat(fan_out, "/", kTempPrefix, header.sha256(), "-"), &writer->temp_path_));
  return writer;
}

absl::StatusOr<std::unique_ptr<ArtifactReader>> ArtifactStore::OpenReader(absl::string_view sha256,
                                                                          int64_t offset) const {
  RETURN_IF_ERROR(CheckSha256("sha256", sha256));
  if (offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("offset: ", offset, " is negative"));
  }
  ASSIGN_OR_RETURN(v1::ArtifactRef artifact, ReadMeta(MetaPath(sha256), sha256));
  std::string path = ContentPath(sha256);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? MissingContent(artifact, path) : ErrnoError(errno, "opening", path);
  }
  // The reader owns the fd from here, so every return below closes it.
  std::unique_ptr<ArtifactReader> reader(
      new ArtifactReader(fd, std::move(path), std::move(artifact), offset));
  struct stat info;
  if (::fstat(fd, &info) != 0) return ErrnoError(errno, "stat of", reader->path_);
  RETURN_IF_ERROR(CheckContentSize(info, reader->path_, reader->artifact_));
  if (offset > reader->artifact_.size_bytes()) {
    return absl::OutOfRangeError(absl::StrCat("offset: ", offset, " is past the end of artifact ",
                                              sha256, " (", reader->artifact_.size_bytes(),
                                              " bytes)"));
  }
  return reader;
}

}  // namespace autocompress::scheduler
