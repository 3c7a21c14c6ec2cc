// autocompress: the command-line tool. Subcommands:
//   compress   compress a TorchScript model with one algorithm and config list
// (the SDK issue adds run, status, ... against a scheduler).
//
// Exit codes: 0 success, 2 bad input (one line on stderr says what and where), 1 an
// internal error.
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "compression/compression_session.h"

namespace {

constexpr char kUsage[] =
    "usage: autocompress compress --model IN.pt --algorithm NAME --config_list JSON\n"
    "                             --output OUT.pt [--report REPORT.json] [--kwargs JSON]\n"
    "                             [--calibration CALIBRATION.json]  (quantizers)\n"
    "                             [--device cpu|cuda:N]\n"
    "                             [--data PATH --data_format idx --batches N]  (data-driven "
    "algorithms)\n";

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

absl::Status Compress(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"model", "algorithm", "config_list", "kwargs", "output", "report",
                                 "calibration", "device", "data", "data_format", "batches"});
  if (!flags.ok()) return flags.status();
  for (const char* required : {"model", "algorithm", "config_list", "output"}) {
    if (flags->count(required) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--", required, " is required"));
    }
  }
  const std::string device = flags->count("device") ? flags->at("device") : "cpu";
  auto session = autocompress::compression::CompressionSession::Load(flags->at("model"), device);
  if (!session.ok()) return session.status();
  autocompress::compression::CompressOptions options;
  options.algorithm = flags->at("algorithm");
  options.config_list_json = flags->at("config_list");
  options.kwargs_json = flags->count("kwargs") ? flags->at("kwargs") : "";
  if (absl::Status s = (*session)->Compress(options); !s.ok()) return s;
  if (absl::Status s = (*session)->Save(flags->at("output")); !s.ok()) return s;
  for (const char* kind : {"report", "calibration"}) {
    if (flags->count(kind) == 0) continue;
    std::ofstream out(flags->at(kind));
    out << (std::string(kind) == "report" ? (*session)->ReportJson()
                                          : (*session)->CalibrationJson())
        << "\n";
    if (!out) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write the ", kind, " to ", flags->at(kind)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  absl::Status status;
  if (command == "compress") {
    status = Compress(args);
  } else {
    status = absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
  }
  if (!status.ok()) {
    // One line: newlines inside messages (LibTorch's) would break log parsing.
    std::string message(status.message());
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "autocompress %s: %s\n", command.c_str(), message.c_str());
  }
  return ExitCode(status);
}
