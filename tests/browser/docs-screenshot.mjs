// Regenerates docs/dashboard.png, the README's picture of the dashboard.
// Not a test: it drives a running server with some demo traffic (a few
// topics, subscribers reading over SSE, publishes at a varying rate and,
// when the server has identity tokens on, a few users connected from their
// devices) for DEMO_SECONDS, then signs in as operator in headless Chromium,
// tails a topic and takes the screenshot while the traffic goes on.
//
//   SSER_URL=http://127.0.0.1:8889 SSER_API_TOKEN=... DEMO_SECONDS=300 \
//     node tests/browser/docs-screenshot.mjs
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const base = process.env.SSER_URL || 'http://127.0.0.1:8889';
const token = process.env.SSER_API_TOKEN;
const seconds = Number(process.env.DEMO_SECONDS || 120);
const out = process.env.OUT || join(dirname(fileURLToPath(import.meta.url)), '../../docs/dashboard.png');
const theme = process.env.THEME || 'light';
if (!token) { console.error('set SSER_API_TOKEN'); process.exit(2); }

const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
const post = async (path, body) => {
  const r = await fetch(base + path, { method: 'POST', headers: auth, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
};

// Topics and their subscribers.
const topics = [];
for (const subs of [12, 6, 3, 1, 0]) {
  const { pubsub } = await post('/api/v1/pubsubs', {});
  topics.push(pubsub.id);
  for (let i = 0; i < subs; i++) {
    fetch(`${base}/api/v1/pubsubs/${pubsub.id}/events`, { headers: { Authorization: `Bearer ${pubsub.token}` } })
      .then(async (r) => { const rd = r.body.getReader(); for (;;) { const { done } = await rd.read(); if (done) break; } })
      .catch(() => {});
  }
}
// Users on their devices, when identity tokens are on (else minting is a 400).
const people = [['shop', 'ada', 'phone'], ['shop', 'ada', 'laptop'], ['shop', 'grace', 'phone'],
  ['shop', 'linus', null], ['news', 'ken', 'tablet'], ['news', 'barbara', 'phone']];
let identities = 0;
for (const [app, user, device] of people) {
  const r = await fetch(base + '/api/v1/tokens', { method: 'POST', headers: auth, body: JSON.stringify(device ? { app, user, device } : { app, user }) });
  if (!r.ok) break;
  const { token: t } = await r.json();
  fetch(`${base}/api/v1/stream`, { headers: { Authorization: `Bearer ${t}` } })
    .then(async (s) => { const rd = s.body.getReader(); for (;;) { const { done } = await rd.read(); if (done) break; } })
    .catch(() => {});
  identities++;
}
let stop = false;
(async () => {
  let n = 0;
  const t0 = Date.now();
  while (!stop) {
    const t = (Date.now() - t0) / 1000;
    const rate = 20 + 15 * Math.sin(t / 25) + (t % 60 > 45 ? 25 : 0); // events per second
    const i = n++ % 10 < 6 ? 0 : 1 + (n % 4);
    post(`/api/v1/pubsubs/${topics[i]}/events`, { event: { type: 'order', message: { order: n, status: 'paid', total: (n * 7) % 300 } } }).catch(() => {});
    // Now and then a notification to one user, and a broadcast to an app.
    if (identities && n % 40 === 0) {
      const [app, user] = people[(n / 40) % people.length];
      post('/api/v1/send', { app, users: [user], type: 'notice', message: { n } }).catch(() => {});
    }
    if (identities && n % 300 === 0) post('/api/v1/send', { app: 'shop', type: 'sale', message: { n } }).catch(() => {});
    await new Promise((r) => setTimeout(r, 1000 / rate));
  }
})();
console.log(`demo traffic on ${topics.length} topics, ${identities} identity connections, for ${seconds}s`);
await new Promise((r) => setTimeout(r, seconds * 1000));

const profile = mkdtempSync(join(tmpdir(), 'sser-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 1000 },
  colorScheme: theme,
  deviceScaleFactor: 1,
});
const page = context.pages()[0] ?? await context.newPage();
await page.goto(base + '/');
await page.fill('#token', token);
await page.click('#signin-button');
await page.locator('#conn-state[data-state="live"]').waitFor();
await page.fill('#tail-topic', topics[0]);
await page.click('#tail-start');
if (identities) {
  // The connections of one application, not the many topic subscribers.
  await page.fill('#conn-app', 'shop');
  await page.click('#conn-filter-apply');
}
await page.waitForTimeout(4000);
await page.mouse.move(1250, 450); // show the chart's hover read-out
await page.waitForTimeout(300);
await page.screenshot({ path: out, fullPage: true });
console.log('wrote', out);
stop = true;
await context.close();
rmSync(profile, { recursive: true, force: true });
process.exit(0);
