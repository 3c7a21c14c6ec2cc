#include "client/compress_command.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "compression/compression_session.h"
#include "compression/config_list.h"
#include "compression/speedup.h"
#include "nlohmann/json.hpp"
#include "worker/training/dataset.h"
#include "worker/training/fine_tune.h"
#include "worker/training/recipe.h"

namespace autocompress {

int Report(const char* command, const absl::Status& status);

extern const char kTrainUsage[] =
    "usage: autocompress train --model IN.pt --data DIR --output OUT.pt [--data_format idx]\n"
    "                          [--train_split train] [--eval_split t10k] [--epochs 1]\n"
    "                          [--batch_size 64] [--lr 0.01] [--momentum 0.9] [--seed 1]\n"
    "                          [--threads N]\n"
    "  Trains IN.pt on the training split (SGD, cross-entropy), evaluating the eval split\n"
    "  after each epoch, and saves the trained TorchScript model. Inputs are pixels / 255.\n";

extern const char kCompressUsage[] =
    "usage: autocompress compress --model IN.pt --algorithm NAME --config_list JSON\n"
    "                             --output OUT.pt [--report REPORT.json] [--kwargs JSON]\n"
    "                             [--calibration CALIBRATION.json]  (quantizers)\n"
    "                             [--device cpu|cuda:N] [--threads N]\n"
    "                             [--data DIR --data_format idx --batches N --batch_size B\n"
    "                              --lr LR --seed S]\n"
    "  --data: slim, taylorfo, apoz and mean_activation train on it to choose filters;\n"
    "  quantizers train on it after compressing (quantization-aware training, which also\n"
    "  calibrates qat's input/output ranges). An epoch is at most N shuffled batches of\n"
    "  B examples, SGD with momentum 0.9 and cross-entropy.\n"
    "  --speedup: filter-pruned channels are removed for real (autocompress speedup);\n"
    "  OUT.pt is the smaller model, the report gains a \"speedup\" section. The input\n"
    "  shape (one example) comes from --input_shape or the --data set.\n";

extern const char kSpeedupUsage[] =
    "usage: autocompress speedup --model MASKED.pt --output SMALL.pt --input_shape C,H,W\n"
    "                            [--original ORIGINAL.pt] [--report REPORT.json]\n"
    "                            [--device cpu|cuda:N] [--threads N] [--runs 30]\n"
    "  Removes the channels that filter pruning (l1, l2, fpgm, taylorfo, apoz,\n"
    "  mean_activation, slim) left constant, from a model `compress` wrote earlier. The\n"
    "  output computes what the masked model does (checked on a random batch); channels\n"
    "  the pass cannot remove stay masked and are listed with the reason. Prints, and\n"
    "  writes to REPORT.json, each shrunk layer's shapes and the parameters, MACs and\n"
    "  median latency (batch 1 and 32) of the original (with --original), masked and\n"
    "  sped-up models.\n";

namespace {

absl::StatusOr<int> IntFlag(const std::map<std::string, std::string>& flags,
                            const std::string& name, int fallback, int min, int max) {
  if (flags.count(name) == 0) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(flags.at(name), &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "=", flags.at(name), " is not an integer in ", min, "..", max));
  }
  return value;
}

// SGD with momentum 0.9 and cross-entropy, at most --batches shuffled batches an epoch.
absl::StatusOr<autocompress::training::Recipe> RecipeFromFlags(
    const std::map<std::string, std::string>& flags) {
  autocompress::training::Recipe recipe;
  recipe.momentum = 0.9;
  auto batches = IntFlag(flags, "batches", 10, 1, 1000000);
  if (!batches.ok()) return batches.status();
  auto batch_size = IntFlag(flags, "batch_size", 32, 1, 65536);
  if (!batch_size.ok()) return batch_size.status();
  auto seed = IntFlag(flags, "seed", 1, 0, 2147483647);
  if (!seed.ok()) return seed.status();
  if (flags.count("lr") && (!absl::SimpleAtod(flags.at("lr"), &recipe.lr) || !(recipe.lr > 0))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lr=", flags.at("lr"), " is not a positive number"));
  }
  recipe.max_batches = *batches;
  recipe.batch_size = *batch_size;
  recipe.seed = *seed;
  return recipe;
}

// --key=value or --key value; every key must be in `allowed`.
absl::StatusOr<std::map<std::string, std::string>> ParseFlags(
    const std::vector<std::string>& args, const std::set<std::string>& allowed) {
  std::map<std::string, std::string> flags;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    arg = arg.substr(2);
    std::string value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", arg, " needs a value"));
    }
    if (allowed.count(arg) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", arg, "; known: --", absl::StrJoin(allowed, ", --")));
    }
    flags[arg] = value;
  }
  return flags;
}

int ExitCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDataLoss:
      return 1;
    default:
      return 2;
  }
}

// An output's directory must exist and be writable before any work is done: compressing
// with training can take minutes, and its result must not be lost to a typo.
absl::Status CheckOutputPath(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", path, " is a directory"));
  }
  const fs::path parent = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : ".";
  if (!fs::is_directory(parent, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": directory ", parent.string(), " does not exist"));
  }
  if (access(parent.c_str(), W_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": directory ", parent.string(), " is not writable"));
  }
  return absl::OkStatus();
}

// Writes `path` through a temporary file beside it and a rename, so that it is either
// the previous file or the whole new one, never a partial write.
absl::Status WriteAtomically(const std::string& path,
                             const std::function<absl::Status(const std::string&)>& write) {
  const std::string temporary = absl::StrCat(path, ".tmp.", getpid());
  absl::Status status = write(temporary);
  if (status.ok() && std::rename(temporary.c_str(), path.c_str()) != 0) {
    status = absl::FailedPreconditionError(
        absl::StrCat("renaming ", temporary, " to ", path, ": ", std::strerror(errno)));
  }
  if (!status.ok()) std::remove(temporary.c_str());
  return status;
}

// Debian's LibTorch starts with one intra-op thread unless OMP_NUM_THREADS is set; use
// every core unless --threads or OMP_NUM_THREADS says otherwise.
absl::Status SetThreads(const std::map<std::string, std::string>& flags) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto threads = IntFlag(flags, "threads", 0, 0, 4096);
  if (!threads.ok()) return threads.status();
  if (*threads > 0) {
    at::set_num_threads(*threads);
  } else if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    at::set_num_threads(cores);
  }
  return absl::OkStatus();
}

// "1,28,28": one example's shape, every dimension positive.
absl::StatusOr<std::vector<int64_t>> ParseShape(const std::string& text) {
  std::vector<int64_t> shape;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d <= 0 || d > (int64_t{1} << 24)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--input_shape=", text, " is not a list of positive dimensions like 1,28,28"));
    }
    shape.push_back(d);
  }
  return shape;
}

// A flag given without a value ("--speedup") becomes "--speedup=true".
std::vector<std::string> WithSwitch(std::vector<std::string> args, const std::string& name) {
  for (std::string& arg : args) {
    if (arg == "--" + name) arg += "=true";
  }
  return args;
}

// Speeds `masked` up into `output` and writes what it measured: a table on stdout and,
// under "speedup", the report (returned as JSON).
absl::StatusOr<nlohmann::ordered_json> SpeedupAndReport(
    const std::string& masked, const std::string& output, const std::string& original,
    const std::map<std::string, std::string>& flags, std::vector<int64_t> input_shape) {
  autocompress::compression::MeasureOptions options;
  options.input_shape = std::move(input_shape);
  options.device = flags.count("device") ? flags.at("device") : "cpu";
  auto runs = IntFlag(flags, "runs", 30, 1, 100000);
  if (!runs.ok()) return runs.status();
  options.runs = *runs;
  auto report = autocompress::compression::SpeedupFile(masked, output, options, original);
  if (!report.ok()) return report.status();
  std::printf("speedup of %s -> %s (outputs within %.2g of the masked model's)\n%s", masked.c_str(),
              output.c_str(), report->output_relative_difference,
              autocompress::compression::SpeedupTable(*report).c_str());
  return nlohmann::ordered_json::parse(report->ToJson());
}

absl::Status WriteText(const std::string& flag, const std::string& path, const std::string& text) {
  return WriteAtomically(path, [&](const std::string& temporary) {
    std::ofstream out(temporary);
    out << text << "\n";
    out.close();
    return out ? absl::OkStatus()
               : absl::FailedPreconditionError(
                     absl::StrCat("cannot write the ", flag, " to ", path));
  });
}

