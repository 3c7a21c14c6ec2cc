// What the page shows of the API's proto3 JSON: enum names without their prefix,
// metrics by name, parameters as algorithm + knobs, bytes, durations.

export const TRIAL_STATES = ['WAITING', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED',
                             'EARLY_STOPPED', 'CANCELED'];
const ENDED = new Set(['SUCCEEDED', 'FAILED', 'EARLY_STOPPED', 'CANCELED']);

// "TRIAL_STATE_SUCCEEDED" -> "SUCCEEDED".
export const enumName = (value, prefix) =>
  typeof value === 'string' && value.startsWith(prefix) ? value.slice(prefix.length) : String(value ?? '');
export const trialState = (trial) => enumName(trial.state, 'TRIAL_STATE_');
export const experimentState = (experiment) => enumName(experiment.state, 'EXPERIMENT_STATE_');
export const isEnded = (trial) => ENDED.has(trialState(trial));

export function metricOf(report, name) {
  const metric = report?.metrics?.find((m) => m.name === name);
  return metric === undefined ? undefined : Number(metric.value);
}

// Flattens nested knob objects into "name=value" pairs, the way the CLI prints them.
function flatten(prefix, value, out) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (key === '_name') continue;
      flatten(key.split('::').pop(), v, out);
    }
    return;
  }
  out[prefix] = value;
}

// {algorithm, knobs: {name: value}} of a trial's parameters_json.
export function parameters(trial) {
  let parsed;
  try {
    parsed = JSON.parse(trial.parametersJson || '{}');
  } catch {
    return { algorithm: '', knobs: {} };
  }
  const knobs = {};
  let algorithm = '';
  for (const [name, value] of Object.entries(parsed ?? {})) {
    if (name === 'algorithm_name' && value && typeof value === 'object') {
      algorithm = String(value._name ?? '');
      flatten('', value, knobs);
    } else {
      flatten(name, value, knobs);
    }
  }
  return { algorithm, knobs };
}

export const knobText = (knobs) =>
  Object.entries(knobs).map(([k, v]) => `${k}=${typeof v === 'number' ? formatNumber(v) : v}`).join(' ');

export function formatNumber(value, digits = 4) {
  if (value === undefined || value === null || Number.isNaN(value)) return '';
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  return Number(value).toPrecision(digits).replace(/\.?0+(e|$)/, '$1');
}

export function humanBytes(bytes) {
  if (bytes === undefined || Number.isNaN(bytes)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  while (bytes >= 1024 && unit < units.length - 1) {
    bytes /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${Math.round(bytes)} B` : `${bytes.toFixed(1)} ${units[unit]}`;
}

// A metric as shown: bytes human-readable, the rest to 4 significant digits.
export const formatMetric = (name, value) =>
  name.endsWith('_bytes') ? humanBytes(value) : formatNumber(value);

// proto3 JSON Duration "12.5s" -> seconds.
export const durationSeconds = (text) => (text ? Number.parseFloat(text) : undefined);
export const timeMs = (text) => (text ? Date.parse(text) : undefined);

export function formatSeconds(seconds) {
  if (seconds === undefined || Number.isNaN(seconds)) return '';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// Seconds a trial has run: start to end, or to now while it runs.
export function trialSeconds(trial, now = Date.now()) {
  const start = timeMs(trial.startTime);
  if (start === undefined) return undefined;
  const end = timeMs(trial.endTime) ?? (isEnded(trial) ? undefined : now);
  return end === undefined ? undefined : Math.max(0, (end - start) / 1000);
}

export const ended = (counts = {}) =>
  (counts.succeeded ?? 0) + (counts.failed ?? 0) + (counts.earlyStopped ?? 0) + (counts.canceled ?? 0);

// Escapes text for innerHTML.
export const escapeHtml = (text) =>
  String(text ?? '').replace(/[&<>"']/g, (c) =>
    ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
