// The one-shot pruners (reference §2.2), which choose masks from the weights alone:
// level (element magnitudes, any weighted layer), l1 / l2 (filter norms) and fpgm
// (filters closest to the geometric median), the filter ones optionally
// dependency-aware.
#ifndef AUTOCOMPRESS_COMPRESSION_ONE_SHOT_PRUNERS_H_
#define AUTOCOMPRESS_COMPRESSION_ONE_SHOT_PRUNERS_H_

#include <memory>

#include "compression/pruner.h"

namespace autocompress::compression {

std::unique_ptr<Pruner> NewLevelPruner();
// p = 1 (l1) or 2 (l2); NNI's threshold tie rule.
std::unique_ptr<Pruner> NewNormPruner(int p, bool dependency_aware);
std::unique_ptr<Pruner> NewFpgmPruner(bool dependency_aware);

}  // namespace autocompress::compression

#endif  // AUTOCOMPRESS_COMPRESSION_ONE_SHOT_PRUNERS_H_
