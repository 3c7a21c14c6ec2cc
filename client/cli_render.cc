#include "client/cli_render.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
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

// A metric's value as the tables show it: bytes as KiB/MiB, anything else with 4 decimals.
std::string ObjectiveCell(const v1::MetricReport& report, const std::string& metric) {
  const std::optional<double> v = MetricOf(report, metric);
  if (v && absl::EndsWith(metric, "_bytes")) return HumanBytes(*v);
  return Number(v);
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

// Text as SVG (XML) character data.
std::string XmlEscaped(absl::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
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

std::string TrialsTable(const std::vector<v1::Trial>& trials, const std::string& objective,
                        const std::map<std::string, std::string>& marks) {
  std::vector<std::vector<std::string>> rows = {{"#", "trial", "state", "algorithm", "knobs",
                                                 objective, "drop", "sparsity", "eff_bytes",
                                                 "ratio", "latency_ms", "time", "mark", "note"}};
  for (const v1::Trial& trial : trials) {
    const ParameterSummary p = SummarizeParameters(trial.parameters_json());
    const v1::MetricReport& final_report = trial.final_report();
    std::optional<double> bytes = MetricOf(final_report, "effective_bytes");
    std::string note;
    if (trial.has_failure() && !trial.failure().message().empty()) {
      note = trial.failure().message().substr(0, 60);
    } else if (trial.attempt() > 1) {
      note = absl::StrCat("attempt ", trial.attempt());
    }
    auto mark = marks.find(trial.id());
    std::string algorithm = p.algorithm.empty() ? "-" : p.algorithm;
    if (trial.baseline()) algorithm = "(baseline)";
    rows.push_back({absl::StrCat(trial.sequence()), trial.id(), StateName(trial.state()), algorithm,
                    p.knobs.empty() ? "-" : p.knobs, ObjectiveCell(final_report, objective),
                    // The objective's drop, else accuracy's (a size objective has none).
                    Number(MetricOf(final_report, objective + "_drop")
                               ? MetricOf(final_report, objective + "_drop")
                               : MetricOf(final_report, "accuracy_drop")),
                    Number(MetricOf(final_report, "sparsity"), "%.3f"),
                    bytes ? HumanBytes(*bytes) : "-",
                    Number(MetricOf(final_report, "compression_ratio"), "%.2fx"),
                    Number(MetricOf(final_report, "latency_ms"), "%.3f"), Duration(trial),
                    mark == marks.end() ? "" : mark->second, note});
  }
  return Table(rows);
}

std::map<std::string, std::string> TrialMarks(const v1::Experiment& experiment,
                                              const v1::ListParetoTrialsResponse* front) {
  std::map<std::string, std::string> marks;
  if (!experiment.baseline_trial_id().empty()) marks[experiment.baseline_trial_id()] = "baseline";
  if (front != nullptr && front->objectives_size() > 1) {
    for (const v1::Trial& t : front->trials()) marks[t.id()] = "front";
  }
  if (!experiment.best_trial_id().empty()) {
    std::string& mark = marks[experiment.best_trial_id()];
    mark = mark.empty() ? "best" : mark + ",best";
  }
  return marks;
}

std::string ParetoTable(const v1::ListParetoTrialsResponse& front) {
  std::vector<std::string> header = {"trial", "algorithm", "knobs"};
  for (const v1::Objective& o : front.objectives()) {
    header.push_back(
        absl::StrCat(o.metric(), o.mode() == v1::OPTIMIZE_MODE_MAXIMIZE ? " (max)" : " (min)"));
  }
  for (const char* extra : {"drop", "sparsity", "ratio"}) header.push_back(extra);
  std::vector<std::vector<std::string>> rows = {header};
  const std::string primary = front.objectives().empty() ? "" : front.objectives(0).metric();
  for (const v1::Trial& trial : front.trials()) {
    const ParameterSummary p = SummarizeParameters(trial.parameters_json());
    std::vector<std::string> row = {trial.id(), p.algorithm.empty() ? "-" : p.algorithm,
                                    p.knobs.empty() ? "-" : p.knobs};
    for (const v1::Objective& o : front.objectives()) {
      const std::optional<double> v = MetricOf(trial.final_report(), o.metric());
      row.push_back(absl::EndsWith(o.metric(), "_bytes") && v ? HumanBytes(*v) : Number(v));
    }
    row.push_back(Number(MetricOf(trial.final_report(), primary + "_drop")));
    row.push_back(Number(MetricOf(trial.final_report(), "sparsity"), "%.3f"));
    row.push_back(Number(MetricOf(trial.final_report(), "compression_ratio"), "%.2fx"));
    rows.push_back(std::move(row));
  }
  return absl::StrCat(Table(rows), front.trials_size(), " on the front, of ", front.succeeded(),
                      " succeeded trials (", front.infeasible(), " infeasible)\n");
}

std::string ParetoSvg(const std::vector<v1::Trial>& trials,
                      const v1::ListParetoTrialsResponse& front, const v1::Experiment& experiment) {
  const v1::ObjectiveSpec& objective = experiment.spec().objective();
  const std::string y_metric = objective.primary().metric();
  const std::string x_metric =
      objective.secondary().empty() ? "effective_bytes" : objective.secondary(0).metric();
  struct Dot {
    double x, y;
    const v1::Trial* trial;
  };
  std::vector<Dot> dots;
  const v1::Trial* baseline = nullptr;
  for (const v1::Trial& t : trials) {
    const auto x = MetricOf(t.final_report(), x_metric), y = MetricOf(t.final_report(), y_metric);
    if (t.state() != v1::TRIAL_STATE_SUCCEEDED || !x || !y) continue;
    if (t.baseline()) baseline = &t;
    dots.push_back({*x, *y, &t});
  }
  std::set<std::string> on_front, best = {experiment.best_trial_id()};
  for (const v1::Trial& t : front.trials()) on_front.insert(t.id());
  // Lines the constraints draw on these axes: a bound on either metric, and a bound on
  // the primary's drop, at baseline - bound.
  struct Rule {
    bool vertical;
    double at;
    std::string label;
  };
  std::vector<Rule> rules;
  for (const v1::MetricConstraint& c : objective.constraints()) {
    const std::string op = c.comparison() == v1::COMPARISON_LESS_EQUAL ? " <= " : " >= ";
    const std::string label =
        XmlEscaped(absl::StrCat(c.metric(), op, absl::StrFormat("%g", c.bound())));
    if (c.metric() == x_metric) rules.push_back({true, c.bound(), label});
    if (c.metric() == y_metric) rules.push_back({false, c.bound(), label});
    if (c.metric() == y_metric + "_drop" && baseline != nullptr) {
      rules.push_back({false, *MetricOf(baseline->final_report(), y_metric) - c.bound(), label});
    }
  }
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Dot& d : dots) {
    x0 = std::min(x0, d.x), x1 = std::max(x1, d.x), y0 = std::min(y0, d.y), y1 = std::max(y1, d.y);
  }
  for (const Rule& r : rules) {
    if (r.vertical) x0 = std::min(x0, r.at), x1 = std::max(x1, r.at);
    if (!r.vertical) y0 = std::min(y0, r.at), y1 = std::max(y1, r.at);
  }
  if (dots.empty()) x0 = y0 = 0, x1 = y1 = 1;
  if (x1 - x0 <= 0) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 <= 0) y0 -= 0.5, y1 += 0.5;
  const double pad_x = 0.05 * (x1 - x0), pad_y = 0.05 * (y1 - y0);
  x0 -= pad_x, x1 += pad_x, y0 -= pad_y, y1 += pad_y;
  constexpr double kW = 720, kH = 480, kLeft = 80, kRight = 20, kTop = 40, kBottom = 60;
  auto sx = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * (kW - kLeft - kRight); };
  auto sy = [&](double y) { return kH - kBottom - (y - y0) / (y1 - y0) * (kH - kTop - kBottom); };
  auto label = [&](double v, const std::string& metric) {
    return absl::EndsWith(metric, "_bytes") ? HumanBytes(v) : absl::StrFormat("%.4g", v);
  };
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s: %s vs %s (%d on the "
      "front)</text>\n",
      kW, kH, kLeft,
      XmlEscaped(experiment.spec().name().empty() ? experiment.id() : experiment.spec().name()),
      y_metric, x_metric, front.trials_size());
  for (int i = 0; i <= 4; ++i) {
    const double x = x0 + (x1 - x0) * i / 4, y = y0 + (y1 - y0) * i / 4;
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                          sx(x), kTop, sx(x), kH - kBottom, sx(x), kH - kBottom + 16,
                          label(x, x_metric));
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                          kLeft, sy(y), kW - kRight, sy(y), kLeft - 6, sy(y) + 4,
                          label(y, y_metric));
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
                        "<text x=\"16\" y=\"%.0f\" transform=\"rotate(-90 16 %.0f)\" "
                        "text-anchor=\"middle\">%s</text>\n",
                        (kLeft + kW - kRight) / 2, kH - 20, x_metric, (kTop + kH - kBottom) / 2,
                        (kTop + kH - kBottom) / 2, y_metric);
  for (const Rule& r : rules) {
    if (r.vertical) {
      absl::StrAppendFormat(
          &svg,
          "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#c00\" "
          "stroke-dasharray=\"6 4\"/><text x=\"%.1f\" y=\"%.0f\" fill=\"#c00\">%s</text>\n",
          sx(r.at), kTop, sx(r.at), kH - kBottom, sx(r.at) + 4, kTop + 12, r.label);
    } else {
      absl::StrAppendFormat(&svg,
                            "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#c00\" "
                            "stroke-dasharray=\"6 4\"/><text x=\"%.0f\" y=\"%.1f\" fill=\"#c00\" "
                            "text-anchor=\"end\">%s</text>\n",
                            kLeft, sy(r.at), kW - kRight, sy(r.at), kW - kRight - 4, sy(r.at) - 4,
                            r.label);
    }
  }
  // The front as a staircase in x order.
  std::vector<Dot> stairs;
  for (const Dot& d : dots) {
    if (on_front.count(d.trial->id())) stairs.push_back(d);
  }
  std::sort(stairs.begin(), stairs.end(), [](const Dot& a, const Dot& b) { return a.x < b.x; });
  if (stairs.size() > 1) {
    std::string path;
    for (const Dot& d : stairs) absl::StrAppendFormat(&path, "%.1f,%.1f ", sx(d.x), sy(d.y));
    absl::StrAppendFormat(&svg,
                          "<polyline points=\"%s\" fill=\"none\" stroke=\"#1f77b4\" "
                          "stroke-width=\"1.5\"/>\n",
                          path);
  }
  for (const Dot& d : dots) {
    const bool is_front = on_front.count(d.trial->id()) > 0;
    const char* fill = d.trial->baseline() ? "black" : is_front ? "#1f77b4" : "#bbb";
    const double r = is_front || d.trial->baseline() ? 5 : 3.5;
    absl::StrAppendFormat(&svg,
                          "<g><title>%s%s: %s=%s %s=%s</title><circle cx=\"%.1f\" cy=\"%.1f\" "
                          "r=\"%.1f\" fill=\"%s\"/></g>\n",
                          d.trial->id(), d.trial->baseline() ? " (baseline)" : "", y_metric,
                          absl::StrFormat("%.4g", d.y), x_metric, label(d.x, x_metric), sx(d.x),
                          sy(d.y), r, fill);
    if (best.count(d.trial->id())) {
      absl::StrAppendFormat(&svg,
                            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"9\" fill=\"none\" "
                            "stroke=\"#2ca02c\" stroke-width=\"2\"/>\n",
                            sx(d.x), sy(d.y));
    }
    if (d.trial->baseline()) {
      // Left of the point when it sits in the right half (the label would be cut off).
      const bool right_half = sx(d.x) > kW / 2;
      absl::StrAppendFormat(
          &svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">baseline</text>\n",
          sx(d.x) + (right_half ? -8 : 8), sy(d.y) + 4, right_half ? "end" : "start");
    }
  }
  absl::StrAppendFormat(&svg,
                        "<text x=\"%.0f\" y=\"%.0f\" fill=\"#555\">blue: Pareto front, green "
                        "ring: best feasible, grey: other trials, dashed red: constraints</text>\n"
                        "</svg>\n",
                        kLeft, kH - 4);
  return svg;
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
                    ObjectiveCell(best->final_report(), metric), ", sparsity ",
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
                                      trial.baseline() ? "(baseline)" : p.algorithm, " ", p.knobs);
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
  int ended = 0;
  const v1::Trial* best = nullptr;
  std::vector<const v1::Trial*> running;
  for (const auto& [id, trial] : trials_) {
    const v1::TrialState s = trial.state();
    if (s == v1::TRIAL_STATE_ASSIGNED || s == v1::TRIAL_STATE_RUNNING) running.push_back(&trial);
    if (s >= v1::TRIAL_STATE_SUCCEEDED && !trial.baseline()) ++ended;
    // The scheduler's best: the best feasible trial (constraints respected).
    if (id == experiment_.best_trial_id()) best = &trial;
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
