#include "tuner_service/tuner_server.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace autocompress::tuner {

absl::StatusOr<std::unique_ptr<TunerServer>> TunerServer::BuildAndStart(
    const Options& options, prometheus::Registry& registry) {
  if (options.tuner.max_studies < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_studies: ", options.tuner.max_studies, " must be >= 1"));
  }
  std::unique_ptr<TunerServer> server(new TunerServer());
  std::vector<HostedService> services;
  services.push_back({std::make_unique<TunerServiceImpl>(registry, options.tuner),
                      v1::TunerService::service_full_name()});
  RETURN_IF_ERROR(server->Start(options.server, registry, std::move(services)));
  return server;
}

}  // namespace autocompress::tuner
