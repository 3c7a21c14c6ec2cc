#include "tuner_service/tuner_service_impl.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "glog/logging.h"

namespace autocompress::tuner {
namespace {

constexpr size_t kMaxStudyIdBytes = 256;

absl::Status CheckStudyId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("study_id: must not be empty");
  if (id.size() > kMaxStudyIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("study_id: ", id.size(), " bytes exceed the limit of ", kMaxStudyIdBytes));
  }
  return absl::OkStatus();
}

// Logs a failed call once, with its method, and converts it.
grpc::Status Fail(absl::string_view method, const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInternal) {
    LOG(ERROR) << "service=tuner method=" << method << " status=" << status;
  } else {
    VLOG(1) << "service=tuner method=" << method << " status=" << status;
  }
  return ToGrpcStatus(status);
}

}  // namespace

struct TunerServiceImpl::Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : suggest_seconds(prometheus::BuildHistogram()
                            .Name("autocompress_tuner_suggest_duration_seconds")
                            .Help("Time to produce one Suggest batch, by algorithm")
                            .Register(registry)),
        studies(prometheus::BuildGauge()
                    .Name("autocompress_tuner_studies")
                    .Help("Studies held in memory")
                    .Register(registry)
                    .Add({})),
        observations(prometheus::BuildCounter()
                         .Name("autocompress_tuner_observations_total")
                         .Help("Observations received, by kind")
                         .Register(registry)) {}
  prometheus::Family<prometheus::Histogram>& suggest_seconds;
  prometheus::Gauge& studies;
  prometheus::Family<prometheus::Counter>& observations;
};

TunerServiceImpl::TunerServiceImpl(prometheus::Registry& registry, TunerServiceOptions options)
    : options_(options), metrics_(std::make_unique<Metrics>(registry)) {}

TunerServiceImpl::~TunerServiceImpl() = default;

absl::StatusOr<std::shared_ptr<Study>> TunerServiceImpl::Find(const std::string& study_id) {
  RETURN_IF_ERROR(CheckStudyId(study_id));
  absl::MutexLock lock(&mu_);
  auto it = studies_.find(study_id);
  if (it == studies_.end()) {
    return absl::NotFoundError(
        absl::StrCat("study '", study_id,
                     "' is not known to this tuner; re-create it with CreateStudy and "
                     "its history"));
  }
  return it->second;
}

grpc::Status TunerServiceImpl::ValidateSearchSpace(grpc::ServerContext*,
                                                   const v1::ValidateSearchSpaceRequest* request,
                                                   v1::ValidateSearchSpaceResponse* response) {
  std::vector<ValidationIssue> issues;
  auto space = SearchSpace::Parse(request->search_space_json(), {}, &issues);
  if (space.ok() && !request->algorithm().empty()) {
    auto algorithm = CreateAlgorithm(request->algorithm(), "", *space);
    if (!algorithm.ok()) issues.push_back({"", std::string(algorithm.status().message())});
  }
  for (const ValidationIssue& issue : issues) {
    v1::ValidationIssue* out = response->add_issues();
    out->set_path(issue.path);
    out->set_message(issue.message);
  }
  response->set_valid(issues.empty());
  if (space.ok()) response->set_parameter_count((*space)->size());
  return grpc::Status::OK;
}

grpc::Status TunerServiceImpl::CreateStudy(grpc::ServerContext*,
                                           const v1::CreateStudyRequest* request,
                                           v1::CreateStudyResponse* response) {
  if (absl::Status s = CheckStudyId(request->study_id()); !s.ok()) return Fail("CreateStudy", s);
  auto study = Study::Create(*request);
  if (!study.ok()) return Fail("CreateStudy", study.status());
  response->set_replayed_observations((*study)->replayed_observations());
  {
    absl::MutexLock lock(&mu_);
    const bool replacing = studies_.contains(request->study_id());
    if (!replacing && static_cast<int>(studies_.size()) >= options_.max_studies) {
      return Fail("CreateStudy", absl::ResourceExhaustedError(absl::StrCat(
                                     "the tuner holds ", studies_.size(),
                                     " studies already (limit ", options_.max_studies, ")")));
    }
    studies_[request->study_id()] = std::shared_ptr<Study>(std::move(*study));
    metrics_->studies.Set(static_cast<double>(studies_.size()));
  }
  LOG(INFO) << "service=tuner event=study_created study=" << request->study_id()
            << " suggestions=" << request->past_suggestions_size()
            << " observations=" << request->past_observations_size();
  return grpc::Status::OK;
}

grpc::Status TunerServiceImpl::Suggest(grpc::ServerContext*, const v1::SuggestRequest* request,
                                       v1::SuggestResponse* response) {
  auto study = Find(request->study_id());
  if (!study.ok()) return Fail("Suggest", study.status());
  const absl::Time start = absl::Now();
  auto result = (*study)->Suggest(request->count(), request->request_id());
  if (!result.ok()) return Fail("Suggest", result.status());
  metrics_->suggest_seconds.Add({{"algorithm", (*study)->algorithm_name()}}, RpcLatencyBuckets())
      .Observe(absl::ToDoubleSeconds(absl::Now() - start));
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status TunerServiceImpl::Report(grpc::ServerContext*, const v1::ReportRequest* request,
                                      v1::ReportResponse* response) {
  auto study = Find(request->study_id());
  if (!study.ok()) return Fail("Report", study.status());
  auto result = (*study)->Report(*request);
  if (!result.ok()) return Fail("Report", result.status());
  for (const v1::Observation& o : request->observations()) {
    const char* kind = o.kind() == v1::OBSERVATION_KIND_FINAL          ? "final"
                       : o.kind() == v1::OBSERVATION_KIND_INTERMEDIATE ? "intermediate"
                                                                       : "abandoned";
    metrics_->observations.Add({{"kind", kind}}).Increment();
  }
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status TunerServiceImpl::DeleteStudy(grpc::ServerContext*,
                                           const v1::DeleteStudyRequest* request,
                                           v1::DeleteStudyResponse* response) {
  if (absl::Status s = CheckStudyId(request->study_id()); !s.ok()) return Fail("DeleteStudy", s);
  absl::MutexLock lock(&mu_);
  response->set_existed(studies_.erase(request->study_id()) > 0);
  metrics_->studies.Set(static_cast<double>(studies_.size()));
  return grpc::Status::OK;
}

}  // namespace autocompress::tuner
