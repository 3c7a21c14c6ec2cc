// The dashboard's JSON API over real HTTP: a real tuner and scheduler in process with the
// web server on a loopback port, fake workers that run trials by themselves, and
// requests sent on a plain socket. Covers every route's status codes and JSON bodies,
// the query and body parsing errors, the token rule, Server-Sent Events, artifact
// downloads and the page's static files.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "common/testing/http_get.h"
#include "common/testing/runfiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "scheduler_service/web/web_server.h"
#include "tests/fakes/fake_worker.h"
#include "tests/fakes/scheduler_harness.h"

namespace autocompress {
namespace {

using nlohmann::json;
using scheduler::WebServer;
using ::testing::AssertionFailure;
using ::testing::AssertionResult;
using ::testing::AssertionSuccess;
using ::testing::Contains;
using ::testing::ElementsAre;
using testing::FakeWorker;
using testing::FindHeader;
using ::testing::HasSubstr;
using testing::HttpFetch;
using testing::HttpRequest;
using testing::HttpResponse;
using ::testing::IsEmpty;
using testing::SchedulerHarness;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

// The body as JSON; null (and a test failure) when it is not JSON.
json Json(const HttpResponse& response) {
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(body.is_discarded())
      << "not JSON (HTTP " << response.status_code << "): " << response.body;
  return body.is_discarded() ? json() : body;
}

// The "id" of every element of a JSON array (experiments or trials).
std::vector<std::string> Ids(const json& list) {
  std::vector<std::string> ids;
  if (!list.is_array()) {
    ADD_FAILURE() << "not an array: " << list.dump();
    return ids;
  }
  for (const json& item : list) ids.push_back(item.value("id", ""));
  return ids;
}

// `response` is the API's JSON error: HTTP `status`, {"error": {"code": `code`,
// "message": ...}} with every one of `parts` in the message.
AssertionResult IsError(const HttpResponse& response, int status, const std::string& code,
                        std::initializer_list<std::string> parts) {
  if (response.status_code != status) {
    return AssertionFailure() << "HTTP " << response.status_code << ", not " << status << ": "
                              << response.body;
  }
  const std::string type = FindHeader(response, "Content-Type").value_or("");
  if (type.rfind("application/json", 0) != 0) {
    return AssertionFailure() << "Content-Type \"" << type << "\" is not JSON: " << response.body;
  }
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body["error"].is_object()) {
    return AssertionFailure() << "no {\"error\": {...}} in " << response.body;
  }
  if (body["error"]["code"] != code) {
    return AssertionFailure() << "error.code " << body["error"]["code"] << ", not " << code;
  }
  if (!body["error"]["message"].is_string()) {
    return AssertionFailure() << "error.message is not a string: " << response.body;
  }
  const std::string message = body["error"]["message"].get<std::string>();
  for (const std::string& part : parts) {
    if (message.find(part) == std::string::npos) {
      return AssertionFailure() << "error.message \"" << message << "\" lacks \"" << part << "\"";
    }
  }
  return AssertionSuccess();
}

std::string UrlEncode(const std::string& text) {
  std::string encoded;
  for (const unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      encoded += static_cast<char>(c);
    } else {
      absl::StrAppendFormat(&encoded, "%%%02X", c);
    }
  }
  return encoded;
}

// The complete events of a text/event-stream body, each as its field lines; the last,
// possibly cut, block is dropped.
std::vector<std::vector<std::string>> CompleteEvents(const std::string& body) {
  std::vector<std::string> blocks = absl::StrSplit(body, "\n\n");
  blocks.pop_back();
  std::vector<std::vector<std::string>> events;
  for (const std::string& block : blocks) events.push_back(absl::StrSplit(block, '\n'));
  return events;
}

class WebApiTest : public ::testing::Test {
 protected:
  // Restarts the harness's scheduler with its web server on `options`.
  void StartWeb(const WebServer::Options& options) {
    harness_.StopScheduler();
    harness_.scheduler_options().web = options;
    ASSERT_NO_FATAL_FAILURE(harness_.StartScheduler());
    ASSERT_NE(harness_.server().web(), nullptr);
    port_ = harness_.server().web()->port();
    ASSERT_GT(port_, 0);
  }
  void StartWeb() { StartWeb(WebServer::Options()); }

