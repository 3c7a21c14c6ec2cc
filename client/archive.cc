#include "client/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"

namespace autocompress {
namespace fs = std::filesystem;

absl::Status WriteTar(std::vector<std::pair<std::string, std::string>> members,
                      const std::string& output) {
  std::sort(members.begin(), members.end(),
            [](const auto& a, const auto& b) { return a.second < b.second; });
  std::unique_ptr<archive, int (*)(archive*)> tar(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(tar.get());
  if (archive_write_open_filename(tar.get(), output.c_str()) != ARCHIVE_OK) {
    return absl::InternalError(
        absl::StrCat("cannot write ", output, ": ", archive_error_string(tar.get())));
  }
  std::string buffer(1 << 20, '\0');
  for (const auto& [file, name] : members) {
    std::unique_ptr<FILE, int (*)(FILE*)> in(fopen(file.c_str(), "rb"), fclose);
    std::error_code error;
    const uintmax_t size = fs::file_size(file, error);
    if (in == nullptr || error) {
      return absl::InternalError(absl::StrCat("cannot read ", file, ": ", strerror(errno)));
    }
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(),
                                                                   archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_mtime(entry.get(), 0, 0);
    if (archive_write_header(tar.get(), entry.get()) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("cannot write ", output, ": ", archive_error_string(tar.get())));
    }
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), in.get())) > 0) {
      if (archive_write_data(tar.get(), buffer.data(), n) != static_cast<la_ssize_t>(n)) {
        return absl::InternalError(
            absl::StrCat("cannot write ", output, ": ", archive_error_string(tar.get())));
      }
    }
    if (ferror(in.get())) {
      return absl::InternalError(absl::StrCat("cannot read ", file, ": ", strerror(errno)));
    }
  }
  if (archive_write_close(tar.get()) != ARCHIVE_OK) {
    return absl::InternalError(
        absl::StrCat("cannot write ", output, ": ", archive_error_string(tar.get())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DatasetMembers(
    const std::string& path) {
  std::vector<std::pair<std::string, std::string>> members;
  std::error_code error;
  if (fs::is_regular_file(path, error)) return members;
  if (fs::is_directory(path, error)) {
    for (auto it = fs::recursive_directory_iterator(path, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_regular_file()) {
        members.emplace_back(it->path().string(), fs::relative(it->path(), path).string());
      }
    }
    if (members.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": the folder holds no files"));
    }
    return members;
  }
  for (const char* kind : {"-images-idx3-ubyte", "-labels-idx1-ubyte"}) {
    bool found = false;
    for (const char* suffix : {"", ".gz"}) {
      const std::string file = absl::StrCat(path, kind, suffix);
      if (fs::is_regular_file(file, error)) {
        members.emplace_back(file, fs::path(file).filename().string());
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is neither a file, a folder, nor an IDX prefix (", path, kind,
                       "[.gz] is missing)"));
    }
  }
  return members;
}

}  // namespace autocompress
