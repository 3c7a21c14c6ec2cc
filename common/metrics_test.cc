#include "common/metrics.h"

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/server_runner.h"
#include "common/testing/http_get.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Serialize(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

// The value of the sample line of `name` that carries every label in `labels`, or -1.
double SampleValue(const std::string& text, const std::string& name,
                   const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, name + "{")) continue;
    bool all = true;
    for (const std::string& label : labels) all = all && absl::StrContains(line, label);
    if (!all) continue;
    return std::stod(std::string(line.substr(line.rfind(' ') + 1)));
  }
  return -1;
}

TEST(RpcMetricsTest, MethodLabelKeepsKnownMethodsOnly) {
  // Linking the tuner stubs puts the TunerService descriptor in the generated pool.
  EXPECT_EQ(RpcMetrics::MethodLabel("/autocompress.v1.TunerService/Suggest"),
            "TunerService/Suggest");
  EXPECT_EQ(RpcMetrics::MethodLabel("/grpc.health.v1.Health/Check"), "Health/Check");
  EXPECT_EQ(RpcMetrics::MethodLabel("/autocompress.v1.TunerService/NoSuchMethod"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel("/evil.Service/x"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel("no-slash"), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel(""), "unknown");
  EXPECT_EQ(RpcMetrics::MethodLabel("/" + std::string(500, 'a') + "/b"), "unknown");
}

TEST(RpcMetricsTest, RecordCountsAndTimesByMethodAndCode) {
  prometheus::Registry registry;
  RpcMetrics metrics("unit", registry);
  metrics.Record("/autocompress.v1.TunerService/Suggest", grpc::StatusCode::OK,
                 absl::Milliseconds(3));
  metrics.Record("/autocompress.v1.TunerService/Suggest", grpc::StatusCode::OK,
                 absl::Milliseconds(5));
  metrics.Record("/autocompress.v1.TunerService/Suggest", grpc::StatusCode::NOT_FOUND,
                 absl::Milliseconds(1));
  const std::string text = Serialize(registry);
  EXPECT_EQ(SampleValue(text, "autocompress_unit_rpc_requests_total",
                        {"method=\"TunerService/Suggest\"", "code=\"OK\""}),
            2);
  EXPECT_EQ(SampleValue(text, "autocompress_unit_rpc_requests_total",
                        {"method=\"TunerService/Suggest\"", "code=\"NOT_FOUND\""}),
            1);
  EXPECT_EQ(SampleValue(text, "autocompress_unit_rpc_duration_seconds_count",
                        {"method=\"TunerService/Suggest\"", "code=\"OK\""}),
            2);
  EXPECT_NEAR(SampleValue(text, "autocompress_unit_rpc_duration_seconds_sum",
                          {"method=\"TunerService/Suggest\"", "code=\"OK\""}),
              0.008, 1e-9);
  // 3 ms and 5 ms both fall at or below the 5 ms bucket, neither below 2.5 ms.
  EXPECT_EQ(SampleValue(text, "autocompress_unit_rpc_duration_seconds_bucket",
                        {"code=\"OK\"", "le=\"0.005\""}),
            2);
  EXPECT_EQ(SampleValue(text, "autocompress_unit_rpc_duration_seconds_bucket",
                        {"code=\"OK\"", "le=\"0.0025\""}),
            0);
}

TEST(RpcMetricsTest, InterceptorRecordsEveryServedCall) {
  prometheus::Registry registry;
  RpcMetrics metrics("intercepted", registry);
  autocompress::v1::TunerService::Service unimplemented;
  ServerOptions options;
  options.host = "127.0.0.1";
  options.rpc_metrics = &metrics;
  ServerRunner runner(options);
  runner.AddService(&unimplemented, "autocompress.v1.TunerService");
  ASSERT_TRUE(runner.Start().ok());
  auto channel = runner.InProcessChannel();

  auto tuner = autocompress::v1::TunerService::NewStub(channel);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    autocompress::v1::SuggestResponse response;
    EXPECT_EQ(tuner->Suggest(&context, {}, &response).error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(&context, {}, &response).ok());

  const std::string text = Serialize(registry);
  EXPECT_EQ(SampleValue(text, "autocompress_intercepted_rpc_requests_total",
                        {"method=\"TunerService/Suggest\"", "code=\"UNIMPLEMENTED\""}),
            3)
      << text;
  EXPECT_EQ(SampleValue(text, "autocompress_intercepted_rpc_requests_total",
                        {"method=\"Health/Check\"", "code=\"OK\""}),
            1)
      << text;
}

TEST(MetricsExposerTest, ServesRegistryOverHttp) {
  auto registry = std::make_shared<prometheus::Registry>();
  RpcMetrics metrics("exposed", *registry);
  metrics.Record("/grpc.health.v1.Health/Check", grpc::StatusCode::OK, absl::Microseconds(50));
  auto exposer = MetricsExposer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  ASSERT_GT((*exposer)->port(), 0);

  auto response = testing::HttpGet("127.0.0.1", (*exposer)->port(), "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_THAT(response->body, HasSubstr("autocompress_exposed_rpc_requests_total{"));
  EXPECT_THAT(response->body, HasSubstr("method=\"Health/Check\""));
}

TEST(MetricsExposerTest, AuthGuardsTheScrape) {
  auto registry = std::make_shared<prometheus::Registry>();
  RpcMetrics metrics("guarded", *registry);
  metrics.Record("/grpc.health.v1.Health/Check", grpc::StatusCode::OK, absl::Microseconds(50));
  auto exposer = MetricsExposer::Start(
      "127.0.0.1", 0, registry,
      [](const std::string&, const std::string& password) { return password == "s3cret"; });
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  auto scrape = [&](const std::string& user_password) {
    testing::HttpRequest request;
    request.port = (*exposer)->port();
    request.path = "/metrics";
    if (!user_password.empty()) {
      request.headers.push_back("Authorization: Basic " + absl::Base64Escape(user_password));
    }
    return testing::HttpFetch(request);
  };
  for (const std::string refused : {"", "prometheus:wrong", "prometheus:s3cre"}) {
    auto response = scrape(refused);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->status_code, 401) << refused;
    EXPECT_THAT(response->body, Not(HasSubstr("autocompress_guarded"))) << refused;
  }
  auto allowed = scrape("prometheus:s3cret");
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ(allowed->status_code, 200);
  EXPECT_THAT(allowed->body, HasSubstr("autocompress_guarded_rpc_requests_total{"));
}

TEST(MetricsExposerTest, TakenPortIsUnavailable) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto first = MetricsExposer::Start("127.0.0.1", 0, registry);
  ASSERT_TRUE(first.ok());
  auto second = MetricsExposer::Start("127.0.0.1", (*first)->port(), registry);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("cannot listen"));
}

TEST(MetricsTest, ProcessRegistryIsASingleton) {
  EXPECT_EQ(ProcessRegistry().get(), ProcessRegistry().get());
}

}  // namespace
}  // namespace autocompress
