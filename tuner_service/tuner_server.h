// TunerServer: TunerService assembled as a gRPC server (health, reflection, RPC metrics
// `autocompress_tuner_rpc_*`, graceful shutdown). tuner_server's main.cc maps flags to
// Options; the embedded `autocompress run` and tests build it directly.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_TUNER_SERVER_H_
#define AUTOCOMPRESS_TUNER_SERVICE_TUNER_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/server.h"
#include "common/server_runner.h"
#include "tuner_service/tuner_service_impl.h"

namespace autocompress::tuner {

class TunerServer final : public Server {
 public:
  struct Options {
    ServerOptions server;
    TunerServiceOptions tuner;
  };

  // Builds the service and starts listening; Unavailable when the port cannot be bound,
  // InvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<TunerServer>> BuildAndStart(const Options& options,
                                                                    prometheus::Registry& registry);

 private:
  TunerServer() : Server("tuner") {}
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_TUNER_SERVER_H_
