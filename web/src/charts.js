// The experiment's three charts, drawn with ECharts (canvas): intermediate curves of
// the selected trials, the Pareto scatter with its front and constraint lines, and
// parallel coordinates of parameters against the primary metric.
import { LineChart, ParallelChart, ScatterChart } from 'echarts/charts';
import {
  GridComponent, LegendComponent, MarkLineComponent, ParallelComponent, TooltipComponent,
  VisualMapComponent,
} from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';

import { formatMetric, metricOf, parameters } from './format.js';

echarts.use([LineChart, ScatterChart, ParallelChart, GridComponent, LegendComponent,
             MarkLineComponent, ParallelComponent, TooltipComponent, VisualMapComponent,
             CanvasRenderer]);

const FRONT = '#1f77b4';
const OTHER = '#b8b8b8';
const BEST = '#d62728';

export class Chart {
  constructor(element) {
    this.element = element;
    this.chart = echarts.init(element, null, { renderer: 'canvas' });
    this.resize = () => this.chart.resize();
    window.addEventListener('resize', this.resize);
  }
  set(option) {
    this.chart.setOption(option, { notMerge: true, lazyUpdate: true });
  }
  dispose() {
    window.removeEventListener('resize', this.resize);
    this.chart.dispose();
  }
}

const axisName = (name) => ({ name, nameLocation: 'middle', nameGap: 32 });
const axisLabel = (name) => ({ formatter: (v) => formatMetric(name, v) });

// Curves of `metric` over the steps of each trial in `trials`.
export function curvesOption(trials, metric) {
  return {
    animation: false,
    grid: { left: 64, right: 16, top: 40, bottom: 48 },
    tooltip: { trigger: 'axis' },
    legend: { type: 'scroll', top: 4 },
    xAxis: { type: 'value', minInterval: 1, ...axisName('step') },
    yAxis: { type: 'value', scale: true, ...axisName(metric), nameGap: 48,
             axisLabel: axisLabel(metric) },
    series: trials.map((trial) => ({
      name: `#${trial.sequence} ${trial.id}`,
      type: 'line',
      showSymbol: true,
      symbolSize: 5,
      data: (trial.intermediate ?? [])
        .map((report) => [Number(report.step), metricOf(report, metric)])
        .filter(([, v]) => v !== undefined),
    })),
  };
}

// Constraint lines on the Pareto axes: a bound on x or y, and a bound on the primary's
// drop at baseline - bound (drop = baseline - trial).
function constraintLines(constraints, x, y, baselineY) {
  const lines = [];
  for (const c of constraints ?? []) {
    const op = c.comparison === 'COMPARISON_LESS_EQUAL' ? '≤' : '≥';
    const label = { formatter: `${c.metric} ${op} ${c.bound}`, position: 'insideEndTop' };
    if (c.metric === x) lines.push({ xAxis: c.bound, label });
    if (c.metric === y) lines.push({ yAxis: c.bound, label });
    if (c.metric === `${y}_drop` && baselineY !== undefined) {
      lines.push({ yAxis: baselineY - c.bound, label });
    }
  }
  return lines;
}

// The scatter of succeeded trials: y the primary objective, x the first secondary one
// (effective_bytes without one); the front joined and highlighted, the baseline black,
// the best red.
export function paretoOption({ trials, frontIds, bestId, x, y, constraints }) {
  const points = (keep) => trials
    .filter(keep)
    .map((t) => ({ value: [metricOf(t.finalReport, x), metricOf(t.finalReport, y)], id: t.id,
                   name: `#${t.sequence} ${t.id}` }))
    .filter((p) => p.value[0] !== undefined && p.value[1] !== undefined);
  const baseline = trials.find((t) => t.baseline);
  const baselineY = baseline ? metricOf(baseline.finalReport, y) : undefined;
  const front = points((t) => frontIds.has(t.id)).sort((a, b) => a.value[0] - b.value[0]);
  const tooltip = {
    formatter: (p) => `${p.data.name}<br>${y}: ${formatMetric(y, p.data.value[1])}` +
                      `<br>${x}: ${formatMetric(x, p.data.value[0])}`,
  };
  return {
    animation: false,
    grid: { left: 64, right: 24, top: 40, bottom: 48 },
    legend: { top: 4 },
    tooltip,
    xAxis: { type: 'value', scale: true, ...axisName(x), axisLabel: axisLabel(x) },
    yAxis: { type: 'value', scale: true, ...axisName(y), nameGap: 48, axisLabel: axisLabel(y) },
    series: [
      { name: 'trials', type: 'scatter', symbolSize: 8, itemStyle: { color: OTHER },
        data: points((t) => !t.baseline && !frontIds.has(t.id)),
        markLine: { silent: true, symbol: 'none', lineStyle: { color: '#e377c2', type: 'dashed' },
                    data: constraintLines(constraints, x, y, baselineY) } },
      { name: 'Pareto front', type: 'line', symbolSize: 10, itemStyle: { color: FRONT },
        lineStyle: { color: FRONT }, data: front },
      { name: 'baseline', type: 'scatter', symbol: 'diamond', symbolSize: 12,
        itemStyle: { color: '#000' }, data: points((t) => t.baseline) },
      { name: 'best', type: 'scatter', symbol: 'star', symbolSize: 16, itemStyle: { color: BEST },
        data: points((t) => t.id === bestId), z: 5 },
    ],
  };
}

// One line per succeeded trial through its algorithm, each knob, and the metric.
export function parallelOption(trials, metric) {
  const rows = trials.filter((t) => !t.baseline && metricOf(t.finalReport, metric) !== undefined)
    .map((t) => ({ trial: t, ...parameters(t) }));
  const algorithms = [...new Set(rows.map((r) => r.algorithm))].sort();
  const knobNames = [...new Set(rows.flatMap((r) => Object.keys(r.knobs)))].sort();
  const numeric = (name) => rows.every((r) => r.knobs[name] === undefined ||
                                                typeof r.knobs[name] === 'number');
  const dims = [
    { dim: 0, name: 'algorithm', type: 'category', data: algorithms },
    ...knobNames.map((name, i) => numeric(name)
      ? { dim: i + 1, name, type: 'value', scale: true }
      : { dim: i + 1, name, type: 'category',
          data: [...new Set(rows.map((r) => String(r.knobs[name] ?? '-')))] }),
    { dim: knobNames.length + 1, name: metric, type: 'value', scale: true },
  ];
  const values = rows.map((r) => metricOf(r.trial.finalReport, metric));
  return {
    animation: false,
    parallel: { left: 64, right: 120, top: 48, bottom: 32 },
    parallelAxis: dims,
    visualMap: {
      type: 'continuous', dimension: knobNames.length + 1, orient: 'vertical', right: 8,
      top: 'middle', calculable: false, itemHeight: 120,
      min: values.length ? Math.min(...values) : 0, max: values.length ? Math.max(...values) : 1,
      inRange: { color: ['#d9d9d9', '#6baed6', '#08519c'] },
      text: [metric, ''],
    },
    series: [{
      type: 'parallel',
      lineStyle: { width: 2, opacity: 0.8 },
      data: rows.map((r) => [
        r.algorithm,
        ...knobNames.map((name) => (numeric(name) ? r.knobs[name] ?? null
                                                    : String(r.knobs[name] ?? '-'))),
        metricOf(r.trial.finalReport, metric),
      ]),
    }],
  };
}
