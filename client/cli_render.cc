#include "client/cli_render.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/proto_time.h"
#include "nlohmann/json.hpp"

namespace autocompress {
namespace {

using Json = nlohmann::json;

std::string FormatValue(const Json& value) {
  if (value.is_number_float()) return absl::StrFormat("%.4g", value.get<double>());
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

void Flatten(const std::string& name, const Json& value, std::vector<std::string>& out) {
  if (value.is_object()) {
    for (const auto& [member, v] : value.items()) Flatten(name + "." + member, v, out);
    return;
  }
  out.push_back(absl::StrCat(name, "=", FormatValue(value)));
}

std::string Number(std::optional<double> value, const char* format = "%.4f") {
  if (!value) return "-";
  return absl::StrFormat(format, *value);
}

std::string Duration(const v1::Trial& trial) {
  if (auto total = MetricOf(trial.final_report(), "seconds_total")) {
    return absl::StrFormat("%.1fs", *total);
  }
  if (!trial.has_start_time() || !trial.has_end_time()) return "-";
  return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(FromProtoTime(trial.end_time()) -
                                                        FromProtoTime(trial.start_time())));
}

// Columns padded to their widest cell; the last column is not padded.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

ParameterSummary SummarizeParameters(const std::string& parameters_json) {
  ParameterSummary summary;
  const Json parameters = Json::parse(parameters_json, nullptr, /*allow_exceptions=*/false);
  if (!parameters.is_object()) return summary;
  std::vector<std::string> knobs;
  for (const auto& [name, value] : parameters.items()) {
    if (name != "algorithm_name" || !value.is_object()) {
      Flatten(name, value, knobs);
      continue;
    }
    for (const auto& [key, v] : value.items()) {
      if (key == "_name") {
        summary.algorithm = FormatValue(v);
        continue;
      }
      std::vector<std::string> parts = absl::StrSplit(key, "::");
      Flatten(parts.back(), v, knobs);
    }
  }
  summary.knobs = absl::StrJoin(knobs, " ");
  return summary;
}

std::optional<double> MetricOf(const v1::MetricReport& report, const std::string& name) {
  for (const v1::Metric& m : report.metrics()) {
    if (m.name() == name) return m.value();
  }
  return std::nullopt;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) bytes /= 1024, ++unit;
  return unit == 0 ? absl::StrFormat("%.0f B", bytes)
                   : absl::StrFormat("%.1f %s", bytes, units[unit]);
}

// The enum value's name without its prefix: "SUCCEEDED" for TRIAL_STATE_SUCCEEDED.
std::string StateName(v1::TrialState state) {
  return std::string(absl::StripPrefix(v1::TrialState_Name(state), "TRIAL_STATE_"));
}

std::string StateName(v1::ExperimentState state) {
  return std::string(absl::StripPrefix(v1::ExperimentState_Name(state), "EXPERIMENT_STATE_"));
}

std::string TrialsTable(const std::vector<v1::Trial>& trials, const std::string& objective) {
  std::vector<std::vector<std::string>> rows = {{"#", "trial", "state", "algorithm", "knobs",
                                                 objective, "drop", "sparsity", "model",
                                                 "latency_ms", "time", "note"}};
  for (const v1::Trial& trial : trials) {
    const ParameterSummary p = SummarizeParameters(trial.parameters_json());
    const v1::MetricReport& final_report = trial.final_report();
    std::optional<double> bytes = MetricOf(final_report, "model_bytes");
    std::string note;
    if (trial.has_failure() && !trial.failure().message().empty()) {
      note = trial.failure().message().substr(0, 60);
    } else if (trial.attempt() > 1) {
      note = absl::StrCat("attempt ", trial.attempt());
    }
    rows.push_back({absl::StrCat(trial.sequence()), trial.id(), StateName(trial.state()),
                    p.algorithm.empty() ? "-" : p.algorithm, p.knobs.empty() ? "-" : p.knobs,
                    Number(MetricOf(final_report, objective)),
                    Number(MetricOf(final_report, objective + "_drop")),
                    Number(MetricOf(final_report, "sparsity"), "%.3f"),
                    bytes ? HumanBytes(*bytes) : "-",
                    Number(MetricOf(final_report, "latency_ms"), "%.3f"), Duration(trial), note});
  }
  return Table(rows);
}

std::string ExperimentSummary(const v1::Experiment& experiment, const v1::Trial* best) {
  const v1::TrialCounts& c = experiment.trial_counts();
  std::string out = absl::StrFormat(
      "experiment %s \"%s\": %s, %s running\n"
      "trials: %d succeeded, %d failed, %d early stopped, %d canceled, %d running, %d waiting "
      "(max %d)\n",
      experiment.id(), experiment.spec().name(), StateName(experiment.state()),
      absl::FormatDuration(
          absl::Trunc(FromProtoDuration(experiment.running_time()), absl::Seconds(1))),
      c.succeeded(), c.failed(), c.early_stopped(), c.canceled(), c.running(), c.waiting(),
      experiment.spec().limits().max_trial_number());
  if (!experiment.error().empty()) absl::StrAppend(&out, "error: ", experiment.error(), "\n");
  if (best != nullptr) {
    const std::string& metric = experiment.spec().objective().primary().metric();
    const ParameterSummary p = SummarizeParameters(best->parameters_json());
    absl::StrAppend(&out, "best: ", best->id(), " ", p.algorithm, " ", p.knobs, ", ", metric, " ",
                    Number(MetricOf(best->final_report(), metric)), ", sparsity ",
                    Number(MetricOf(best->final_report(), "sparsity"), "%.3f"), "\n");
  }
  return out;
}

std::string ExperimentsTable(const std::vector<v1::Experiment>& experiments) {
  std::vector<std::vector<std::string>> rows = {
      {"experiment", "name", "state", "succeeded", "failed", "running", "max", "best"}};
  for (const v1::Experiment& e : experiments) {
    rows.push_back(
        {e.id(), e.spec().name(), StateName(e.state()), absl::StrCat(e.trial_counts().succeeded()),
         absl::StrCat(e.trial_counts().failed()), absl::StrCat(e.trial_counts().running()),
         absl::StrCat(e.spec().limits().max_trial_number()),
         e.best_trial_id().empty() ? "-" : e.best_trial_id()});
  }
  return Table(rows);
}

void LiveView::Line(const std::string& text) {
  std::fprintf(out_, "%s\n", text.c_str());
  std::fflush(out_);
}

void LiveView::OnEvent(const v1::ExperimentEvent& event) {
  const std::string& metric = experiment_.spec().objective().primary().metric();
  if (event.has_experiment()) {
    const bool changed = event.experiment().state() != experiment_.state();
    experiment_ = event.experiment();
    if (!terminal_ && changed) {
      Line(absl::StrCat("experiment ", experiment_.id(), " ", StateName(experiment_.state())));
    }
  } else if (event.has_trial()) {
    const v1::Trial& trial = event.trial();
    const auto it = trials_.find(trial.id());
    const bool changed = it == trials_.end() || it->second.state() != trial.state();
    trials_[trial.id()] = trial;
    if (!terminal_ && changed) {
      const ParameterSummary p = SummarizeParameters(trial.parameters_json());
      std::string line = absl::StrCat("trial ", trial.id(), " ", StateName(trial.state()), " ",
                                      p.algorithm, " ", p.knobs);
      if (auto v = MetricOf(trial.final_report(), metric)) {
        absl::StrAppend(&line, " ", metric, "=", Number(v));
      }
      if (auto s = MetricOf(trial.final_report(), "sparsity")) {
        absl::StrAppend(&line, " sparsity=", Number(s, "%.3f"));
      }
      if (trial.has_failure() && !trial.failure().message().empty()) {
        absl::StrAppend(&line, " (", trial.failure().message(), ")");
      }
      Line(line);
    }
  } else if (event.has_metric()) {
    const v1::TrialMetricEvent& m = event.metric();
    if (m.has_intermediate()) {
      latest_[m.trial_id()] = m.intermediate();
      if (!terminal_) {
        Line(absl::StrCat("trial ", m.trial_id(), " epoch ", m.intermediate().step(), " ", metric,
                          "=", Number(MetricOf(m.intermediate(), metric))));
      }
    } else if (m.has_final_report()) {
      trials_[m.trial_id()].mutable_final_report()->CopyFrom(m.final_report());
    }
  }
  if (terminal_ && absl::Now() - last_draw_ > absl::Milliseconds(200)) Redraw();
}

void LiveView::Redraw() {
  last_draw_ = absl::Now();
  const std::string& metric = experiment_.spec().objective().primary().metric();
  const bool maximize =
      experiment_.spec().objective().primary().mode() != v1::OPTIMIZE_MODE_MINIMIZE;
  int ended = 0;
  const v1::Trial* best = nullptr;
  std::vector<const v1::Trial*> running;
  for (const auto& [id, trial] : trials_) {
    const v1::TrialState s = trial.state();
    if (s == v1::TRIAL_STATE_ASSIGNED || s == v1::TRIAL_STATE_RUNNING) running.push_back(&trial);
    if (s >= v1::TRIAL_STATE_SUCCEEDED) ++ended;
    std::optional<double> v = MetricOf(trial.final_report(), metric);
    if (s == v1::TRIAL_STATE_SUCCEEDED && v) {
      std::optional<double> b = best ? MetricOf(best->final_report(), metric) : std::nullopt;
      if (!b || (maximize ? *v > *b : *v < *b)) best = &trial;
    }
  }
  const int max = experiment_.spec().limits().max_trial_number();
  const int total = max > 0 ? max : std::max<int>(1, trials_.size());
  const int width = 30;
  const int filled = std::min(width, ended * width / std::max(1, total));
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat("[%s%s] %d/%d trials  %s", std::string(filled, '#'),
                                  std::string(width - filled, '.'), ended, total,
                                  StateName(experiment_.state())));
  for (const v1::Trial* t : running) {
    const ParameterSummary p = SummarizeParameters(t->parameters_json());
    std::string line = absl::StrCat("  running ", t->id(), " ", p.algorithm, " ", p.knobs);
    auto it = latest_.find(t->id());
    if (it != latest_.end()) {
      absl::StrAppend(&line, "  epoch ", it->second.step(), " ", metric, " ",
                      Number(MetricOf(it->second, metric)));
    }
    lines.push_back(line);
  }
  if (best != nullptr) {
    const ParameterSummary p = SummarizeParameters(best->parameters_json());
    lines.push_back(absl::StrCat("  best ", best->id(), " ", p.algorithm, " ", p.knobs, "  ",
                                 metric, " ", Number(MetricOf(best->final_report(), metric))));
  }
  // Move up over the previous block, clear it, draw the new one.
  std::string out;
  if (drawn_lines_ > 0) out += absl::StrFormat("\x1b[%dA", drawn_lines_);
  out += "\x1b[J";
  for (const std::string& line : lines) out += line.substr(0, 160) + "\n";
  std::fputs(out.c_str(), out_);
  std::fflush(out_);
  drawn_lines_ = static_cast<int>(lines.size());
}

void LiveView::Finish() {
  if (terminal_) Redraw();
}

}  // namespace autocompress
