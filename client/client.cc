#include "client/client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/artifact_transfer.h"
#include "common/auth.h"
#include "common/channel.h"
#include "common/status.h"

namespace autocompress {
namespace {

std::string RandomRequestId() {
  absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen), absl::Uniform<uint64_t>(gen));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_attempts is ", options.max_attempts, ", must be >= 1"));
  }
  ChannelOptions channel;
  RETURN_IF_ERROR(
      ApplyClientSecurity({options.tls, options.tls_root_certs_file, options.tls_cert_file,
                           options.tls_key_file, options.tls_server_name, options.token},
                          /*flag_prefix=*/"", &channel));
  return std::make_unique<Client>(CreateChannel(options.address, channel), options);
}

Client::Client(std::shared_ptr<grpc::Channel> channel, const ClientOptions& options)
    : options_(options),
      channel_(std::move(channel)),
      experiments_(v1::ExperimentService::NewStub(channel_)),
      artifacts_(v1::ArtifactService::NewStub(channel_)) {}

Client::~Client() = default;

absl::Status Client::Call(const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  RetryOptions retry;
  retry.attempt_timeout = options_.timeout;
  retry.max_attempts = options_.max_attempts;
  return FromGrpcStatus(CallWithRetry(retry, call));
}

absl::StatusOr<v1::Experiment> Client::CreateExperiment(const v1::ExperimentSpec& spec,
                                                        std::string request_id) {
  v1::CreateExperimentRequest request;
  *request.mutable_spec() = spec;
  request.set_request_id(request_id.empty() ? RandomRequestId() : std::move(request_id));
  v1::CreateExperimentResponse response;
  RETURN_IF_ERROR(Call([&](grpc::ClientContext* c) {
    return experiments_->CreateExperiment(c, request, &response);
  }));
  return response.experiment();
}

absl::StatusOr<v1::Experiment> Client::GetExperiment(const std::string& experiment_id) {
  v1::GetExperimentRequest request;
  request.set_experiment_id(experiment_id);
  v1::GetExperimentResponse response;
  RETURN_IF_ERROR(Call(
      [&](grpc::ClientContext* c) { return experiments_->GetExperiment(c, request, &response); }));
  return response.experiment();
}

absl::StatusOr<v1::ListExperimentsResponse> Client::ListExperiments(
    const v1::ListExperimentsRequest& request) {
  v1::ListExperimentsResponse response;
  RETURN_IF_ERROR(Call([&](grpc::ClientContext* c) {
    return experiments_->ListExperiments(c, request, &response);
  }));
  return response;
}

