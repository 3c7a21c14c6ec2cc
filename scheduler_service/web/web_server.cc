#include "scheduler_service/web/web_server.h"

#include <civetweb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/auth.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"

namespace autocompress::scheduler {
namespace {

constexpr size_t kMaxBodyBytes = 1 << 20;
constexpr auto kCallTimeout = std::chrono::seconds(30);

// An error answered as JSON: the HTTP status, the gRPC-style code name and a message.
struct HttpError {
  int status;
  std::string code;
  std::string message;
};

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

HttpError ErrorOf(const grpc::Status& status) {
  return {HttpStatusOf(status.error_code()),
          absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
          status.error_message()};
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) LOG(ERROR) << "web: cannot print " << message.GetTypeName() << ": " << status;
  return json;
}

std::string ErrorJson(const HttpError& error) {
  const nlohmann::json body = {{"error", {{"code", error.code}, {"message", error.message}}}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One request: its method, its path below /api/v1/ split at '/', its query.
struct Request {
  mg_connection* conn;
  std::string method;
  std::vector<std::string> path;
  std::string query;

  // The value of `name` in the query string, or nullopt.
  std::optional<std::string> Param(const char* name, int occurrence = 0) const {
    std::vector<char> buffer(query.size() + 1);
    const int n =
        mg_get_var2(query.data(), query.size(), name, buffer.data(), buffer.size(), occurrence);
    if (n < 0) return std::nullopt;
    return std::string(buffer.data(), n);
  }
  std::vector<std::string> Params(const char* name) const {
    std::vector<std::string> values;
    for (int i = 0;; ++i) {
      std::optional<std::string> value = Param(name, i);
      if (!value) return values;
      values.push_back(*std::move(value));
    }
  }
};

void SendHeaders(mg_connection* conn, int status, const char* content_type,
                 const std::string& extra = "") {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\nConnection: close\r\n%s\r\n",
            status, mg_get_response_code_text(conn, status), content_type, extra.c_str());
}

bool IsHead(mg_connection* conn) {
  return std::strcmp(mg_get_request_info(conn)->request_method, "HEAD") == 0;
}

// Headers, then the body unless the request is a HEAD.
int SendBody(mg_connection* conn, int status, const char* content_type, const std::string& body,
             const std::string& extra = "") {
  SendHeaders(conn, status, content_type,
              absl::StrCat("Content-Length: ", body.size(), "\r\n", extra));
  if (!IsHead(conn)) mg_write(conn, body.data(), body.size());
  return status;
}

int SendJson(mg_connection* conn, int status, const std::string& body) {
  return SendBody(conn, status, "application/json; charset=utf-8", body);
}

int SendError(mg_connection* conn, const HttpError& error, const std::string& extra = "") {
  return SendBody(conn, error.status, "application/json; charset=utf-8", ErrorJson(error), extra);
}

// Parses "RUNNING" or "EXPERIMENT_STATE_RUNNING" (any case) with `parse`.
template <typename Enum, typename Parse>
std::optional<Enum> ParseEnum(const std::string& text, const std::string& prefix, Parse parse) {
  std::string name = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(name, prefix)) name = prefix + name;
  Enum value;
  if (!parse(name, &value)) return std::nullopt;
  return value;
}

std::optional<HttpError> ParseInt(const Request& request, const char* name, int64_t* out) {
  std::optional<std::string> text = request.Param(name);
  if (!text) return std::nullopt;
  if (!absl::SimpleAtoi(*text, out)) {
    return HttpError{400, "INVALID_ARGUMENT",
                     absl::StrCat(name, ": expected an integer, got \"", *text, "\"")};
  }
  return std::nullopt;
}

// A page size: 0 (the server's default) up to the largest int32.
std::optional<HttpError> ParsePageSize(const Request& request, int32_t* out) {
  int64_t size = 0;
  if (auto error = ParseInt(request, "page_size", &size)) return error;
  if (size < 0 || size > std::numeric_limits<int32_t>::max()) {
    return HttpError{400, "INVALID_ARGUMENT",
                     absl::StrCat("page_size: ", size, " is out of range (0 .. 2147483647)")};
  }
  *out = static_cast<int32_t>(size);
  return std::nullopt;
}

// The paging and state filter both list routes take: ?page_size, ?page_token and any
// number of ?state (e.g. RUNNING), each added to `request` (a List*Request).
template <typename Enum, typename Parse, typename ListRequest>
std::optional<HttpError> ParseListQuery(const Request& r, const std::string& enum_prefix,
                                        Parse parse, const char* examples, ListRequest* request) {
  int32_t page_size = 0;
  if (auto error = ParsePageSize(r, &page_size)) return error;
  request->set_page_size(page_size);
  request->set_page_token(r.Param("page_token").value_or(""));
  for (const std::string& text : r.Params("state")) {
    std::optional<Enum> state = ParseEnum<Enum>(text, enum_prefix, parse);
    if (!state) {
      return HttpError{400, "INVALID_ARGUMENT",
                       absl::StrCat("state: unknown state \"", text, "\" (", examples, ")")};
    }
    request->add_states(*state);
  }
  return std::nullopt;
}

std::optional<HttpError> ParseBool(const Request& request, const char* name, bool* out) {
  std::optional<std::string> text = request.Param(name);
  if (!text) return std::nullopt;
  if (!absl::SimpleAtob(*text, out)) {
    return HttpError{400, "INVALID_ARGUMENT",
                     absl::StrCat(name, ": expected true or false, got \"", *text, "\"")};
  }
  return std::nullopt;
}

// The host this machine reaches a listener bound to `host` through: loopback for a
// wildcard address, else the host itself.
std::string LocalHost(const std::string& host) {
  const bool any = host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
  return any ? "127.0.0.1" : host;
}

// Opens and closes a TCP connection to host:port (a wildcard host through loopback).
void PokeListener(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  if (getaddrinfo(LocalHost(host).c_str(), std::to_string(port).c_str(), &hints, &addresses) != 0) {
    return;
  }
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const bool connected = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    close(fd);
    if (connected) break;
  }
  freeaddrinfo(addresses);
}

}  // namespace

