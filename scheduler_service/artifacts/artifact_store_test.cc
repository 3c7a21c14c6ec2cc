// ArtifactStore on a real directory: round trips, every way an upload can be wrong (and
// that it then leaves nothing behind), concurrent identical uploads, limits per kind,
// crash leftovers removed at Open, the directory lock, reads from offsets, a full disk.
#include "scheduler_service/artifacts/artifact_store.h"

#include <sys/resource.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(generator());
  return bytes;
}

v1::UploadHeader Header(const std::string& content, v1::ArtifactKind kind = v1::ARTIFACT_KIND_MODEL,
                        const std::string& name = "model.pt") {
  v1::UploadHeader header;
  header.set_name(name);
  header.set_kind(kind);
  header.set_sha256(Sha256Hex(content));
  header.set_size_bytes(static_cast<int64_t>(content.size()));
  return header;
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/artifacts-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    Reopen();
  }

  void Reopen(ArtifactStore::Options options = {}) {
    store_.reset();
    auto store = ArtifactStore::Open(dir_, options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Uploads `content` in pieces of `piece` bytes.
  absl::StatusOr<CommitResult> Upload(const v1::UploadHeader& header, const std::string& content,
                                      size_t piece = 64 << 10) {
    auto writer = store_->BeginWrite(header);
    if (!writer.ok()) return writer.status();
    for (size_t at = 0; at < content.size(); at += piece) {
      absl::Status appended = (*writer)->Append(absl::string_view(content).substr(at, piece));
      if (!appended.ok()) return appended;
    }
    return (*writer)->Finish();
  }

  std::string ReadAll(const std::string& sha256, int64_t offset, size_t piece = 100000) {
    auto reader = store_->OpenReader(sha256, offset);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return "";
    std::string all;
    std::string chunk;
    while (true) {
      absl::Status read = (*reader)->Read(piece, &chunk);
      EXPECT_TRUE(read.ok()) << read;
      if (!read.ok() || chunk.empty()) break;
      EXPECT_LE(chunk.size(), piece);
      all += chunk;
    }
    EXPECT_EQ((*reader)->position(), (*reader)->artifact().size_bytes());
    return all;
  }

  // Every file under the store's directory, relative to it, except its lock.
  std::vector<std::string> Files() const {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
      if (!entry.is_regular_file()) continue;
      std::string relative = std::filesystem::relative(entry.path(), dir_).string();
      if (relative != ".lock") files.push_back(relative);
    }
    return files;
  }

  std::string dir_;
  std::unique_ptr<ArtifactStore> store_;
};

TEST_F(ArtifactStoreTest, DefaultLimitsPerKind) {
  ArtifactStore::Options options;
  EXPECT_EQ(options.max_model_bytes, int64_t{2} << 30);
  EXPECT_EQ(options.max_dataset_bytes, int64_t{8} << 30);
  EXPECT_EQ(options.max_result_bytes, int64_t{2} << 30);
}

TEST_F(ArtifactStoreTest, RoundTripStoresContentAndMetadataByDigest) {
  const std::string content = RandomBytes(3 << 20, 1);
  const v1::UploadHeader header = Header(content, v1::ARTIFACT_KIND_DATASET, "train.idx");
  absl::StatusOr<CommitResult> result = Upload(header, content, 300001);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->already_existed);
  EXPECT_EQ(result->artifact.sha256(), header.sha256());
  EXPECT_EQ(result->artifact.size_bytes(), 3 << 20);
  EXPECT_EQ(result->artifact.kind(), v1::ARTIFACT_KIND_DATASET);
  EXPECT_EQ(result->artifact.name(), "train.idx");

  absl::StatusOr<v1::ArtifactRef> stat = store_->Stat(header.sha256());
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->SerializeAsString(), result->artifact.SerializeAsString());

  EXPECT_TRUE(ReadAll(header.sha256(), 0) == content);
  EXPECT_TRUE(ReadAll(header.sha256(), 12345, 1 << 20) == content.substr(12345));
  const std::string fan = header.sha256().substr(0, 2) + "/" + header.sha256();
  EXPECT_THAT(Files(), UnorderedElementsAre(fan, fan + ".meta"));
  EXPECT_EQ(*Sha256HexOfFile(dir_ + "/" + fan), header.sha256());

  // Survives reopening.
  Reopen();
  EXPECT_TRUE(store_->Stat(header.sha256()).ok());
  EXPECT_TRUE(ReadAll(header.sha256(), 0) == content);
}

