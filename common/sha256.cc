#include "common/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace autocompress {
namespace {

constexpr size_t kFileBlockBytes = size_t{1} << 20;

}  // namespace

// EVP SHA-256 in the default provider fails only when memory allocation fails, which
// leaves nothing sensible to return: those are the CHECKs' broken invariants.
Sha256Hasher::Sha256Hasher() : context_(EVP_MD_CTX_new()) {
  CHECK(context_ != nullptr) << "EVP_MD_CTX_new failed";
  CHECK_EQ(EVP_DigestInit_ex(context_, EVP_sha256(), nullptr), 1) << "EVP_DigestInit_ex failed";
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(context_); }

void Sha256Hasher::Update(absl::string_view data) {
  if (data.empty()) return;
  CHECK_EQ(EVP_DigestUpdate(context_, data.data(), data.size()), 1) << "EVP_DigestUpdate failed";
}

std::string Sha256Hasher::FinishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  CHECK_EQ(EVP_DigestFinal_ex(context_, digest, &length), 1) << "EVP_DigestFinal_ex failed";
  CHECK_EQ(EVP_DigestInit_ex(context_, EVP_sha256(), nullptr), 1) << "EVP_DigestInit_ex failed";
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), static_cast<size_t>(length)));
}

std::string Sha256Hex(absl::string_view data) {
  Sha256Hasher hasher;
  hasher.Update(data);
  return hasher.FinishHex();
}

absl::StatusOr<std::string> Sha256HexOfFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path));
  Sha256Hasher hasher;
  std::vector<char> block(kFileBlockBytes);
  while (true) {
    const ssize_t n = ::read(fd, block.data(), block.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return absl::ErrnoToStatus(error, absl::StrCat("reading ", path));
    }
    if (n == 0) break;
    hasher.Update(absl::string_view(block.data(), static_cast<size_t>(n)));
  }
  ::close(fd);
  return hasher.FinishHex();
}

bool IsSha256Hex(absl::string_view text) {
  if (text.size() != kSha256HexLength) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace autocompress
