// TunerServiceImpl: the gRPC adapter over Study. It keeps studies in memory by id,
// converts requests and statuses once, and records tuner metrics:
//   autocompress_tuner_suggest_duration_seconds{algorithm}  time to produce one batch
//   autocompress_tuner_studies                              studies held now
//   autocompress_tuner_observations_total{kind}             observations received
// Thread-safe; each study has its own lock, so studies do not block each other.
#ifndef AUTOCOMPRESS_TUNER_SERVICE_TUNER_SERVICE_IMPL_H_
#define AUTOCOMPRESS_TUNER_SERVICE_TUNER_SERVICE_IMPL_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "tuner_service/study.h"

namespace prometheus {
class Registry;
}

namespace autocompress::tuner {

struct TunerServiceOptions {
  // Studies held at once; CreateStudy beyond it is RESOURCE_EXHAUSTED.
  int max_studies = 10000;
};

class TunerServiceImpl final : public v1::TunerService::Service {
 public:
  TunerServiceImpl(prometheus::Registry& registry, TunerServiceOptions options = {});
  ~TunerServiceImpl() override;

  grpc::Status ValidateSearchSpace(grpc::ServerContext* context,
                                   const v1::ValidateSearchSpaceRequest* request,
                                   v1::ValidateSearchSpaceResponse* response) override;
  grpc::Status CreateStudy(grpc::ServerContext* context, const v1::CreateStudyRequest* request,
                           v1::CreateStudyResponse* response) override;
  grpc::Status Suggest(grpc::ServerContext* context, const v1::SuggestRequest* request,
                       v1::SuggestResponse* response) override;
  grpc::Status Report(grpc::ServerContext* context, const v1::ReportRequest* request,
                      v1::ReportResponse* response) override;
  grpc::Status DeleteStudy(grpc::ServerContext* context, const v1::DeleteStudyRequest* request,
                           v1::DeleteStudyResponse* response) override;

 private:
  struct Metrics;
  absl::StatusOr<std::shared_ptr<Study>> Find(const std::string& study_id);

  TunerServiceOptions options_;
  std::unique_ptr<Metrics> metrics_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Study>> studies_ ABSL_GUARDED_BY(mu_);
};

}  // namespace autocompress::tuner

#endif  // AUTOCOMPRESS_TUNER_SERVICE_TUNER_SERVICE_IMPL_H_
