// go-sse-broker's browser flow in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core), as its README's JS does
// it: `new EventSource('/events?token=…&device=…')`, `onmessage`, a
// listener for a custom event, and `onerror` closing the source. Run by
// tests/compat_go_sse_broker/browser.rs, which starts the server and passes
// SSER_URL, SSER_API_TOKEN and CHROMIUM. Exits non-zero (reason on stderr)
// if a step fails.
//
// Steps: a back-end (this script, with the API token) gets a token from
// /token; page A opens the stream and sees sys_connected; /send by uid (an
// unnamed message) and by device with event "custom-event" reach it; page B
// opens the same device, so A gets sys_extrude_offline and its source
// closes, and later sends reach B only.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = need('SSER_URL');
const apiToken = need('SSER_API_TOKEN');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`missing env ${name}`); process.exit(2); }
  return v;
}
const log = (...a) => console.log('[gsb-e2e]', ...a);

// The back-end's side: go-sse-broker's API with the API token.
async function api(path, body) {
  const res = await fetch(base + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const v = await res.json();
  if (res.status !== 200 || v.code !== 1) throw new Error(`${path}: HTTP ${res.status} ${JSON.stringify(v)}`);
  return v.result;
}

// The README's client, in the page; what it sees goes to window.seen.
function openSource({ token, device }) {
  window.seen = [];
  const es = new EventSource('/events?token=' + encodeURIComponent(token) + '&device=' + encodeURIComponent(device));
  es.onmessage = (e) => window.seen.push(['message', e.data, e.lastEventId]);
  for (const name of ['sys_connected', 'custom-event', 'sys_extrude_offline']) {
    es.addEventListener(name, (e) => window.seen.push([name, e.data, e.lastEventId]));
  }
  es.onerror = () => { window.seen.push(['error', '', '']); es.close(); };
}

async function waitFor(page, what, predicate) {
  try {
    await page.waitForFunction(predicate, undefined, { timeout: STEP_MS, polling: 50 });
  } catch (e) {
    const seen = await page.evaluate(() => window.seen);
    throw new Error(`waiting for ${what}: ${e.message}; seen ${JSON.stringify(seen)}`);
  }
}

const userDataDir = mkdtempSync(join(tmpdir(), 'sser-gsb-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
context.setDefaultTimeout(STEP_MS);
let failed = false;
try {
  const token = await api('/token?uid=web');
  const a = context.pages()[0] ?? await context.newPage();
  // Any page of the server's origin, so the README's relative URL works.
  await a.goto(base + '/healthz');
  await a.evaluate(openSource, { token, device: 'laptop' });
  await waitFor(a, 'sys_connected on A', () => window.seen.some(([n]) => n === 'sys_connected'));
  log('A connected');

  if (await api('/send?uid=web&data=hello') !== 1) throw new Error('send by uid reached no one');
  await api('/send', { device: 'laptop', event: 'custom-event', data: 'hi there' });
  await waitFor(a, 'both sends on A', () =>
    window.seen.some(([n, d]) => n === 'message' && d === 'hello') &&
    window.seen.some(([n, d]) => n === 'custom-event' && d === 'hi there'));
  const ids = await a.evaluate(() => window.seen.filter(([n]) => n !== 'sys_connected').map(([, , id]) => id));
  if (ids.some((id) => !id)) throw new Error(`an event without an id: ${JSON.stringify(ids)}`);
  log('A received the message and the custom event');

  const b = await context.newPage();
  await b.goto(base + '/healthz');
  await b.evaluate(openSource, { token, device: 'laptop' });
  await waitFor(b, 'sys_connected on B', () => window.seen.some(([n]) => n === 'sys_connected'));
  await waitFor(a, 'sys_extrude_offline on A', () => window.seen.some(([n]) => n === 'sys_extrude_offline'));
  const extrude = await a.evaluate(() => window.seen.find(([n]) => n === 'sys_extrude_offline'));
  if (extrude[1] !== '127.0.0.1') throw new Error(`sys_extrude_offline data: ${extrude[1]}`);
  log('B took the device over; A was told');

  await api('/send?device=laptop&data=after');
  await waitFor(b, 'the next send on B', () => window.seen.some(([n, d]) => n === 'message' && d === 'after'));
  const late = await a.evaluate(() => window.seen.some(([, d]) => d === 'after'));
  if (late) throw new Error('A still received events after it was pushed off');
  console.log(JSON.stringify({ a: await a.evaluate(() => window.seen), b: await b.evaluate(() => window.seen) }));
  log('ok');
} catch (e) {
  failed = true;
  console.error(`[gsb-e2e] FAILED: ${e.stack || e}`);
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