  HttpResponse Fetch(HttpRequest request) {
    request.port = port_;
    absl::StatusOr<HttpResponse> response = HttpFetch(request);
    EXPECT_TRUE(response.ok()) << request.method << " " << request.path << ": "
                               << response.status();
    return response.ok() ? *std::move(response) : HttpResponse();
  }
  HttpResponse Get(const std::string& path, std::vector<std::string> headers = {}) {
    HttpRequest request;
    request.path = path;
    request.headers = std::move(headers);
    return Fetch(std::move(request));
  }
  HttpResponse Post(const std::string& path, const std::string& body = "") {
    HttpRequest request;
    request.method = "POST";
    request.path = path;
    request.body = body;
    if (!body.empty()) request.headers.push_back("Content-Type: application/json");
    return Fetch(std::move(request));
  }

  // A RUNNING experiment that gets no trials (no worker connects to it).
  std::string CreateIdle() {
    absl::StatusOr<v1::Experiment> experiment = harness_.Create(harness_.Spec(1, 2));
    EXPECT_TRUE(experiment.ok()) << experiment.status();
    return experiment.ok() ? experiment->id() : "";
  }

  // Runs an experiment of `trials` trials, each with `kEpochs` intermediate reports, to
  // DONE on a worker that runs them by itself; returns its id.
  static constexpr int kEpochs = 2;
  std::string RunToDone(int trials) {
    FakeWorker::Options options;
    options.worker_id = "auto";
    options.cpu_slots = 2;
    options.auto_run = true;
    options.epochs = kEpochs;
    worker_ = harness_.Worker(options);
    EXPECT_TRUE(worker_->Connect().ok());
    absl::StatusOr<v1::Experiment> experiment = harness_.Create(harness_.Spec(2, trials));
    EXPECT_TRUE(experiment.ok()) << experiment.status();
    if (!experiment.ok()) return "";
    const v1::Experiment end = harness_.WaitForState(experiment->id(), v1::EXPERIMENT_STATE_DONE);
    EXPECT_EQ(end.state(), v1::EXPERIMENT_STATE_DONE);
    EXPECT_EQ(end.trial_counts().succeeded(), trials);
    return experiment->id();
  }

  SchedulerHarness harness_;
  std::unique_ptr<FakeWorker> worker_;
  int port_ = 0;
};

TEST_F(WebApiTest, ListExperimentsFiltersByStateAndPages) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const std::string stopped = CreateIdle();
  const std::string running = CreateIdle();
  ASSERT_EQ(Post(absl::StrCat("/api/v1/experiments/", stopped, "/stop")).status_code, 200);

  const HttpResponse all = Get("/api/v1/experiments");
  ASSERT_EQ(all.status_code, 200) << all.body;
  EXPECT_THAT(FindHeader(all, "Content-Type").value_or(""), StartsWith("application/json"));
  EXPECT_THAT(Ids(Json(all)["experiments"]), UnorderedElementsAre(running, stopped));
  // The short name, any case, and the enum's full name all parse; states repeat.
  EXPECT_THAT(Ids(Json(Get("/api/v1/experiments?state=RUNNING"))["experiments"]),
              ElementsAre(running));
  EXPECT_THAT(Ids(Json(Get("/api/v1/experiments?state=stopped"))["experiments"]),
              ElementsAre(stopped));
  EXPECT_THAT(
      Ids(Json(
          Get("/api/v1/experiments?state=EXPERIMENT_STATE_RUNNING&state=STOPPED"))["experiments"]),
      UnorderedElementsAre(running, stopped));
  EXPECT_THAT(Ids(Json(Get("/api/v1/experiments?state=DONE"))["experiments"]), IsEmpty());

  // One per page: the first page's token leads to the other experiment, and no further.
  json first = Json(Get("/api/v1/experiments?page_size=1"));
  ASSERT_EQ(first["experiments"].size(), 1u) << first.dump();
  const std::string token = first.value("nextPageToken", "");
  ASSERT_FALSE(token.empty()) << first.dump();
  json second = Json(Get("/api/v1/experiments?page_size=1&page_token=" + UrlEncode(token)));
  ASSERT_EQ(second["experiments"].size(), 1u) << second.dump();
  EXPECT_THAT(
      (std::vector<std::string>{Ids(first["experiments"])[0], Ids(second["experiments"])[0]}),
      UnorderedElementsAre(running, stopped));
  EXPECT_EQ(second.value("nextPageToken", "?"), "");

  EXPECT_TRUE(
      IsError(Get("/api/v1/experiments?state=BOGUS"), 400, "INVALID_ARGUMENT", {"state", "BOGUS"}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments?page_size=abc"), 400, "INVALID_ARGUMENT",
                      {"page_size", "abc"}));
  // Outside int32 (it would wrap to 1) or negative.
  EXPECT_TRUE(IsError(Get("/api/v1/experiments?page_size=4294967297"), 400, "INVALID_ARGUMENT",
                      {"page_size", "out of range"}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments/x/trials?page_size=-1"), 400, "INVALID_ARGUMENT",
                      {"page_size", "out of range"}));
}