struct WebServer::State {
  // An open event stream; writes from its handler and from the keepalive thread are
  // serialized by `write_mu`. A failed write cancels the watch, which ends the handler.
  struct Stream {
    mg_connection* conn;
    grpc::ClientContext context;
    absl::Mutex write_mu;
    bool broken ABSL_GUARDED_BY(write_mu) = false;

    bool Write(const std::string& text) {
      absl::MutexLock lock(&write_mu);
      if (!broken && mg_write(conn, text.data(), text.size()) <= 0) {
        broken = true;
        context.TryCancel();
      }
      return !broken;
    }
  };

  Options options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::ExperimentService::Stub> experiments;
  std::unique_ptr<v1::ArtifactService::Stub> artifacts;
  mg_context* context = nullptr;
  int port = 0;
  std::thread keepalive;

  absl::Mutex mu;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::set<Stream*> streams ABSL_GUARDED_BY(mu);

  static int HandleApi(mg_connection* conn, void* data) {
    return static_cast<State*>(data)->Api(conn);
  }
  static int HandleNoPage(mg_connection* conn, void*) {
    return SendBody(conn, 404, "text/plain; charset=utf-8",
                    "The dashboard page is not built. Run ./dev build (it builds web/dist), or "
                    "pass --web_dir. The JSON API is under /api/v1/.\n");
  }

