// SHA-256 digests as lowercase hex, the identity of artifacts (ArtifactRef.sha256): of a
// buffer, of a file, or incrementally over a stream of pieces. The scheduler's artifact
// store verifies uploads with it and the client SDK names files with it, so both sides
// compute the same text. Backed by OpenSSL's EVP interface (libcrypto), whose headers
// stay out of this file.
//
// Thread-safety: the free functions may be called from any thread; one Sha256Hasher is
// used by one thread at a time.
#ifndef AUTOCOMPRESS_COMMON_SHA256_H_
#define AUTOCOMPRESS_COMMON_SHA256_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX.

namespace autocompress {

// Characters of a SHA-256 digest in hex.
inline constexpr int kSha256HexLength = 64;

// Incremental SHA-256: Update with the pieces in order, then FinishHex.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();

  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(absl::string_view data);

  // The digest of everything passed to Update since construction or the previous
  // FinishHex, as 64 lowercase hex characters; the hasher then starts over.
  std::string FinishHex();

 private:
  evp_md_ctx_st* context_;
};

// The SHA-256 of `data` as 64 lowercase hex characters.
std::string Sha256Hex(absl::string_view data);

// The SHA-256 of the file's content, read in 1 MiB blocks (files of any size). The
// errno's code with the path when it cannot be read: NotFound, PermissionDenied, ...
absl::StatusOr<std::string> Sha256HexOfFile(const std::string& path);

// True for exactly 64 lowercase hex characters, the form Sha256Hex returns.
bool IsSha256Hex(absl::string_view text);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SHA256_H_