absl::StatusOr<std::vector<v1::Experiment>> Client::ListAllExperiments(
    v1::ListExperimentsRequest request) {
  std::vector<v1::Experiment> all;
  request.clear_page_token();
  do {
    ASSIGN_OR_RETURN(v1::ListExperimentsResponse page, ListExperiments(request));
    for (v1::Experiment& e : *page.mutable_experiments()) all.push_back(std::move(e));
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return all;
}

absl::StatusOr<v1::Experiment> Client::StopExperiment(const std::string& experiment_id) {
  v1::StopExperimentRequest request;
  request.set_experiment_id(experiment_id);
  v1::StopExperimentResponse response;
  RETURN_IF_ERROR(Call(
      [&](grpc::ClientContext* c) { return experiments_->StopExperiment(c, request, &response); }));
  return response.experiment();
}

absl::StatusOr<v1::Experiment> Client::ResumeExperiment(const std::string& experiment_id,
                                                        const v1::ExperimentLimits& limits,
                                                        const std::vector<std::string>& paths) {
  v1::ResumeExperimentRequest request;
  request.set_experiment_id(experiment_id);
  *request.mutable_limits() = limits;
  for (const std::string& path : paths) request.mutable_update_mask()->add_paths(path);
  v1::ResumeExperimentResponse response;
  RETURN_IF_ERROR(Call([&](grpc::ClientContext* c) {
    return experiments_->ResumeExperiment(c, request, &response);
  }));
  return response.experiment();
}

absl::StatusOr<v1::Experiment> Client::UpdateExperiment(const std::string& experiment_id,
                                                        const v1::ExperimentLimits& limits,
                                                        const std::vector<std::string>& paths,
                                                        int64_t expected_version) {
  v1::UpdateExperimentRequest request;
  request.set_experiment_id(experiment_id);
  *request.mutable_limits() = limits;
  for (const std::string& path : paths) request.mutable_update_mask()->add_paths(path);
  request.set_expected_version(expected_version);
  v1::UpdateExperimentResponse response;
  RETURN_IF_ERROR(Call([&](grpc::ClientContext* c) {
    return experiments_->UpdateExperiment(c, request, &response);
  }));
  return response.experiment();
}

absl::StatusOr<v1::ListTrialsResponse> Client::ListTrials(const v1::ListTrialsRequest& request) {
  v1::ListTrialsResponse response;
  RETURN_IF_ERROR(Call(
      [&](grpc::ClientContext* c) { return experiments_->ListTrials(c, request, &response); }));
  return response;
}

absl::StatusOr<std::vector<v1::Trial>> Client::ListAllTrials(v1::ListTrialsRequest request) {
  std::vector<v1::Trial> all;
  request.clear_page_token();
  do {
    ASSIGN_OR_RETURN(v1::ListTrialsResponse page, ListTrials(request));
    for (v1::Trial& t : *page.mutable_trials()) all.push_back(std::move(t));
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return all;
}

absl::StatusOr<v1::Trial> Client::GetTrial(const std::string& trial_id) {
  v1::GetTrialRequest request;
  request.set_trial_id(trial_id);
  v1::GetTrialResponse response;
  RETURN_IF_ERROR(
      Call([&](grpc::ClientContext* c) { return experiments_->GetTrial(c, request, &response); }));
  return response.trial();
}

absl::StatusOr<v1::ListParetoTrialsResponse> Client::ListParetoTrials(
    const std::string& experiment_id) {
  v1::ListParetoTrialsRequest request;
  request.set_experiment_id(experiment_id);
  v1::ListParetoTrialsResponse response;
  RETURN_IF_ERROR(Call([&](grpc::ClientContext* c) {
    return experiments_->ListParetoTrials(c, request, &response);
  }));
  return response;
}

absl::Status Client::Watch(const std::string& experiment_id, int64_t after_sequence,
                           bool follow_resumes,
                           const std::function<bool(const v1::ExperimentEvent&)>& on_event,
                           absl::Duration max_duration) {
  const absl::Time end = absl::Now() + max_duration;
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    generation = cancel_generation_;
  }
  absl::Duration backoff = absl::Milliseconds(100);
  int64_t last = after_sequence;
  while (true) {
    grpc::ClientContext context;
    if (max_duration != absl::InfiniteDuration()) context.set_deadline(absl::ToChronoTime(end));
    {
      absl::MutexLock lock(&mu_);
      if (cancel_generation_ != generation) return absl::CancelledError("watch canceled");
      watches_.insert(&context);
    }
    v1::WatchExperimentRequest request;
    request.set_experiment_id(experiment_id);
    request.set_after_sequence(last);
    request.set_follow_resumes(follow_resumes);
    auto reader = experiments_->WatchExperiment(&context, request);
    bool stopped_by_caller = false;
    bool got_any = false;
    v1::ExperimentEvent event;
    while (reader->Read(&event)) {
      got_any = true;
      // The opening snapshot of a watch from 0 shares one sequence; later events are
      // strictly increasing, so `last` is what a re-opened watch passes on.
      last = std::max(last, event.sequence());
      if (!on_event(event)) {
        stopped_by_caller = true;
        context.TryCancel();
        break;
      }
    }
    const grpc::Status status = reader->Finish();
    bool canceled;
    {
      absl::MutexLock lock(&mu_);
      watches_.erase(&context);
      canceled = cancel_generation_ != generation;
    }
    if (stopped_by_caller) return absl::OkStatus();
    if (canceled) return absl::CancelledError("watch canceled");
    if (status.ok()) return absl::OkStatus();
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && absl::Now() >= end) {
      return absl::OkStatus();
    }
    if (!IsRetryable(status)) return FromGrpcStatus(status);
    if (got_any) backoff = absl::Milliseconds(100);
    if (absl::Now() + backoff >= end) return absl::OkStatus();
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

void Client::CancelWatches() {
  absl::MutexLock lock(&mu_);
  ++cancel_generation_;
  for (grpc::ClientContext* context : watches_) context->TryCancel();
}

absl::StatusOr<v1::ArtifactRef> Client::Upload(const std::string& path, const std::string& name,
                                               v1::ArtifactKind kind) {
  absl::StatusOr<v1::ArtifactRef> ref;
  RETURN_IF_ERROR(Call([&](grpc::ClientContext*) {
    // Transfers make their own contexts (one per stream); the retry loop only re-runs
    // them on UNAVAILABLE.
    ref = UploadArtifact(*artifacts_, path, name, kind, options_.transfer_timeout);
    return ToGrpcStatus(ref.status());
  }));
  return ref;
}

absl::Status Client::Download(const v1::ArtifactRef& ref, const std::string& path) {
  // Written beside the target, renamed when verified: the file is whole or absent.
  const std::string partial = path + ".partial";
  RETURN_IF_ERROR(Call([&](grpc::ClientContext*) {
    return ToGrpcStatus(DownloadArtifact(*artifacts_, ref, partial, options_.transfer_timeout));
  }));
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    std::remove(partial.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::ArtifactRef> Client::Stat(const std::string& sha256) {
  v1::StatRequest request;
  request.set_sha256(sha256);
  v1::StatResponse response;
  RETURN_IF_ERROR(
      Call([&](grpc::ClientContext* c) { return artifacts_->Stat(c, request, &response); }));
  return response.artifact();
}

}  // namespace autocompress
