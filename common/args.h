// Typed, validated access to an algorithm's JSON arguments (a tuner's classArgs, a
// pruner's kwargs), so every algorithm rejects unknown keys and out-of-range values with
// the same clear messages.
#ifndef AUTOCOMPRESS_COMMON_ARGS_H_
#define AUTOCOMPRESS_COMMON_ARGS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace autocompress {

// `name` lower-cased without '_' and '-', so "GridSearch", "grid_search" and "Grid-Search"
// name the same registry entry.
std::string NormalizedName(absl::string_view name);

class Args {
 public:
  // Parses `json_text` (an object, or empty for none). `owner` names the algorithm in
  // messages ("tpe args: ...").
  static absl::StatusOr<Args> Parse(absl::string_view json_text, absl::string_view owner);
  // The same, for arguments found at `path` of a larger input: messages read
  // "kwargs.scale: ..." and "kwargs: unknown key(s) x for l1; known: ...".
  static absl::StatusOr<Args> ParseAt(absl::string_view json_text, absl::string_view path,
                                      absl::string_view owner);
  Args(Args&&) noexcept;
  Args& operator=(Args&&) noexcept;
  ~Args();

  // Each getter returns `fallback` when the key is absent and InvalidArgument when the
  // value has the wrong type or lies outside [min, max].
  absl::StatusOr<int> Int(absl::string_view key, int fallback, int min, int max);
  absl::StatusOr<double> Double(absl::string_view key, double fallback, double min, double max);
  absl::StatusOr<bool> Bool(absl::string_view key, bool fallback);
  absl::StatusOr<std::string> OneOf(absl::string_view key, absl::string_view fallback,
                                    const std::vector<std::string>& allowed);

  // InvalidArgument naming any key no getter asked for (typos), except those in
  // `ignored` (e.g. optimize_mode, which the experiment's objective sets).
  absl::Status CheckAllUsed(const std::vector<std::string>& ignored = {"optimize_mode"}) const;

 private:
  struct Impl;
  explicit Args(std::unique_ptr<Impl> impl);
  static absl::StatusOr<Args> ParseImpl(absl::string_view json_text, std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_ARGS_H_
