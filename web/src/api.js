// The scheduler's JSON API (/api/v1, see scheduler_service/web/web_server.h) and its
// event stream, with the token kept for this tab only.

const TOKEN_KEY = 'autocompress.token';

// Takes ?token= from the page's address into this tab's storage and out of the address
// bar (so it is not bookmarked or shared by accident).
export function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get('token');
  if (given === null) return;
  sessionStorage.setItem(TOKEN_KEY, given);
  url.searchParams.delete('token');
  history.replaceState(null, '', url.pathname + url.search + url.hash);
}

export const token = () => sessionStorage.getItem(TOKEN_KEY) ?? '';
export const setToken = (value) => sessionStorage.setItem(TOKEN_KEY, value);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  get authProblem() {
    return this.status === 401 || this.status === 403;
  }
}

// A link into the API that carries the token as a query parameter (downloads and
// EventSource cannot set headers).
export function apiUrl(path, params = {}) {
  const search = new URLSearchParams(params);
  if (token()) search.set('token', token());
  const query = search.toString();
  return `/api/v1/${path}${query ? `?${query}` : ''}`;
}

export async function api(path, { method = 'GET', body, params } = {}) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    const search = new URLSearchParams(params ?? {}).toString();
    response = await fetch(`/api/v1/${path}${search ? `?${search}` : ''}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (error) {
    throw new ApiError(0, 'UNAVAILABLE', `cannot reach the scheduler (${error.message})`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(response.status, error.code ?? `HTTP_${response.status}`,
                       error.message ?? (text || response.statusText));
  }
  if (json === null) throw new ApiError(response.status, 'DATA_LOSS', 'the answer is not JSON');
  return json;
}

// Every page of a list: `field` is the array in each answer.
export async function listAll(path, field, params = {}) {
  const items = [];
  let pageToken = '';
  do {
    const page = await api(path, { params: { ...params, page_size: 500, page_token: pageToken } });
    items.push(...(page[field] ?? []));
    pageToken = page.nextPageToken ?? '';
  } while (pageToken);
  return items;
}

// Follows an experiment's events: `on.experiment / on.trial / on.metric(event)`, plus
// `on.open()` each time the stream (re)connects and `on.status(text)`. A cut stream is
// resumed by the browser from the last event id; a refused one is retried here while
// `on.refused()` resolves true (it can ask the API why). Returns a function that ends it.
export function watchExperiment(id, on) {
  let source = null;
  let retry = null;
  let closed = false;
  const connect = () => {
    source = new EventSource(apiUrl(`experiments/${encodeURIComponent(id)}/events`));
    source.onopen = () => {
      on.status('live');
      on.open();
    };
    for (const kind of ['experiment', 'trial', 'metric']) {
      source.addEventListener(kind, (message) => on[kind](JSON.parse(message.data)));
    }
    source.onerror = () => {
      if (closed) return;
      on.status('reconnecting…');
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        on.refused().then((again) => {
          if (again && !closed) retry = setTimeout(connect, 2000);
          else on.status('not following');
        });
      }
    };
  };
  connect();
  return () => {
    closed = true;
    clearTimeout(retry);
    source?.close();
  };
}
