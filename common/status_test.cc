#include "common/status.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "autocompress/v1/tuner.grpc.pb.h"
#include "common/server_runner.h"
#include "gtest/gtest.h"

namespace autocompress {
namespace {

using autocompress::v1::DeleteStudyRequest;
using autocompress::v1::DeleteStudyResponse;
using autocompress::v1::TunerService;

// Answers DeleteStudy with the absl code whose number is the study id, converted once
// at the boundary as every service does.
class CodeEchoService final : public TunerService::Service {
  grpc::Status DeleteStudy(grpc::ServerContext*, const DeleteStudyRequest* request,
                           DeleteStudyResponse*) override {
    const int code = std::stoi(request->study_id());
    return ToGrpcStatus(
        absl::Status(static_cast<absl::StatusCode>(code), absl::StrCat("message for code ", code)));
  }
};

absl::Status Helper(const absl::Status& in, int* reached) {
  RETURN_IF_ERROR(in);
  ++*reached;
  return absl::OkStatus();
}

absl::StatusOr<int> Twice(absl::StatusOr<int> in) {
  ASSIGN_OR_RETURN(int value, std::move(in));
  return 2 * value;
}

TEST(StatusTest, EveryCodeSurvivesARealGrpcRoundTrip) {
  CodeEchoService service;
  ServerOptions options;
  options.host = "127.0.0.1";
  ServerRunner runner(options);
  runner.AddService(&service, "autocompress.v1.TunerService");
  ASSERT_TRUE(runner.Start().ok());
  auto stub = TunerService::NewStub(runner.InProcessChannel());
  for (int code = 1; code <= 16; ++code) {
    grpc::ClientContext context;
    DeleteStudyRequest request;
    request.set_study_id(std::to_string(code));
    DeleteStudyResponse response;
    absl::Status status = FromGrpcStatus(stub->DeleteStudy(&context, request, &response));
    EXPECT_EQ(static_cast<int>(status.code()), code);
    EXPECT_EQ(status.message(), absl::StrCat("message for code ", code));
  }
  grpc::ClientContext context;
  DeleteStudyRequest request;
  request.set_study_id("0");
  DeleteStudyResponse response;
  EXPECT_TRUE(FromGrpcStatus(stub->DeleteStudy(&context, request, &response)).ok());
}

TEST(StatusTest, ConversionsAreInverse) {
  for (int code = 0; code <= 16; ++code) {
    absl::Status status(static_cast<absl::StatusCode>(code), code == 0 ? "" : "why");
    grpc::Status grpc_status = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(grpc_status.error_code()), code);
    EXPECT_EQ(FromGrpcStatus(grpc_status), status);
  }
}

TEST(StatusTest, OutOfRangeCodesBecomeUnknown) {
  absl::Status odd(static_cast<absl::StatusCode>(42), "odd");
  EXPECT_EQ(ToGrpcStatus(odd).error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(ToGrpcStatus(odd).error_message(), "odd");
  grpc::Status grpc_odd(static_cast<grpc::StatusCode>(99), "odd");
  EXPECT_EQ(FromGrpcStatus(grpc_odd).code(), absl::StatusCode::kUnknown);
}

TEST(StatusMacrosTest, ReturnIfErrorStopsOnlyOnError) {
  int reached = 0;
  EXPECT_TRUE(Helper(absl::OkStatus(), &reached).ok());
  EXPECT_EQ(reached, 1);
  EXPECT_EQ(Helper(absl::NotFoundError("x"), &reached).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacrosTest, AssignOrReturnMovesValueOrPropagates) {
  EXPECT_EQ(*Twice(21), 42);
  EXPECT_EQ(Twice(absl::InvalidArgumentError("bad")).status(), absl::InvalidArgumentError("bad"));
}

}  // namespace
}  // namespace autocompress
