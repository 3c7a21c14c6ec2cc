#include "compression/torch_status.h"

#include <c10/util/Exception.h>

#include <new>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace autocompress::compression {

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const c10::Error& e) {
    // The first line is the message; the rest is a C++ backtrace.
    std::string message = e.what_without_backtrace();
    if (absl::StrContains(message, "out of memory")) {
      return absl::ResourceExhaustedError(absl::StrCat(context, ": ", message));
    }
    return absl::InvalidArgumentError(absl::StrCat(context, ": ", message));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": out of host memory"));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, ": unknown exception"));
  }
}

}  // namespace autocompress::compression
