// The dashboard in a real browser: Debian's headless Chromium, driven by puppeteer-core,
// against the dashboard fixture (a real tuner and scheduler with its web server, fake
// workers running a small compression-like experiment; tests/web/dashboard_fixture.cc).
//
//   node test/dashboard_browser_test.mjs --fixture PATH [--out DIR] [--chromium PATH]
//
// Prints "PASS name" or "FAIL name: why" per check and ends with
// "dashboard browser test: N passed, N failed"; exits 1 on any failure. Screenshots go
// to --out (default test-output/ here). The whole run is bounded (--timeout_s, 150 s).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) => {
  if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
  return pairs;
}, []));
const fixturePath = args.fixture;
const outDir = path.resolve(args.out ?? path.join(here, '..', 'test-output'));
const chromiumPath = args.chromium ?? '/usr/bin/chromium';
const timeoutS = Number(args.timeout_s ?? 150);
const INITIAL_TRIALS = 8;

if (!fixturePath) {
  console.error('usage: dashboard_browser_test.mjs --fixture PATH [--out DIR] [--chromium PATH]');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

let passed = 0;
let failed = 0;
async function check(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`PASS ${name}`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name}: ${error.message.split('\n')[0]}`);
  }
}
const assert = (condition, message) => {
  if (!condition) throw new Error(message);
};

// ---- the fixture process ---------------------------------------------------------------
const token = randomBytes(12).toString('hex');
const fixture = spawn(fixturePath, [`--static_dir=${path.join(here, '..', 'dist')}`, `--token=${token}`,
                                    `--trials=${INITIAL_TRIALS}`, '--epoch_ms=60'],
                      { stdio: ['pipe', 'pipe', 'pipe'] });
let fixtureLog = '';
fixture.stderr.on('data', (chunk) => { fixtureLog = (fixtureLog + chunk).slice(-20000); });
const lines = createInterface({ input: fixture.stdout });
const waiting = [];
lines.on('line', (line) => waiting.shift()?.(line));
const nextLine = (seconds = 60) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`the fixture said nothing for ${seconds} s`)), seconds * 1000);
  waiting.push((line) => { clearTimeout(timer); resolve(line); });
});
async function command(text) {
  fixture.stdin.write(`${text}\n`);
  const answer = await nextLine();
  assert(answer.startsWith('OK'), `fixture "${text}": ${answer}`);
}

let browser = null;
const watchdog = setTimeout(() => {
  console.log(`FAIL the run: not finished after ${timeoutS} s`);
  failed += 1;
  finish();
}, timeoutS * 1000);

async function finish() {
  clearTimeout(watchdog);
  await browser?.close().catch(() => {});
  fixture.stdin.end('quit\n');
  setTimeout(() => fixture.kill('SIGKILL'), 5000).unref();
  if (failed > 0) console.log(`fixture log (tail):\n${fixtureLog.slice(-3000)}`);
  console.log(`dashboard browser test: ${passed} passed, ${failed} failed`);
  process.exit(failed > 0 ? 1 : 0);
}

// ---- page helpers ------------------------------------------------------------------------
// Console errors and uncaught exceptions of a page.
function collectErrors(page) {
  const errors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`exception: ${error.message}`));
  return errors;
}

const rowCount = (page) => page.$$eval('#trials tbody tr[data-id]', (rows) => rows.length);

// Pixels of a chart's canvas that are drawn (not transparent and not white), and those
// close to `rgb` when given.
const drawnPixels = (page, selector, rgb = null) => page.$eval(`${selector} canvas`, (canvas, color) => {
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let drawn = 0;
  let matching = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 0 && (r < 245 || g < 245 || b < 245)) drawn += 1;
    if (color && a > 200 && Math.abs(r - color[0]) < 20 && Math.abs(g - color[1]) < 20 &&
        Math.abs(b - color[2]) < 20) matching += 1;
  }
  return { drawn, matching };
}, rgb);

async function main() {
  const ready = await nextLine(90);
  assert(ready.startsWith('READY '), `fixture did not start: ${ready}`);
  const { url, experiment_id: experimentId } = JSON.parse(ready.slice(6));
  const expectedTrials = INITIAL_TRIALS + 1;  // and the baseline

  browser = await puppeteer.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });

  // A wrong token: the API answers 403, no token 401, and the page shows the refusal.
  await check('wrong token is refused', async () => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    await page.goto(`${url}?token=wrong#/experiments/${experimentId}`);
    await page.waitForSelector('#banner:not([hidden])', { timeout: 10000 });
    const text = await page.$eval('#banner', (b) => b.textContent);
    assert(text.includes('PERMISSION_DENIED'), `banner says "${text}"`);
    assert(await page.$('#token-input'), 'no token field offered');
    const rows = await rowCount(page);
    assert(rows === 0, `${rows} trial rows shown with a wrong token`);
    const statuses = await page.evaluate(async (id) => {
      const get = (query, headers = {}) => fetch(`/api/v1/experiments/${id}${query}`, { headers }).then((r) => r.status);
      return [await get(''), await get('?token=wrong'), await get('', { Authorization: 'Bearer wrong' })];
    }, experimentId);
    assert(JSON.stringify(statuses) === '[401,403,403]', `statuses ${statuses}`);
    await page.screenshot({ path: path.join(outDir, 'wrong-token.png') });
    await page.close();
  });

  const page = await browser.newPage();
  const errors = collectErrors(page);
  await page.setViewport({ width: 1280, height: 800 });

  await check('experiments list shows the experiment', async () => {
    await page.goto(`${url}?token=${token}#/`);
    await page.waitForSelector(`#experiments a[href="#/experiments/${experimentId}"]`, { timeout: 10000 });
    const row = await page.$eval(`#experiments a[href="#/experiments/${experimentId}"]`, (a) => a.closest('tr').textContent);
    assert(row.includes('dashboard fixture') && row.includes('DONE'), `row: ${row.replace(/\s+/g, ' ')}`);
    assert(row.includes(`${INITIAL_TRIALS} / ${INITIAL_TRIALS}`), `progress missing: ${row.replace(/\s+/g, ' ')}`);
    assert(!page.url().includes('token='), 'the token stays in the address bar');
    await page.screenshot({ path: path.join(outDir, 'experiments-1280x800.png') });
  });

  await check('the table shows every trial', async () => {
    await page.click(`#experiments a[href="#/experiments/${experimentId}"]`);
    await page.waitForFunction((n) => document.querySelectorAll('#trials tbody tr[data-id]').length >= n,
                               { timeout: 10000 }, expectedTrials);
    const ids = await page.$$eval('#trials tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
    const api = await page.evaluate(async (id, t) => {
      const r = await fetch(`/api/v1/experiments/${id}/trials?page_size=100`, { headers: { Authorization: `Bearer ${t}` } });
      return (await r.json()).trials.map((trial) => trial.id);
    }, experimentId, token);
    assert(ids.length === expectedTrials, `${ids.length} rows, expected ${expectedTrials}`);
    assert([...ids].sort().join() === [...api].sort().join(), 'rows differ from the API\'s trials');
    const baseline = await page.$$eval('#trials .mark-baseline', (m) => m.length);
    assert(baseline === 1, `${baseline} baseline marks`);
    const states = await page.$$eval('#trials td[data-col="state"]', (cells) => cells.map((c) => c.textContent.trim()));
    assert(states.every((s) => s === 'SUCCEEDED'), `states ${states}`);
  });

  await check('sorting by the metric orders the rows', async () => {
    const values = () => page.$$eval('#trials td[data-col="metric"]', (cells) => cells.map((c) => Number(c.textContent)));
    await page.click('#trials th button[data-sort="metric"]');
    const ascending = await values();
    assert(ascending.every((v, i) => i === 0 || ascending[i - 1] <= v), `not ascending: ${ascending}`);
    await page.click('#trials th button[data-sort="metric"]');
    const descending = await values();
    assert(descending.every((v, i) => i === 0 || descending[i - 1] >= v), `not descending: ${descending}`);
    assert(new Set(descending).size > 1, 'every trial has the same metric: the sort shows nothing');
    const aria = await page.$eval('#trials th[aria-sort="descending"] button', (b) => b.dataset.sort);
    assert(aria === 'metric', `aria-sort on ${aria}`);
  });

  await check('the curves chart is drawn', async () => {
    await page.waitForFunction(() => document.querySelector('#curves canvas'), { timeout: 5000 });
    const { drawn } = await drawnPixels(page, '#curves');
    assert(drawn > 2000, `only ${drawn} drawn pixels`);
  });

  await check('the Pareto chart is drawn with its front', async () => {
    await page.waitForFunction(() => document.querySelector('#pareto-note').textContent.includes('on the front'),
                               { timeout: 10000 });
    const { drawn, matching } = await drawnPixels(page, '#pareto', [0x1f, 0x77, 0xb4]);
    assert(drawn > 2000, `only ${drawn} drawn pixels`);
    assert(matching > 50, `only ${matching} pixels in the front's colour`);
    const fronts = await page.$$eval('#trials .mark-front', (m) => m.length);
    assert(fronts >= 1, 'no trial marked as on the front');
  });

  await check('the parallel coordinates are drawn', async () => {
    const { drawn } = await drawnPixels(page, '#parallel');
    assert(drawn > 2000, `only ${drawn} drawn pixels`);
  });

  await check('keyboard: arrows move between rows, Space selects a curve', async () => {
    await page.focus('#trials tbody tr[tabindex="0"]');
    const first = await page.evaluate(() => document.activeElement.dataset.id);
    await page.keyboard.press('ArrowDown');
    const second = await page.evaluate(() => document.activeElement.dataset.id);
    assert(first && second && first !== second, `focus ${first} -> ${second}`);
    await page.keyboard.press('Space');
    await page.waitForFunction((id) => document.querySelector(`#trials tr[data-id="${id}"]`)?.getAttribute('aria-selected') === 'true',
                               { timeout: 3000 }, second);
    const focused = await page.evaluate(() => document.activeElement.dataset.id);
    assert(focused === second, `focus lost after selecting (on ${focused})`);
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => document.querySelector('#trial-detail')?.textContent.includes(id),
                               { timeout: 3000 }, second);
  });

  await check('the filter keeps matching rows only', async () => {
    await page.type('#filter', 'level');
    const algorithms = await page.$$eval('#trials td[data-col="algorithm"]', (cells) => cells.map((c) => c.textContent));
    assert(algorithms.length > 0 && algorithms.length < expectedTrials, `${algorithms.length} rows after filtering`);
    assert(algorithms.every((a) => a === 'level'), `algorithms ${algorithms}`);
    await page.$eval('#filter', (input) => { input.value = ''; input.dispatchEvent(new Event('input')); });
    assert(await rowCount(page) === expectedTrials, 'clearing the filter does not bring every row back');
  });

  await check('a model download link serves the artifact', async () => {
    const href = await page.$eval('#trials td[data-col="model"] a', (a) => a.getAttribute('href'));
    const body = await page.evaluate((h) => fetch(h).then((r) => r.status === 200 ? r.text() : `status ${r.status}`), href);
    assert(body.startsWith('compressed model of '), `download gave "${body.slice(0, 60)}"`);
  });
  await page.screenshot({ path: path.join(outDir, 'experiment-1280x800.png'), fullPage: true });

  await check('new trials appear without a reload', async () => {
    const marker = await page.evaluate(() => { window.__notReloaded = true; return true; });
    await command(`resume ${INITIAL_TRIALS + 3}`);
    await page.waitForFunction((n) => document.querySelectorAll('#trials tbody tr[data-id]').length >= n &&
                                      [...document.querySelectorAll('#trials td[data-col="state"]')].every((c) => c.textContent.trim() === 'SUCCEEDED'),
                               { timeout: 30000 }, expectedTrials + 3);
    assert(marker && await page.evaluate(() => window.__notReloaded === true), 'the page was reloaded');
    const state = await page.$eval('#experiment-state', (s) => s.textContent);
    assert(state === 'DONE', `experiment shows ${state}`);
  });

  await check('the page reconnects after a scheduler restart', async () => {
    await command('restart');
    await command(`resume ${INITIAL_TRIALS + 5}`);
    await page.waitForFunction((n) => document.querySelectorAll('#trials tbody tr[data-id]').length >= n,
                               { timeout: 30000 }, expectedTrials + 5);
    await page.waitForFunction(() => document.querySelector('#live').textContent === 'live', { timeout: 10000 });
    assert(await page.evaluate(() => window.__notReloaded === true), 'the page was reloaded');
  });

  await check('readable on a narrow window', async () => {
    await page.setViewport({ width: 420, height: 800 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `the page scrolls sideways by ${overflow} px`);
    await page.screenshot({ path: path.join(outDir, 'experiment-420x800.png'), fullPage: true });
    await page.setViewport({ width: 1280, height: 800 });
  });

  await check('no console errors', async () => {
    // A scheduler restart cuts the event stream; Chromium reports the refused
    // reconnects as failed loads, which is the page working as intended.
    const real = errors.filter((e) => !/ERR_CONNECTION_REFUSED|ERR_INCOMPLETE_CHUNKED|ERR_EMPTY_RESPONSE|net::ERR_/.test(e));
    assert(real.length === 0, real.join(' | '));
  });
}

main().catch((error) => {
  failed += 1;
  console.log(`FAIL the run: ${error.stack ?? error.message}`);
}).finally(finish);
