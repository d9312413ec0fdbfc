// goSSE's cookie flow in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core). Run by tests/compat_gosse.rs, which starts sser
// with the goSSE profile and passes:
//   GOSSE_URL     where the profile is served (no trailing slash)
//   PAGE_PORT     the port this script serves the page on (127.0.0.1), the
//                 origin sser was configured to allow (compat.gosse.allowedOrigin)
//   CLIENT_USER / CLIENT_PASSWORD, BROADCASTER_USER / BROADCASTER_PASSWORD
//   ARTIFACTS_DIR, CHROMIUM
//
// The page, on another origin than sser, does what goSSE's browser client
// does: an XHR `POST /login` withCredentials (the answer sets the sse_token
// cookie), then `new EventSource(url + "/events?type=sse", {withCredentials:
// true})`, which sends the cookie. The page then gets a broadcaster's token
// (without credentials, so its own cookie stays), and broadcasts with fetch:
// the Authorization header makes Chromium send a CORS preflight first, which
// goSSE itself refused. The stream must receive the typed, the untyped and
// the user-addressed broadcasts, and no script may read the cookie.
// Exits non-zero (with the reason on stderr) if any step fails.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const need = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`missing env ${name}`); process.exit(2); }
  return v;
};
const gosse = need('GOSSE_URL');
const pagePort = Number(need('PAGE_PORT'));
const client = { user: need('CLIENT_USER'), password: need('CLIENT_PASSWORD') };
const broadcaster = { user: need('BROADCASTER_USER'), password: need('BROADCASTER_PASSWORD') };
const artifacts = need('ARTIFACTS_DIR');
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 15000;
const USER_ID = 'a99d4b4e-e5c4-42b4-888d-651862c599f6';
const log = (...a) => console.log('[gosse-e2e]', ...a);

// The page: a small goSSE-style client, written for this test.
const html = `<!doctype html><meta charset="utf-8"><title>goSSE client</title>
<body><ul id="log"></ul><script>
window.received = [];
window.state = 'starting';
function SSEClient(url, type) {
  this.run = () => {
    const es = new EventSource(url + '/events?type=' + type, { withCredentials: true });
    const keep = (e) => {
      window.received.push({ type: e.type, data: e.data, id: e.lastEventId });
      const li = document.createElement('li');
      li.textContent = e.type + ': ' + e.data;
      document.getElementById('log').append(li);
    };
    es.onmessage = keep;
    es.addEventListener(type, keep);
    es.onopen = () => { window.state = 'open'; };
    es.onerror = () => { if (window.state !== 'open') window.state = 'error'; };
    this.es = es;
  };
  this.withCreds = (user, password, id) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url + '/login', true);
    xhr.withCredentials = true;
    xhr.setRequestHeader('Content-type', 'application/json');
    xhr.addEventListener('loadend', () => {
      window.loginStatus = xhr.status;
      window.loginBody = xhr.responseText;
      this.run();
    });
    xhr.send(JSON.stringify({ username: user, password: password, id: id }));
  };
}
window.startClient = (user, password, id) => new SSEClient(${JSON.stringify(gosse)}, 'sse').withCreds(user, password, id);
</script></body>`;

const pageServer = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(html);
});
await new Promise((resolve) => pageServer.listen(pagePort, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${pagePort}/`;

mkdirSync(artifacts, { recursive: true });
const userDataDir = mkdtempSync(join(tmpdir(), 'sser-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
});
context.setDefaultTimeout(STEP_MS);
const page = context.pages()[0] ?? await context.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });

async function waitFor(what, check) {
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    const v = await page.evaluate(check);
    if (v) return v;
    await page.waitForTimeout(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

let failed = null;
try {
  await page.goto(pageUrl);
  await page.evaluate(([u, p, id]) => window.startClient(u, p, id), [client.user, client.password, USER_ID]);
  await waitFor('the login', () => window.loginStatus);
  const status = await page.evaluate(() => window.loginStatus);
  if (status !== 200) throw new Error(`login answered ${status}: ${await page.evaluate(() => window.loginBody)}`);
  const body = JSON.parse(await page.evaluate(() => window.loginBody));
  if (body.id !== USER_ID || typeof body.token !== 'string') throw new Error(`login body ${JSON.stringify(body)}`);
  if (await page.evaluate(() => document.cookie.includes('sse_token'))) throw new Error('a script can read the sse_token cookie');
  await waitFor('the EventSource to open', () => window.state === 'open');
  log('logged in from the page; EventSource open with the cookie');

  // A broadcaster's token, fetched without credentials (the page's own
  // cookie stays the client's), then broadcasts from the page: a fetch with
  // Authorization needs a CORS preflight.
  const broadcast = async (message) => page.evaluate(async ([url, who, message]) => {
    const login = await fetch(url + '/login', {
      method: 'POST', body: JSON.stringify({ username: who.user, password: who.password }),
      headers: { 'Content-Type': 'application/json' }, credentials: 'omit',
    });
    if (login.status !== 200) return `login ${login.status}`;
    const { token } = await login.json();
    const res = await fetch(url + '/broadcast', {
      method: 'POST', body: JSON.stringify(message), credentials: 'include',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    });
    return res.status;
  }, [gosse, broadcaster, message]);
  for (const message of [
    { content: 'typed to sse', type: 'sse' },
    { content: 'to everyone' },
    { content: 'only for this user', user: USER_ID },
    { content: 'another type', type: 'news' },
    { content: 'last one', type: 'sse' },
  ]) {
    const answer = await broadcast(message);
    if (answer !== 201) throw new Error(`broadcast ${JSON.stringify(message)} answered ${answer}`);
  }
  // (Chromium sends the preflight itself, unseen by the page's request
  // events: a fetch with Authorization cannot be sent without one, so its
  // 201 is the proof that the preflight was answered.)
  log('broadcast from the page (after a CORS preflight)');

  await waitFor('the last broadcast', () => window.received.some((e) => e.data === 'last one'));
  const received = await page.evaluate(() => window.received);
  const seen = received.map((e) => `${e.type}:${e.data}`);
  const want = ['sse:typed to sse', 'message:to everyone', 'message:only for this user', 'sse:last one'];
  if (JSON.stringify(seen) !== JSON.stringify(want)) throw new Error(`received ${JSON.stringify(seen)}, want ${JSON.stringify(want)}`);
  if (received.some((e) => !e.id)) throw new Error('an event came without an id (no resume)');
  await page.screenshot({ path: join(artifacts, 'gosse.png') });
  log('the EventSource received what goSSE routes to it, with ids');
  if (problems.length) throw new Error(problems.join('\n'));
} catch (e) {
  failed = e;
  await page.screenshot({ path: join(artifacts, 'gosse-failure.png') }).catch(() => {});
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
  pageServer.close();
}
if (failed) {
  console.error(`[gosse-e2e] FAILED: ${failed.stack || failed}`);
  process.exit(1);
}
log('passed');