TEST_F(ArtifactStoreTest, EmptyArtifactRoundTrips) {
  absl::StatusOr<CommitResult> result = Upload(Header(""), "");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->artifact.sha256(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ReadAll(result->artifact.sha256(), 0), "");
}

TEST_F(ArtifactStoreTest, StoredArtifactIsAcknowledgedWithoutRewriting) {
  const std::string content = RandomBytes(1000, 2);
  ASSERT_TRUE(Upload(Header(content, v1::ARTIFACT_KIND_MODEL, "first.pt"), content).ok());
  const std::string path =
      dir_ + "/" + Header(content).sha256().substr(0, 2) + "/" + Header(content).sha256();
  const auto modified = std::filesystem::last_write_time(path);

  // Known at BeginWrite, so the content need not be sent at all.
  auto writer = store_->BeginWrite(Header(content, v1::ARTIFACT_KIND_RESULT, "second.pt"));
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE((*writer)->already_existed());
  absl::StatusOr<CommitResult> skipped = (*writer)->Finish();
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_TRUE(skipped->already_existed);
  EXPECT_EQ(skipped->artifact.name(), "first.pt");
  EXPECT_EQ(skipped->artifact.kind(), v1::ARTIFACT_KIND_MODEL);
  EXPECT_TRUE((*writer)->already_existed());

  // Sent anyway: still acknowledged, still not rewritten.
  absl::StatusOr<CommitResult> sent = Upload(Header(content), content);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_TRUE(sent->already_existed);
  EXPECT_EQ(std::filesystem::last_write_time(path), modified);
  EXPECT_EQ(Files().size(), 2u);

  // More than announced is refused even when nothing is written.
  auto extra = store_->BeginWrite(Header(content));
  ASSERT_TRUE(extra.ok());
  EXPECT_EQ((*extra)->Append(content + "x").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ArtifactStoreTest, StoredArtifactWithAnotherSizeInTheHeaderIsInvalid) {
  const std::string content = RandomBytes(100, 3);
  ASSERT_TRUE(Upload(Header(content), content).ok());
  v1::UploadHeader header = Header(content);
  header.set_size_bytes(99);
  auto writer = store_->BeginWrite(header);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(writer.status().message(), HasSubstr("header.size_bytes"));
}

TEST_F(ArtifactStoreTest, DigestMismatchIsDataLossNamingBothAndLeavesNothing) {
  const std::string content = RandomBytes(200000, 4);
  v1::UploadHeader header = Header(content);
  std::string corrupted = content;
  corrupted[100000] ^= 1;
  absl::StatusOr<CommitResult> result = Upload(header, corrupted);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(result.status().message(),
              AllOf(HasSubstr(header.sha256()), HasSubstr(Sha256Hex(corrupted))));
  EXPECT_EQ(store_->Stat(header.sha256()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Stat(Sha256Hex(corrupted)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Files(), IsEmpty());
}

TEST_F(ArtifactStoreTest, ContentLongerThanAnnouncedFailsAsSoonAsItExceeds) {
  const std::string content = RandomBytes(1000, 5);
  v1::UploadHeader header = Header(content);
  header.set_size_bytes(600);
  auto writer = store_->BeginWrite(header);
  ASSERT_TRUE(writer.ok());
  EXPECT_TRUE((*writer)->Append(content.substr(0, 600)).ok());
  absl::Status over = (*writer)->Append(content.substr(600, 1));
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(over.message(), AllOf(HasSubstr("content"), HasSubstr("600")));
  // Nothing is kept once the writer failed, even while it is still alive.
  EXPECT_THAT(Files(), IsEmpty());
  EXPECT_EQ((*writer)->Append("").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Finish().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ArtifactStoreTest, ContentShorterThanAnnouncedFailsAtFinish) {
  const std::string content = RandomBytes(1000, 6);
  auto writer = store_->BeginWrite(Header(content));
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->Append(content.substr(0, 999)).ok());
  EXPECT_EQ((*writer)->bytes_received(), 999);
  absl::StatusOr<CommitResult> result = (*writer)->Finish();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), AllOf(HasSubstr("999"), HasSubstr("1000")));
  EXPECT_THAT(Files(), IsEmpty());
  EXPECT_EQ(store_->Stat(Header(content).sha256()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ArtifactStoreTest, AbandonedWriterLeavesNothing) {
  const std::string content = RandomBytes(500000, 7);
  {
    auto writer = store_->BeginWrite(Header(content));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Append(content.substr(0, 250000)).ok());
    EXPECT_EQ(Files().size(), 1u);  // Its temp file.
  }
  EXPECT_THAT(Files(), IsEmpty());
  EXPECT_EQ(store_->Stat(Header(content).sha256()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ArtifactStoreTest, ConcurrentIdenticalUploadsStoreOnceAndAllSucceed) {
  const std::string content = RandomBytes(2 << 20, 8);
  const v1::UploadHeader header = Header(content);
  constexpr int kThreads = 8;
  std::vector<absl::StatusOr<CommitResult>> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = Upload(header, content, 4096 * (i + 1)); });
  }
  for (std::thread& thread : threads) thread.join();
  int stored = 0;
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->artifact.sha256(), header.sha256());
    if (!result->already_existed) ++stored;
  }
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(Files().size(), 2u);
  EXPECT_TRUE(ReadAll(header.sha256(), 0) == content);
}

