// Flags every server binary shares (--host, --port, --metrics_port, --max_message_bytes,
// --shutdown_grace, --health_grace, --tls_cert, --tls_key, --tls_client_ca,
// --metrics_password), mapped to ServerOptions and the metrics endpoint.
// Binary-specific flags live in each main.cc.
#ifndef AUTOCOMPRESS_COMMON_SERVER_FLAGS_H_
#define AUTOCOMPRESS_COMMON_SERVER_FLAGS_H_

#include "common/server_process.h"
#include "common/server_runner.h"

namespace autocompress {

struct ServerFlags {
  ServerOptions server;
  MetricsEndpoint metrics;
};

// The shared flags; the defaults apply when --port / --metrics_port are not given (see
// README's port table).
ServerFlags ServerFlagsWithDefaults(int default_port, int default_metrics_port);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_COMMON_SERVER_FLAGS_H_
