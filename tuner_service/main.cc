// tuner_server: hosts TunerService (search spaces, suggestion algorithms, assessors).
#include "absl/flags/parse.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "tuner_service/tuner_service_impl.h"

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);

  autocompress::tuner::TunerServiceImpl tuner(*autocompress::ProcessRegistry());
  return autocompress::RunServerProcess(
      autocompress::ServerProcessOptionsFromFlags("tuner", /*default_port=*/7401,
                                                  /*default_metrics_port=*/9401),
      {{&tuner, "autocompress.v1.TunerService"}});
}
