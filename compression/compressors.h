// Creates the LibTorch implementation of a registered algorithm (algorithm_registry.h)
// from its validated kwargs: a Pruner for the pruner families, a Quantizer for
// kQuantizer. Checks the combinations a single kwarg cannot (taylorfo's global_sort
// with dependency_aware; a global ranking needs config_list[0]'s sparsity).
#ifndef AUTOCOMPRESS_COMPRESSION_COMPRESSORS_H_
#define AUTOCOMPRESS_COMPRESSION_COMPRESSORS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "compression/algorithm_registry.h"
#include "compression/config_list.h"
#include "compression/pruner.h"
#include "compression/quantizers.h"

namespace autocompress::compression {

absl::StatusOr<std::unique_ptr<Pruner>> CreatePruner(const AlgorithmSpec& spec,
                                                     const Kwargs& kwargs,
                                                     const std::vector<LayerConfig>& configs);

absl::StatusOr<std::unique_ptr<Quantizer>> CreateQuantizer(const AlgorithmSpec& spec,
                                                           const Kwargs& kwargs);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_COMPRESSORS_H_
