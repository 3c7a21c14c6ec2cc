// Channel dependencies of a TorchScript model (reference §2.5): layers whose outputs meet
// in an element-wise add (or a concatenation along a dimension other than channels) must
// keep the same channels, so filter pruners prune them together.
//
// Found on the inlined forward graph: from each aten::add/add_ (and aten::cat with dim
// != 1) the walk goes backwards through every tensor-producing op to the nearest
// convolution or linear layer on each path; reshape-like ops (view, reshape, flatten,
// permute, transpose) end a path. Layers meeting in one op form a set; sets sharing a
// layer merge. Layers are named by the GetAttr chain of their weight ("block1.conv_b").
// Group constraints of grouped convolutions are not modelled (see README).
#ifndef AUTOCOMPRESS_COMPRESSION_DEPENDENCY_H_
#define AUTOCOMPRESS_COMPRESSION_DEPENDENCY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

// Sets of two or more layer names (sorted, sets in order of first appearance).
absl::StatusOr<std::vector<std::vector<std::string>>> ChannelDependencySets(
    const torch::jit::Module& model);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_DEPENDENCY_H_
