// ArtifactService over a real in-process gRPC server on a real ArtifactStore: round
// trips of a few MiB, resumed downloads, every malformed upload stream, a client that
// cancels mid-upload, and concurrent uploads of the same content.
#include "scheduler_service/artifact_service_impl.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/server_runner.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace autocompress::scheduler {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr size_t kChunk = ArtifactServiceImpl::kMaxChunkBytes;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::string bytes(n, '\0');
  for (char& c : bytes) c = static_cast<char>(generator());
  return bytes;
}

v1::UploadRequest HeaderMessage(const std::string& content,
                                v1::ArtifactKind kind = v1::ARTIFACT_KIND_MODEL) {
  v1::UploadRequest request;
  v1::UploadHeader* header = request.mutable_header();
  header->set_name("model.pt");
  header->set_kind(kind);
  header->set_sha256(Sha256Hex(content));
  header->set_size_bytes(static_cast<int64_t>(content.size()));
  return request;
}

v1::UploadRequest ChunkMessage(absl::string_view bytes) {
  v1::UploadRequest request;
  request.set_chunk(std::string(bytes));
  return request;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

struct Uploaded {
  grpc::Status status;
  v1::UploadResponse response;
};

struct Downloaded {
  grpc::Status status;
  std::vector<v1::DownloadResponse> messages;
  std::string content;  // The chunks, joined.
};

class ArtifactServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/service-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    ArtifactStore::Options options;
    options.max_result_bytes = 1000;
    auto store = ArtifactStore::Open(dir_, options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    service_ = std::make_unique<ArtifactServiceImpl>(store_.get());
    ServerOptions server_options;
    server_options.host = "127.0.0.1";
    runner_ = std::make_unique<ServerRunner>(server_options);
    runner_->AddService(service_.get(), v1::ArtifactService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    stub_ = v1::ArtifactService::NewStub(runner_->InProcessChannel());
  }

  void TearDown() override {
    runner_.reset();
    service_.reset();
    store_.reset();
  }

  // Sends `messages` as one Upload stream (stopping early if the server already
  // answered) and returns the server's answer.
  Uploaded UploadMessages(const std::vector<v1::UploadRequest>& messages) {
    auto context = Context();
    Uploaded result;
    auto stream = stub_->Upload(context.get(), &result.response);
    for (const v1::UploadRequest& message : messages) {
      if (!stream->Write(message)) break;
    }
    stream->WritesDone();
    result.status = stream->Finish();
    return result;
  }

  Uploaded Upload(const std::string& content, v1::ArtifactKind kind = v1::ARTIFACT_KIND_MODEL) {
    std::vector<v1::UploadRequest> messages = {HeaderMessage(content, kind)};
    for (size_t at = 0; at < content.size(); at += kChunk) {
      messages.push_back(ChunkMessage(absl::string_view(content).substr(at, kChunk)));
    }
    return UploadMessages(messages);
  }

  Downloaded Download(const std::string& sha256, int64_t offset) {
    auto context = Context();
    v1::DownloadRequest request;
    request.set_sha256(sha256);
    request.set_offset(offset);
    Downloaded result;
    auto stream = stub_->Download(context.get(), request);
    v1::DownloadResponse message;
    while (stream->Read(&message)) {
      if (message.has_chunk()) result.content += message.chunk();
      result.messages.push_back(message);
    }
    result.status = stream->Finish();
    return result;
  }

  grpc::StatusCode StatCode(const std::string& sha256) {
    auto context = Context();
    v1::StatRequest request;
    request.set_sha256(sha256);
    v1::StatResponse response;
    return stub_->Stat(context.get(), request, &response).error_code();
  }

  // Every file in the store's directory except its lock.
  std::vector<std::string> Files() const {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
      if (entry.is_regular_file() && entry.path().filename() != ".lock") {
        files.push_back(entry.path().filename().string());
      }
    }
    return files;
  }

  // Server handlers finish after the client sees its status; waits for their cleanup.
  bool EventuallyNoFiles() {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!Files().empty()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  }

  std::string dir_;
  std::unique_ptr<ArtifactStore> store_;
  std::unique_ptr<ArtifactServiceImpl> service_;
  std::unique_ptr<ServerRunner> runner_;
  std::unique_ptr<v1::ArtifactService::Stub> stub_;
};

