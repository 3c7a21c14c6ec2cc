// Bridge between absl::Status (used by all library code) and grpc::Status (used only at
// gRPC boundaries). The two code enums are numerically equal, so the bridge is lossless
// for every canonical code; anything outside 0..16 becomes UNKNOWN. Also brings the
// RETURN_IF_ERROR / ASSIGN_OR_RETURN macros (status_macros.h, which needs no gRPC).
#ifndef AUTOCOMPRESS_COMMON_STATUS_H_
#define AUTOCOMPRESS_COMMON_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"

namespace autocompress {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_STATUS_H_
