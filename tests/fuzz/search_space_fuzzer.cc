// Fuzzes the search-space parser (NNI's JSON format). Beyond "no crash": a space that
// parses must sample, render and decode its own rendering back to the same parameters,
// so a parser that accepts what the rest of the tuner cannot handle is found too.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "absl/random/random.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "tuner_service/search_space/search_space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using autocompress::tuner::SearchSpace;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto space = SearchSpace::Parse(text);
  if (!space.ok()) return 0;
  std::seed_seq seed{static_cast<uint32_t>(size)};
  absl::BitGen gen(seed);
  for (int draw = 0; draw < 3; ++draw) {
    const auto x = (*space)->SamplePrior(gen);
    const std::string rendered = (*space)->Render(x);
    auto decoded = (*space)->Decode(rendered);
    if (!decoded.ok()) {
      std::fprintf(stderr, "rendered parameters do not decode: %s\n%s\n", rendered.c_str(),
                   std::string(decoded.status().message()).c_str());
      std::abort();
    }
    // Equal as JSON values, not as text: a choice may hold options that are equal
    // numbers (1 and 1.0), and Decode then picks the first.
    const std::string again = (*space)->Render(*decoded);
    if (nlohmann::json::parse(again) != nlohmann::json::parse(rendered)) {
      std::fprintf(stderr, "decode(render(x)) renders differently:\n%s\n%s\n", rendered.c_str(),
                   again.c_str());
      std::abort();
    }
  }
  // Decoding arbitrary parameters against a valid space must not crash either.
  (void)(*space)->Decode(text);
  return 0;
}