absl::Status Compress(const std::vector<std::string>& raw_args) {
  const std::vector<std::string> args = WithSwitch(raw_args, "speedup");
  auto flags =
      ParseFlags(args, {"model", "algorithm", "config_list", "kwargs", "output", "report",
                        "calibration", "device", "data", "data_format", "batches", "batch_size",
                        "lr", "seed", "threads", "speedup", "input_shape", "runs"});
  if (!flags.ok()) return flags.status();
  if (absl::Status s = SetThreads(*flags); !s.ok()) return s;
  const bool speedup = flags->count("speedup") && flags->at("speedup") != "false";
  std::vector<int64_t> input_shape;
  if (flags->count("input_shape")) {
    auto shape = ParseShape(flags->at("input_shape"));
    if (!shape.ok()) return shape.status();
    input_shape = *shape;
  }
  for (const char* required : {"model", "algorithm", "config_list", "output"}) {
    if (flags->count(required) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", required, " is required"));
    }
  }
  for (const char* output : {"output", "report", "calibration"}) {
    if (flags->count(output) == 0) continue;
    if (absl::Status s = CheckOutputPath(output, flags->at(output)); !s.ok()) return s;
  }
  const std::string device = flags->count("device") ? flags->at("device") : "cpu";
  auto session = autocompress::compression::CompressionSession::Load(flags->at("model"), device);
  if (!session.ok()) return session.status();
  autocompress::compression::CompressOptions options;
  options.algorithm = flags->at("algorithm");
  options.config_list_json = flags->at("config_list");
  options.kwargs_json = flags->count("kwargs") ? flags->at("kwargs") : "";
  std::unique_ptr<autocompress::training::Dataset> data;
  autocompress::training::Recipe recipe;
  std::unique_ptr<autocompress::training::DatasetTrainingHooks> training;
  if (flags->count("data")) {
    auto parsed = RecipeFromFlags(*flags);
    if (!parsed.ok()) return parsed.status();
    recipe = *parsed;
    const std::string format = flags->count("data_format") ? flags->at("data_format") : "idx";
    auto loaded = autocompress::training::LoadDataset(format, flags->at("data"), "train");
    if (!loaded.ok()) return loaded.status();
    data = std::move(*loaded);
    if (input_shape.empty()) input_shape = data->example_shape();
    training = std::make_unique<autocompress::training::DatasetTrainingHooks>(*data, recipe);
    options.hooks = training.get();
  } else if (autocompress::compression::TrainsBeforePruning(options.algorithm)) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.algorithm,
                     " trains before pruning: give --data DIR (IDX training split) and "
                     "--data_format idx"));
  }
  if (speedup && input_shape.empty()) {
    return absl::InvalidArgumentError(
        "--speedup needs the input shape: give --input_shape C,H,W (or --data)");
  }
  if (speedup && autocompress::compression::IsQuantizer(options.algorithm)) {
    return absl::InvalidArgumentError("--speedup removes pruned channels; " + options.algorithm +
                                      " is a quantizer");
  }
  if (absl::Status s = (*session)->Compress(options); !s.ok()) return s;
  if (autocompress::compression::IsQuantizer(options.algorithm) && data != nullptr) {
    // Quantization-aware training: one epoch of at most --batches batches.
    auto tuned = autocompress::training::FineTune(**session, {data.get()}, recipe, 1);
    if (!tuned.ok()) return tuned.status();
  }
  nlohmann::ordered_json speedup_report;
  if (speedup) {
    // The masked model goes to a temporary file beside the output, then shrinks into it.
    const std::string masked = absl::StrCat(flags->at("output"), ".masked.", getpid());
    absl::Status s = (*session)->Save(masked);
    absl::StatusOr<nlohmann::ordered_json> sped;
    if (s.ok()) {
      sped = SpeedupAndReport(masked, flags->at("output"), flags->at("model"), *flags, input_shape);
    }
    std::remove(masked.c_str());
    if (!s.ok()) return s;
    if (!sped.ok()) return sped.status();
    speedup_report = *sped;
  } else if (absl::Status s =
                 WriteAtomically(flags->at("output"),
                                 [&](const std::string& path) { return (*session)->Save(path); });
             !s.ok()) {
    return s;
  }
  for (const char* kind : {"report", "calibration"}) {
    if (flags->count(kind) == 0) continue;
    absl::StatusOr<std::string> text =
        std::string(kind) == "report" ? (*session)->ReportJson() : (*session)->CalibrationJson();
    if (!text.ok()) return text.status();
    if (std::string(kind) == "report" && speedup) {
      nlohmann::ordered_json report = nlohmann::ordered_json::parse(*text);
      report["speedup"] = speedup_report;
      *text = report.dump(2);
    }
    if (absl::Status s = WriteText(kind, flags->at(kind), *text); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// `autocompress speedup` (kSpeedupUsage).
absl::Status Speedup(const std::vector<std::string>& args) {
  auto flags = ParseFlags(
      args, {"model", "output", "input_shape", "original", "report", "device", "threads", "runs"});
  if (!flags.ok()) return flags.status();
  for (const char* required : {"model", "output", "input_shape"}) {
    if (flags->count(required) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", required, " is required"));
    }
  }
  for (const char* output : {"output", "report"}) {
    if (flags->count(output) == 0) continue;
    if (absl::Status s = CheckOutputPath(output, flags->at(output)); !s.ok()) return s;
  }
  if (absl::Status s = SetThreads(*flags); !s.ok()) return s;
  auto shape = ParseShape(flags->at("input_shape"));
  if (!shape.ok()) return shape.status();
  auto report =
      SpeedupAndReport(flags->at("model"), flags->at("output"),
                       flags->count("original") ? flags->at("original") : "", *flags, *shape);
  if (!report.ok()) return report.status();
  if (flags->count("report") == 0) return absl::OkStatus();
  return WriteText("report", flags->at("report"), report->dump(2));
}

// `autocompress train`: trains a TorchScript model on a data set's training split with
// the worker's training code (what the demo uses to make its pre-trained model).
absl::Status Train(const std::vector<std::string>& args) {
  auto flags =
      ParseFlags(args, {"model", "data", "data_format", "train_split", "eval_split", "epochs",
                        "batch_size", "lr", "momentum", "seed", "threads", "output"});
  if (!flags.ok()) return flags.status();
  for (const char* required : {"model", "data", "output"}) {
    if (flags->count(required) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", required, " is required"));
    }
  }
  if (absl::Status s = CheckOutputPath("output", flags->at("output")); !s.ok()) return s;
  auto threads = IntFlag(*flags, "threads", 0, 0, 4096);
  if (!threads.ok()) return threads.status();
  at::set_num_threads(
      *threads > 0 ? *threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  auto epochs = IntFlag(*flags, "epochs", 1, 1, 100000);
  if (!epochs.ok()) return epochs.status();
  auto batch_size = IntFlag(*flags, "batch_size", 64, 1, 65536);
  if (!batch_size.ok()) return batch_size.status();
  auto seed = IntFlag(*flags, "seed", 1, 0, 2147483647);
  if (!seed.ok()) return seed.status();
  autocompress::training::Recipe recipe;
  recipe.batch_size = *batch_size;
  recipe.seed = *seed;
  recipe.momentum = 0.9;
  for (const auto& [name, field] :
       {std::pair<const char*, double*>{"lr", &recipe.lr}, {"momentum", &recipe.momentum}}) {
    if (flags->count(name) && (!absl::SimpleAtod(flags->at(name), field) || *field < 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, "=", flags->at(name), " is not a non-negative number"));
    }
  }
  const std::string format = flags->count("data_format") ? flags->at("data_format") : "idx";
  const std::string train_split = flags->count("train_split") ? flags->at("train_split") : "train";
  auto train = autocompress::training::LoadDataset(format, flags->at("data"), train_split);
  if (!train.ok()) return train.status();
  std::unique_ptr<autocompress::training::Dataset> eval;
  if (flags->count("eval_split")) {
    auto loaded =
        autocompress::training::LoadDataset(format, flags->at("data"), flags->at("eval_split"));
    if (!loaded.ok()) return loaded.status();
    eval = std::move(*loaded);
  }
  auto session = autocompress::compression::CompressionSession::Load(flags->at("model"), "cpu");
  if (!session.ok()) return session.status();
  autocompress::training::FineTuneCallbacks callbacks;
  callbacks.on_epoch_end = [](const autocompress::training::EpochMetrics& m) {
    std::printf("epoch %lld: loss %.4f", static_cast<long long>(m.epoch + 1), m.train.mean_loss);
    if (m.validation) std::printf(", eval accuracy %.4f", m.validation->accuracy);
    std::printf("\n");
    std::fflush(stdout);
    return autocompress::training::EpochDecision::kContinue;
  };
  auto trained = autocompress::training::FineTune(**session, {train->get(), eval.get()}, recipe,
                                                  *epochs, callbacks);
  if (!trained.ok()) return trained.status();
  return WriteAtomically(flags->at("output"),
                         [&](const std::string& path) { return (*session)->Save(path); });
}

}  // namespace

static bool PrintedHelp(const std::vector<std::string>& args, const char* usage) {
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return true;
    }
  }
  return false;
}

int RunCompress(const std::vector<std::string>& args) {
  if (PrintedHelp(args, kCompressUsage)) return 0;
  return Report("compress", Compress(args));
}

int RunSpeedup(const std::vector<std::string>& args) {
  if (PrintedHelp(args, kSpeedupUsage)) return 0;
  return Report("speedup", Speedup(args));
}

int RunTrain(const std::vector<std::string>& args) {
  if (PrintedHelp(args, kTrainUsage)) return 0;
  return Report("train", Train(args));
}

int Report(const char* command, const absl::Status& status) {
  if (!status.ok()) {
    // One line: newlines inside messages (LibTorch's) would break log parsing.
    std::string message(status.message());
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "autocompress %s: %s\n", command, message.c_str());
  }
  return ExitCode(status);
}

}  // namespace autocompress
