// tuner_server: hosts TunerService (search spaces, suggestion algorithms, assessors).
// Until the tuner issue lands the service answers UNIMPLEMENTED; health, metrics and
// graceful shutdown already work.
#include "absl/flags/parse.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/logging.h"
#include "common/server_flags.h"
#include "common/server_process.h"

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);

  autocompress::v1::TunerService::Service tuner;
  return autocompress::RunServerProcess(
      autocompress::ServerProcessOptionsFromFlags("tuner", /*default_port=*/7401,
                                                  /*default_metrics_port=*/9401),
      {{&tuner, "autocompress.v1.TunerService"}});
}
