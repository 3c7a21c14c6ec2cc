// Conversions between absl time types and google.protobuf.Timestamp / Duration.
#ifndef AUTOCOMPRESS_COMMON_PROTO_TIME_H_
#define AUTOCOMPRESS_COMMON_PROTO_TIME_H_

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace autocompress {

google::protobuf::Timestamp ToProtoTime(absl::Time time);
absl::Time FromProtoTime(const google::protobuf::Timestamp& timestamp);
google::protobuf::Duration ToProtoDuration(absl::Duration duration);
absl::Duration FromProtoDuration(const google::protobuf::Duration& duration);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_PROTO_TIME_H_