TEST_F(ArtifactServiceTest, UploadStatDownloadRoundTrip) {
  const std::string content = RandomBytes(5 * kChunk + 123, 1);
  const std::string sha256 = Sha256Hex(content);
  EXPECT_EQ(StatCode(sha256), grpc::StatusCode::NOT_FOUND);

  Uploaded uploaded = Upload(content);
  ASSERT_TRUE(uploaded.status.ok()) << uploaded.status.error_message();
  EXPECT_FALSE(uploaded.response.already_existed());
  EXPECT_EQ(uploaded.response.artifact().sha256(), sha256);
  EXPECT_EQ(uploaded.response.artifact().size_bytes(), static_cast<int64_t>(content.size()));
  EXPECT_EQ(uploaded.response.artifact().name(), "model.pt");

  auto context = Context();
  v1::StatRequest stat_request;
  stat_request.set_sha256(sha256);
  v1::StatResponse stat;
  ASSERT_TRUE(stub_->Stat(context.get(), stat_request, &stat).ok());
  EXPECT_EQ(stat.artifact().SerializeAsString(), uploaded.response.artifact().SerializeAsString());

  Downloaded downloaded = Download(sha256, 0);
  ASSERT_TRUE(downloaded.status.ok()) << downloaded.status.error_message();
  ASSERT_EQ(downloaded.messages.size(), 7u);  // Header, five full chunks, the rest.
  EXPECT_TRUE(downloaded.messages[0].has_artifact());
  EXPECT_EQ(downloaded.messages[0].artifact().sha256(), sha256);
  for (size_t i = 1; i < 6; ++i) EXPECT_EQ(downloaded.messages[i].chunk().size(), kChunk);
  EXPECT_EQ(downloaded.messages[6].chunk().size(), 123u);
  EXPECT_TRUE(downloaded.content == content);

  Uploaded again = Upload(content);
  ASSERT_TRUE(again.status.ok()) << again.status.error_message();
  EXPECT_TRUE(again.response.already_existed());
  EXPECT_EQ(again.response.artifact().sha256(), sha256);
}

