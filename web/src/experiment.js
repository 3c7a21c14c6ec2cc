// One experiment, live: its state folded from the event stream (snapshot, then every
// change), re-read in full on each (re)connect so a cut stream or a scheduler restart
// loses nothing.
import { api, apiUrl, listAll, watchExperiment } from './api.js';
import { Chart, curvesOption, parallelOption, paretoOption } from './charts.js';
import { progress } from './experiments.js';
import {
  TRIAL_STATES, durationSeconds, escapeHtml, experimentState, formatMetric,
  formatSeconds, humanBytes, isEnded, knobText, metricOf, parameters, trialSeconds, trialState,
} from './format.js';

const RENDER_MS = 150;
const MAX_DEFAULT_CURVES = 12;

// The trials table's columns: header, sort key, cell HTML.
function columns(metric) {
  const final = (name) => (t) => metricOf(t.finalReport, name);
  return [
    { id: 'seq', label: '#', key: (t) => Number(t.sequence), cell: (t) => t.sequence },
    { id: 'trial', label: 'Trial', key: (t) => t.id, cell: (t, marks) =>
      `<span class="mono">${escapeHtml(t.id)}</span>${marks.map((m) => ` <span class="mark mark-${m}">${m}</span>`).join('')}` },
    { id: 'state', label: 'State', key: trialState, cell: (t) =>
      `<span class="state state-${trialState(t).toLowerCase()}">${trialState(t)}</span>` },
    { id: 'algorithm', label: 'Algorithm', key: (t) => t.summary.algorithm, cell: (t) => escapeHtml(t.summary.algorithm) },
    { id: 'knobs', label: 'Knobs', key: (t) => knobText(t.summary.knobs), cell: (t) =>
      `<span class="mono">${escapeHtml(knobText(t.summary.knobs))}</span>` },
    { id: 'metric', label: metric, key: final(metric), cell: (t) => formatMetric(metric, final(metric)(t)), numeric: true },
    { id: 'drop', label: 'Drop', key: final(`${metric}_drop`), cell: (t) => formatMetric('', final(`${metric}_drop`)(t)), numeric: true },
    { id: 'sparsity', label: 'Sparsity', key: final('sparsity'), cell: (t) => formatMetric('', final('sparsity')(t)), numeric: true },
    { id: 'bytes', label: 'Effective bytes', key: final('effective_bytes'), cell: (t) => humanBytes(final('effective_bytes')(t)), numeric: true },
    { id: 'latency', label: 'Latency ms', key: final('latency_ms'), cell: (t) => formatMetric('', final('latency_ms')(t)), numeric: true },
    { id: 'duration', label: 'Duration', key: (t) => trialSeconds(t), cell: (t) => formatSeconds(trialSeconds(t)), numeric: true },
    { id: 'attempt', label: 'Attempt', key: (t) => t.attempt, cell: (t) => t.attempt, numeric: true },
    { id: 'failure', label: 'Failure', key: (t) => t.failure?.message ?? '', cell: (t) =>
      t.failure?.message ? `${escapeHtml(t.failure.code?.replace('FAILURE_CODE_', '') ?? '')}: ${escapeHtml(t.failure.message)}` : '' },
    { id: 'model', label: 'Model', key: (t) => (t.results ?? []).length, cell: (t) => (t.results ?? []).map((r) =>
      `<a href="${apiUrl(`artifacts/${r.sha256}`)}" download="${escapeHtml(r.name || r.sha256)}"
          aria-label="download ${escapeHtml(r.name || 'result')} of trial ${escapeHtml(t.id)}">${escapeHtml(r.name || 'download')}</a>`).join(' ') },
  ];
}

