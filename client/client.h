// autocompress::Client: the C++ SDK for a scheduler's ExperimentService and
// ArtifactService. Every call has a deadline and is retried (backoff, jitter) only on
// UNAVAILABLE, through common/channel.h; other codes come back as the answer, as
// absl::Status with the server's code and message. TLS and a bearer token are options,
// so the same client talks to an embedded scheduler on loopback and to one behind a
// cluster's ingress.
//
// Thread-safe: calls may be issued from several threads at once; CancelWatches() may be
// called from any thread (a signal handler's watcher thread, say) to end every Watch in
// progress.
#ifndef AUTOCOMPRESS_CLIENT_CLIENT_H_
#define AUTOCOMPRESS_CLIENT_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "autocompress/v1/scheduler.grpc.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace autocompress {

struct ClientOptions {
  // The scheduler, "host:port" (or any gRPC target: "dns:///name:port", "unix:/path").
  std::string address = "127.0.0.1:7400";
  // Deadline of each unary call attempt.
  absl::Duration timeout = absl::Seconds(30);
  // Attempts per call on UNAVAILABLE, the first included (>= 1).
  int max_attempts = 5;
  // Deadline of one whole artifact upload or download.
  absl::Duration transfer_timeout = absl::Minutes(30);
  // Transport security: with `tls`, the server's certificate is checked against
  // `tls_root_certs_file` (PEM; empty = the system's roots); a client certificate and key
  // (mutual TLS) are sent when both files are given. `tls_server_name` overrides the name
  // checked in the server's certificate (for an address that is an IP).
  bool tls = false;
  std::string tls_root_certs_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_server_name;
  // Sent as "authorization: Bearer <token>" on every call when not empty.
  std::string token;
};

// A page-following, retrying client for one scheduler.
class Client {
 public:
  // Builds the channel (reading the TLS files); InvalidArgument names a file that
  // cannot be read. Does not contact the server.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  // Over an existing channel (embedded mode's in-process channel, tests).
  Client(std::shared_ptr<grpc::Channel> channel, const ClientOptions& options);
  ~Client();

  // ---- ExperimentService -------------------------------------------------------------
  // `request_id` makes the creation idempotent across retries; empty = one is chosen per
  // call (so a retried attempt never creates a second experiment).
  absl::StatusOr<v1::Experiment> CreateExperiment(const v1::ExperimentSpec& spec,
                                                  std::string request_id = "");
  absl::StatusOr<v1::Experiment> GetExperiment(const std::string& experiment_id);
  // One page; ListAllExperiments follows every page.
  absl::StatusOr<v1::ListExperimentsResponse> ListExperiments(
      const v1::ListExperimentsRequest& request);
  absl::StatusOr<std::vector<v1::Experiment>> ListAllExperiments(
      v1::ListExperimentsRequest request);
  absl::StatusOr<v1::Experiment> StopExperiment(const std::string& experiment_id);
  // `paths` name the fields of `limits` to replace ("max_trial_number"); empty = keep.
  absl::StatusOr<v1::Experiment> ResumeExperiment(const std::string& experiment_id,
                                                  const v1::ExperimentLimits& limits = {},
                                                  const std::vector<std::string>& paths = {});
  // `expected_version` != 0 applies the change only to that version (else ABORTED).
  absl::StatusOr<v1::Experiment> UpdateExperiment(const std::string& experiment_id,
                                                  const v1::ExperimentLimits& limits,
                                                  const std::vector<std::string>& paths,
                                                  int64_t expected_version = 0);
  absl::StatusOr<v1::ListTrialsResponse> ListTrials(const v1::ListTrialsRequest& request);
  // Every trial, following pages (request's page_token is ignored).
  absl::StatusOr<std::vector<v1::Trial>> ListAllTrials(v1::ListTrialsRequest request);
  absl::StatusOr<v1::Trial> GetTrial(const std::string& trial_id);
  // The experiment's Pareto front over its objectives (best primary first).
  absl::StatusOr<v1::ListParetoTrialsResponse> ListParetoTrials(const std::string& experiment_id);

  // Follows an experiment's events: `on_event` is called for each, in order, until it
  // returns false, the stream ends (the experiment reached a final state and
  // `follow_resumes` is false), CancelWatches() is called, or `max_duration` passes.
  // A broken stream (scheduler restarting) is re-opened after the last sequence seen,
  // with backoff, so no event is missed or repeated. Returns OK when it ended for one of
  // those reasons, Cancelled after CancelWatches(), the server's error otherwise (e.g.
  // NotFound). `after_sequence` = 0 starts with the current state.
  absl::Status Watch(const std::string& experiment_id, int64_t after_sequence, bool follow_resumes,
                     const std::function<bool(const v1::ExperimentEvent&)>& on_event,
                     absl::Duration max_duration = absl::InfiniteDuration());
  // Ends every Watch in progress (they return Cancelled); later ones run normally.
  void CancelWatches();

  // ---- ArtifactService ----------------------------------------------------------------
  // Uploads the file at `path` (hashed first; an artifact already stored is not sent
  // twice) and returns its reference.
  absl::StatusOr<v1::ArtifactRef> Upload(const std::string& path, const std::string& name,
                                         v1::ArtifactKind kind);
  // Writes the artifact to `path` (whole or not at all), verified by size and SHA-256.
  absl::Status Download(const v1::ArtifactRef& ref, const std::string& path);
  absl::StatusOr<v1::ArtifactRef> Stat(const std::string& sha256);

  const ClientOptions& options() const { return options_; }

 private:
  // Runs one unary call with retry, adding the token.
  absl::Status Call(const std::function<grpc::Status(grpc::ClientContext*)>& call);

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ExperimentService::Stub> experiments_;
  std::unique_ptr<v1::ArtifactService::Stub> artifacts_;

  absl::Mutex mu_;
  std::set<grpc::ClientContext*> watches_ ABSL_GUARDED_BY(mu_);
  uint64_t cancel_generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_CLIENT_H_