TEST_F(ArtifactServiceTest, UploadOfAStoredArtifactNeedsOnlyTheHeader) {
  const std::string content = RandomBytes(2 * kChunk, 8);
  ASSERT_TRUE(Upload(content).status.ok());
  Uploaded header_only = UploadMessages({HeaderMessage(content)});
  ASSERT_TRUE(header_only.status.ok()) << header_only.status.error_message();
  EXPECT_TRUE(header_only.response.already_existed());
  EXPECT_EQ(header_only.response.artifact().size_bytes(), static_cast<int64_t>(content.size()));

  // The content, if sent, is still framed and bounded by the header.
  Uploaded too_much = UploadMessages({HeaderMessage(content), ChunkMessage(content.substr(0, 9)),
                                      ChunkMessage(content.substr(0, kChunk)),
                                      ChunkMessage(content.substr(0, kChunk))});
  EXPECT_EQ(too_much.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(too_much.status.error_message(), HasSubstr("more than"));
  EXPECT_EQ(Files().size(), 2u);
}

TEST_F(ArtifactServiceTest, DownloadResumesAtAnOffset) {
  const std::string content = RandomBytes(3 * kChunk + 5, 2);
  const std::string sha256 = Sha256Hex(content);
  ASSERT_TRUE(Upload(content).status.ok());

  const int64_t offset = 2 * kChunk - 17;
  Downloaded resumed = Download(sha256, offset);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status.error_message();
  EXPECT_TRUE(resumed.messages[0].has_artifact());
  EXPECT_TRUE(resumed.content == content.substr(offset));

  Downloaded at_end = Download(sha256, static_cast<int64_t>(content.size()));
  ASSERT_TRUE(at_end.status.ok());
  EXPECT_EQ(at_end.messages.size(), 1u);

  Downloaded past = Download(sha256, static_cast<int64_t>(content.size()) + 1);
  EXPECT_EQ(past.status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(past.status.error_message(), HasSubstr("offset"));
  EXPECT_THAT(past.messages, IsEmpty());

  EXPECT_EQ(Download(Sha256Hex("absent"), 0).status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Download("not-a-digest", 0).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(StatCode("NOT-A-DIGEST"), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ArtifactServiceTest, HeaderMissingOrDuplicatedIsInvalidArgument) {
  const std::string content = RandomBytes(1000, 3);
  Uploaded empty = UploadMessages({});
  EXPECT_EQ(empty.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(empty.status.error_message(), HasSubstr("header"));

  Uploaded chunk_first = UploadMessages({ChunkMessage(content), HeaderMessage(content)});
  EXPECT_EQ(chunk_first.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(chunk_first.status.error_message(), HasSubstr("first message must be the header"));

  Uploaded twice = UploadMessages({HeaderMessage(content), ChunkMessage(content.substr(0, 10)),
                                   HeaderMessage(content), ChunkMessage(content.substr(10))});
  EXPECT_EQ(twice.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(twice.status.error_message(), HasSubstr("second header"));

  EXPECT_EQ(StatCode(Sha256Hex(content)), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(EventuallyNoFiles());
}

TEST_F(ArtifactServiceTest, OversizeChunkIsInvalidArgument) {
  const std::string content = RandomBytes(kChunk + 1, 4);
  Uploaded uploaded = UploadMessages({HeaderMessage(content), ChunkMessage(content)});
  EXPECT_EQ(uploaded.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(uploaded.status.error_message(), HasSubstr("1048576 bytes per chunk"));
  EXPECT_EQ(StatCode(Sha256Hex(content)), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(EventuallyNoFiles());
}

TEST_F(ArtifactServiceTest, StoreErrorsKeepTheirCodes) {
  const std::string content = RandomBytes(2000, 5);
  std::vector<v1::UploadRequest> corrupted = {HeaderMessage(content)};
  std::string flipped = content;
  flipped[7] ^= 0x40;
  corrupted.push_back(ChunkMessage(flipped));
  Uploaded mismatch = UploadMessages(corrupted);
  EXPECT_EQ(mismatch.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(mismatch.status.error_message(), HasSubstr(Sha256Hex(content)));

  Uploaded too_big = Upload(content, v1::ARTIFACT_KIND_RESULT);
  EXPECT_EQ(too_big.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(too_big.status.error_message(), HasSubstr("max_result_bytes"));

  Uploaded short_content =
      UploadMessages({HeaderMessage(content), ChunkMessage(content.substr(0, 1999))});
  EXPECT_EQ(short_content.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_TRUE(EventuallyNoFiles());
}

TEST_F(ArtifactServiceTest, ClientCancellingMidUploadLeavesNothing) {
  const std::string content = RandomBytes(4 * kChunk, 6);
  auto context = Context();
  v1::UploadResponse response;
  auto stream = stub_->Upload(context.get(), &response);
  ASSERT_TRUE(stream->Write(HeaderMessage(content)));
  ASSERT_TRUE(stream->Write(ChunkMessage(absl::string_view(content).substr(0, kChunk))));
  // Wait until the server holds the partial upload in its temp file.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (Files().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(Files().size(), 1u);

  context->TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(EventuallyNoFiles());
  EXPECT_EQ(StatCode(Sha256Hex(content)), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ArtifactServiceTest, ConcurrentUploadsOfTheSameContentStoreItOnce) {
  const std::string content = RandomBytes(3 * kChunk + 11, 7);
  constexpr int kClients = 6;
  std::vector<Uploaded> results(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] { results[i] = Upload(content); });
  }
  for (std::thread& client : clients) client.join();
  int stored = 0;
  for (const Uploaded& result : results) {
    ASSERT_TRUE(result.status.ok()) << result.status.error_message();
    EXPECT_EQ(result.response.artifact().sha256(), Sha256Hex(content));
    if (!result.response.already_existed()) ++stored;
  }
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(Files().size(), 2u);  // The content and its metadata.
  EXPECT_TRUE(Download(Sha256Hex(content), 0).content == content);
}

}  // namespace
}  // namespace autocompress::scheduler