TEST_F(WebApiTest, GetExperimentAnswersItsProtoJsonOrNotFound) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const std::string id = CreateIdle();

  const HttpResponse got = Get("/api/v1/experiments/" + id);
  ASSERT_EQ(got.status_code, 200) << got.body;
  json experiment = Json(got)["experiment"];
  EXPECT_EQ(experiment["id"], id);
  EXPECT_EQ(experiment["state"], "EXPERIMENT_STATE_RUNNING");
  // Proto3 JSON: lowerCamelCase names, int32 as a number, int64 as a string.
  EXPECT_EQ(experiment["spec"]["limits"]["maxTrialNumber"], 2);
  EXPECT_TRUE(experiment["version"].is_string()) << experiment.dump();
  // A trailing slash names the same resource.
  EXPECT_EQ(Json(Get("/api/v1/experiments/" + id + "/"))["experiment"]["id"], id);

  EXPECT_TRUE(IsError(Get("/api/v1/experiments/no-such-experiment"), 404, "NOT_FOUND",
                      {"no-such-experiment"}));
}

TEST_F(WebApiTest, TrialsOfAFinishedExperimentFilterOrderAndCarryTheirReports) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  constexpr int kTrials = 4;
  const std::string id = RunToDone(kTrials);
  ASSERT_FALSE(id.empty());
  std::vector<std::string> expected_ids;
  for (const v1::Trial& trial : harness_.Trials(id)) expected_ids.push_back(trial.id());
  const std::string trials_path = absl::StrCat("/api/v1/experiments/", id, "/trials");

  const HttpResponse listed = Get(trials_path);
  ASSERT_EQ(listed.status_code, 200) << listed.body;
  json trials = Json(listed)["trials"];
  EXPECT_THAT(Ids(trials), UnorderedElementsAreArray(expected_ids));
  ASSERT_EQ(trials.size(), static_cast<size_t>(kTrials));
  for (json& trial : trials) {
    EXPECT_EQ(trial["experimentId"], id);
    EXPECT_EQ(trial["state"], "TRIAL_STATE_SUCCEEDED");
    EXPECT_FALSE(trial["finalReport"]["metrics"].empty()) << trial.dump();
    // Intermediate reports only when asked for.
    EXPECT_EQ(trial["intermediate"], json::array()) << trial.dump();
  }
  json with_reports = Json(Get(trials_path + "?include_intermediate=true"))["trials"];
  ASSERT_EQ(with_reports.size(), static_cast<size_t>(kTrials)) << with_reports.dump();
  for (json& trial : with_reports) {
    ASSERT_EQ(trial["intermediate"].size(), static_cast<size_t>(kEpochs)) << trial.dump();
    EXPECT_EQ(trial["intermediate"][0]["step"], "0");
    EXPECT_EQ(trial["intermediate"][1]["step"], "1");
  }

  EXPECT_THAT(Ids(Json(Get(trials_path + "?state=SUCCEEDED"))["trials"]),
              UnorderedElementsAreArray(expected_ids));
  EXPECT_THAT(Ids(Json(Get(trials_path + "?state=FAILED&state=RUNNING"))["trials"]), IsEmpty());
  // order_by reaches ListTrials: "objective" is best (highest accuracy) first.
  json ordered = Json(Get(trials_path + "?order_by=objective"))["trials"];
  std::vector<double> accuracies;
  for (json& trial : ordered) {
    for (json& metric : trial["finalReport"]["metrics"]) {
      if (metric["name"] == "accuracy") accuracies.push_back(metric["value"].get<double>());
    }
  }
  EXPECT_EQ(accuracies.size(), static_cast<size_t>(kTrials)) << ordered.dump();
  EXPECT_TRUE(std::is_sorted(accuracies.rbegin(), accuracies.rend())) << ordered.dump();

  EXPECT_TRUE(IsError(Get(trials_path + "?include_intermediate=maybe"), 400, "INVALID_ARGUMENT",
                      {"include_intermediate", "maybe"}));
  EXPECT_TRUE(
      IsError(Get(trials_path + "?state=BOGUS"), 400, "INVALID_ARGUMENT", {"state", "BOGUS"}));
  EXPECT_TRUE(
      IsError(Get(trials_path + "?order_by=accuracy%20sideways"), 400, "INVALID_ARGUMENT", {}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments/no-such-experiment/trials"), 404, "NOT_FOUND",
                      {"no-such-experiment"}));

  const HttpResponse one = Get("/api/v1/trials/" + expected_ids[0]);
  ASSERT_EQ(one.status_code, 200) << one.body;
  json trial = Json(one)["trial"];
  EXPECT_EQ(trial["id"], expected_ids[0]);
  EXPECT_EQ(trial["experimentId"], id);
  EXPECT_TRUE(IsError(Get("/api/v1/trials/no-such-trial"), 404, "NOT_FOUND", {"no-such-trial"}));

  // One objective: the front is the best trial(s), and the best trial is on it.
  const HttpResponse pareto = Get(absl::StrCat("/api/v1/experiments/", id, "/pareto"));
  ASSERT_EQ(pareto.status_code, 200) << pareto.body;
  json front = Json(pareto);
  ASSERT_TRUE(front["trials"].is_array()) << front.dump();
  const std::vector<std::string> front_ids = Ids(front["trials"]);
  EXPECT_FALSE(front_ids.empty());
  for (const std::string& trial_id : front_ids) EXPECT_THAT(expected_ids, Contains(trial_id));
  EXPECT_THAT(front_ids, Contains(harness_.Get(id)->best_trial_id()));
  EXPECT_EQ(front["succeeded"], kTrials);
  EXPECT_EQ(front["objectives"][0]["metric"], "accuracy");
  EXPECT_TRUE(IsError(Get("/api/v1/experiments/no-such-experiment/pareto"), 404, "NOT_FOUND",
                      {"no-such-experiment"}));
}

