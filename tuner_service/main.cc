// tuner_server: hosts TunerService (search spaces, suggestion algorithms, assessors).
// Only maps flags to TunerServer::Options; see tuner_server.h.
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/auth.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/server_flags.h"
#include "common/server_process.h"
#include "tuner_service/tuner_server.h"

ABSL_FLAG(int32_t, max_studies, autocompress::tuner::TunerServiceOptions().max_studies,
          "Studies held in memory at once; CreateStudy beyond it answers RESOURCE_EXHAUSTED.");

ABSL_FLAG(std::string, token, "",
          "Bearer token every call but health checks must carry (default: "
          "$AUTOCOMPRESS_TUNER_TOKEN; empty = none). The scheduler sends it with --tuner_token.");

int main(int argc, char** argv) {
  autocompress::BlockShutdownSignals();
  absl::ParseCommandLine(argc, argv);
  autocompress::InitLogging(argv[0]);

  const autocompress::ServerFlags flags =
      autocompress::ServerFlagsWithDefaults(/*default_port=*/7401, /*default_metrics_port=*/9401);
  autocompress::tuner::TunerServer::Options options;
  options.server = flags.server;
  options.server.security.tokens.push_back(
      {autocompress::FlagOrEnv(absl::GetFlag(FLAGS_token), "AUTOCOMPRESS_TUNER_TOKEN"), {}});
  options.tuner.max_studies = absl::GetFlag(FLAGS_max_studies);
  return autocompress::RunServerProcess(
      flags.metrics,
      autocompress::tuner::TunerServer::BuildAndStart(options, *autocompress::ProcessRegistry()));
}
