// Fuzzes the config-list decoder: the first byte picks one of the twelve algorithms, the
// rest is the config list's JSON.
#include <cstdint>
#include <iterator>

#include "absl/strings/string_view.h"
#include "compression/config_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr absl::string_view kAlgorithms[] = {
      "level",           "slim",  "l1",  "l2",     "fpgm", "taylorfo", "apoz",
      "mean_activation", "naive", "qat", "dorefa", "bnn",  "unknown"};
  if (size == 0) return 0;
  const absl::string_view algorithm = kAlgorithms[data[0] % std::size(kAlgorithms)];
  const absl::string_view json(reinterpret_cast<const char*>(data + 1), size - 1);
  (void)autocompress::compression::ParseConfigList(algorithm, json);
  return 0;
}
