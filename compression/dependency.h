// Channel dependencies of a TorchScript model (reference §2.5): layers whose outputs meet
// in an element-wise add (or a concatenation along a dimension other than channels) must
// keep the same channels, so filter pruners prune them together.
//
// Found on the inlined forward graph: from each aten::add/add_ (and aten::cat with dim
// != 1) the walk goes backwards through every tensor-producing op to the nearest
// convolution or linear layer on each path; reshape-like ops (view, reshape, flatten,
// permute, transpose) end a path. Layers meeting in one op form a set; sets sharing a
// layer merge. Layers are named by the GetAttr chain of their weight ("block1.conv_b").
// Grouped convolutions (groups > 1, not depthwise) constrain their own filter count and
// that of the nearest convolutions feeding them to multiples of `groups`; each layer's
// constraint is the least common multiple of the ones that apply.
#ifndef AUTOCOMPRESS_COMPRESSION_DEPENDENCY_H_
#define AUTOCOMPRESS_COMPRESSION_DEPENDENCY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace torch::jit {
struct Module;
}

namespace autocompress::compression {

struct ChannelDependencies {
  // Sets of two or more layer names (sorted; sets in order of first appearance).
  std::vector<std::vector<std::string>> sets;
  // Layers whose filter count must stay a multiple of this (> 1 only).
  std::map<std::string, int64_t> group_constraints;
};

absl::StatusOr<ChannelDependencies> AnalyzeChannelDependencies(const torch::jit::Module& model);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_DEPENDENCY_H_