TEST_F(WebApiTest, StopAndResumeArePostsThatChangeTheExperiment) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const std::string id = CreateIdle();
  const std::string stop = absl::StrCat("/api/v1/experiments/", id, "/stop");
  const std::string resume = absl::StrCat("/api/v1/experiments/", id, "/resume");

  const HttpResponse wrong_method = Get(stop);
  EXPECT_TRUE(IsError(wrong_method, 405, "METHOD_NOT_ALLOWED", {"GET", "POST"}));
  EXPECT_EQ(FindHeader(wrong_method, "Allow"), "POST");
  EXPECT_EQ(harness_.Get(id)->state(), v1::EXPERIMENT_STATE_RUNNING);

  const HttpResponse stopped = Post(stop);
  ASSERT_EQ(stopped.status_code, 200) << stopped.body;
  EXPECT_EQ(Json(stopped)["experiment"]["state"], "EXPERIMENT_STATE_STOPPED");
  EXPECT_EQ(harness_.Get(id)->state(), v1::EXPERIMENT_STATE_STOPPED);

  EXPECT_TRUE(IsError(Post(resume, "{not json"), 400, "INVALID_ARGUMENT", {"body"}));
  EXPECT_TRUE(IsError(Post(resume, R"({"limits": {"maxTrialNumber": "many"}})"), 400,
                      "INVALID_ARGUMENT", {"body"}));
  // A body the JSON parser takes but ResumeExperiment refuses keeps the service's error.
  EXPECT_TRUE(IsError(Post(resume, R"({"updateMask": "colour"})"), 400, "INVALID_ARGUMENT",
                      {"update_mask", "colour"}));
  EXPECT_EQ(harness_.Get(id)->state(), v1::EXPERIMENT_STATE_STOPPED);

  const HttpResponse resumed =
      Post(resume, R"({"limits": {"maxTrialNumber": 5}, "updateMask": "maxTrialNumber"})");
  ASSERT_EQ(resumed.status_code, 200) << resumed.body;
  json experiment = Json(resumed)["experiment"];
  EXPECT_EQ(experiment["state"], "EXPERIMENT_STATE_RUNNING");
  EXPECT_EQ(experiment["spec"]["limits"]["maxTrialNumber"], 5);
  const absl::StatusOr<v1::Experiment> stored = harness_.Get(id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::EXPERIMENT_STATE_RUNNING);
  EXPECT_EQ(stored->spec().limits().max_trial_number(), 5);

  // The body is optional: stopped again, a bare POST resumes with the stored limits.
  ASSERT_EQ(Post(stop).status_code, 200);
  const HttpResponse bare = Post(resume);
  ASSERT_EQ(bare.status_code, 200) << bare.body;
  EXPECT_EQ(Json(bare)["experiment"]["spec"]["limits"]["maxTrialNumber"], 5);

  EXPECT_TRUE(IsError(Post("/api/v1/experiments/no-such-experiment/stop"), 404, "NOT_FOUND",
                      {"no-such-experiment"}));
  EXPECT_TRUE(IsError(Post("/api/v1/experiments/no-such-experiment/resume"), 404, "NOT_FOUND",
                      {"no-such-experiment"}));
}

