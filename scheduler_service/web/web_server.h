// WebServer: the dashboard's HTTP endpoint on the scheduler (`--http_port`) and in the
// embedded `autocompress run`. It serves
//   - a JSON API under /api/v1/ that calls ExperimentService and ArtifactService through
//     the scheduler's in-process channel, so it has exactly their logic and errors:
//       GET  /api/v1/experiments                    ListExperiments (?state=, ?page_size=,
//       ?page_token=) GET  /api/v1/experiments/{id}               GetExperiment POST
//       /api/v1/experiments/{id}/stop          StopExperiment POST /api/v1/experiments/{id}/resume
//       ResumeExperiment (body: its JSON, optional) GET  /api/v1/experiments/{id}/trials ListTrials
//       (?state=, ?order_by=, ?page_size=,
//                                                   ?page_token=, ?include_intermediate=)
//       GET  /api/v1/experiments/{id}/pareto        ListParetoTrials
//       GET  /api/v1/experiments/{id}/events        WatchExperiment as Server-Sent Events
//                                                   (?after_sequence=, or Last-Event-ID)
//       GET  /api/v1/trials/{id}                    GetTrial
//       GET  /api/v1/artifacts/{sha256}             Download, as a file
//     Bodies are the responses' proto3 JSON (lowerCamelCase, int64 as strings). Errors
//     are {"error": {"code": "NOT_FOUND", "message": "..."}} with the HTTP status of the
//     gRPC code (404, 400, 409, ...); an unknown route is 404, a wrong method 405;
//   - the dashboard page: the files of `static_dir` (web/dist, built by `./dev`).
// With a token set, every /api/ request must carry it, as "Authorization: Bearer T" or
// as ?token=T (EventSource and download links cannot set headers): missing -> 401,
// wrong -> 403. The page itself holds no data and is served without it.
#ifndef AUTOCOMPRESS_SCHEDULER_SERVICE_WEB_WEB_SERVER_H_
#define AUTOCOMPRESS_SCHEDULER_SERVICE_WEB_WEB_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
}

namespace autocompress::scheduler {

class WebServer {
 public:
  struct Options {
    // Address to bind; 127.0.0.1 keeps the dashboard on this machine.
    std::string host = "127.0.0.1";
    // 0 = any free port.
    int port = 0;
    // Required on every API request when not empty.
    std::string token;
    // Directory of the built page (index.html and its bundle); empty or missing = the
    // API only, and "/" answers with how to build the page.
    std::string static_dir;
    // Most connections served at once (each open event stream holds one).
    int max_connections = 64;
    // How often an idle event stream sends a comment, so a closed tab frees its thread.
    absl::Duration keepalive_interval = absl::Seconds(10);
  };

  // Where `./dev build` puts the page: web/dist under the workspace (found through
  // BUILD_WORKSPACE_DIRECTORY under `bazel run`), else web/dist below the working directory.
  static std::string DefaultStaticDir();

  // Starts serving; Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WebServer>> Start(const Options& options,
                                                          std::shared_ptr<grpc::Channel> scheduler);
  ~WebServer();

  // Ends open event streams and stops serving. Idempotent.
  void Stop();

  int port() const;
  // "http://host:port/" (127.0.0.1 for a wildcard host).
  std::string url() const;

  struct State;

 private:
  explicit WebServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace autocompress::scheduler

#endif  // AUTOCOMPRESS_SCHEDULER_SERVICE_WEB_WEB_SERVER_H_
