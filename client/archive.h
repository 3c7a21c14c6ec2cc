// Packing local data for upload: a folder, or the two files of an IDX split, into one
// tar archive (the DATASET artifacts the worker extracts). Reproducible: members in name
// order, with zero times, owner 0 and mode 0644, so packing the same files twice gives
// the same bytes, the same SHA-256, and the scheduler stores and workers cache it once.
#ifndef AUTOCOMPRESS_CLIENT_ARCHIVE_H_
#define AUTOCOMPRESS_CLIENT_ARCHIVE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace autocompress {

// Writes `members` ({local file, name in the archive}) as a tar file at `output`.
// Internal naming the file for a read or write error.
absl::Status WriteTar(std::vector<std::pair<std::string, std::string>> members,
                      const std::string& output);

// The members a dataset path stands for: a regular file is uploaded as it is (empty
// result); a folder gives its regular files (recursively, relative names); an IDX prefix
// (".../train" naming train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])
// gives those two files. InvalidArgument when the path is none of these.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DatasetMembers(
    const std::string& path);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_ARCHIVE_H_
