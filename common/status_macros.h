// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status, which Abseil 20220623 lacks.
// Abseil only: the LibTorch-only compression library uses them without gRPC.
#ifndef AUTOCOMPRESS_COMMON_STATUS_MACROS_H_
#define AUTOCOMPRESS_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define AC_STATUS_CONCAT_INNER_(a, b) a##b
#define AC_STATUS_CONCAT_(a, b) AC_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status ac_status_ = (expr);      \
    if (!ac_status_.ok()) return ac_status_; \
  } while (false)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>), returns its
// status when not OK, else assigns (moves) the value to `lhs`, which may declare a
// variable: ASSIGN_OR_RETURN(auto space, Parse(text));
#define ASSIGN_OR_RETURN(lhs, expr) \
  AC_ASSIGN_OR_RETURN_IMPL_(AC_STATUS_CONCAT_(ac_statusor_, __LINE__), lhs, expr)

#define AC_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // AUTOCOMPRESS_COMMON_STATUS_MACROS_H_
