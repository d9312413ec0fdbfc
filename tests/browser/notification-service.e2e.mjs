// The sse-notification-service profile in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core). Run by
// tests/compat_notification_service.rs, which starts sser and passes:
//   NS_URL (the profile's listener), SSER_URL (the main one), SSER_API_TOKEN,
//   NS_TOKEN (a JWT: iss NS_APP, sub NS_USER), NS_APP, NS_USER, CHROMIUM
// An EventSource opens /sse?Authorization=<jwt> as the original's browser
// clients do; a producer's message arrives by its type; the ping events
// that follow leave lastEventId alone; kicked, the EventSource reconnects
// by itself with Last-Event-ID and gets, exactly once, what it missed.
// Exits non-zero (with the reason on stderr) if any step fails.
import { chromium } from 'playwright-core';

const need = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`missing env ${name}`); process.exit(2); }
  return v;
};
const nsUrl = need('NS_URL');
const sserUrl = need('SSER_URL');
const apiToken = need('SSER_API_TOKEN');
const token = need('NS_TOKEN');
const app = need('NS_APP');
const user = need('NS_USER');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;
const log = (...a) => console.log('[ns-e2e]', ...a);

// What a producer's `PUBLISH {app}:channel:{user}` becomes over HTTP.
async function publish(id, data) {
  const res = await fetch(`${sserUrl}/api/v1/send`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ app, users: [user], id, type: 'notification', message: data }),
  });
  if (res.status !== 201) throw new Error(`send ${id}: HTTP ${res.status} ${await res.text()}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
let failed = false;
try {
  const page = await browser.newPage();
  // Same origin as the stream, as a page served beside it would be.
  await page.goto(`${nsUrl}/health`);
  await page.evaluate((jwt) => {
    window.received = [];
    window.opens = 0;
    const es = new EventSource(`/sse?Authorization=${encodeURIComponent(jwt)}`);
    es.onopen = () => { window.opens += 1; };
    for (const type of ['notification', 'ping']) {
      es.addEventListener(type, (e) =>
        window.received.push({ type, data: e.data, lastEventId: e.lastEventId }));
    }
  }, token);
  await page.waitForFunction(() => window.opens === 1, null, { timeout: STEP_MS });
  log('EventSource open with the query token');

  await publish('100', { hello: 'world' });
  await page.waitForFunction(
    () => window.received.some((e) => e.type === 'notification'), null, { timeout: STEP_MS });
  // Pings after the message must keep its id as the last event id.
  await page.waitForFunction(() => {
    const at = window.received.findIndex((e) => e.type === 'notification');
    return window.received.slice(at + 1).filter((e) => e.type === 'ping').length >= 2;
  }, null, { timeout: STEP_MS });
  let received = await page.evaluate(() => window.received);
  const first = received.find((e) => e.type === 'notification');
  if (JSON.parse(first.data).hello !== 'world' || !first.lastEventId) {
    throw new Error(`unexpected first message: ${JSON.stringify(first)}`);
  }
  // Only pings after it: one may come first when the box is slow (the test
  // server pings every second), and it rightly has no last event id yet.
  for (const ping of received.slice(received.indexOf(first) + 1).filter((e) => e.type === 'ping')) {
    if (ping.data !== 'null' || ping.lastEventId !== first.lastEventId) {
      throw new Error(`a ping moved the last event id: ${JSON.stringify(ping)} after ${JSON.stringify(first)}`);
    }
  }
  log('message received; pings keep lastEventId =', first.lastEventId);

  // Kick the connection (found through the profile's own listing), and
  // send while the browser waits to reconnect.
  const listing = await fetch(`${nsUrl}/connections/${app}/${user}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (listing.status !== 200) throw new Error(`listing: HTTP ${listing.status}`);
  const [connId] = Object.keys(await listing.json());
  const kicked = await fetch(`${sserUrl}/api/v1/connections/${connId}`, {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${apiToken}` },
  });
  if (!kicked.ok) throw new Error(`kick: HTTP ${kicked.status}`);
  await publish('101', { hello: 'again' });
  await page.waitForFunction(
    () => window.opens >= 2 &&
      window.received.filter((e) => e.type === 'notification').length >= 2,
    null, { timeout: STEP_MS });
  // Give a duplicate the chance to show up.
  await page.waitForTimeout(500);
  received = await page.evaluate(() => window.received);
  const messages = received.filter((e) => e.type === 'notification').map((e) => JSON.parse(e.data).hello);
  if (JSON.stringify(messages) !== JSON.stringify(['world', 'again'])) {
    throw new Error(`after the reconnect, expected [world, again] once each, got ${JSON.stringify(messages)}`);
  }
  log('reconnected by itself and resumed: got', messages);
} catch (e) {
  failed = true;
  console.error('[ns-e2e] FAILED:', e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
