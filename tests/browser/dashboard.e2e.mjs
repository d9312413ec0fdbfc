// End-to-end test of the dashboard in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core). Run by tests/dashboard.rs,
// which starts the server with identity tokens on (and stops it, and starts
// it again without them, when the driver prints `@@stop` / `@@start`,
// answering `ok` on stdin) and passes:
//   SSER_URL, SSER_API_TOKEN, SSER_METRICS_TOKEN, ARTIFACTS_DIR, CHROMIUM
// Exits non-zero (with the reason on stderr) if any step fails.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { openClient, serveClientPage, waitSeen } from './identity-client.mjs';

const base = need('SSER_URL');
const apiToken = need('SSER_API_TOKEN');
const metricsToken = need('SSER_METRICS_TOKEN');
const artifacts = need('ARTIFACTS_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`missing env ${name}`); process.exit(2); }
  return v;
}
const log = (...a) => console.log('[e2e]', ...a);

// Asks the Rust test to stop or restart the server: one line out, one back.
const stdin = createInterface({ input: process.stdin });
const replies = stdin[Symbol.asyncIterator]();
async function control(what) {
  console.log(`@@${what}`);
  const { value, done } = await replies.next();
  if (done || value.trim() !== 'ok') throw new Error(`control ${what}: got ${done ? 'EOF' : value}`);
}

async function http(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}
const publish = (id, message, type) =>
  http('POST', `/api/v1/pubsubs/${id}/events`, { event: type ? { message, type } : { message } });
const mint = async (app, user, device) =>
  (await http('POST', '/api/v1/tokens', device ? { app, user, device, ttl: 600 } : { app, user, ttl: 600 })).token;
// The id of the one connection of a device, from the registry.
async function connectionOf(app, user, device) {
  const { connections } = await http('GET', `/api/v1/connections?app=${app}&user=${user}&device=${device}`);
  if (connections.length !== 1) throw new Error(`${app}/${user}/${device} has ${connections.length} connections, not 1`);
  return connections[0].id;
}
// Opens an identity stream from this script (not the browser), read until
// `signal` aborts it.
async function openStream(token, signal) {
  const res = await fetch(`${base}/api/v1/stream`, { headers: { Authorization: `Bearer ${token}` }, signal });
  if (!res.ok) throw new Error(`identity stream: HTTP ${res.status} ${await res.text()}`);
  (async () => { for await (const _ of res.body) { /* discard */ } })().catch(() => {});
}

mkdirSync(artifacts, { recursive: true });
// A fresh, empty profile for every run.
const userDataDir = mkdtempSync(join(tmpdir(), 'sser-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1366, height: 1000 },
  colorScheme: 'light',
});
context.setDefaultTimeout(STEP_MS);
const page = context.pages()[0] ?? await context.newPage();

const problems = [];
let expect401 = false; // the wrong-token sign-in logs one on purpose
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  // A stream cut on purpose (sign-out, offline) may log a network error.
  if (expect401 && /status of 401/.test(m.text())) return;
  // So does the connections filter naming a user but no app, on purpose.
  if (/status of 400/.test(m.text()) && /\/api\/v1\/connections\?(?!.*app=)/.test(m.location().url)) return;
  if (m.type() === 'error' && !/net::ERR_(ABORTED|CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE)|Failed to fetch|network error/i.test(m.text())) {
    problems.push(`console error: ${m.text()}`);
  }
});
// The token must never travel in a URL (it would reach logs and history).
const kicks = []; // the DELETE /api/v1/connections/:id the page sends
page.on('request', (r) => {
  const url = r.url();
  if (url.includes(apiToken) || url.includes(metricsToken)) problems.push(`token in URL: ${url}`);
  if (r.method() === 'DELETE' && url.includes('/api/v1/connections/')) kicks.push(url);
});

