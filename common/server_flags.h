// Flags every server binary shares (--host, --port, --metrics_port, --max_message_bytes,
// --shutdown_grace), mapped to ServerProcessOptions. Binary-specific flags live in each
// main.cc.
#ifndef AUTOCOMPRESS_COMMON_SERVER_FLAGS_H_
#define AUTOCOMPRESS_COMMON_SERVER_FLAGS_H_

#include <string>

#include "common/server_process.h"

namespace autocompress {

// Options for `service` ("tuner", "scheduler", "worker") from the shared flags; the
// defaults apply when --port / --metrics_port are not given (see README's port table).
ServerProcessOptions ServerProcessOptionsFromFlags(const std::string& service, int default_port,
                                                   int default_metrics_port);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SERVER_FLAGS_H_
