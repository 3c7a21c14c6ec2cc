// The experiments list: state, progress, best feasible trial, duration; refreshed every
// few seconds.
import { api, listAll } from './api.js';
import {
  durationSeconds, ended, escapeHtml, experimentState, formatMetric, formatSeconds, metricOf,
  parameters,
} from './format.js';

const REFRESH_MS = 3000;

export function experimentsView(root, { onError }) {
  root.innerHTML = `
    <section aria-labelledby="experiments-title">
      <h1 id="experiments-title">Experiments</h1>
      <div class="table-wrap">
        <table id="experiments" class="data">
          <caption class="sr-only">Experiments on this scheduler</caption>
          <thead><tr><th scope="col">Experiment</th><th scope="col">State</th>
            <th scope="col">Progress</th><th scope="col">Best feasible trial</th>
            <th scope="col">Running time</th><th scope="col">Created</th></tr></thead>
          <tbody><tr><td colspan="6">Loading…</td></tr></tbody>
        </table>
      </div>
    </section>`;
  const body = root.querySelector('tbody');
  const bestTrials = new Map();  // "experiment id/best id" -> trial
  let timer = null;
  let stopped = false;

  const bestOf = async (experiment) => {
    if (!experiment.bestTrialId) return undefined;
    const key = `${experiment.id}/${experiment.bestTrialId}`;
    if (!bestTrials.has(key)) {
      const { trial } = await api(`trials/${encodeURIComponent(experiment.bestTrialId)}`);
      bestTrials.set(key, trial);
    }
    return bestTrials.get(key);
  };

  const refresh = async () => {
    try {
      const experiments = await listAll('experiments', 'experiments');
      const best = await Promise.all(experiments.map(bestOf));
      if (stopped) return;
      body.innerHTML = experiments.length === 0
        ? '<tr><td colspan="6">No experiments yet. Submit one with <code>autocompress submit</code>.</td></tr>'
        : experiments.map((e, i) => row(e, best[i])).join('');
      onError(null);
    } catch (error) {
      onError(error);
      if (error.authProblem) return;
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  };
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function row(experiment, best) {
  const spec = experiment.spec ?? {};
  const metric = spec.objective?.primary?.metric ?? '';
  const max = spec.limits?.maxTrialNumber ?? 0;
  // The baseline runs first and does not count against max_trial_number.
  const done = Math.max(0, ended(experiment.trialCounts) - (experiment.baselineTrialId ? 1 : 0));
  const state = experimentState(experiment);
  const bestText = best
    ? `${escapeHtml(best.id)}: ${escapeHtml(metric)} ${formatMetric(metric, metricOf(best.finalReport, metric))}` +
      ` <span class="muted">${escapeHtml(parameters(best).algorithm)}</span>`
    : '<span class="muted">none yet</span>';
  return `<tr>
    <td><a href="#/experiments/${encodeURIComponent(experiment.id)}">${escapeHtml(spec.name || experiment.id)}</a>
        <div class="muted mono">${escapeHtml(experiment.id)}</div></td>
    <td><span class="state state-${state.toLowerCase()}">${state}</span></td>
    <td>${progress(done, max)}</td>
    <td>${bestText}</td>
    <td>${formatSeconds(durationSeconds(experiment.runningTime))}</td>
    <td>${experiment.createTime ? new Date(experiment.createTime).toLocaleString() : ''}</td>
  </tr>`;
}

export function progress(done, max) {
  if (!max) return `${done} ended`;
  const percent = Math.min(100, Math.round((100 * done) / max));
  return `<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="${max}"
              aria-valuenow="${done}" aria-label="trials ended"><span style="width:${percent}%"></span></div>
          <span class="muted">${done} / ${max}</span>`;
}
