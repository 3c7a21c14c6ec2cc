// Helpers for reading a TorchScript model's inlined forward graph, shared by the channel
// dependency analysis, the filter pruners and the speedup pass. Internal to the library.
#ifndef AUTOCOMPRESS_COMPRESSION_SCRIPT_GRAPH_H_
#define AUTOCOMPRESS_COMPRESSION_SCRIPT_GRAPH_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torch::jit {
struct Block;
struct Graph;
struct Module;
struct Node;
struct Value;
}  // namespace torch::jit

namespace autocompress::compression {

// A copy of the model's forward graph with every method call inlined: one graph in
// which each layer instance is reached by its own GetAttr chain from `self`.
std::shared_ptr<torch::jit::Graph> InlinedForward(const torch::jit::Module& model);

// "block1.conv_b" from the chain of GetAttr nodes that produced a weight value; "" when
// the value is not a module attribute.
std::string LayerName(const torch::jit::Value* weight);

// The value of an `if` condition that is a constant or a module attribute (a flag set in
// __init__, like MobileNetV2's use_res_connect; TorchScript keeps both branches in the
// graph). nullopt when the condition depends on the input.
std::optional<bool> StaticCondition(const torch::jit::Value* condition,
                                    const torch::jit::Module& model);

// The blocks of a node that this model can run: for an `if` with a static condition
// the taken one, else all of them.
std::vector<torch::jit::Block*> LiveBlocks(torch::jit::Node* n, const torch::jit::Module& model);

// aten::conv2d, aten::conv1d or aten::_convolution.
bool IsConvolution(const torch::jit::Node* n);

// The BatchNorm layers that normalize a convolution's output directly, by convolution
// layer name (a layer called twice may feed several).
std::map<std::string, std::vector<std::string>> BatchNormsAfterConvolutions(
    const torch::jit::Module& model);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_SCRIPT_GRAPH_H_
