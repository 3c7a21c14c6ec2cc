// CompressionSession under failure: a failed Compress leaves the session and the model
// as they were (no algorithm, mode, hooks, masks or trained weights carried over), and
// every accessor reports a broken model as a status instead of throwing.
#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "common/testing/runfiles.h"
#include "compression/compression_session.h"
#include "compression/testing/synthetic_training.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace autocompress::compression {
namespace {

using autocompress::compression::testing::SyntheticTraining;

constexpr char kConvHalf[] = R"([{"sparsity": 0.5, "op_types": ["Conv2d"]}])";
constexpr char kBnHalf[] = R"([{"sparsity": 0.5, "op_types": ["BatchNorm2d"]}])";

std::unique_ptr<CompressionSession> Load(const std::string& name) {
  auto session = CompressionSession::Load(
      autocompress::testing::RunfilePath("compression/testdata/" + name), "cpu");
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? std::move(*session) : nullptr;
}

// A training run whose data loader dies after `steps` good SGD steps: the weights have
// moved when the pruner sees the error.
class DyingTraining final : public TrainingHooks {
 public:
  explicit DyingTraining(int steps) : training_(steps) {}
  absl::Status TrainEpoch(torch::jit::Module& model, const std::vector<at::Tensor>& parameters,
                          const StepCallbacks& callbacks) override {
    absl::Status status = training_.TrainEpoch(model, parameters, callbacks);
    if (!status.ok()) return status;
    return absl::UnavailableError("the data loader died");
  }

 private:
  SyntheticTraining training_;
};

std::map<std::string, torch::Tensor> Snapshot(torch::jit::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model.named_parameters()) out[p.name] = p.value.detach().clone();
  for (const auto& b : model.named_buffers()) out[b.name] = b.value.detach().clone();
  return out;
}

void ExpectSameTensors(const std::map<std::string, torch::Tensor>& expected,
                       const std::map<std::string, torch::Tensor>& actual,
                       const std::string& context) {
  ASSERT_EQ(expected.size(), actual.size()) << context;
  for (const auto& [name, tensor] : expected) {
    EXPECT_TRUE(torch::equal(tensor, actual.at(name))) << context << ": " << name << " changed";
  }
}

nlohmann::json Layers(CompressionSession& session) {
  absl::StatusOr<std::string> report = session.ReportJson();
  EXPECT_TRUE(report.ok()) << report.status();
  return report.ok() ? nlohmann::json::parse(*report)["layers"] : nlohmann::json();
}

// What plain l1 picks on a fresh session of `model`.
nlohmann::json FreshL1(const std::string& model) {
  auto fresh = Load(model);
  EXPECT_TRUE(fresh->Compress({"l1", kConvHalf, ""}).ok());
  return Layers(*fresh);
}

TEST(CompressionSessionFailureTest, AFailedCompressLeavesNoDependencyAwareModeBehind) {
  auto session = Load("residual_cnn.pt");
  // taylorfo reads its kwargs, then finds no training data.
  EXPECT_EQ(session->Compress({"taylorfo", kConvHalf, R"({"dependency_aware": true})"}).code(),
            absl::StatusCode::kFailedPrecondition);
  // global_sort and dependency_aware cannot be combined.
  EXPECT_EQ(
      session
          ->Compress({"taylorfo", kConvHalf, R"({"dependency_aware": true, "global_sort": true})"})
          .code(),
      absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(session->Compress({"l1", kConvHalf, ""}).ok());
  // Plain l1 prunes the residual-tied convs by their own norms, as on a fresh session.
  EXPECT_EQ(Layers(*session), FreshL1("residual_cnn.pt"));
}

TEST(CompressionSessionFailureTest, TrainingThatFailsRestoresTheWeightsAndTheSession) {
  for (const char* algorithm : {"slim", "taylorfo", "apoz", "mean_activation"}) {
    SCOPED_TRACE(algorithm);
    auto session = Load("small_cnn.pt");
    session->module().train();
    // A frozen BatchNorm inside a model in train mode keeps its own mode.
    session->module().attr("bn1").toModule().eval();
    const auto before = Snapshot(session->module());
    DyingTraining dies(3);
    const std::string config = std::string(algorithm) == "slim" ? kBnHalf : kConvHalf;
    const std::string kwargs =
        std::string(algorithm) == "slim" ? "" : R"({"dependency_aware": true})";
    const absl::Status failed = session->Compress({algorithm, config, kwargs, &dies});
    EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
    // Parameters and buffers (batch-norm running statistics) are as before the call.
    ExpectSameTensors(before, Snapshot(session->module()), algorithm);
    EXPECT_TRUE(session->module().is_training());
    EXPECT_FALSE(session->module().attr("bn1").toModule().is_training());
    const nlohmann::json report = nlohmann::json::parse(session->ReportJson().value());
    EXPECT_EQ(report["algorithm"], "");
    EXPECT_TRUE(report["layers"].empty());
    // The session takes another algorithm, and it runs as on a fresh session (no
    // leftover dependency-aware mode, masks or activation hooks).
    ASSERT_TRUE(session->Compress({"l1", kConvHalf, ""}).ok());
    EXPECT_EQ(Layers(*session), FreshL1("small_cnn.pt"));
    torch::NoGradGuard no_grad;
    EXPECT_NO_THROW(session->module().forward({torch::randn({2, 1, 28, 28})}));
  }
}

TEST(CompressionSessionFailureTest, AFailedSelectionLeavesNoMasks) {
  // slim's global ranking takes config_list[0]'s sparsity: an exclude entry there fails
  // after the config list was matched.
  auto session = Load("small_cnn.pt");
  SyntheticTraining training(2);
  EXPECT_EQ(session
                ->Compress({"slim",
                            R"([{"exclude": true, "op_names": ["bn1"]},
                                {"sparsity": 0.5, "op_names": ["bn2"]}])",
                            "", &training})
                .code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(session->Compress({"l1", kConvHalf, ""}).ok());
  EXPECT_EQ(Layers(*session), FreshL1("small_cnn.pt"));
}

