#include "compression/graph_hooks.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>

#include "common/testing/runfiles.h"
#include "gtest/gtest.h"

namespace autocompress::compression {
namespace {

// Records every tensor it sees and can double it (to show it is in the data path).
class Recorder final : public ActivationHandler {
 public:
  explicit Recorder(bool doubles) : doubles_(doubles) {}
  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    seen.push_back(x.detach().clone());
    return doubles_ ? x * 2 : x;
  }
  std::vector<torch::Tensor> seen;

 private:
  bool doubles_;
};

torch::jit::Module Child(torch::jit::Module& model, const std::string& name) {
  for (const auto& item : model.named_modules()) {
    if (item.name == name) return item.value;
  }
  return model;
}

TEST(GraphHooksTest, OutputHookSeesTheLayersOutputOnlyForTheHookedInstance) {
  torch::Tensor x = torch::randn({2, 1, 12, 12});
  torch::Tensor expected_out =
      torch::jit::load(testing::RunfilePath("compression/testdata/residual_cnn.pt"))
          .forward({x})
          .toTensor();
  torch::jit::Module model =
      torch::jit::load(testing::RunfilePath("compression/testdata/residual_cnn.pt"));
  torch::jit::Module conv = Child(model, "block2.conv_a");

  auto recorder = std::make_shared<Recorder>(false);
  GraphHooks hooks(model);
  // block1.conv_a and block2.conv_a share Conv2d.forward; only block2's is hooked.
  ASSERT_TRUE(hooks.Add("block2.conv_a", HookSite::kOutput, recorder).ok());
  torch::Tensor out = model.forward({x}).toTensor();
  EXPECT_TRUE(torch::allclose(out, expected_out));
  ASSERT_EQ(recorder->seen.size(), 1u);
  EXPECT_EQ(recorder->seen[0].sizes(), (std::vector<int64_t>{2, 8, 12, 12}));

  // The recorded tensor is block2.conv_a's output: recompute it on a fresh copy.
  torch::jit::Module fresh =
      torch::jit::load(testing::RunfilePath("compression/testdata/residual_cnn.pt"));
  torch::Tensor stem = torch::relu(Child(fresh, "stem").forward({x}).toTensor());
  torch::Tensor b1 = Child(fresh, "block1").forward({stem}).toTensor();
  torch::Tensor conv_a = Child(fresh, "block2.conv_a").forward({b1}).toTensor();
  EXPECT_TRUE(torch::allclose(recorder->seen[0], conv_a, 1e-5, 1e-6));
}

TEST(GraphHooksTest, TransformingHooksChangeTheForwardAndRemoveRestoresIt) {
  torch::Tensor x = torch::randn({2, 1, 28, 28});
  torch::Tensor plain = torch::jit::load(testing::RunfilePath("compression/testdata/small_cnn.pt"))
                            .forward({x})
                            .toTensor();
  torch::jit::Module model =
      torch::jit::load(testing::RunfilePath("compression/testdata/small_cnn.pt"));
  {
    GraphHooks hooks(model);
    ASSERT_TRUE(hooks.Add("fc2", HookSite::kOutput, std::make_shared<Recorder>(true)).ok());
    ASSERT_TRUE(hooks.Add("fc1", HookSite::kInput, std::make_shared<Recorder>(false)).ok());
    torch::Tensor doubled = model.forward({x}).toTensor();
    EXPECT_TRUE(torch::allclose(doubled, plain * 2));
    EXPECT_FALSE(hooks.Add("nope", HookSite::kOutput, std::make_shared<Recorder>(false)).ok());
  }
  // Handlers are gone: the compiled plan passes tensors through.
  EXPECT_TRUE(torch::allclose(model.forward({x}).toTensor(), plain));
  // The saved model has no call of this library's operator left.
  const std::string path = testing::TempPath("unhooked.pt");
  model.save(path);
  torch::jit::Module reloaded = torch::jit::load(path);
  for (const auto& item : reloaded.named_modules()) {
    const std::string graph = item.value.get_method("forward").graph()->toString();
    EXPECT_EQ(graph.find("autocompress::observe"), std::string::npos) << item.name;
  }
  EXPECT_TRUE(torch::allclose(reloaded.forward({x}).toTensor(), plain));
}

// Zeroes every other output and passes gradients only where kept.
class HalfMask final : public ActivationHandler {
 public:
  at::Tensor Forward(const at::Tensor& x, bool training, at::Tensor* ste_mask) override {
    torch::Tensor mask = torch::arange(x.numel()).reshape(x.sizes()).remainder(2).to(x.dtype());
    *ste_mask = mask;
    return x * mask;
  }
};

TEST(GraphHooksTest, HandlerMasksGradientsInBackward) {
  torch::jit::Module model =
      torch::jit::load(testing::RunfilePath("compression/testdata/small_cnn.pt"));
  GraphHooks hooks(model);
  ASSERT_TRUE(hooks.Add("fc2", HookSite::kOutput, std::make_shared<HalfMask>()).ok());
  torch::Tensor fc2_weight = Child(model, "fc2").attr("weight").toTensor();
  torch::Tensor out = model.forward({torch::randn({1, 1, 28, 28})}).toTensor();
  // d(out.sum)/d(fc2 bias) = the mask, per output.
  out.sum().backward();
  torch::Tensor bias_grad = Child(model, "fc2").attr("bias").toTensor().grad();
  EXPECT_TRUE(torch::equal(bias_grad, torch::arange(10).remainder(2).to(torch::kFloat)));
}

}  // namespace
}  // namespace autocompress::compression
