// The pruners that train before choosing (reference §2.3), through the caller's
// TrainingHooks: slim (L1 penalty on batch-norm scales, one global threshold), taylorfo
// (first-order Taylor contributions of the first steps' gradients, per layer or one
// global pool) and apoz / mean_activation (statistics of act(conv output) over the first
// training forwards, through graph_hooks.h).
#ifndef AUTOCOMPRESS_COMPRESSION_DATA_DRIVEN_PRUNERS_H_
#define AUTOCOMPRESS_COMPRESSION_DATA_DRIVEN_PRUNERS_H_

#include <memory>
#include <string>

#include "compression/pruner.h"

namespace autocompress::compression {

std::unique_ptr<Pruner> NewSlimPruner(int epochs, double scale);
std::unique_ptr<Pruner> NewTaylorFoPruner(int batches, bool global_sort, bool dependency_aware);
// apoz: rank by the share of zeros, else by the mean (mean_activation); relu6: the
// activation applied to the conv output.
std::unique_ptr<Pruner> NewActivationRankPruner(bool apoz, bool relu6, int batches,
                                                bool dependency_aware);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_DATA_DRIVEN_PRUNERS_H_
