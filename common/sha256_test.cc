// SHA-256 against the FIPS 180-2 test vectors, incrementally in uneven pieces, and of
// files.
#include "common/sha256.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace autocompress {
namespace {

// FIPS 180-2, appendix B.
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kTwoBlocks[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr char kTwoBlocksInput[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr char kMillionA[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

std::string WriteFile(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(Sha256Test, MatchesFipsVectors) {
  EXPECT_EQ(Sha256Hex(""), kEmpty);
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
  EXPECT_EQ(Sha256Hex(kTwoBlocksInput), kTwoBlocks);
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), kMillionA);
}

TEST(Sha256Test, IncrementalInUnevenPiecesEqualsOneShot) {
  const std::string million(1000000, 'a');
  Sha256Hasher hasher;
  size_t at = 0;
  for (size_t piece = 1; at < million.size(); piece = piece * 3 + 1) {
    const size_t n = std::min(piece, million.size() - at);
    hasher.Update(absl::string_view(million).substr(at, n));
    at += n;
  }
  EXPECT_EQ(hasher.FinishHex(), kMillionA);
  // The hasher starts over after FinishHex.
  hasher.Update("ab");
  hasher.Update("");
  hasher.Update("c");
  EXPECT_EQ(hasher.FinishHex(), kAbc);
  EXPECT_EQ(hasher.FinishHex(), kEmpty);
}

TEST(Sha256Test, HashesFiles) {
  EXPECT_EQ(*Sha256HexOfFile(WriteFile("empty", "")), kEmpty);
  EXPECT_EQ(*Sha256HexOfFile(WriteFile("abc", "abc")), kAbc);
  // Larger than one read block.
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
  EXPECT_EQ(*Sha256HexOfFile(WriteFile("big", big)), Sha256Hex(big));
}

TEST(Sha256Test, MissingFileIsNotFoundWithThePath) {
  const std::string path = ::testing::TempDir() + "/does-not-exist";
  absl::StatusOr<std::string> digest = Sha256HexOfFile(path);
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(digest.status().message().find(path), std::string::npos) << digest.status();
}

TEST(Sha256Test, RecognizesLowercaseHexDigestsOnly) {
  EXPECT_TRUE(IsSha256Hex(kAbc));
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("x")));
  EXPECT_FALSE(IsSha256Hex(""));
  EXPECT_FALSE(IsSha256Hex(std::string(kAbc).substr(1)));
  EXPECT_FALSE(IsSha256Hex(std::string(kAbc) + "0"));
  std::string upper(kAbc);
  upper[0] = 'B';
  EXPECT_FALSE(IsSha256Hex(upper));
  std::string non_hex(kAbc);
  non_hex[5] = 'g';
  EXPECT_FALSE(IsSha256Hex(non_hex));
}

}  // namespace
}  // namespace autocompress