  void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  }

  // A unary call answered as JSON.
  template <typename Response, typename Call>
  int Unary(mg_connection* conn, Call call) {
    grpc::ClientContext context;
    SetDeadline(context);
    Response response;
    const grpc::Status status = call(&context, &response);
    if (!status.ok()) return SendError(conn, ErrorOf(status));
    return SendJson(conn, 200, ToJson(response));
  }

  int Api(mg_connection* conn) {
    const mg_request_info* info = mg_get_request_info(conn);
    Request request{conn, info->request_method, {}, info->query_string ? info->query_string : ""};
    if (!options.token.empty()) {
      std::optional<std::string> given = request.Param("token");
      if (const char* header = mg_get_header(conn, "Authorization")) {
        absl::string_view value = header;
        if (absl::ConsumePrefix(&value, "Bearer ")) given = std::string(value);
      }
      if (!given) {
        return SendError(conn,
                         {401, "UNAUTHENTICATED",
                          "this server needs a token: Authorization: Bearer TOKEN, or ?token="},
                         "WWW-Authenticate: Bearer\r\n");
      }
      if (!TokenMatches(*given, options.token)) {
        return SendError(conn, {403, "PERMISSION_DENIED", "wrong token"});
      }
    }
    absl::string_view path = info->local_uri;
    if (!absl::ConsumePrefix(&path, "/api/v1/")) {
      return SendError(
          conn, {404, "NOT_FOUND",
                 absl::StrCat("no such API: ", info->local_uri, " (the API is under /api/v1/)")});
    }
    request.path = absl::StrSplit(absl::StripSuffix(path, "/"), '/');
    return Route(request);
  }

  int Route(const Request& r) {
    const std::vector<std::string>& p = r.path;
    auto allow = [&](const char* method) {
      return r.method == method || (std::string(method) == "GET" && r.method == "HEAD");
    };
    auto wrong_method = [&](const char* method) {
      return SendError(
          r.conn,
          {405, "METHOD_NOT_ALLOWED", absl::StrCat(r.method, " is not allowed here; use ", method)},
          absl::StrCat("Allow: ", method, "\r\n"));
    };
    if (p.size() == 1 && p[0] == "experiments") {
      return allow("GET") ? ListExperiments(r) : wrong_method("GET");
    }
    if (p.size() >= 2 && p[0] == "experiments" && !p[1].empty()) {
      const std::string& id = p[1];
      if (p.size() == 2) return allow("GET") ? GetExperiment(r, id) : wrong_method("GET");
      if (p.size() == 3 && p[2] == "stop")
        return allow("POST") ? Stop(r, id) : wrong_method("POST");
      if (p.size() == 3 && p[2] == "resume") {
        return allow("POST") ? Resume(r, id) : wrong_method("POST");
      }
      if (p.size() == 3 && p[2] == "trials") {
        return allow("GET") ? ListTrials(r, id) : wrong_method("GET");
      }
      if (p.size() == 3 && p[2] == "pareto") {
        return allow("GET") ? Pareto(r, id) : wrong_method("GET");
      }
      if (p.size() == 3 && p[2] == "events") {
        return allow("GET") ? Events(r, id) : wrong_method("GET");
      }
    }
    if (p.size() == 2 && p[0] == "trials" && !p[1].empty()) {
      return allow("GET") ? GetTrial(r, p[1]) : wrong_method("GET");
    }
    if (p.size() == 2 && p[0] == "artifacts" && !p[1].empty()) {
      return allow("GET") ? Download(r, p[1]) : wrong_method("GET");
    }
    return SendError(r.conn,
                     {404, "NOT_FOUND",
                      absl::StrCat("no such API: ", r.method, " /api/v1/", absl::StrJoin(p, "/"))});
  }

  int ListExperiments(const Request& r) {
    v1::ListExperimentsRequest request;
    if (auto error =
            ParseListQuery<v1::ExperimentState>(r, "EXPERIMENT_STATE_", v1::ExperimentState_Parse,
                                                "RUNNING, STOPPED, DONE, FAILED, ...", &request)) {
      return SendError(r.conn, *error);
    }
    return Unary<v1::ListExperimentsResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->ListExperiments(context, request, response);
    });
  }

  int GetExperiment(const Request& r, const std::string& id) {
    v1::GetExperimentRequest request;
    request.set_experiment_id(id);
    return Unary<v1::GetExperimentResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->GetExperiment(context, request, response);
    });
  }

  int Stop(const Request& r, const std::string& id) {
    v1::StopExperimentRequest request;
    request.set_experiment_id(id);
    return Unary<v1::StopExperimentResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->StopExperiment(context, request, response);
    });
  }

  int Resume(const Request& r, const std::string& id) {
    std::string body;
    char buffer[8192];
    for (int n; (n = mg_read(r.conn, buffer, sizeof buffer)) > 0;) {
      body.append(buffer, n);
      if (body.size() > kMaxBodyBytes) {
        return SendError(r.conn, {413, "RESOURCE_EXHAUSTED", "body: larger than 1 MiB"});
      }
    }
    v1::ResumeExperimentRequest request;
    if (!absl::StripAsciiWhitespace(body).empty()) {
      const auto status = google::protobuf::util::JsonStringToMessage(body, &request);
      if (!status.ok()) {
        return SendError(r.conn,
                         {400, "INVALID_ARGUMENT",
                          absl::StrCat("body: not a ResumeExperimentRequest: ",
                                       absl::StripPrefix(std::string(status.message()), ": "))});
      }
    }
    request.set_experiment_id(id);
    return Unary<v1::ResumeExperimentResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->ResumeExperiment(context, request, response);
    });
  }

  int ListTrials(const Request& r, const std::string& id) {
    v1::ListTrialsRequest request;
    request.set_experiment_id(id);
    if (auto error =
            ParseListQuery<v1::TrialState>(r, "TRIAL_STATE_", v1::TrialState_Parse,
                                           "WAITING, RUNNING, SUCCEEDED, FAILED, ...", &request)) {
      return SendError(r.conn, *error);
    }
    request.set_order_by(r.Param("order_by").value_or(""));
    bool intermediate = false;
    if (auto error = ParseBool(r, "include_intermediate", &intermediate)) {
      return SendError(r.conn, *error);
    }
    request.set_include_intermediate(intermediate);
    return Unary<v1::ListTrialsResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->ListTrials(context, request, response);
    });
  }

  int Pareto(const Request& r, const std::string& id) {
    v1::ListParetoTrialsRequest request;
    request.set_experiment_id(id);
    return Unary<v1::ListParetoTrialsResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->ListParetoTrials(context, request, response);
    });
  }

  int GetTrial(const Request& r, const std::string& id) {
    v1::GetTrialRequest request;
    request.set_trial_id(id);
    return Unary<v1::GetTrialResponse>(r.conn, [&](auto* context, auto* response) {
      return experiments->GetTrial(context, request, response);
    });
  }

  int Download(const Request& r, const std::string& sha256) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::DownloadRequest request;
    request.set_sha256(sha256);
    std::unique_ptr<grpc::ClientReader<v1::DownloadResponse>> reader =
        artifacts->Download(&context, request);
    v1::DownloadResponse part;
    if (!reader->Read(&part) || !part.has_artifact()) {
      const grpc::Status status = reader->Finish();
      return SendError(r.conn, status.ok() ? HttpError{500, "INTERNAL", "download sent no header"}
                                           : ErrorOf(status));
    }
    std::string name = part.artifact().name();
    name.erase(std::remove_if(name.begin(), name.end(),
                              [](char c) { return c == '"' || c == '\\' || c < 0x20; }),
               name.end());
    if (name.empty()) name = sha256;
    SendHeaders(r.conn, 200, "application/octet-stream",
                absl::StrCat("Content-Length: ", part.artifact().size_bytes(),
                             "\r\nContent-Disposition: attachment; filename=\"", name, "\"\r\n"));
    if (r.method == "HEAD") {
      context.TryCancel();
      return 200;
    }
    while (reader->Read(&part)) {
      if (mg_write(r.conn, part.chunk().data(), part.chunk().size()) <= 0) {
        context.TryCancel();
        break;
      }
    }
    const grpc::Status status = reader->Finish();
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      LOG(WARNING) << "web: download of " << sha256 << " ended early: " << status.error_message();
    }
    return 200;
  }

  // WatchExperiment as Server-Sent Events: "event: experiment|trial|metric", data the
  // ExperimentEvent's JSON, id its sequence. The opening snapshot of a watch from 0
  // shares one sequence, so its events carry no id until a later change: a stream cut
  // inside the snapshot then restarts from 0 rather than after a half-sent snapshot.
  int Events(const Request& r, const std::string& id) {
    v1::WatchExperimentRequest request;
    request.set_experiment_id(id);
    request.set_follow_resumes(true);
    int64_t after = 0;
    if (auto error = ParseInt(r, "after_sequence", &after)) return SendError(r.conn, *error);
    if (const char* last = mg_get_header(r.conn, "Last-Event-ID")) {
      if (!absl::SimpleAtoi(last, &after)) {
        return SendError(r.conn,
                         {400, "INVALID_ARGUMENT",
                          absl::StrCat("Last-Event-ID: expected an integer, got \"", last, "\"")});
      }
    }
    request.set_after_sequence(after);

    Stream stream;
    stream.conn = r.conn;
    {
      absl::MutexLock lock(&mu);
      if (stopping) return SendError(r.conn, {503, "UNAVAILABLE", "the server is stopping"});
      streams.insert(&stream);
    }
    std::unique_ptr<grpc::ClientReader<v1::ExperimentEvent>> reader =
        experiments->WatchExperiment(&stream.context, request);
    v1::ExperimentEvent event;
    int status_code = 200;
    if (!reader->Read(&event)) {
      const grpc::Status status = reader->Finish();
      status_code = SendError(
          r.conn, status.ok() ? HttpError{500, "INTERNAL", "empty watch"} : ErrorOf(status));
    } else if (r.method == "HEAD") {
      SendHeaders(r.conn, 200, "text/event-stream; charset=utf-8");
      stream.context.TryCancel();
      reader->Finish();
    } else {
      SendHeaders(r.conn, 200, "text/event-stream; charset=utf-8", "X-Accel-Buffering: no\r\n");
      const int64_t snapshot = after == 0 ? event.sequence() : -1;
      bool ok = stream.Write("retry: 1000\n\n");
      do {
        const char* kind = event.has_experiment() ? "experiment"
                           : event.has_trial()    ? "trial"
                                                  : "metric";
        std::string text = absl::StrCat("event: ", kind, "\ndata: ", ToJson(event), "\n");
        if (event.sequence() != snapshot) absl::StrAppend(&text, "id: ", event.sequence(), "\n");
        text += "\n";
        ok = stream.Write(text);
      } while (ok && reader->Read(&event));
      stream.context.TryCancel();
      reader->Finish();
    }
    absl::MutexLock lock(&mu);
    streams.erase(&stream);
    return status_code;
  }

  void KeepAlive() {
    absl::MutexLock lock(&mu);
    while (!stopping) {
      mu.AwaitWithTimeout(absl::Condition(&stopping), options.keepalive_interval);
      if (stopping) break;
      for (Stream* stream : streams) stream->Write(": keepalive\n\n");
    }
  }
};

