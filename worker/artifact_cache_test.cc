#include "worker/artifact_cache.h"

#include <archive.h>
#include <archive_entry.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/sha256.h"
#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::worker {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A tar archive of (name, content) entries.
std::string Tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out(1 << 20, '\0');
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_ustar(a);
  archive_write_open_memory(a, out.data(), out.size(), &used);
  for (const auto& [name, content] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  out.resize(used);
  return out;
}

v1::ArtifactRef RefOf(const std::string& content, const std::string& name) {
  v1::ArtifactRef ref;
  ref.set_sha256(Sha256Hex(content));
  ref.set_size_bytes(static_cast<int64_t>(content.size()));
  ref.set_name(name);
  return ref;
}

// Serves blobs by digest and counts fetches.
struct FakeStore {
  std::map<std::string, std::string> blobs;
  std::atomic<int> fetches{0};
  absl::Duration delay = absl::ZeroDuration();
  v1::ArtifactRef Add(const std::string& content, const std::string& name = "blob") {
    v1::ArtifactRef ref = RefOf(content, name);
    blobs[ref.sha256()] = content;
    return ref;
  }
  ArtifactCache::Fetcher Fetcher() {
    return [this](const v1::ArtifactRef& ref, const std::string& path) -> absl::Status {
      ++fetches;
      absl::SleepFor(delay);
      auto it = blobs.find(ref.sha256());
      if (it == blobs.end()) return absl::NotFoundError("not stored");
      std::ofstream(path, std::ios::binary) << it->second;
      return absl::OkStatus();
    };
  }
};

std::unique_ptr<ArtifactCache> Open(const std::string& name, FakeStore& store, int64_t max_bytes) {
  auto cache = ArtifactCache::Open({testing::TempPath(name), max_bytes}, store.Fetcher());
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(*cache) : nullptr;
}

TEST(ArtifactCacheTest, ConcurrentGetsShareOneFetch) {
  FakeStore store;
  store.delay = absl::Milliseconds(100);
  const v1::ArtifactRef ref = store.Add("model bytes");
  auto cache = Open("shared", store, 1 << 20);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, hits{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto pin = cache->Get(ref);
      if (!pin.ok()) return;
      std::ifstream in((*pin)->path());
      std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      ok += content == "model bytes";
      hits += (*pin)->hit();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(store.fetches, 1);
  EXPECT_EQ(hits, 3);
  EXPECT_EQ(cache->stats().misses, 1);
}

TEST(ArtifactCacheTest, EvictsLeastRecentlyUsedButNeverPinned) {
  FakeStore store;
  const v1::ArtifactRef a = store.Add(std::string(400, 'a'));
  const v1::ArtifactRef b = store.Add(std::string(400, 'b'));
  const v1::ArtifactRef c = store.Add(std::string(400, 'c'));
  auto cache = Open("evict", store, 1000);
  auto pin_a = cache->Get(a);
  ASSERT_TRUE(pin_a.ok());
  { ASSERT_TRUE(cache->Get(b).ok()); }  // unpinned at once
  { ASSERT_TRUE(cache->Get(c).ok()); }  // 1200 bytes: b (LRU, unpinned) goes, a is pinned
  EXPECT_EQ(cache->stats().bytes, 800);
  EXPECT_TRUE(fs::exists((*pin_a)->path()));
  const int before = store.fetches;
  { ASSERT_TRUE(cache->Get(a).ok()); }  // still cached
  EXPECT_EQ(store.fetches, before);
  { ASSERT_TRUE(cache->Get(b).ok()); }  // evicted: fetched again
  EXPECT_EQ(store.fetches, before + 1);
}

TEST(ArtifactCacheTest, AFailedFetchLeavesNothingAndIsRetried) {
  FakeStore store;
  const v1::ArtifactRef ref = RefOf("later", "blob");
  auto cache = Open("retry", store, 1 << 20);
  EXPECT_EQ(cache->Get(ref).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cache->stats().bytes, 0);
  EXPECT_TRUE(fs::is_empty(testing::TempPath("retry") + "/tmp"));
  store.Add("later");
  EXPECT_TRUE(cache->Get(ref).ok());
  v1::ArtifactRef bad = ref;
  bad.set_sha256("../../etc/passwd");
  EXPECT_THAT(std::string(cache->Get(bad).status().message()), HasSubstr("not a SHA-256 digest"));
  EXPECT_EQ(cache->GetExtracted(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArtifactCacheTest, ExtractsOnceAndSurvivesAReopen) {
  FakeStore store;
  const v1::ArtifactRef ref = store.Add(
      Tar({{"split/train-images-idx3-ubyte", "images"}, {"labels", "labels!"}}), "data.tar");
  {
    auto cache = Open("extract", store, 1 << 20);
    auto dir = cache->GetExtracted(ref);
    ASSERT_TRUE(dir.ok()) << dir.status();
    EXPECT_EQ(fs::file_size(fs::path((*dir)->path()) / "split/train-images-idx3-ubyte"), 6u);
    EXPECT_EQ(fs::file_size(fs::path((*dir)->path()) / "labels"), 7u);
  }
  // A new agent on the same directory finds it extracted: no fetch, no extraction.
  auto reopened = Open("extract", store, 1 << 20);
  auto dir = reopened->GetExtracted(ref);
  ASSERT_TRUE(dir.ok());
  EXPECT_TRUE((*dir)->hit());
  EXPECT_EQ(store.fetches, 1);
}

TEST(ArtifactCacheTest, AnExtractionOutlivesItsEvictedArchive) {
  FakeStore store;
  const v1::ArtifactRef ref = store.Add(Tar({{"f", "13 bytes here"}}), "data.tar");
  auto cache = Open("outlive", store, 100);  // the tar (>= 1 KiB) cannot stay
  {
    auto dir = cache->GetExtracted(ref);
    ASSERT_TRUE(dir.ok()) << dir.status();
  }
  EXPECT_EQ(cache->stats().bytes, 13);  // only the extraction is left
  auto again = cache->GetExtracted(ref);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->hit());
  EXPECT_EQ(store.fetches, 1);  // the archive is not fetched again for a present extraction
}

TEST(ArtifactCacheTest, ArchivesThatEscapeOrAreNotArchivesAreRefused) {
  FakeStore store;
  auto cache = Open("refuse", store, 1 << 20);
  auto escape = cache->GetExtracted(store.Add(Tar({{"../outside", "x"}}), "evil.tar"));
  EXPECT_EQ(escape.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(escape.status().message()), HasSubstr("evil.tar"));
  EXPECT_THAT(std::string(escape.status().message()), HasSubstr("'../outside' is outside it"));
  EXPECT_FALSE(fs::exists(testing::TempPath("refuse") + "/../outside"));
  auto plain = cache->GetExtracted(store.Add("just bytes", "plain.bin"));
  EXPECT_THAT(std::string(plain.status().message()), HasSubstr("not a tar archive"));
}

}  // namespace
}  // namespace autocompress::worker