TEST_F(WebApiTest, UnknownRoutesAre404AndWrongMethods405) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const std::string id = CreateIdle();
  EXPECT_TRUE(IsError(Get("/api/v1/nope"), 404, "NOT_FOUND", {"/api/v1/nope"}));
  EXPECT_TRUE(IsError(Get("/api/x"), 404, "NOT_FOUND", {"/api/x", "/api/v1/"}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments/" + id + "/nope"), 404, "NOT_FOUND", {"nope"}));

  const HttpResponse post_list = Post("/api/v1/experiments");
  EXPECT_TRUE(IsError(post_list, 405, "METHOD_NOT_ALLOWED", {"POST", "GET"}));
  EXPECT_EQ(FindHeader(post_list, "Allow"), "GET");
  const HttpResponse get_resume = Get("/api/v1/experiments/" + id + "/resume");
  EXPECT_TRUE(IsError(get_resume, 405, "METHOD_NOT_ALLOWED", {}));
  EXPECT_EQ(FindHeader(get_resume, "Allow"), "POST");
  HttpRequest remove;
  remove.method = "DELETE";
  remove.path = "/api/v1/experiments/" + id;
  const HttpResponse removed = Fetch(remove);
  EXPECT_TRUE(IsError(removed, 405, "METHOD_NOT_ALLOWED", {"DELETE"}));
  EXPECT_EQ(FindHeader(removed, "Allow"), "GET");
  EXPECT_EQ(harness_.Get(id)->state(), v1::EXPERIMENT_STATE_RUNNING);
}

TEST_F(WebApiTest, ATokenIsRequiredAsBearerHeaderOrQueryParameter) {
  WebServer::Options options;
  options.token = "right";
  ASSERT_NO_FATAL_FAILURE(StartWeb(options));
  const std::string id = CreateIdle();

  const HttpResponse missing = Get("/api/v1/experiments");
  EXPECT_TRUE(IsError(missing, 401, "UNAUTHENTICATED", {"token"}));
  EXPECT_EQ(FindHeader(missing, "WWW-Authenticate"), "Bearer");
  // Another scheme is not a token.
  EXPECT_TRUE(IsError(Get("/api/v1/experiments", {"Authorization: Basic cmlnaHQ="}), 401,
                      "UNAUTHENTICATED", {}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments", {"Authorization: Bearer wrong"}), 403,
                      "PERMISSION_DENIED", {}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments", {"Authorization: Bearer righ"}), 403,
                      "PERMISSION_DENIED", {}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments?token=wrong"), 403, "PERMISSION_DENIED", {}));
  // Unknown routes, in the API's version or not, are behind the token too.
  EXPECT_TRUE(IsError(Get("/api/v1/nope"), 401, "UNAUTHENTICATED", {}));
  EXPECT_TRUE(IsError(Get("/api/x"), 401, "UNAUTHENTICATED", {}));

  const HttpResponse header = Get("/api/v1/experiments", {"Authorization: Bearer right"});
  ASSERT_EQ(header.status_code, 200) << header.body;
  EXPECT_THAT(Ids(Json(header)["experiments"]), ElementsAre(id));
  // In the query, beside the route's own parameters.
  const HttpResponse query = Get("/api/v1/experiments?state=RUNNING&token=right");
  ASSERT_EQ(query.status_code, 200) << query.body;
  EXPECT_THAT(Ids(Json(query)["experiments"]), ElementsAre(id));
  EXPECT_EQ(Get("/api/v1/experiments/" + id + "?token=right").status_code, 200);

  // The page holds no data and needs none.
  EXPECT_EQ(Get("/").status_code, 404);
  EXPECT_THAT(Get("/").body, HasSubstr("not built"));
}

TEST_F(WebApiTest, HeadAnswersTheHeadersOfGetWithoutABody) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const std::string id = CreateIdle();
  const std::vector<std::string> paths = {"/api/v1/experiments", "/api/v1/experiments/" + id,
                                          "/api/v1/experiments/" + id + "/events",
                                          "/api/v1/experiments/nope"};
  for (const std::string& path : paths) {
    HttpRequest head;
    head.method = "HEAD";
    head.path = path;
    head.timeout = absl::Seconds(5);
    const HttpResponse response = Fetch(head);
    EXPECT_EQ(response.status_code, path.find("nope") == std::string::npos ? 200 : 404) << path;
    EXPECT_THAT(response.body, IsEmpty()) << path;
  }
  // The JSON routes announce the length GET would send.
  HttpRequest head;
  head.method = "HEAD";
  head.path = "/api/v1/experiments/" + id;
  EXPECT_EQ(FindHeader(Fetch(head), "Content-Length"),
            absl::StrCat(Get("/api/v1/experiments/" + id).body.size()));
}

TEST_F(WebApiTest, EventsStreamTheWatchAsServerSentEvents) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const std::string id = RunToDone(2);
  ASSERT_FALSE(id.empty());
  const std::string events_path = absl::StrCat("/api/v1/experiments/", id, "/events");

  // The stream stays open; the opening snapshot is the experiment, then its trials, so
  // the first trial event marks the experiment event as complete.
  HttpRequest request;
  request.path = events_path;
  request.read_until = "\n\nevent: trial\n";
  request.timeout = absl::Seconds(10);
  const HttpResponse stream = Fetch(request);
  ASSERT_EQ(stream.status_code, 200) << stream.headers << "\n\n" << stream.body;
  EXPECT_THAT(FindHeader(stream, "Content-Type").value_or(""), StartsWith("text/event-stream"));
  const std::vector<std::vector<std::string>> events = CompleteEvents(stream.body);
  ASSERT_GE(events.size(), 2u) << stream.body;
  EXPECT_THAT(events[0], ElementsAre("retry: 1000"));
  // A snapshot event has no id: a stream cut inside the snapshot restarts from 0.
  ASSERT_EQ(events[1].size(), 2u) << stream.body;
  EXPECT_EQ(events[1][0], "event: experiment");
  absl::string_view data = events[1][1];
  ASSERT_TRUE(absl::ConsumePrefix(&data, "data: ")) << events[1][1];
  json event = json::parse(std::string(data), nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(event.is_discarded()) << data;
  EXPECT_EQ(event["experiment"]["id"], id);
  EXPECT_EQ(event["experiment"]["state"], "EXPERIMENT_STATE_DONE");
  EXPECT_TRUE(event["sequence"].is_string()) << event.dump();

  EXPECT_TRUE(IsError(Get(events_path + "?after_sequence=soon"), 400, "INVALID_ARGUMENT",
                      {"after_sequence", "soon"}));
  EXPECT_TRUE(IsError(Get(events_path, {"Last-Event-ID: abc"}), 400, "INVALID_ARGUMENT",
                      {"Last-Event-ID", "abc"}));
  EXPECT_TRUE(IsError(Get("/api/v1/experiments/no-such-experiment/events"), 404, "NOT_FOUND",
                      {"no-such-experiment"}));
}

TEST_F(WebApiTest, ArtifactsDownloadAsFilesWithTheirExactBytes) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  // Every byte value, NUL included, over more than one socket read.
  std::string content(100000, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 31 + 7) % 256);
  const v1::ArtifactRef ref = harness_.Upload(content, v1::ARTIFACT_KIND_MODEL);
  ASSERT_EQ(ref.sha256().size(), 64u);

  const HttpResponse download = Get("/api/v1/artifacts/" + ref.sha256());
  ASSERT_EQ(download.status_code, 200) << download.body.substr(0, 300);
  EXPECT_EQ(download.body.size(), content.size());
  EXPECT_TRUE(download.body == content) << "the downloaded bytes differ";
  EXPECT_EQ(FindHeader(download, "Content-Type"), "application/octet-stream");
  EXPECT_EQ(FindHeader(download, "Content-Length"), std::to_string(content.size()));
  EXPECT_EQ(FindHeader(download, "Content-Disposition"),
            absl::StrCat("attachment; filename=\"", ref.name(), "\""));

  HttpRequest head;
  head.method = "HEAD";
  head.path = "/api/v1/artifacts/" + ref.sha256();
  const HttpResponse headers_only = Fetch(head);
  EXPECT_EQ(headers_only.status_code, 200);
  EXPECT_EQ(FindHeader(headers_only, "Content-Length"), std::to_string(content.size()));
  EXPECT_EQ(headers_only.body, "");

  const std::string absent(64, 'a');
  EXPECT_TRUE(IsError(Get("/api/v1/artifacts/" + absent), 404, "NOT_FOUND", {absent}));
  // ArtifactStore checks the digest's form before it looks: InvalidArgument.
  EXPECT_TRUE(IsError(Get("/api/v1/artifacts/not-a-digest"), 400, "INVALID_ARGUMENT",
                      {"sha256", "not-a-digest"}));
  EXPECT_TRUE(IsError(Get("/api/v1/artifacts/" + absl::AsciiStrToUpper(ref.sha256())), 400,
                      "INVALID_ARGUMENT", {"sha256"}));
}