const counter = async (key) => {
  const v = await page.getAttribute(`.counter[data-metric="${key}"]`, 'data-value');
  return v === null || v === '' ? null : Number(v);
};
async function waitCounter(key, predicate, what) {
  const deadline = Date.now() + STEP_MS;
  let last;
  while (Date.now() < deadline) {
    last = await counter(key);
    if (last !== null && predicate(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`counter ${key} never ${what} (last seen ${last})`);
}
async function presence(key, value) {
  try {
    await page.locator(`.counter[data-presence="${key}"][data-value="${value}"]`).waitFor();
  } catch {
    const last = await page.getAttribute(`.counter[data-presence="${key}"]`, 'data-value', { timeout: 1000 }).catch(() => 'no counter');
    throw new Error(`presence counter ${key} never showed ${JSON.stringify(String(value))} (last seen ${JSON.stringify(last)})`);
  }
}
// Waits until the connections table has `n` rows, all of application
// `app` when given.
async function waitRows(n, app) {
  const deadline = Date.now() + STEP_MS;
  let last;
  while (Date.now() < deadline) {
    last = await page.locator('#conn-rows tr td:nth-child(2)').allTextContents();
    if (last.length === n && (app === undefined || last.every((a) => a === app))) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`the connections table never had ${n} rows${app ? ' of ' + app : ''} (last seen ${JSON.stringify(last)})`);
}
async function signIn(token) {
  await page.locator('#signin').waitFor({ state: 'visible' });
  await page.fill('#token', token);
  await page.click('#signin-button');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#conn-state[data-state="live"]').waitFor();
}
async function signOut() {
  await page.click('#sign-out');
  await page.locator('#signin').waitFor({ state: 'visible' });
  const kept = await page.evaluate(() => sessionStorage.getItem('sser.token'));
  if (kept) throw new Error('token still in sessionStorage after sign-out');
}

let failed = null;
let client = null; // a browser tab following an identity stream
const streams = new AbortController(); // identity streams opened from here
try {
  await serveClientPage(context, base);
  await page.goto(base + '/');
  log('page loaded');

  // A wrong token is refused with a message.
  expect401 = true;
  await page.fill('#token', 'not-a-token');
  await page.click('#signin-button');
  await page.locator('#signin-error').waitFor({ state: 'visible' });
  expect401 = false;

  // --- read-only view with the metrics token ---
  await signIn(metricsToken);
  if ((await page.textContent('#role')) !== 'read-only') throw new Error('metrics token should give the read-only view');
  if (await page.isVisible('#operator')) throw new Error('operator panel visible in read-only view');
  const stored = await page.evaluate(() => [sessionStorage.getItem('sser.token'), localStorage.getItem('sser.token')]);
  if (stored[0] !== metricsToken || stored[1] !== null) throw new Error('token must be in sessionStorage only');
  log('signed in read-only');

  const topic = (await http('POST', '/api/v1/pubsubs', {})).pubsub.id;
  const before = await waitCounter('message_received', () => true, 'appeared');
  for (let i = 0; i < 3; i++) await publish(topic, `counter-${i}`);
  await waitCounter('message_received', (v) => v >= before + 3, `rose by 3 from ${before}`);
  // A rate shows for one second per burst: keep publishing until it is seen.
  let publishing = true;
  const trickle = (async () => { for (let i = 0; publishing; i++) { await publish(topic, `rate-${i}`); await new Promise((r) => setTimeout(r, 150)); } })();
  try {
    await waitCounter('events_in', (v) => v > 0, 'showed a rate');
  } finally {
    publishing = false;
    await trickle;
  }
  await page.locator(`#topic-rows tr[data-topic="${topic}"]`).waitFor();
  log('counters moved, topic listed');

  // Filter and sort the table.
  await page.fill('#topic-filter', topic.slice(0, 6));
  await page.locator(`#topic-rows tr[data-topic="${topic}"]`).waitFor();
  await page.fill('#topic-filter', 'no-such-topic-xyz');
  await page.locator('#topics-empty').waitFor({ state: 'visible' });
  await page.fill('#topic-filter', '');
  await page.click('#topics th[data-key="events_published"] button');
  await page.locator('#topics th[data-key="events_published"][aria-sort="descending"]').waitFor();

  // Connections: a browser tab of user ada on her phone appears, with who
  // she is and the presence counts; the read-only view has no Kick button.
  client = await openClient(context, base, await mint('shop', 'ada', 'phone'));
  // Back to the dashboard's tab: headless Chromium stops painting a tab
  // that is not in front, and clicks wait for paints.
  await page.bringToFront();
  const ada = await connectionOf('shop', 'ada', 'phone');
  const adaRow = page.locator(`#conn-rows tr[data-conn="${ada}"]`);
  await adaRow.waitFor();
  const cells = await adaRow.locator('td').allTextContents();
  if (cells[1] !== 'shop' || cells[2] !== 'ada' || cells[3] !== 'phone' || !cells[6].includes('device:shop/ada/phone')) {
    throw new Error(`ada's row reads ${JSON.stringify(cells)}`);
  }
  await presence('users_online', 1);
  await presence('devices_online', 1);
  await presence('identity_connections', 1);
  if (await page.locator('#conn-rows button[data-action="kick"]').count()) throw new Error('Kick offered in the read-only view');
  if (!(await page.isHidden('#identity-off'))) throw new Error('identity-off notice shown with identity on');
  log('identity connection listed with presence counts');

  await signOut();
  log('signed out');

  // --- operator view with the API token ---
  await signIn(apiToken);
  if ((await page.textContent('#role')) !== 'operator') throw new Error('API token should give the operator view');
  await page.locator('#operator').waitFor({ state: 'visible' });

  // Create a topic from the page.
  await page.click('#create-form button[type="submit"]');
  await page.locator('#created').waitFor({ state: 'visible' });
  const created = (await page.textContent('#created-id')).trim();
  await page.locator(`#topic-rows tr[data-topic="${created}"]`).waitFor();
  log('created topic', created);

  // Tail it, publish from the test and from the page, see both.
  await page.fill('#tail-topic', created);
  await page.click('#tail-start');
  await page.locator('#tail-state', { hasText: 'Tailing' }).waitFor();
  const marker = `hello-from-e2e-${Date.now()}`;
  await publish(created, marker, 'greeting');
  await page.locator('#tail-log li', { hasText: marker }).waitFor();
  await page.locator('#tail-log li .etype', { hasText: 'greeting' }).waitFor();
  await page.fill('#publish-topic', created);
  await page.fill('#publish-message', 'sent from the page\nsecond line');
  await page.click('#publish-form button[type="submit"]');
  await page.locator('#tail-log li', { hasText: 'second line' }).waitFor();
  log('tail shows events');

  // Eleven users of another application, connected from this script:
  // filtered by app, ten per page, they take two pages.
  for (let i = 0; i < 11; i++) await openStream(await mint('pager', `p${i}`), streams.signal);
  await presence('identity_connections', 12);
  await page.selectOption('#conn-limit', '10');
  await page.fill('#conn-app', 'pager');
  await page.click('#conn-filter-apply');
  await waitRows(10, 'pager');
  await page.click('#conn-next');
  await waitRows(1, 'pager');
  await page.locator('#conn-page', { hasText: 'page 2' }).waitFor();
  if (!(await page.isDisabled('#conn-next'))) throw new Error('Next enabled on the last page');
  await page.click('#conn-prev');
  await waitRows(10, 'pager');
  await page.locator('#conn-page', { hasText: 'page 1' }).waitFor();
  // One user of the app.
  await page.fill('#conn-user', 'p3');
  await page.click('#conn-filter-apply');
  await waitRows(1, 'pager');
  await page.locator('#conn-rows tr td:nth-child(3)', { hasText: /^p3$/ }).waitFor();
  // A user without an app: the server's reason is shown.
  await page.fill('#conn-app', '');
  await page.click('#conn-filter-apply');
  await page.locator('#conn-result.err', { hasText: 'name the application too' }).waitFor();
  await page.selectOption('#conn-limit', '50');
  await page.click('#conn-filter-clear');
  await adaRow.waitFor();
  await waitRows(13); // ada, the eleven, and the tail (a topic connection)
  // The error went with the listing that worked (at once, not after its
  // display time).
  if (await page.isVisible('#conn-result.err')) throw new Error('the listing error stayed after a listing worked');
  log('connections filtered and paged');

  // Some traffic on a few topics for the screenshot.
  for (let i = 0; i < 20; i++) await publish(i % 2 ? topic : created, `{"n":${i}}`);
  await page.waitForTimeout(2500);
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(artifacts, 'dashboard-phone-dark.png'), fullPage: true });
  await page.setViewportSize({ width: 1366, height: 1000 });
  await page.emulateMedia({ colorScheme: 'light' });
  log('screenshots written to', artifacts);

  // Kick ada's tab, with confirmation: dismissed, nothing happens.
  page.once('dialog', (d) => d.dismiss());
  await adaRow.locator('button[data-action="kick"]').click();
  let asked = '';
  page.once('dialog', (d) => { asked = d.message(); d.accept(); });
  await adaRow.locator('button[data-action="kick"]').click();
  await page.locator('#conn-result', { hasText: `Kicked ${ada}` }).waitFor();
  if (!asked.includes(ada) || !asked.includes('shop / ada / phone')) throw new Error(`the confirmation read: ${asked}`);
  const kicked = await waitSeen(client, 'sser.kicked');
  if (JSON.parse(kicked.data).reason !== 'kicked from the dashboard') throw new Error(`sser.kicked said ${kicked.data}`);
  if (kicks.length !== 1) throw new Error(`the page sent ${kicks.length} kicks, not 1: ${kicks.join(', ')}`);
  await adaRow.waitFor({ state: 'detached' });
  await presence('devices_online', 0);
  await presence('users_online', 11);
  streams.abort();
  await presence('identity_connections', 0);
  log('kicked: the stream saw sser.kicked, the row went');
  await client.close(); // done with it
  client = null;

  // Delete the tailed topic from the table: the tail says so.
  page.once('dialog', (d) => d.accept());
  await page.click(`#topic-rows tr[data-topic="${created}"] button[data-action="delete"]`);
  await page.locator('#tail-log li', { hasText: 'The topic was deleted.' }).waitFor();
  await page.locator(`#topic-rows tr[data-topic="${created}"]`).waitFor({ state: 'detached' });
  log('delete reflected in tail and table');

  // The server goes away: the page says so at once, then reconnects by
  // itself when the server is back (on the same address).
  await control('stop');
  await page.locator('#disconnected').waitFor({ state: 'visible' });
  await page.locator('#conn-state[data-state="disconnected"]').waitFor();
  // Visible wherever the page is scrolled (it was scrolled down by now).
  const box = await page.locator('#disconnected').boundingBox();
  const { height } = page.viewportSize();
  if (!box || box.y < 0 || box.y + box.height > height) throw new Error(`disconnected banner out of view: ${JSON.stringify(box)}`);
  await page.screenshot({ path: join(artifacts, 'dashboard-disconnected.png') });
  await control('start');
  await page.locator('#conn-state[data-state="live"]').waitFor({ timeout: 30000 });
  await page.locator('#disconnected').waitFor({ state: 'hidden' });
  log('disconnected banner shown, then reconnected by itself');

  // Back without identity tokens: the connections view says why it is
  // empty, and asks nothing of the server (no error logged).
  await page.locator('#identity-off').waitFor({ state: 'visible' });
  if (!(await page.isHidden('#conn-view')) || !(await page.isHidden('#conn-filter'))) throw new Error('connection list shown with identity off');
  await presence('users_online', '');
  await presence('topic_connections', 0);
  await page.screenshot({ path: join(artifacts, 'dashboard-identity-off.png'), fullPage: true });
  log('identity off: the connections view explains itself');

  await signOut();
  log('signed out');
  if (problems.length) throw new Error(problems.join('\n'));
} catch (e) {
  failed = e;
  try { await page.screenshot({ path: join(artifacts, 'dashboard-failure.png'), fullPage: true }); } catch { /* ignore */ }
} finally {
  streams.abort();
  stdin.close();
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
if (failed) {
  console.error('[e2e] FAILED:', failed.message);
  process.exit(1);
}
log('all steps passed');