// The caller owns the module and may break it; every accessor then answers with a
// status, never an exception.
void Rebind(CompressionSession& session, const std::string& layer, const torch::Tensor& weight) {
  for (const auto& item : session.module().named_modules()) {
    torch::jit::Module m = item.value;  // a handle: the model sees the change
    if (item.name == layer) m.setattr("weight", weight);
  }
}

TEST(CompressionSessionFailureTest, AQuantizedWeightReboundByTheCallerIsAStatus) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(session
                  ->Compress({"qat", R"([{"quant_types": ["weight"], "quant_bits": 8,
                                 "op_types": ["Conv2d", "Linear"]}])",
                              ""})
                  .ok());
  // fc1's float shadow no longer belongs to the model: training it would be silent waste.
  Rebind(*session, "fc1", torch::zeros({32, 400}));
  absl::StatusOr<std::vector<at::Tensor>> params;
  EXPECT_NO_THROW(params = session->TrainableParameters());
  EXPECT_EQ(params.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(params.status().message()), ::testing::HasSubstr("fc1.weight"));
  absl::Status before = absl::OkStatus(), after = absl::OkStatus();
  EXPECT_NO_THROW(before = session->BeforeOptimizerStep());
  EXPECT_NO_THROW(after = session->OnOptimizerStep());
  EXPECT_EQ(before.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition);
  // The calibration table reads only the session's own tensors: still readable.
  absl::StatusOr<std::string> calibration;
  EXPECT_NO_THROW(calibration = session->CalibrationJson());
  EXPECT_TRUE(calibration.ok()) << calibration.status();
}

TEST(CompressionSessionFailureTest, AWeightWithoutDataIsAStatusFromTheReportAndSave) {
  auto session = Load("small_cnn.pt");
  ASSERT_TRUE(session->Compress({"l1", kConvHalf, ""}).ok());
  // conv2's weight re-bound to a tensor with no data (meta device): nothing can count
  // its zeros or write it.
  Rebind(*session, "conv2", torch::empty({16, 8, 3, 3}, torch::kMeta));
  absl::StatusOr<std::string> report;
  EXPECT_NO_THROW(report = session->ReportJson());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(report.status().message()), ::testing::HasSubstr("writing the report"));
  // Whether LibTorch can serialize a meta tensor is its business; it must not throw.
  EXPECT_NO_THROW(session->Save(::testing::TempDir() + "/meta.pt").IgnoreError());
  absl::Status unwritable = absl::OkStatus();
  EXPECT_NO_THROW(unwritable = session->Save("/nonexistent/dir/broken.pt"));
  EXPECT_FALSE(unwritable.ok());
  // Masks still refer to the original tensors: the optimizer-step calls keep working.
  EXPECT_TRUE(session->BeforeOptimizerStep().ok());
  EXPECT_TRUE(session->OnOptimizerStep().ok());
}

TEST(CompressionSessionFailureTest, LoadAndCompressReportEveryProblemAsAStatus) {
  absl::StatusOr<std::unique_ptr<CompressionSession>> directory;
  EXPECT_NO_THROW(directory = CompressionSession::Load(::testing::TempDir(), "cpu"));
  EXPECT_FALSE(directory.ok());
  // Devices other than the CPU and CUDA are refused up front, as the message says.
  for (const char* device : {"meta", "xla", "mps"}) {
    absl::StatusOr<std::unique_ptr<CompressionSession>> other;
    EXPECT_NO_THROW(
        other = CompressionSession::Load(
            autocompress::testing::RunfilePath("compression/testdata/small_cnn.pt"), device));
    EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument) << device;
  }
  auto session = Load("small_cnn.pt");
  absl::Status status = absl::OkStatus();
  EXPECT_NO_THROW(status = session->Compress({"l1", kConvHalf, R"({"bogus": 1, "x": 2})"}));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              ::testing::HasSubstr("kwargs: unknown key(s) bogus, x for l1; known: "
                                   "dependency_aware"));
  EXPECT_THAT(std::string(session->Compress({"slim", kBnHalf, R"({"scale": -1})"}).message()),
              ::testing::HasSubstr("kwargs.scale: -1 is outside"));
  EXPECT_THAT(
      std::string(session->Compress({"apoz", kConvHalf, R"({"activation": "tanh"})"}).message()),
      ::testing::HasSubstr(R"(kwargs.activation: "tanh" is not one of relu, relu6)"));
  EXPECT_THAT(
      std::string(
          session->Compress({"level", kConvHalf, R"({"dependency_aware": true})"}).message()),
      ::testing::HasSubstr("for level; it takes none"));
}

}  // namespace
}  // namespace autocompress::compression