std::string WebServer::DefaultStaticDir() {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  return workspace != nullptr ? absl::StrCat(workspace, "/web/dist") : "web/dist";
}

WebServer::WebServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

absl::StatusOr<std::unique_ptr<WebServer>> WebServer::Start(
    const Options& options, std::shared_ptr<grpc::Channel> scheduler) {
  auto state = std::make_unique<State>();
  state->options = options;
  state->channel = scheduler;
  state->experiments = v1::ExperimentService::NewStub(scheduler);
  state->artifacts = v1::ArtifactService::NewStub(scheduler);

  std::error_code error;
  const bool have_page = !options.static_dir.empty() &&
                         std::filesystem::is_regular_file(
                             std::filesystem::path(options.static_dir) / "index.html", error);
  if (!options.static_dir.empty() && !have_page) {
    LOG(WARNING) << "web: no index.html in " << options.static_dir << "; serving the JSON API only";
  }
  const std::string ports = absl::StrCat(options.host, ":", options.port);
  const std::string threads = absl::StrCat(std::max(4, options.max_connections));
  std::vector<const char*> settings = {"listening_ports",
                                       ports.c_str(),
                                       "num_threads",
                                       threads.c_str(),
                                       "enable_directory_listing",
                                       "no",
                                       "static_file_max_age",
                                       "0",
                                       "additional_header",
                                       "X-Content-Type-Options: nosniff"};
  const std::string root = have_page ? options.static_dir : "";
  if (have_page) {
    settings.push_back("document_root");
    settings.push_back(root.c_str());
  }
  settings.push_back(nullptr);
  mg_init_library(0);
  mg_callbacks callbacks{};
  state->context = mg_start(&callbacks, nullptr, settings.data());
  if (state->context == nullptr) {
    mg_exit_library();
    return absl::UnavailableError(absl::StrCat("web: cannot listen on ", ports));
  }
  mg_server_port bound[4];
  const int count = mg_get_server_ports(state->context, 4, bound);
  state->port = count > 0 ? bound[0].port : options.port;
  if (!options.token.empty() && !IsLoopbackHost(options.host)) {
    LOG(WARNING) << "web: the token is checked on plain HTTP at " << options.host << ":"
                 << state->port
                 << ": anyone on the network path can read it; put TLS in "
                    "front (an ingress or a service mesh)";
  }
  mg_set_request_handler(state->context, "/api/", &State::HandleApi, state.get());
  if (!have_page) mg_set_request_handler(state->context, "/$", &State::HandleNoPage, nullptr);
  State* raw = state.get();
  state->keepalive = std::thread([raw] { raw->KeepAlive(); });
  auto server = std::unique_ptr<WebServer>(new WebServer(std::move(state)));
  LOG(INFO) << "web: dashboard at " << server->url() << (have_page ? "" : " (API only)");
  return server;
}

WebServer::~WebServer() { Stop(); }

void WebServer::Stop() {
  {
    absl::MutexLock lock(&state_->mu);
    if (state_->stopping) return;
    state_->stopping = true;
    for (State::Stream* stream : state_->streams) stream->context.TryCancel();
  }
  state_->keepalive.join();
  // civetweb's accept loop notices the stop only when its poll (2 s) wakes; a connection
  // wakes it at once.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    for (int i = 0; i < 50 && !stopped; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      PokeListener(state_->options.host, state_->port);
    }
  });
  mg_stop(state_->context);
  stopped = true;
  waker.join();
  mg_exit_library();
}

int WebServer::port() const { return state_->port; }

std::string WebServer::url() const {
  return absl::StrCat("http://", LocalHost(state_->options.host), ":", state_->port, "/");
}

}  // namespace autocompress::scheduler
