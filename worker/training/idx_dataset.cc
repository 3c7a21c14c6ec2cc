#include "worker/training/idx_dataset.h"

#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compression/torch_status.h"

namespace autocompress::training {
namespace {

// Largest payload accepted (images or labels), far above any IDX data set; it bounds
// what a corrupt header or a gzip bomb can make us allocate.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 34;  // 16 GiB

uint32_t BigEndian(const uint8_t* d) {
  return (uint32_t{d[0]} << 24) | (uint32_t{d[1]} << 16) | (uint32_t{d[2]} << 8) | d[3];
}

// One IDX file (gzipped or plain: gzread reads both): its header's dimensions and the
// payload, read only as far as the header says, so nothing unbounded is inflated.
struct IdxFile {
  std::vector<int64_t> dims;
  std::vector<uint8_t> payload;
};

absl::StatusOr<IdxFile> ReadIdx(const std::string& path, uint32_t magic, int rank,
                                const char* what) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{file};
  const auto read = [&](uint8_t* into, uint64_t bytes) -> int64_t {
    uint64_t done = 0;
    while (done < bytes) {
      const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(bytes - done, 1 << 20));
      const int n = gzread(file, into + done, chunk);
      if (n < 0) return -1;
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
    }
    return static_cast<int64_t>(done);
  };
  const int header_bytes = 4 + 4 * rank;
  uint8_t header[16];
  const int64_t got_header = read(header, header_bytes);
  if (got_header < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": corrupt gzip data"));
  if (got_header < header_bytes || BigEndian(header) != magic) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an IDX ", what, " file (magic 0x", absl::Hex(magic), ")"));
  }
  IdxFile idx;
  uint64_t payload_bytes = 1;
  for (int d = 0; d < rank; ++d) {
    const uint32_t dim = BigEndian(header + 4 + 4 * d);
    idx.dims.push_back(dim);
    // Each factor is < 2^32 and the product stays <= kMaxPayloadBytes, so no overflow.
    if (dim == 0 || payload_bytes > kMaxPayloadBytes / dim) {
      payload_bytes = dim == 0 ? 0 : kMaxPayloadBytes + 1;
      break;
    }
    payload_bytes *= dim;
  }
  if (payload_bytes == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no examples (header dimensions ", absl::StrJoin(idx.dims, "x"), ")"));
  }
  if (payload_bytes > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header dimensions ", absl::StrJoin(idx.dims, "x"),
                     " describe more than ", kMaxPayloadBytes, " bytes of ", what, "s"));
  }
  idx.payload.resize(payload_bytes);
  const int64_t got = read(idx.payload.data(), payload_bytes);
  uint8_t extra;
  const int64_t more = got == static_cast<int64_t>(payload_bytes) ? read(&extra, 1) : 0;
  if (got < 0 || more < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": corrupt gzip data"));
  }
  if (got != static_cast<int64_t>(payload_bytes) || more != 0) {
    const std::string shape =
        rank == 3 ? absl::StrCat(idx.dims[0], " images of ", idx.dims[1], "x", idx.dims[2])
                  : absl::StrCat(idx.dims[0], " labels");
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected ", shape, " but the file has ",
                     more != 0 ? absl::StrCat("more than ", header_bytes + payload_bytes)
                               : absl::StrCat(header_bytes + got),
                     " bytes"));
  }
  return idx;
}

std::string WithGz(const std::string& path) {
  std::error_code error;  // a path we cannot stat is reported when it is opened
  if (std::filesystem::exists(path, error)) return path;
  return path + ".gz";
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dataset>> LoadIdx(const std::string& images_path,
                                                 const std::string& labels_path) {
  auto images = ReadIdx(images_path, 0x803, 3, "image");
  if (!images.ok()) return images.status();
  auto labels = ReadIdx(labels_path, 0x801, 1, "label");
  if (!labels.ok()) return labels.status();
  const int64_t n = images->dims[0], rows = images->dims[1], cols = images->dims[2];
  if (labels->dims[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": ", labels->dims[0], " labels for ", n, " images"));
  }
  // from_blob borrows the buffers; the conversions copy out of them.
  absl::StatusOr<std::unique_ptr<Dataset>> dataset;
  const absl::Status converted = compression::CatchTorch(images_path, [&] {
    dataset = Dataset::FromTensors(
        images_path,
        torch::from_blob(images->payload.data(), {n, 1, rows, cols}, torch::kUInt8)
            .to(torch::kFloat)
            .div_(255),
        torch::from_blob(labels->payload.data(), {n}, torch::kUInt8).to(torch::kLong));
    return absl::OkStatus();
  });
  if (!converted.ok()) return converted;
  return dataset;
}

absl::StatusOr<std::unique_ptr<Dataset>> LoadIdxSplit(const std::string& directory,
                                                      const std::string& prefix) {
  std::string images = WithGz(absl::StrCat(directory, "/", prefix, "-images-idx3-ubyte"));
  std::string labels = WithGz(absl::StrCat(directory, "/", prefix, "-labels-idx1-ubyte"));
  std::error_code error;
  if (!std::filesystem::exists(images, error)) {
    // A directory that holds one split only (a dataset artifact of one split) is that
    // split, whatever its prefix.
    std::vector<std::string> found;
    for (const auto& entry : std::filesystem::directory_iterator(directory, error)) {
      const std::string name = entry.path().filename().string();
      for (const char* suffix : {"-images-idx3-ubyte", "-images-idx3-ubyte.gz"}) {
        if (absl::EndsWith(name, suffix))
          found.push_back(name.substr(0, name.size() - strlen(suffix)));
      }
    }
    if (found.size() == 1) {
      images = WithGz(absl::StrCat(directory, "/", found[0], "-images-idx3-ubyte"));
      labels = WithGz(absl::StrCat(directory, "/", found[0], "-labels-idx1-ubyte"));
    }
  }
  return LoadIdx(images, labels);
}

}  // namespace autocompress::training
