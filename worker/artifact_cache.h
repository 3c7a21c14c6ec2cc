// ArtifactCache: the worker's local copies of model and dataset artifacts, by SHA-256,
// shared by the trials running at once on the node and bounded in size.
//
// Get returns a pinned entry: the verified file (or, for archives, the directory it
// was extracted into). Concurrent Gets of one digest share one fetch; a failed fetch
// leaves nothing behind and the next Get tries again. Content enters the cache only
// after the fetcher verified it (artifact_transfer.h), by an atomic rename, so what is
// found under the directory at start-up is trusted (its size is re-checked). When the
// cache exceeds max_bytes, the least recently used unpinned entries are deleted; pinned
// ones never are, so the cache may run over its bound while trials hold them.
//
// Layout: <dir>/blobs/<sha256>, <dir>/extracted/<sha256>/, <dir>/tmp/ (cleared at open).
// Thread-safe.
#ifndef AUTOCOMPRESS_WORKER_ARTIFACT_CACHE_H_
#define AUTOCOMPRESS_WORKER_ARTIFACT_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "autocompress/v1/common.pb.h"

namespace autocompress::worker {

class ArtifactCache {
 public:
  // Writes the verified content of `ref` to `path`.
  using Fetcher = std::function<absl::Status(const v1::ArtifactRef& ref, const std::string& path)>;

  struct Options {
    std::string dir;
    int64_t max_bytes = int64_t{20} << 30;
  };

  struct Stats {
    int64_t hits = 0;
    int64_t misses = 0;  // fetches started
    int64_t bytes = 0;   // on disk now
  };

  // A pinned entry; the cache keeps its files while any Pin of it lives.
  class Pin {
   public:
    const std::string& path() const { return path_; }
    // Whether it was in the cache already (no fetch or extraction by this Get).
    bool hit() const { return hit_; }
    ~Pin();

   private:
    friend class ArtifactCache;
    Pin(ArtifactCache* cache, std::string key, std::string path, bool hit)
        : cache_(cache), key_(std::move(key)), path_(std::move(path)), hit_(hit) {}
    ArtifactCache* cache_;
    std::string key_;
    std::string path_;
    bool hit_;
  };

  static absl::StatusOr<std::unique_ptr<ArtifactCache>> Open(Options options, Fetcher fetch);

  // The file holding `ref`'s content.
  absl::StatusOr<std::unique_ptr<Pin>> Get(const v1::ArtifactRef& ref);
  // The directory `ref` (a tar archive, optionally gzip-compressed) was extracted into.
  // InvalidArgument for content that is not such an archive, or that holds paths
  // outside the directory, links or devices.
  absl::StatusOr<std::unique_ptr<Pin>> GetExtracted(const v1::ArtifactRef& ref);

  Stats stats() const;

 private:
  struct Entry {
    std::string path;
    int64_t bytes = 0;
    int pins = 0;
    std::list<std::string>::iterator lru;
  };
  struct InFlight {
    bool done = false;
    absl::Status status;
  };

  ArtifactCache(Options options, Fetcher fetch)
      : options_(std::move(options)), fetch_(std::move(fetch)) {}
  absl::Status Scan();
  // InvalidArgument unless the digest is 64 lowercase hex characters (it names files).
  static absl::Status CheckDigest(const v1::ArtifactRef& ref);
  // Makes `key` present (building it with `make` into a temporary path once) and pins it.
  absl::StatusOr<std::unique_ptr<Pin>> GetOrMake(
      const std::string& key, const std::string& final_path,
      const std::function<absl::StatusOr<int64_t>(const std::string& temp_path)>& make);
  void Unpin(const std::string& key);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string TempPath() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const Fetcher fetch_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  std::map<std::string, std::shared_ptr<InFlight>> in_flight_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  int64_t temp_counter_ ABSL_GUARDED_BY(mu_) = 0;
};

// Extracts the tar archive (plain or gzip) at `archive` into the existing directory
// `dir`; returns the bytes written. Regular files and directories only.
absl::StatusOr<int64_t> ExtractArchive(const std::string& archive, const std::string& dir);

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_ARTIFACT_CACHE_H_
