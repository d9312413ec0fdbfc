// A browser application's side of identity tokens, for the browser tests:
// a page served at the sser server's own origin (so its EventSource is
// same-origin and the identity cookie applies) whose script does what the
// README's browser example does: follow GET /api/v1/stream, show the events
// sent to its user, and close the EventSource when the server says the
// stream is over for good (taken over, kicked, token expired). That close is
// good practice, not a must: a page that leaves it out reconnects after the
// server's `retry:` delay, and after a take-over that reconnect is refused
// (409), which stops its EventSource; openClient's `closeOnEnd: false` is
// such a page.
//
// The page is served by Playwright's router (page.route), not by sser: sser
// serves only its dashboard, and the test needs a page of its own there.

export const CLIENT_PATH = '/__e2e/identity-client.html';

const CLIENT_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>identity client</title></head>
<body>
<h1>identity client</h1>
<p>readyState: <span id="state">not connected</span>, opened <span id="opens">0</span> time(s)</p>
<ol id="log"></ol>
<script>
'use strict';
// Every event in order, for the test to read: {type, data}.
window.seen = [];
window.opens = 0;
let events = null;
function note(type, data) {
  window.seen.push({ type, data: data === undefined ? null : data });
  const li = document.createElement('li');
  li.textContent = data === undefined ? type : type + ' ' + data;
  document.getElementById('log').append(li);
  document.getElementById('state').textContent = events ? String(events.readyState) : '-';
}
// url: /api/v1/stream?access_token=<token>, or /api/v1/stream with the
// token in the identity cookie (withCredentials).
window.follow = (url, withCredentials, closeOnEnd) => {
  events = new EventSource(url, { withCredentials });
  events.onopen = () => { window.opens++; document.getElementById('opens').textContent = String(window.opens); note('open'); };
  events.onerror = () => note('error', String(events.readyState));
  events.addEventListener('@user:greeting', (e) => note('@user:greeting', e.data));
  events.addEventListener('@user', (e) => note('@user', e.data));
  // The server's last word: do not reconnect into it (when closeOnEnd).
  for (const end of ['sser.taken_over', 'sser.kicked', 'sser.token_expired']) {
    events.addEventListener(end, (e) => { if (closeOnEnd) events.close(); note(end, e.data); });
  }
};
window.readyState = () => (events ? events.readyState : -1);
</script>
</body></html>`;

// Serves the client page at base + CLIENT_PATH for every page of `context`.
export async function serveClientPage(context, base) {
  await context.route(base + CLIENT_PATH, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: CLIENT_HTML }));
}

// Opens a client tab following the identity stream: with `token` in the
// query (?access_token=), or, when `cookie` is true, with no token in the
// URL (the caller has put it in the identity cookie). With `closeOnEnd`
// false the page does not close its EventSource on the server's last word.
export async function openClient(context, base, token, { cookie = false, closeOnEnd = true } = {}) {
  const page = await context.newPage();
  await page.goto(base + CLIENT_PATH);
  const url = cookie ? '/api/v1/stream' : `/api/v1/stream?access_token=${encodeURIComponent(token)}`;
  await page.evaluate(([u, c, e]) => window.follow(u, c, e), [url, cookie, closeOnEnd]);
  await page.waitForFunction(() => window.opens >= 1, null, { polling: 100 });
  return page;
}

// The events of `type` the page has seen so far.
export const seenOf = (page, type) =>
  page.evaluate((t) => window.seen.filter((e) => e.type === t), type);

// Waits until the page has seen an event of `type` (whose data contains
// `text`, if given), and returns it.
export async function waitSeen(page, type, text) {
  try {
    const handle = await page.waitForFunction(([t, x]) =>
      window.seen.find((e) => e.type === t && (x == null || (e.data || '').includes(x))), [type, text ?? null], { polling: 100 });
    return await handle.jsonValue();
  } catch (e) {
    const seen = await page.evaluate(() => window.seen.map((s) => s.type)).catch(() => '?');
    throw new Error(`never saw ${type}${text ? ` with ${text}` : ''} (saw ${JSON.stringify(seen)}): ${e.message.split('\n')[0]}`);
  }
}
