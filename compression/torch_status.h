// The one place where LibTorch exceptions become absl::Status, so none crosses the
// compression library's API: CUDA out-of-memory -> ResourceExhausted, errors about the
// model or arguments (c10::Error) -> InvalidArgument, anything else -> Internal.
#ifndef AUTOCOMPRESS_COMPRESSION_TORCH_STATUS_H_
#define AUTOCOMPRESS_COMPRESSION_TORCH_STATUS_H_

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace autocompress::compression {

// Converts the exception in flight (call from a catch block) to a status; `context`
// says what was being done ("loading model.pt").
absl::Status StatusFromCurrentException(absl::string_view context);

// Runs `f` (returning absl::Status or absl::StatusOr<T>) and converts any exception it
// throws.
template <typename F>
auto CatchTorch(absl::string_view context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_TORCH_STATUS_H_
