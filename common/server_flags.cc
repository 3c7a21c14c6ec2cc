#include "common/server_flags.h"

#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "common/auth.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address the gRPC and metrics servers bind.");
ABSL_FLAG(int32_t, port, -1,
          "gRPC port; 0 picks a free port (printed on the READY line); -1 = the service's "
          "default port.");
ABSL_FLAG(int32_t, metrics_port, -1,
          "Prometheus /metrics port; 0 picks a free port (printed on the READY line); -1 = "
          "the service's default port.");
ABSL_FLAG(int32_t, max_message_bytes, autocompress::ServerOptions().max_message_bytes,
          "Largest gRPC message accepted, in bytes.");
ABSL_FLAG(absl::Duration, shutdown_grace, autocompress::ServerOptions().shutdown_grace,
          "How long in-flight calls (and idle clients acknowledging GOAWAY) may take after "
          "SIGTERM before the server cancels them and exits.");
ABSL_FLAG(absl::Duration, health_grace, autocompress::ServerOptions().health_grace,
          "On SIGTERM, how long health checks answer NOT_SERVING while calls are still "
          "accepted (set it above the readiness probe period on Kubernetes).");

ABSL_FLAG(std::string, metrics_password, "",
          "Password of HTTP basic auth on /metrics (any user name); empty = "
          "$AUTOCOMPRESS_METRICS_PASSWORD, else /metrics is open.");
ABSL_FLAG(std::string, tls_cert, "",
          "TLS certificate chain (PEM) of the gRPC port; with --tls_key. Unset = plaintext.");
ABSL_FLAG(std::string, tls_key, "", "TLS private key (PEM) of the gRPC port.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "With TLS: clients must present a certificate signed by these roots (PEM; mutual "
          "TLS).");

namespace autocompress {

ServerFlags ServerFlagsWithDefaults(int default_port, int default_metrics_port) {
  ServerFlags flags;
  flags.server.host = absl::GetFlag(FLAGS_host);
  const int port = absl::GetFlag(FLAGS_port);
  const int metrics_port = absl::GetFlag(FLAGS_metrics_port);
  flags.server.port = port < 0 ? default_port : port;
  flags.server.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  flags.server.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  flags.server.health_grace = absl::GetFlag(FLAGS_health_grace);
  flags.server.security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  flags.server.security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  flags.server.security.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  flags.metrics.host = flags.server.host;
  flags.metrics.port = metrics_port < 0 ? default_metrics_port : metrics_port;
  flags.metrics.password =
      FlagOrEnv(absl::GetFlag(FLAGS_metrics_password), "AUTOCOMPRESS_METRICS_PASSWORD");
  return flags;
}

}  // namespace autocompress
