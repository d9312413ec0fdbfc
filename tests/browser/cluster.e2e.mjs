// The dashboard's Cluster card in real headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core). Run by
// tests/cluster/dashboard.rs, which starts a redis-server and two nodes,
// each with its own cluster.advertiseAddr, and passes:
//   SSER_URL (node A), SSER_URL_B (node B), SSER_API_TOKEN,
//   SSER_METRICS_TOKEN, SSER_ADVERTISED_A, SSER_ADVERTISED_B,
//   ARTIFACTS_DIR, CHROMIUM
// It opens streams on both nodes from here (1 on A, 2 on B) and checks that
// A's dashboard lists both nodes, each at its advertised address with its
// own connection count, A marked as "this node". Exits non-zero (with the
// reason on stderr) if any step fails.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = need('SSER_URL');
const baseB = need('SSER_URL_B');
const apiToken = need('SSER_API_TOKEN');
const metricsToken = need('SSER_METRICS_TOKEN');
const advertised = [need('SSER_ADVERTISED_A'), need('SSER_ADVERTISED_B')];
const artifacts = need('ARTIFACTS_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;

function need(name) {
  const v = process.env[name];
  if (!v) { console.error(`missing env ${name}`); process.exit(2); }
  return v;
}
const log = (...a) => console.log('[e2e]', ...a);

// A topic stream opened from this script, read until `signal` aborts it.
async function follow(on, topic, token, signal) {
  const res = await fetch(`${on}/api/v1/pubsubs/${topic}/events`, { headers: { Authorization: `Bearer ${token}` }, signal });
  if (!res.ok) throw new Error(`stream on ${on}: HTTP ${res.status} ${await res.text()}`);
  (async () => { for await (const _ of res.body) { /* discard */ } })().catch(() => {});
}

mkdirSync(artifacts, { recursive: true });
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
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });

// The card's rows as [node id, "(this node)"?, address, connections].
const rows = () => page.locator('#cluster-rows tr').evaluateAll((trs) => trs.map((tr) => {
  const td = [...tr.querySelectorAll('td')];
  return { id: tr.dataset.node, self: td[0].textContent.includes('(this node)'), addr: td[1].textContent, conns: td[3].textContent };
}));
async function waitRows(want, what) {
  const deadline = Date.now() + STEP_MS;
  let last;
  while (Date.now() < deadline) {
    last = await rows();
    if (want(last)) return last;
    await page.waitForTimeout(100);
  }
  throw new Error(`the Cluster card never ${what} (last seen ${JSON.stringify(last)})`);
}

let failed = null;
const streams = new AbortController();
try {
  await page.goto(base + '/');
  await page.locator('#signin').waitFor({ state: 'visible' });
  await page.fill('#token', metricsToken);
  await page.click('#signin-button');
  await page.locator('#app').waitFor({ state: 'visible' });
  await page.locator('#cluster-card').waitFor({ state: 'visible' });
  await waitRows((r) => r.length === 2, 'listed two nodes');
  log('cluster card shows two nodes');

  const created = await fetch(`${base}/api/v1/pubsubs`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${apiToken}`, 'Content-Type': 'application/json' },
    body: '{}',
  });
  if (!created.ok) throw new Error(`create topic: HTTP ${created.status}`);
  const { pubsub } = await created.json();
  // B learns of the topic through Redis within milliseconds; retry until then.
  await follow(base, pubsub.id, pubsub.token, streams.signal);
  for (let open = 0, tries = 0; open < 2; tries++) {
    try {
      await follow(baseB, pubsub.id, pubsub.token, streams.signal);
      open++;
    } catch (e) {
      if (tries > 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const want = [[advertised[0], '1', true], [advertised[1], '2', false]];
  const seen = await waitRows((r) => r.length === 2 && want.every(([addr, conns, self]) =>
    r.some((row) => row.addr === addr && row.conns === conns && row.self === self)),
  `showed ${JSON.stringify(want)} as [address, connections, this node]`);
  if ((await page.textContent('#cluster-count')).trim() !== '2 nodes') throw new Error('the card title should say 2 nodes');
  log('both nodes with their advertised addresses and connection counts', JSON.stringify(seen));
  await page.locator('#cluster-card').screenshot({ path: join(artifacts, 'dashboard-cluster.png') });
  if (problems.length) throw new Error(problems.join('\n'));
} catch (e) {
  failed = e;
  try { await page.screenshot({ path: join(artifacts, 'dashboard-cluster-failure.png'), fullPage: true }); } catch { /* ignore */ }
} finally {
  streams.abort();
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
if (failed) {
  console.error('[e2e] FAILED:', failed.message);
  process.exit(1);
}
log('all steps passed');
