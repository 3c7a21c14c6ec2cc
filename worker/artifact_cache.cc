#include "worker/artifact_cache.h"

#include <archive.h>
#include <archive_entry.h>

#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace autocompress::worker {
namespace fs = std::filesystem;
namespace {

constexpr char kBlobPrefix[] = "blob:";
constexpr char kExtractedPrefix[] = "extracted:";

int64_t SizeOf(const fs::path& path) {
  std::error_code error;
  if (fs::is_regular_file(path, error)) return static_cast<int64_t>(fs::file_size(path, error));
  int64_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(path, error)) {
    if (entry.is_regular_file(error)) bytes += static_cast<int64_t>(entry.file_size(error));
  }
  return bytes;
}

absl::Status FsError(const std::string& what, const std::error_code& error) {
  return absl::InternalError(absl::StrCat("artifact cache: ", what, ": ", error.message()));
}

}  // namespace

ArtifactCache::Pin::~Pin() { cache_->Unpin(key_); }

absl::StatusOr<std::unique_ptr<ArtifactCache>> ArtifactCache::Open(Options options, Fetcher fetch) {
  if (options.dir.empty()) return absl::InvalidArgumentError("artifact cache: no directory");
  std::unique_ptr<ArtifactCache> cache(new ArtifactCache(std::move(options), std::move(fetch)));
  RETURN_IF_ERROR(cache->Scan());
  return cache;
}

absl::Status ArtifactCache::Scan() {
  const fs::path dir(options_.dir);
  std::error_code error;
  fs::remove_all(dir / "tmp", error);  // what a killed agent left half-made
  for (const char* sub : {"blobs", "extracted", "tmp"}) {
    fs::create_directories(dir / sub, error);
    if (error) return FsError(absl::StrCat("creating ", (dir / sub).string()), error);
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [sub, prefix] :
       {std::pair{"blobs", kBlobPrefix}, {"extracted", kExtractedPrefix}}) {
    for (const auto& item : fs::directory_iterator(dir / sub, error)) {
      const std::string name = item.path().filename().string();
      if (!IsSha256Hex(name)) continue;
      Entry& entry = entries_[absl::StrCat(prefix, name)];
      entry.path = item.path().string();
      entry.bytes = SizeOf(item.path());
      lru_.push_back(absl::StrCat(prefix, name));
      entry.lru = std::prev(lru_.end());
      stats_.bytes += entry.bytes;
    }
  }
  EvictLocked();
  return absl::OkStatus();
}

std::string ArtifactCache::TempPath() {
  return (fs::path(options_.dir) / "tmp" / absl::StrCat(++temp_counter_)).string();
}

absl::Status ArtifactCache::CheckDigest(const v1::ArtifactRef& ref) {
  if (IsSha256Hex(ref.sha256())) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("artifact ", ref.name(), ": '", ref.sha256(), "' is not a SHA-256 digest"));
}

absl::StatusOr<std::unique_ptr<ArtifactCache::Pin>> ArtifactCache::Get(const v1::ArtifactRef& ref) {
  RETURN_IF_ERROR(CheckDigest(ref));
  const std::string final_path = (fs::path(options_.dir) / "blobs" / ref.sha256()).string();
  return GetOrMake(absl::StrCat(kBlobPrefix, ref.sha256()), final_path,
                   [&](const std::string& temp) -> absl::StatusOr<int64_t> {
                     RETURN_IF_ERROR(fetch_(ref, temp));
                     return ref.size_bytes();
                   });
}

absl::StatusOr<std::unique_ptr<ArtifactCache::Pin>> ArtifactCache::GetExtracted(
    const v1::ArtifactRef& ref) {
  RETURN_IF_ERROR(CheckDigest(ref));
  const std::string final_path = (fs::path(options_.dir) / "extracted" / ref.sha256()).string();
  // The archive is fetched only when the extraction is missing, and may be evicted
  // once extracted.
  return GetOrMake(absl::StrCat(kExtractedPrefix, ref.sha256()), final_path,
                   [&](const std::string& temp) -> absl::StatusOr<int64_t> {
                     ASSIGN_OR_RETURN(std::unique_ptr<Pin> blob, Get(ref));
                     std::error_code error;
                     fs::create_directories(temp, error);
                     if (error) return FsError(absl::StrCat("creating ", temp), error);
                     absl::StatusOr<int64_t> bytes = ExtractArchive(blob->path(), temp);
                     if (!bytes.ok()) {
                       return absl::Status(
                           bytes.status().code(),
                           absl::StrCat("dataset artifact ", ref.name(), " (", ref.sha256(),
                                        "): ", bytes.status().message()));
                     }
                     return bytes;
                   });
}

