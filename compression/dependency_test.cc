#include "compression/dependency.h"

#include <torch/script.h>

#include <cstdlib>

#include "common/testing/runfiles.h"
#include "gtest/gtest.h"

namespace autocompress::compression {
namespace {

TEST(DependencyTest, ResidualAddsTieTheConvsFeedingThem) {
  torch::jit::Module model =
      torch::jit::load(testing::RunfilePath("compression/testdata/residual_cnn.pt"));
  auto analysis = AnalyzeChannelDependencies(model);
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  const auto* sets = &analysis->sets;
  // x + conv_b(...) in both blocks; block1's input is relu(stem(x)), block2's input is
  // relu(block1's add), whose nearest convs are stem and block1.conv_b.
  ASSERT_EQ(sets->size(), 1u);
  EXPECT_EQ((*sets)[0], (std::vector<std::string>{"block1.conv_b", "block2.conv_b", "stem"}));
}

TEST(DependencyTest, APlainChainHasNoDependencies) {
  torch::jit::Module model =
      torch::jit::load(testing::RunfilePath("compression/testdata/small_cnn.pt"));
  auto analysis = AnalyzeChannelDependencies(model);
  ASSERT_TRUE(analysis.ok());
  EXPECT_TRUE(analysis->sets.empty());
  EXPECT_TRUE(analysis->group_constraints.empty());
}

TEST(DependencyTest, GroupedConvolutionsConstrainThemselvesAndTheirProducers) {
  torch::jit::Module model =
      torch::jit::load(testing::RunfilePath("compression/testdata/grouped_cnn.pt"));
  auto analysis = AnalyzeChannelDependencies(model);
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  // conv2 has groups=2 and is fed by conv1; conv3 is depthwise (constrains nothing).
  EXPECT_EQ(analysis->group_constraints,
            (std::map<std::string, int64_t>{{"conv1", 2}, {"conv2", 2}}));
}

}  // namespace
}  // namespace autocompress::compression