function compare(a, b) {
  const missingA = a === undefined || a === null || a === '';
  const missingB = b === undefined || b === null || b === '';
  if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function experimentView(root, id, { onError }) {
  root.innerHTML = `
    <nav class="crumbs"><a href="#/">Experiments</a> / <span class="mono">${escapeHtml(id)}</span>
      <span id="live" class="live" role="status" aria-live="polite">connecting…</span></nav>
    <section id="overview" aria-labelledby="overview-title"><h1 id="overview-title">Experiment</h1>
      <div class="overview-body">Loading…</div></section>
    <div class="charts">
      <section aria-labelledby="curves-title"><div class="chart-head"><h2 id="curves-title">Intermediate results</h2>
        <label>metric <select id="curve-metric"></select></label></div>
        <p class="hint">Select trials in the table (checkbox, or Space on a row) to compare their curves.</p>
        <div id="curves" class="chart" role="img" aria-label="intermediate results of the selected trials"></div></section>
      <section aria-labelledby="pareto-title"><div class="chart-head"><h2 id="pareto-title">Pareto front</h2>
        <span id="pareto-note" class="muted"></span></div>
        <div id="pareto" class="chart" role="img" aria-label="Pareto scatter of the succeeded trials"></div></section>
    </div>
    <section aria-labelledby="parallel-title"><h2 id="parallel-title">Parameters against the metric</h2>
      <div id="parallel" class="chart wide" role="img" aria-label="parallel coordinates of parameters and the metric"></div></section>
    <section aria-labelledby="trials-title">
      <div class="chart-head"><h2 id="trials-title">Trials <span id="trial-count" class="muted"></span></h2>
        <div class="filters">
          <label>filter <input id="filter" type="search" placeholder="algorithm, knob, id, failure…"></label>
          <label>state <select id="state-filter"><option value="">all</option>
            ${TRIAL_STATES.map((s) => `<option>${s}</option>`).join('')}</select></label>
        </div></div>
      <div class="table-wrap"><table id="trials" class="data">
        <caption class="sr-only">Trials; arrow keys move between rows, Space selects a row's curve, column buttons sort</caption>
        <thead><tr></tr></thead><tbody></tbody></table></div>
      <div id="trial-detail" aria-live="polite"></div>
    </section>`;

  const $ = (selector) => root.querySelector(selector);
  const state = {
    experiment: null,
    trials: new Map(),
    pareto: null,
    selected: new Set(),
    sort: { column: 'seq', ascending: true },
    filter: '',
    stateFilter: '',
    curveMetric: '',
    focusedId: null,
    detailId: null,
  };
  const charts = { curves: new Chart($('#curves')), pareto: new Chart($('#pareto')),
                   parallel: new Chart($('#parallel')) };
  let renderTimer = null;
  let paretoTimer = null;
  let closed = false;

  const scheduleRender = () => {
    if (renderTimer === null) renderTimer = setTimeout(() => { renderTimer = null; render(); }, RENDER_MS);
  };
  const scheduleParetoRefresh = () => {
    clearTimeout(paretoTimer);
    paretoTimer = setTimeout(refreshPareto, 300);
  };

  const withSummary = (trial, previous) => {
    const merged = { ...trial, summary: parameters(trial) };
    // Events carry no intermediate reports; keep the ones folded so far (a new attempt
    // starts its curve afresh).
    if (!trial.intermediate?.length && previous && previous.attempt === trial.attempt) {
      merged.intermediate = previous.intermediate;
    }
    merged.intermediate = merged.intermediate ?? [];
    return merged;
  };
  const upsertTrial = (trial) => {
    state.trials.set(trial.id, withSummary(trial, state.trials.get(trial.id)));
  };

  const refreshPareto = async () => {
    try {
      state.pareto = await api(`experiments/${encodeURIComponent(id)}/pareto`);
      scheduleRender();
    } catch (error) {
      onError(error);
    }
  };

  // The whole state, read again: at once (to show it, or why not, before the stream
  // opens) and on every (re)connect of the stream, which the folding then continues from.
  // Resolves false when the experiment cannot be read for good (gone, or refused).
  const resync = async () => {
    try {
      const [{ experiment }, trials] = await Promise.all([
        api(`experiments/${encodeURIComponent(id)}`),
        listAll(`experiments/${encodeURIComponent(id)}/trials`, 'trials', { include_intermediate: true }),
      ]);
      if (closed) return;
      state.experiment = experiment;
      for (const trial of trials) state.trials.set(trial.id, withSummary(trial));
      onError(null);
      scheduleRender();
      refreshPareto();
      return true;
    } catch (error) {
      onError(error);
      return !(error.authProblem || error.status === 404);
    }
  };

  resync();
  const stopWatch = watchExperiment(id, {
    open: resync,
    refused: resync,
    status: (text) => { $('#live').textContent = text; },
    experiment: (event) => {
      const before = state.experiment;
      state.experiment = event.experiment;
      if (!before || before.bestTrialId !== event.experiment.bestTrialId ||
          before.trialCounts?.succeeded !== event.experiment.trialCounts?.succeeded) {
        scheduleParetoRefresh();
      }
      scheduleRender();
    },
    trial: (event) => {
      upsertTrial(event.trial);
      scheduleRender();
    },
    metric: (event) => {
      const { trialId, intermediate, finalReport } = event.metric;
      const trial = state.trials.get(trialId);
      if (!trial) return;  // the trial event that creates it comes first
      if (intermediate) {
        const step = Number(intermediate.step);
        trial.intermediate = [...trial.intermediate.filter((r) => Number(r.step) !== step), intermediate]
          .sort((a, b) => Number(a.step) - Number(b.step));
      }
      if (finalReport) trial.finalReport = finalReport;
      scheduleRender();
    },
  });

  // ---- controls --------------------------------------------------------------------
  $('#filter').addEventListener('input', (e) => { state.filter = e.target.value.toLowerCase(); render(); });
  $('#state-filter').addEventListener('change', (e) => { state.stateFilter = e.target.value; render(); });
  $('#curve-metric').addEventListener('change', (e) => { state.curveMetric = e.target.value; render(); });
  const table = $('#trials');
  table.querySelector('thead').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-sort]');
    if (!button) return;
    const column = button.dataset.sort;
    state.sort = { column, ascending: state.sort.column === column ? !state.sort.ascending : true };
    render();
  });
  const tbody = table.querySelector('tbody');
  const toggle = (trialId) => {
    if (state.selected.has(trialId)) state.selected.delete(trialId);
    else state.selected.add(trialId);
    render();
  };
  tbody.addEventListener('change', (e) => {
    if (e.target.matches('input[data-select]')) toggle(e.target.dataset.select);
  });
  tbody.addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-id]');
    if (!row || e.target.closest('a, input')) return;
    state.focusedId = row.dataset.id;
    state.detailId = row.dataset.id;
    render();
  });
  tbody.addEventListener('keydown', (e) => {
    const row = e.target.closest('tr[data-id]');
    if (!row || e.target.matches('input, a')) return;
    const rows = [...tbody.querySelectorAll('tr[data-id]')];
    const index = rows.indexOf(row);
    const moveTo = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: rows.length - 1 }[e.key];
    if (moveTo !== undefined) {
      e.preventDefault();
      const target = rows[Math.max(0, Math.min(rows.length - 1, moveTo))];
      state.focusedId = target.dataset.id;
      rows.forEach((r) => r.setAttribute('tabindex', r === target ? '0' : '-1'));
      target.focus();
    } else if (e.key === ' ') {
      e.preventDefault();
      toggle(row.dataset.id);
    } else if (e.key === 'Enter') {
      state.detailId = row.dataset.id;
      render();
    }
  });
  $('#overview').addEventListener('click', async (e) => {
    const button = e.target.closest('button[data-action]');
    if (!button) return;
    button.disabled = true;
    try {
      if (button.dataset.action === 'stop') {
        await api(`experiments/${encodeURIComponent(id)}/stop`, { method: 'POST' });
      } else {
        const more = Number($('#resume-max').value);
        const body = more > 0 ? { limits: { maxTrialNumber: more }, updateMask: 'maxTrialNumber' } : {};
        await api(`experiments/${encodeURIComponent(id)}/resume`, { method: 'POST', body });
      }
      onError(null);
    } catch (error) {
      onError(error);
    } finally {
      button.disabled = false;
    }
  });

  // ---- rendering -------------------------------------------------------------------
  const render = () => {
    const experiment = state.experiment;
    if (!experiment || closed) return;
    const spec = experiment.spec ?? {};
    const metric = spec.objective?.primary?.metric ?? 'accuracy';
    const trials = [...state.trials.values()];
    const frontIds = new Set((state.pareto?.trials ?? []).map((t) => t.id));
    renderOverview(experiment, trials, metric);
    renderTable(trials, metric, frontIds, experiment);
    renderDetail();

    const intermediateNames = [...new Set(trials.flatMap((t) => t.intermediate.flatMap((r) => (r.metrics ?? []).map((m) => m.name))))].sort();
    const select = $('#curve-metric');
    if (!state.curveMetric || !intermediateNames.includes(state.curveMetric)) {
      state.curveMetric = intermediateNames.includes(metric) ? metric : intermediateNames[0] ?? metric;
    }
    const options = intermediateNames.map((n) => `<option${n === state.curveMetric ? ' selected' : ''}>${escapeHtml(n)}</option>`).join('');
    if (select.innerHTML !== options) select.innerHTML = options;
    const withCurves = trials.filter((t) => t.intermediate.length > 0);
    const shown = state.selected.size > 0
      ? withCurves.filter((t) => state.selected.has(t.id))
      : withCurves.sort((a, b) => Number(b.sequence) - Number(a.sequence)).slice(0, MAX_DEFAULT_CURVES);
    charts.curves.set(curvesOption(shown.sort((a, b) => Number(a.sequence) - Number(b.sequence)), state.curveMetric));

    const secondary = spec.objective?.secondary?.[0]?.metric ?? 'effective_bytes';
    const succeeded = trials.filter((t) => trialState(t) === 'SUCCEEDED');
    charts.pareto.set(paretoOption({ trials: succeeded, frontIds, bestId: experiment.bestTrialId,
                                     x: secondary, y: metric, constraints: spec.objective?.constraints }));
    $('#pareto-note').textContent = state.pareto
      ? `${frontIds.size} on the front of ${state.pareto.succeeded} succeeded, ${state.pareto.infeasible} infeasible`
      : '';
    charts.parallel.set(parallelOption(succeeded, metric));
  };

  const renderOverview = (experiment, trials, metric) => {
    const spec = experiment.spec ?? {};
    const limits = spec.limits ?? {};
    const counts = experiment.trialCounts ?? {};
    const expState = experimentState(experiment);
    const baseline = state.trials.get(experiment.baselineTrialId);
    const best = state.trials.get(experiment.bestTrialId);
    const running = durationSeconds(experiment.runningTime);
    const maxDuration = durationSeconds(limits.maxExperimentDuration);
    const objective = spec.objective ?? {};
    const mode = (o) => (o?.mode === 'OPTIMIZE_MODE_MINIMIZE' ? 'min' : 'max');
    const objectiveText = [objective.primary, ...(objective.secondary ?? [])]
      .filter(Boolean).map((o) => `${mode(o)} ${o.metric}`).join(', ');
    const constraintText = (objective.constraints ?? [])
      .map((c) => `${c.metric} ${c.comparison === 'COMPARISON_LESS_EQUAL' ? '≤' : '≥'} ${c.bound}`).join(', ');
    const countText = [['waiting', counts.waiting], ['running', counts.running], ['succeeded', counts.succeeded],
                       ['failed', counts.failed], ['early stopped', counts.earlyStopped], ['canceled', counts.canceled]]
      .map(([k, v]) => `<span class="count"><b>${v ?? 0}</b> ${k}</span>`).join('');
    const metricLine = (trial) => trial
      ? `${formatMetric(metric, metricOf(trial.finalReport, metric))}` +
        (metricOf(trial.finalReport, `${metric}_drop`) !== undefined ? ` (drop ${formatMetric('', metricOf(trial.finalReport, `${metric}_drop`))})` : '') +
        (metricOf(trial.finalReport, 'effective_bytes') !== undefined ? `, ${humanBytes(metricOf(trial.finalReport, 'effective_bytes'))}` : '')
      : '<span class="muted">none yet</span>';
    const html = `
      <h1 id="overview-title">${escapeHtml(spec.name || experiment.id)}
        <span class="state state-${expState.toLowerCase()}" id="experiment-state">${expState}</span></h1>
      ${experiment.error ? `<p class="error-text">${escapeHtml(experiment.error)}</p>` : ''}
      <dl class="facts">
        <div><dt>Trials</dt><dd>${progress(trials.filter((t) => !t.baseline && isEnded(t)).length, limits.maxTrialNumber ?? 0)} <div class="counts">${countText}</div></dd></div>
        <div><dt>Running time</dt><dd>${formatSeconds(running)}${maxDuration ? ` of ${formatSeconds(maxDuration)}` : ''}</dd></div>
        <div><dt>Objective</dt><dd>${escapeHtml(objectiveText)}${constraintText ? `<div class="muted">subject to ${escapeHtml(constraintText)}</div>` : ''}</dd></div>
        <div><dt>Baseline</dt><dd>${metric} ${metricLine(baseline)}</dd></div>
        <div><dt>Best feasible</dt><dd id="best">${best ? `<span class="mono">${escapeHtml(best.id)}</span> ${escapeHtml(best.summary.algorithm)} ${escapeHtml(knobText(best.summary.knobs))}<br>` : ''}${metric} ${metricLine(best)}</dd></div>
        <div><dt>Concurrency</dt><dd>${limits.trialConcurrency ?? ''}${limits.maxTrialDuration ? `, ≤ ${formatSeconds(durationSeconds(limits.maxTrialDuration))} per trial` : ''}</dd></div>
      </dl>
      <div class="actions">
        ${expState === 'RUNNING' ? '<button type="button" data-action="stop">Stop</button>' : ''}
        ${expState === 'STOPPED' || expState === 'DONE' ? `<label>max trials <input id="resume-max" type="number" min="1" value="${(limits.maxTrialNumber ?? 0) + 5}"></label>
           <button type="button" data-action="resume">Resume</button>` : ''}
      </div>`;
    const body = $('#overview');
    // Keep an input the user is typing in.
    if (body.dataset.html !== html && !body.contains(document.activeElement)) {
      body.innerHTML = html;
      body.dataset.html = html;
    }
  };

  const renderTable = (trials, metric, frontIds, experiment) => {
    const cols = columns(metric);
    const head = table.querySelector('thead tr');
    const headHtml = cols.map((c) => {
      const sorted = state.sort.column === c.id;
      const aria = sorted ? (state.sort.ascending ? 'ascending' : 'descending') : 'none';
      return `<th scope="col" aria-sort="${aria}" class="${c.numeric ? 'num' : ''}"><button type="button" data-sort="${c.id}">${escapeHtml(c.label)}<span aria-hidden="true">${sorted ? (state.sort.ascending ? ' ▲' : ' ▼') : ''}</span></button></th>`;
    }).join('');
    const fullHead = `<th scope="col"><span class="sr-only">curve</span></th>${headHtml}`;
    if (head.innerHTML !== fullHead) {
      const focusedSort = document.activeElement?.dataset?.sort;
      head.innerHTML = fullHead;
      if (focusedSort) head.querySelector(`button[data-sort="${focusedSort}"]`)?.focus();
    }
    const column = cols.find((c) => c.id === state.sort.column) ?? cols[0];
    const visible = trials.filter((t) => {
      if (state.stateFilter && trialState(t) !== state.stateFilter) return false;
      if (!state.filter) return true;
      const text = [t.id, trialState(t), t.summary.algorithm, knobText(t.summary.knobs), t.failure?.message ?? '']
        .join(' ').toLowerCase();
      return text.includes(state.filter);
    }).sort((a, b) => {
      const order = compare(column.key(a), column.key(b));
      const directed = state.sort.ascending ? order : -order;
      return directed || Number(a.sequence) - Number(b.sequence);
    });
    $('#trial-count').textContent = `(${visible.length} of ${trials.length})`;
    if (!visible.some((t) => t.id === state.focusedId)) state.focusedId = visible[0]?.id ?? null;
    const hadFocus = tbody.contains(document.activeElement) && document.activeElement.matches('tr');
    tbody.innerHTML = visible.map((t) => {
      const marks = [];
      if (t.baseline) marks.push('baseline');
      if (t.id === experiment.bestTrialId) marks.push('best');
      if (frontIds.has(t.id)) marks.push('front');
      const selected = state.selected.has(t.id);
      return `<tr data-id="${escapeHtml(t.id)}" tabindex="${t.id === state.focusedId ? 0 : -1}" aria-selected="${selected}"
                  class="${selected ? 'selected' : ''}">
        <td><input type="checkbox" data-select="${escapeHtml(t.id)}" ${selected ? 'checked' : ''}
                   aria-label="show the curve of trial ${escapeHtml(t.id)}"></td>
        ${cols.map((c) => `<td class="${c.numeric ? 'num' : ''}" data-col="${c.id}">${c.cell(t, marks)}</td>`).join('')}
      </tr>`;
    }).join('') || `<tr><td colspan="${cols.length + 1}">No trials${trials.length ? ' match the filter' : ' yet'}.</td></tr>`;
    if (hadFocus) tbody.querySelector(`tr[data-id="${CSS.escape(state.focusedId ?? '')}"]`)?.focus();
  };

  const renderDetail = () => {
    const trial = state.trials.get(state.detailId);
    const detail = $('#trial-detail');
    if (!trial) {
      detail.innerHTML = '';
      return;
    }
    const finalMetrics = (trial.finalReport?.metrics ?? [])
      .map((m) => `<tr><th scope="row">${escapeHtml(m.name)}</th><td class="num">${formatMetric(m.name, Number(m.value))}</td></tr>`).join('');
    const attempts = (trial.attempts ?? []).map((a) => `<li>attempt ${a.attempt} on ${escapeHtml(a.workerId)}
        ${a.failure?.message ? `: ${escapeHtml(a.failure.code)} ${escapeHtml(a.failure.message)}` : ''}
        ${a.countedAsRetry ? '(counted as a retry)' : ''}</li>`).join('');
    detail.innerHTML = `<h3>Trial <span class="mono">${escapeHtml(trial.id)}</span></h3>
      <div class="detail-grid">
        <div><h4>Parameters</h4><pre>${escapeHtml(JSON.stringify(JSON.parse(trial.parametersJson || '{}'), null, 2))}</pre></div>
        <div><h4>Final metrics</h4>${finalMetrics ? `<table class="data compact">${finalMetrics}</table>` : '<p class="muted">none</p>'}</div>
        <div><h4>Attempts</h4><ul>${attempts || '<li class="muted">none</li>'}</ul></div>
      </div>`;
  };

  return () => {
    closed = true;
    stopWatch();
    clearTimeout(renderTimer);
    clearTimeout(paretoTimer);
    Object.values(charts).forEach((c) => c.dispose());
  };
}
