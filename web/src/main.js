// The dashboard: #/ lists experiments, #/experiments/{id} follows one live.
import { adoptTokenFromUrl, setToken } from './api.js';
import { experimentView } from './experiment.js';
import { experimentsView } from './experiments.js';
import { escapeHtml } from './format.js';

const root = document.getElementById('main');
const banner = document.getElementById('banner');
let closeView = () => {};

// Shows an API error above the view (null clears it); a token problem also offers a
// field to enter the token.
function showError(error) {
  if (!error) {
    banner.hidden = true;
    banner.innerHTML = '';
    return;
  }
  const tokenForm = error.authProblem
    ? `<form id="token-form"><label>token <input id="token-input" type="password" autocomplete="off"></label>
         <button type="submit">Use token</button></form>`
    : '';
  const html = `<p><b>${escapeHtml(error.code ?? 'ERROR')}</b>: ${escapeHtml(error.message)}</p>${tokenForm}`;
  if (banner.dataset.html === html && !banner.hidden) return;
  banner.dataset.html = html;
  banner.innerHTML = html;
  banner.hidden = false;
  banner.querySelector('#token-form')?.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(banner.querySelector('#token-input').value);
    showError(null);
    route();
  });
}

function route() {
  closeView();
  const match = window.location.hash.match(/^#\/experiments\/([^/]+)$/);
  if (match) {
    const id = decodeURIComponent(match[1]);
    document.title = `${id} · AutoCompress`;
    closeView = experimentView(root, id, { onError: showError });
  } else {
    document.title = 'Experiments · AutoCompress';
    closeView = experimentsView(root, { onError: showError });
  }
}

adoptTokenFromUrl();
window.addEventListener('hashchange', route);
route();