TEST_F(WebApiTest, WithoutAPageTheRootSaysHowToBuildIt) {
  ASSERT_NO_FATAL_FAILURE(StartWeb());
  const HttpResponse root = Get("/");
  EXPECT_EQ(root.status_code, 404);
  EXPECT_THAT(FindHeader(root, "Content-Type").value_or(""), StartsWith("text/plain"));
  EXPECT_THAT(root.body, HasSubstr("page is not built"));
  EXPECT_EQ(Get("/api/v1/experiments").status_code, 200);

  // A directory without index.html is no page either.
  const std::string empty_dir = testing::TempPath("web-api-test-empty");
  std::filesystem::create_directories(empty_dir);
  WebServer::Options options;
  options.static_dir = empty_dir;
  ASSERT_NO_FATAL_FAILURE(StartWeb(options));
  const HttpResponse still = Get("/");
  EXPECT_EQ(still.status_code, 404);
  EXPECT_THAT(still.body, HasSubstr("page is not built"));
}

TEST_F(WebApiTest, TheStaticDirIsServedBesideTheApi) {
  const std::string dir = testing::TempPath("web-api-test-page");
  std::filesystem::create_directories(dir);
  const std::string page = "<!doctype html><title>web api test page</title>\n";
  std::ofstream(dir + "/index.html") << page;
  std::ofstream(dir + "/app.js") << "console.log('app');\n";
  WebServer::Options options;
  options.static_dir = dir;
  ASSERT_NO_FATAL_FAILURE(StartWeb(options));

  const HttpResponse root = Get("/");
  ASSERT_EQ(root.status_code, 200) << root.body;
  EXPECT_EQ(root.body, page);
  EXPECT_THAT(FindHeader(root, "Content-Type").value_or(""), StartsWith("text/html"));
  const HttpResponse script = Get("/app.js");
  EXPECT_EQ(script.status_code, 200);
  EXPECT_EQ(script.body, "console.log('app');\n");
  EXPECT_EQ(Get("/missing.js").status_code, 404);
  EXPECT_EQ(Get("/api/v1/experiments").status_code, 200);
}

}  // namespace
}  // namespace autocompress
