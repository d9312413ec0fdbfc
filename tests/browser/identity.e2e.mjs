// Identity tokens in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core). Run by tests/dashboard.rs
// (`identity_stream_in_headless_chromium`), which starts the server with
// identity tokens on and a short `retry:` and passes:
//   SSER_URL, SSER_API_TOKEN, SSER_RETRY_MS, ARTIFACTS_DIR, CHROMIUM
//
// A back-end (this script, with the API token) mints an identity token;
// tab 1 follows GET /api/v1/stream with it in ?access_token= (the README's
// browser path) and receives an event sent to its user with POST
// /api/v1/send; tab 2 opens the same app/user/device with the token in the
// identity cookie. Tab 1 must get `sser.taken_over` and stay closed (no
// reconnect that would take the device back), while tab 2 keeps the device
// and gets what is sent next. Tab 1's page does NOT close its EventSource on
// `sser.taken_over` (a page the server does not control): its automatic
// reconnect, with the Last-Event-ID it was last sent, must be refused (409),
// which closes the EventSource for good. Exits non-zero if any step fails.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openClient, seenOf, serveClientPage, waitSeen } from './identity-client.mjs';

const base = need('SSER_URL');
const apiToken = need('SSER_API_TOKEN');
const retryMs = Number(need('SSER_RETRY_MS'));
const artifacts = need('ARTIFACTS_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;
const APP = 'shop';
const USER = 'u-42';
const DEVICE = 'laptop';

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`missing env ${name}`); process.exit(2); }
  return v;
}
const log = (...a) => console.log('[identity-e2e]', ...a);
const check = (ok, what) => { if (!ok) throw new Error(what); };

async function http(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}
const send = (message) => http('POST', '/api/v1/send', { app: APP, users: [USER], type: 'greeting', message });
const deviceConnections = async () =>
  (await http('GET', `/api/v1/connections?app=${APP}&user=${USER}&device=${DEVICE}`)).connections.map((c) => c.id);

mkdirSync(artifacts, { recursive: true });
const userDataDir = mkdtempSync(join(tmpdir(), 'sser-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 900, height: 600 },
});
context.setDefaultTimeout(STEP_MS);
const problems = [];
context.on('page', (p) => p.on('pageerror', (e) => problems.push(`page error: ${e.message}`)));

let tab1 = null;
let tab2 = null;
let failed = null;
try {
  await serveClientPage(context, base);

  // The back-end mints a token for one device of one user.
  const minted = await http('POST', '/api/v1/tokens', { app: APP, user: USER, device: DEVICE, ttl: 600 });
  check(typeof minted.token === 'string' && minted.expires_at, `mint answered ${JSON.stringify(minted)}`);
  const token = minted.token;

  // Tab 1: the token in ?access_token=; a page that does not close its
  // EventSource when the server ends the stream.
  tab1 = await openClient(context, base, token, { closeOnEnd: false });
  const [first] = await deviceConnections();
  check(first, 'tab 1 is not in the registry');
  log('tab 1 connected as', first);

  // A targeted send reaches it.
  const sent = await send({ hello: 'tab 1' });
  check(sent.reached === 1, `the send reached ${sent.reached} connections, not 1`);
  const got = await waitSeen(tab1, '@user:greeting', 'tab 1');
  check(JSON.parse(got.data).hello === 'tab 1', `tab 1 got ${got.data}`);
  log('tab 1 received the event sent to its user');

  // Tab 2: same app, user and device; the token in the identity cookie.
  await context.addCookies([{ name: 'sser_token', value: token, url: base }]);
  tab2 = await openClient(context, base, token, { cookie: true });
  const over = await waitSeen(tab1, 'sser.taken_over');
  check(JSON.parse(over.data).status === 'taken_over', `sser.taken_over says ${over.data}`);
  // Tab 1 reconnects after `retry` with its Last-Event-ID, is refused, and
  // its EventSource closes for good (readyState 2, CLOSED) by itself.
  try {
    await tab1.waitForFunction(() => window.readyState() === 2, null, { polling: 50 });
  } catch (e) {
    throw new Error(`tab 1's EventSource never closed (readyState ${await tab1.evaluate(() => window.readyState())}): ${e.message.split('\n')[0]}`);
  }
  check((await seenOf(tab1, 'error')).some((e) => e.data === '2'), 'tab 1 closed without a failed reconnect');
  const [second, ...others] = await deviceConnections();
  check(second && second !== first && others.length === 0, `after the take-over the device has ${JSON.stringify([second, ...others])}`);
  log('tab 2 took the device over; tab 1 saw sser.taken_over, its reconnect was refused, it closed');

  // What is sent next reaches tab 2 only.
  const next = await send({ hello: 'tab 2' });
  check(next.reached === 1, `the second send reached ${next.reached} connections, not 1`);
  await waitSeen(tab2, '@user:greeting', 'tab 2');

  // No reconnect loop: a tab that reconnected would do so after `retry`
  // (SSER_RETRY_MS) and take the device back. Nothing to wait on but time
  // passing, so wait three retry periods and look.
  await tab1.waitForTimeout(3 * retryMs + 500);
  check(await tab1.evaluate(() => window.opens) === 1, 'tab 1 reconnected after being taken over');
  check((await seenOf(tab2, 'sser.taken_over')).length === 0, 'tab 2 was taken over in turn: the tabs take turns');
  check((await seenOf(tab1, '@user:greeting')).length === 1, 'tab 1 received an event meant for the device after the take-over');
  const still = await deviceConnections();
  check(still.length === 1 && still[0] === second, `the device's connection changed to ${JSON.stringify(still)}`);
  const presence = await http('GET', `/api/v1/apps/${APP}/users/${USER}`);
  check(presence.online === true && presence.devices.length === 1 && presence.devices[0].device === DEVICE
    && presence.devices[0].connections === 1, `presence says ${JSON.stringify(presence)}`);
  log('tab 1 stayed closed; tab 2 kept the device');

  await tab1.screenshot({ path: join(artifacts, 'identity-tab1.png') });
  await tab2.screenshot({ path: join(artifacts, 'identity-tab2.png') });
  if (problems.length) throw new Error(problems.join('\n'));
} catch (e) {
  failed = e;
  for (const [name, tab] of [['tab1', tab1], ['tab2', tab2]]) {
    try { if (tab) await tab.screenshot({ path: join(artifacts, `identity-failure-${name}.png`) }); } catch { /* ignore */ }
  }
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
if (failed) {
  console.error('[identity-e2e] FAILED:', failed.message);
  process.exit(1);
}
log('all steps passed');
