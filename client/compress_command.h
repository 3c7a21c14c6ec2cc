// `autocompress compress`: one model, one algorithm, one config list -> a compressed
// TorchScript model, a JSON report and a calibration table (see kCompressUsage), and
// `autocompress speedup` for a filter-pruned model compressed earlier. Their
// flags are parsed here; the CLI passes the subcommand's arguments through. Also
// `autocompress train`, which trains a model with the same training code.
#ifndef AUTOCOMPRESS_CLIENT_COMPRESS_COMMAND_H_
#define AUTOCOMPRESS_CLIENT_COMPRESS_COMMAND_H_

#include <string>
#include <vector>

namespace autocompress {

extern const char kCompressUsage[];
extern const char kTrainUsage[];
extern const char kSpeedupUsage[];

// Runs the command on `args` (after "compress"); returns the exit code (0, 2 bad input,
// 1 internal error), having printed one line on stderr for an error.
int RunCompress(const std::vector<std::string>& args);
// `autocompress speedup` (kSpeedupUsage): a masked model made physically smaller.
int RunSpeedup(const std::vector<std::string>& args);
// `autocompress train` (kTrainUsage): trains a model with the worker's training code.
int RunTrain(const std::vector<std::string>& args);

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_COMPRESS_COMMAND_H_
