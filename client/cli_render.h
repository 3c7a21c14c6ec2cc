// What the `autocompress` CLI prints: the trials table (algorithm and knobs, accuracy and
// its drop, sparsity, bytes, latency, state, duration), experiment summaries, and the
// live view of a running experiment. On a terminal the live view redraws one block in
// place; anywhere else (a pipe, CI) it prints one plain line per event, no escape codes.
#ifndef AUTOCOMPRESS_CLIENT_CLI_RENDER_H_
#define AUTOCOMPRESS_CLIENT_CLI_RENDER_H_

#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "autocompress/v1/scheduler.pb.h"

namespace autocompress {

// The algorithm and a short "field=value" list of the knobs a trial's parameters chose,
// e.g. {"l1", "sparsity=0.42"} or {"qat", "quant_bits.weight=8 quant_bits.output=8"}.
struct ParameterSummary {
  std::string algorithm;
  std::string knobs;
};
ParameterSummary SummarizeParameters(const std::string& parameters_json);

std::optional<double> MetricOf(const v1::MetricReport& report, const std::string& name);
std::string HumanBytes(double bytes);
std::string StateName(v1::TrialState state);
std::string StateName(v1::ExperimentState state);

// The trials table, one row per trial in the given order; `objective` names the metric
// shown first (and its `_drop`); `marks` adds a note per trial id (baseline, front,
// best).
std::string TrialsTable(const std::vector<v1::Trial>& trials, const std::string& objective,
                        const std::map<std::string, std::string>& marks = {});

// The marks of the trials table: the baseline, the front's trials (when the experiment
// has several objectives; `front` may be null) and the best feasible trial.
std::map<std::string, std::string> TrialMarks(const v1::Experiment& experiment,
                                              const v1::ListParetoTrialsResponse* front);

// The front as a table: each objective, the primary's drop, sparsity and ratio.
std::string ParetoTable(const v1::ListParetoTrialsResponse& front);

// An SVG scatter of the succeeded `trials` (primary objective up, first secondary
// objective, else effective_bytes, across): the front as a line, the baseline, the best
// feasible trial ringed, and the constraints that fall on these axes as dashed lines.
std::string ParetoSvg(const std::vector<v1::Trial>& trials,
                      const v1::ListParetoTrialsResponse& front, const v1::Experiment& experiment);

// One experiment in a few lines (state, counts, best trial) / one line per experiment.
std::string ExperimentSummary(const v1::Experiment& experiment, const v1::Trial* best);
std::string ExperimentsTable(const std::vector<v1::Experiment>& experiments);

// Follows an experiment's events and shows them.
class LiveView {
 public:
  LiveView(FILE* out, bool terminal) : out_(out), terminal_(terminal) {}
  void OnEvent(const v1::ExperimentEvent& event);
  // Leaves the last block on screen (terminal) and ends the line.
  void Finish();

 private:
  void Redraw();
  void Line(const std::string& text);

  FILE* out_;
  bool terminal_;
  v1::Experiment experiment_;
  std::map<std::string, v1::Trial> trials_;
  std::map<std::string, v1::MetricReport> latest_;  // newest intermediate report per trial
  int drawn_lines_ = 0;
  absl::Time last_draw_ = absl::InfinitePast();
};

}  // namespace autocompress

#endif  // AUTOCOMPRESS_CLIENT_CLI_RENDER_H_