absl::StatusOr<std::unique_ptr<ArtifactCache::Pin>> ArtifactCache::GetOrMake(
    const std::string& key, const std::string& final_path,
    const std::function<absl::StatusOr<int64_t>(const std::string& temp_path)>& make) {
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (auto it = entries_.find(key); it != entries_.end()) {
      ++it->second.pins;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      ++stats_.hits;
      return std::unique_ptr<Pin>(new Pin(this, key, it->second.path, /*hit=*/true));
    }
    auto flight = in_flight_.find(key);
    if (flight == in_flight_.end()) break;
    // Another trial fetches it: wait for that, then look again (or share its error).
    std::shared_ptr<InFlight> other = flight->second;
    mu_.Await(absl::Condition(&other->done));
    if (!other->status.ok()) return other->status;
  }
  auto flight = std::make_shared<InFlight>();
  in_flight_[key] = flight;
  ++stats_.misses;
  const std::string temp = TempPath();
  mu_.Unlock();
  absl::StatusOr<int64_t> bytes = make(temp);
  std::error_code error;
  if (bytes.ok()) {
    fs::rename(temp, final_path, error);
    if (error) bytes = FsError(absl::StrCat("renaming into ", final_path), error);
  }
  if (!bytes.ok()) fs::remove_all(temp, error);
  mu_.Lock();
  in_flight_.erase(key);
  flight->status = bytes.status();
  flight->done = true;
  if (!bytes.ok()) return bytes.status();
  Entry& entry = entries_[key];
  entry.path = final_path;
  entry.bytes = *bytes;
  entry.pins = 1;
  lru_.push_front(key);
  entry.lru = lru_.begin();
  stats_.bytes += *bytes;
  EvictLocked();
  return std::unique_ptr<Pin>(new Pin(this, key, final_path, /*hit=*/false));
}

void ArtifactCache::Unpin(const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (auto it = entries_.find(key); it != entries_.end()) --it->second.pins;
  EvictLocked();
}

void ArtifactCache::EvictLocked() {
  for (auto it = lru_.end(); stats_.bytes > options_.max_bytes && it != lru_.begin();) {
    --it;
    Entry& entry = entries_[*it];
    if (entry.pins > 0) continue;
    std::error_code error;
    fs::remove_all(entry.path, error);
    stats_.bytes -= entry.bytes;
    const std::string key = *it;
    it = lru_.erase(it);
    entries_.erase(key);
  }
}

ArtifactCache::Stats ArtifactCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<int64_t> ExtractArchive(const std::string& archive_path, const std::string& dir) {
  std::unique_ptr<archive, int (*)(archive*)> reader(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(reader.get());
  archive_read_support_format_tar(reader.get());
  archive_read_support_format_gnutar(reader.get());
  if (archive_read_open_filename(reader.get(), archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a tar archive: ", archive_error_string(reader.get())));
  }
  int64_t bytes = 0;
  archive_entry* entry = nullptr;
  for (;;) {
    const int rc = archive_read_next_header(reader.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a tar archive: ", archive_error_string(reader.get())));
    }
    const std::string name = archive_entry_pathname(entry);
    const fs::path relative = fs::path(name).lexically_normal();
    if (relative.is_absolute() || relative.empty() || *relative.begin() == "..") {
      return absl::InvalidArgumentError(absl::StrCat("archive entry '", name, "' is outside it"));
    }
    const fs::path target = fs::path(dir) / relative;
    std::error_code error;
    const mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFDIR) {
      fs::create_directories(target, error);
      if (error) return FsError(absl::StrCat("creating ", target.string()), error);
      continue;
    }
    if (type != AE_IFREG) {
      return absl::InvalidArgumentError(
          absl::StrCat("archive entry '", name, "' is not a regular file or directory"));
    }
    fs::create_directories(target.parent_path(), error);
    std::unique_ptr<FILE, int (*)(FILE*)> out(fopen(target.c_str(), "wb"), fclose);
    if (out == nullptr) return absl::InternalError(absl::StrCat("cannot create ", target.string()));
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      const int read = archive_read_data_block(reader.get(), &block, &size, &offset);
      if (read == ARCHIVE_EOF) break;
      if (read != ARCHIVE_OK) {
        return absl::InvalidArgumentError(absl::StrCat(
            "archive entry '", name, "' is corrupt: ", archive_error_string(reader.get())));
      }
      if (fseeko(out.get(), offset, SEEK_SET) != 0 || fwrite(block, 1, size, out.get()) != size) {
        return absl::InternalError(absl::StrCat("cannot write ", target.string()));
      }
      bytes += static_cast<int64_t>(size);
    }
  }
  return bytes;
}

}  // namespace autocompress::worker