TEST_F(ArtifactStoreTest, LimitsPerKindAreResourceExhaustedNamingTheLimit) {
  ArtifactStore::Options options;
  options.max_model_bytes = 10;
  options.max_dataset_bytes = 100;
  options.max_result_bytes = 5;
  Reopen(options);
  const std::string eleven(11, 'x');

  absl::Status model = store_->BeginWrite(Header(eleven, v1::ARTIFACT_KIND_MODEL)).status();
  EXPECT_EQ(model.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(model.message(), AllOf(HasSubstr("header.size_bytes"), HasSubstr("max_model_bytes"),
                                     HasSubstr("10 bytes")));
  absl::Status result = store_->BeginWrite(Header("123456", v1::ARTIFACT_KIND_RESULT)).status();
  EXPECT_EQ(result.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(result.message(), HasSubstr("max_result_bytes"));
  EXPECT_TRUE(Upload(Header(eleven, v1::ARTIFACT_KIND_DATASET), eleven).ok());
  EXPECT_TRUE(Upload(Header("12345", v1::ARTIFACT_KIND_RESULT), "12345").ok());
  EXPECT_TRUE(
      Upload(Header(std::string(10, 'y'), v1::ARTIFACT_KIND_MODEL), std::string(10, 'y')).ok());
}

TEST_F(ArtifactStoreTest, MalformedHeadersAreInvalidArgumentNamingTheField) {
  v1::UploadHeader unspecified = Header("abc", v1::ARTIFACT_KIND_UNSPECIFIED);
  absl::Status kind = store_->BeginWrite(unspecified).status();
  EXPECT_EQ(kind.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kind.message(), AllOf(HasSubstr("header.kind"), HasSubstr("ARTIFACT_KIND_MODEL")));
  v1::UploadHeader unknown = Header("abc");
  unknown.set_kind(static_cast<v1::ArtifactKind>(42));
  EXPECT_THAT(store_->BeginWrite(unknown).status().message(), HasSubstr("header.kind: 42"));

  v1::UploadHeader negative = Header("abc");
  negative.set_size_bytes(-1);
  absl::Status size = store_->BeginWrite(negative).status();
  EXPECT_EQ(size.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(size.message(), HasSubstr("header.size_bytes: -1"));

  v1::UploadHeader long_name = Header("abc");
  long_name.set_name(std::string(5000, 'n'));
  EXPECT_THAT(store_->BeginWrite(long_name).status().message(), HasSubstr("header.name"));

  ArtifactStore::Options options;
  options.max_dataset_bytes = -1;
  store_.reset();
  absl::Status open = ArtifactStore::Open(dir_, options).status();
  EXPECT_EQ(open.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(open.message(), HasSubstr("max_dataset_bytes"));
}

TEST_F(ArtifactStoreTest, BadDigestStringsAreInvalidArgument) {
  const std::string good = Sha256Hex("abc");
  std::string upper = good;
  upper[0] = 'B';
  std::string non_hex = good;
  non_hex[10] = 'z';
  for (const std::string& bad :
       {std::string(), good.substr(1), good + "0", upper, non_hex, std::string("../../etc")}) {
    v1::UploadHeader header = Header("abc");
    header.set_sha256(bad);
    absl::Status begin = store_->BeginWrite(header).status();
    EXPECT_EQ(begin.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(begin.message(), HasSubstr("header.sha256")) << bad;
    absl::Status stat = store_->Stat(bad).status();
    EXPECT_EQ(stat.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(stat.message(), HasSubstr("sha256")) << bad;
    EXPECT_EQ(store_->OpenReader(bad, 0).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(Files(), IsEmpty());
}

TEST_F(ArtifactStoreTest, ReadsFromOffsetsUpToTheEnd) {
  const std::string content = RandomBytes(1000, 9);
  const std::string sha256 = Header(content).sha256();
  EXPECT_EQ(store_->Stat(sha256).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->OpenReader(sha256, 0).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Upload(Header(content), content).ok());

  EXPECT_TRUE(ReadAll(sha256, 999, 7) == content.substr(999));
  EXPECT_EQ(ReadAll(sha256, 1000), "");
  absl::Status past = store_->OpenReader(sha256, 1001).status();
  EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(past.message(), AllOf(HasSubstr("offset: 1001"), HasSubstr("1000 bytes")));
  EXPECT_EQ(store_->OpenReader(sha256, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ArtifactStoreTest, OpenRemovesLeftoversOfCrashedUploads) {
  const std::string kept = RandomBytes(100, 10);
  ASSERT_TRUE(Upload(Header(kept), kept).ok());
  store_.reset();
  // What a crash leaves: temp files of uploads in progress, and content renamed into
  // place whose metadata was never linked.
  const std::string orphan = Sha256Hex("orphan");
  std::filesystem::create_directories(dir_ + "/" + orphan.substr(0, 2));
  std::ofstream(dir_ + "/" + orphan.substr(0, 2) + "/" + orphan) << "orphan";
  std::ofstream(dir_ + "/" + orphan.substr(0, 2) + "/.tmp-" + orphan + "-Ab12Cd") << "partial";
  const std::string kept_fan = Header(kept).sha256().substr(0, 2);
  std::ofstream(dir_ + "/" + kept_fan + "/.tmp-" + orphan + ".meta-Zz9yX8") << "meta";
  std::ofstream(dir_ + "/README") << "not ours";
  ASSERT_EQ(Files().size(), 6u);

  Reopen();
  const std::string kept_path = kept_fan + "/" + Header(kept).sha256();
  EXPECT_THAT(Files(), UnorderedElementsAre(kept_path, kept_path + ".meta", "README"));
  EXPECT_TRUE(store_->Stat(Header(kept).sha256()).ok());
  EXPECT_EQ(store_->Stat(orphan).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ArtifactStoreTest, OneStorePerDirectory) {
  absl::Status second = ArtifactStore::Open(dir_).status();
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.message(), HasSubstr("in use"));
  store_.reset();
  EXPECT_TRUE(ArtifactStore::Open(dir_).ok());
}

TEST_F(ArtifactStoreTest, MetadataAndContentThatDisagreeAreDataLoss) {
  const std::string content = RandomBytes(100, 11);
  const std::string sha256 = Header(content).sha256();
  ASSERT_TRUE(Upload(Header(content), content).ok());
  std::filesystem::resize_file(dir_ + "/" + sha256.substr(0, 2) + "/" + sha256, 50);
  EXPECT_EQ(store_->Stat(sha256).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->OpenReader(sha256, 0).status().code(), absl::StatusCode::kDataLoss);
}

// A file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes write() fail with EFBIG,
// much as a full disk fails it with ENOSPC (tests/faults fills a real tmpfs: Unavailable);
// run in a child so the limit does not touch the rest of the test.
TEST_F(ArtifactStoreTest, FileSizeLimitIsResourceExhaustedWithThePathAndLeavesNothing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string content = RandomBytes(2 << 20, 12);
  store_.reset();  // The child opens its own (the lock is per open file).
  auto upload_past_the_limit = [&] {
    std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) std::exit(2);
    Reopen();
    auto writer = store_->BeginWrite(Header(content));
    if (!writer.ok()) std::exit(3);
    absl::Status status = (*writer)->Append(content);
    if (status.code() != absl::StatusCode::kResourceExhausted) std::exit(4);
    if (status.message().find(dir_) == absl::string_view::npos) std::exit(5);
    if (status.message().find(".tmp-") == absl::string_view::npos) std::exit(6);
    if (!Files().empty()) std::exit(7);
    std::exit(0);
  };
  EXPECT_EXIT(upload_past_the_limit(), ::testing::ExitedWithCode(0), "");
  Reopen();
  EXPECT_THAT(Files(), IsEmpty());
}

}  // namespace
}  // namespace autocompress::scheduler
