// sser dashboard: plain JavaScript, no build step, no dependencies.
//
// Live data comes over Server-Sent Events from GET /api/v1/metrics/stream,
// read with fetch() streaming rather than EventSource, because EventSource
// cannot send an Authorization header: the token would have to go in the URL,
// where browser history and proxies keep it. The token lives only in this
// tab's sessionStorage. All server text is inserted with textContent.
'use strict';

(() => {
  const TOKEN_KEY = 'sser.token';
  const THEME_KEY = 'sser.theme';
  const WINDOW_MS = 15 * 60 * 1000;
  const TAIL_MAX = 200;

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else if (k.startsWith('data-')) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c);
    return node;
  };

  // ---------- formatting ----------
  const nf = new Intl.NumberFormat();
  const fmtInt = (n) => (n == null ? '–' : nf.format(n));
  const fmtRate = (n) => {
    if (n == null) return '–';
    if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
    if (n >= 1e4) return (n / 1e3).toFixed(1) + 'k';
    if (n >= 100) return Math.round(n).toString();
    if (n >= 10) return (Math.round(n * 10) / 10).toString();
    return (Math.round(n * 100) / 100).toString();
  };
  const fmtBytes = (n) => {
    if (n == null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? Math.round(n) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  };
  const fmtDuration = (s) => {
    if (s == null) return '–';
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${sec}s`;
    return `${sec}s`;
  };
  const fmtSeconds = (s) => {
    if (s == null) return '–';
    if (s < 1e-3) return Math.round(s * 1e6) + ' µs';
    if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + ' ms';
    return s.toFixed(2) + ' s';
  };
  const fmtAgo = (iso) => {
    if (!iso) return 'never';
    const ms = Date.now() - Date.parse(iso);
    if (ms < 2000) return 'just now';
    return fmtDuration(ms / 1000) + ' ago';
  };
  const fmtClock = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  // ---------- theme ----------
  const themes = ['auto', 'light', 'dark'];
  function applyTheme(name) {
    if (name === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', name);
    $('theme-label').textContent = name;
    chart.draw();
  }
  $('theme-toggle').addEventListener('click', () => {
    const cur = localStorage.getItem(THEME_KEY) || 'auto';
    const next = themes[(themes.indexOf(cur) + 1) % themes.length];
    localStorage.setItem(THEME_KEY, next); // a preference, not a secret
    applyTheme(next);
  });
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => chart.draw());

  // ---------- API ----------
  let token = sessionStorage.getItem(TOKEN_KEY);
  let role = null;

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!res.ok) {
      const msg = json && json.error && json.error.message ? json.error.message : `HTTP ${res.status}`;
      throw new HttpError(res.status, msg);
    }
    return json;
  }

  // Reads an SSE response body and calls onEvent({event, data, id}) per event.
  // Resolves when the stream ends; rejects on network errors or a non-2xx.
  async function readSSE(path, signal, onOpen, onEvent) {
    const res = await fetch(path, {
      headers: { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' },
      cache: 'no-store', signal,
    });
    if (!res.ok) {
      let msg = `HTTP ${res.status}`;
      try { msg = (await res.json()).error.message; } catch { /* keep */ }
      throw new HttpError(res.status, msg);
    }
    onOpen(res);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = { event: '', data: [], id: null };
    let retry = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return retry;
      buf += value;
      let m;
      // Complete lines only; a trailing CR may be half of a CRLF.
      while ((m = /\r\n|\n|\r(?=[^\n])/.exec(buf))) {
        const line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (line === '') {
          if (ev.data.length) onEvent({ event: ev.event || 'message', data: ev.data.join('\n'), id: ev.id });
          ev = { event: '', data: [], id: null };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') ev.event = val;
        else if (field === 'data') ev.data.push(val);
        else if (field === 'id') ev.id = val;
        else if (field === 'retry' && /^\d+$/.test(val)) retry = Number(val);
      }
    }
  }

  // ---------- sign-in ----------
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const candidate = $('token').value.trim();
    if (!candidate) return;
    $('signin-button').disabled = true;
    $('signin-error').hidden = true;
    token = candidate;
    try {
      const who = await api('GET', '/api/v1/whoami');
      sessionStorage.setItem(TOKEN_KEY, token);
      $('token').value = '';
      enter(who.role);
    } catch (err) {
      token = null;
      $('signin-error').textContent = err.status === 401
        ? 'That token was not accepted. Use the metrics token or the API token.'
        : `Could not reach the server: ${err.message}`;
      $('signin-error').hidden = false;
    } finally {
      $('signin-button').disabled = false;
    }
  });

  $('sign-out').addEventListener('click', () => signOut());

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    token = null;
    role = null;
    stats.stop();
    tail.stop();
    $('app').hidden = true;
    $('signin').hidden = false;
    $('sign-out').hidden = true;
    $('role').hidden = true;
    $('tail-log').replaceChildren();
    connections.reset();
    $('created').hidden = true;
    setConn('idle', 'signed out');
    if (message) {
      $('signin-error').textContent = message;
      $('signin-error').hidden = false;
    }
    $('token').focus();
  }

  function enter(newRole) {
    role = newRole;
    const operator = role === 'operator';
    $('signin').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    $('role').hidden = false;
    $('role').textContent = operator ? 'operator' : 'read-only';
    $('role').title = operator ? 'Signed in with the API token' : 'Signed in with the metrics token';
    $('operator').hidden = !operator;
    document.querySelectorAll('[data-operator]').forEach((n) => { n.hidden = !operator; });
    renderCounters();
    chart.resize();
    stats.start();
  }

  // ---------- connection state ----------
  function setConn(state, text) {
    const pill = $('conn-state');
    pill.dataset.state = state;
    pill.textContent = text;
    const down = state === 'disconnected';
    $('disconnected').hidden = !down;
    $('app').classList.toggle('stale', down);
  }

  // ---------- live stats stream, with reconnect ----------
  const stats = (() => {
    let ctrl = null;
    let timer = null;
    let attempt = 0;
    let countdown = null;

    function stop() {
      if (ctrl) ctrl.abort();
      ctrl = null;
      clearTimeout(timer);
      clearInterval(countdown);
    }

    async function start() {
      stop();
      if (!token) return;
      const my = new AbortController();
      ctrl = my;
      setConn('connecting', attempt ? 'reconnecting…' : 'connecting…');
      let retryHint = null;
      try {
        retryHint = await readSSE('/api/v1/metrics/stream', my.signal, () => {
          attempt = 0;
          setConn('live', 'live');
        }, onStatsEvent);
        if (my.signal.aborted) return;
        lost('The server ended the stream.', retryHint);
      } catch (err) {
        if (my.signal.aborted) return;
        if (err.status === 401) return signOut('The server no longer accepts this token. Sign in again.');
        lost(err.status ? `The server answered ${err.status}: ${err.message}` : 'The connection to the server was lost.', retryHint);
      }
    }

    function lost(why, retryHint) {
      attempt++;
      const base = retryHint || 1000;
      const delay = Math.min(base * 2 ** Math.min(attempt - 1, 4), 15000) + Math.random() * 250;
      let left = Math.ceil(delay / 1000);
      setConn('disconnected', 'disconnected');
      const say = () => { $('disconnected-text').textContent = `Disconnected. ${why} Reconnecting in ${left}s…`; };
      say();
      clearInterval(countdown);
      countdown = setInterval(() => { left = Math.max(0, left - 1); say(); }, 1000);
      clearTimeout(timer);
      timer = setTimeout(() => { clearInterval(countdown); start(); }, delay);
    }

    return { start, stop };
  })();
  $('reconnect-now').addEventListener('click', () => stats.start());
  // Come back at once when the laptop wakes or the network returns.
  window.addEventListener('online', () => { if (token && $('conn-state').dataset.state === 'disconnected') stats.start(); });

  function onStatsEvent(ev) {
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    if (ev.event === 'history') chart.setHistory(data.points || []);
    else if (ev.event === 'stats') onStats(data);
    else if (ev.event === 'topics') topics.update(data);
  }

  // ---------- counters ----------
  // [key, label, css class, how to read it from a stats event, format, sub-line]
  const metric = (name) => (s) => {
    const m = (s.metrics || []).find((x) => x.name === name);
    return m ? m.value : null;
  };
  const COUNTERS = [
    ['topics', 'Topics', 'sser', metric('topics'), fmtInt],
    ['static_topics', 'Static topics', 'sser', metric('static_topics'), fmtInt],
    ['active_topics', 'Active topics', 'sser', metric('active_topics'), fmtInt],
    ['subscribers', 'Subscribers (total)', 'sser', metric('subscribers'), fmtInt],
    ['active_subscribers', 'Active subscribers', 'sser', metric('active_subscribers'), fmtInt],
    ['message_received', 'Messages received', 'sser', metric('message_received'), fmtInt],
    ['message_sent', 'Messages sent', 'sser', metric('message_sent'), fmtInt],
    ['connections', 'Connections now', '', (s) => s.connections, fmtInt,
      (s) => (s.dashboards === 1 ? '1 dashboard watching' : `${fmtInt(s.dashboards)} dashboards watching`)],
    ['events_in', 'Events in /s', 'rate-in', (s) => s.rates && s.rates.events_in, fmtRate],
    ['events_out', 'Events out /s', 'rate-out', (s) => s.rates && s.rates.events_out, fmtRate],
    ['bytes_out', 'Bytes out /s', 'rate-bytes', (s) => s.rates && s.rates.bytes_out, (n) => fmtBytes(n) + '/s',
      (s) => fmtBytes(metric('bytes_sent')(s)) + ' total'],
    ['lagged_subscribers', 'Fell behind', 'lagged', metric('lagged_subscribers'), fmtInt,
      () => 'subscribers, since start'],
    ['publish_latency', 'Publish latency p99', '', (s) => s.publish_latency && s.publish_latency.p99_seconds, fmtSeconds,
      (s) => 'p50 ' + fmtSeconds(s.publish_latency && s.publish_latency.p50_seconds)],
    ['memory', 'Memory (RSS)', '', (s) => s.memory_rss_bytes, fmtBytes],
    ['uptime', 'Uptime', '', (s) => s.uptime_seconds, fmtDuration],
    ['version', 'Version', '', (s) => s.version, (v) => v || '–'],
  ];

  function renderCounters() {
    const box = $('counters');
    if (box.childElementCount) return;
    for (const [key, label, cls] of COUNTERS) {
      box.append(el('div', { class: `counter ${cls}`, 'data-metric': key },
        el('div', { class: 'name', text: label, title: label }),
        el('div', { class: 'value', text: '–' }),
        el('div', { class: 'sub', text: '\u00a0' })));
    }
  }

  function onStats(s) {
    $('version').textContent = s.version ? 'v' + s.version : '';
    for (const [key, , , read, fmt, sub] of COUNTERS) {
      const card = document.querySelector(`.counter[data-metric="${key}"]`);
      if (!card) continue;
      const raw = read(s);
      const text = fmt(raw);
      const v = card.querySelector('.value');
      if (v.textContent !== text) {
        v.textContent = text;
        card.dataset.value = raw == null ? '' : String(raw);
        card.classList.remove('flash');
        void card.offsetWidth; // restart the animation
        card.classList.add('flash');
      }
      if (sub) card.querySelector('.sub').textContent = sub(s);
      if (key === 'lagged_subscribers') card.classList.toggle('bad', raw > 0);
    }
    if (s.rates) chart.push([s.t, s.rates.events_in, s.rates.events_out, s.rates.bytes_out, s.connections]);
    connections.onStats(s);
  }

  // ---------- chart (canvas, no library) ----------
  const chart = (() => {
    const canvas = $('chart');
    const tip = $('chart-tip');
    let points = []; // [t, in, out, bytes, conns]
    let mode = 'events';
    let hoverX = null;
    const SERIES = {
      events: [[1, 'Events in /s', '--in'], [2, 'Events out /s', '--out']],
      bytes: [[3, 'Bytes out /s', '--bytes']],
      connections: [[4, 'Connections', '--conns']],
    };
    const css = (v) => getComputedStyle(document.documentElement).getPropertyValue(v).trim();

    function legend() {
      $('legend').replaceChildren(...SERIES[mode].map(([, label, color]) => {
        const s = el('span', { text: label });
        s.style.setProperty('--c', `var(${color})`);
        return s;
      }));
    }
    function trim() {
      const cutoff = Date.now() - WINDOW_MS;
      while (points.length && points[0][0] < cutoff) points.shift();
    }
    function niceMax(v) {
      if (v <= 0) return 1;
      const p = 10 ** Math.floor(Math.log10(v));
      for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
      return 10 * p;
    }
    function resize() {
      const r = canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.max(1, Math.round(r.width * dpr));
      canvas.height = Math.max(1, Math.round(r.height * dpr));
      draw();
    }
    function geometry() {
      const dpr = window.devicePixelRatio || 1;
      const w = canvas.width / dpr, h = canvas.height / dpr;
      return { dpr, w, h, left: 52, right: w - 10, top: 8, bottom: h - 22 };
    }
    function draw() {
      if (!canvas.width || $('app').hidden) return;
      trim();
      const ctx = canvas.getContext('2d');
      const g = geometry();
      ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
      ctx.clearRect(0, 0, g.w, g.h);
      const now = Date.now();
      const t0 = now - WINDOW_MS;
      const series = SERIES[mode];
      let max = 0;
      for (const p of points) for (const [i] of series) max = Math.max(max, p[i] || 0);
      max = niceMax(max * 1.1);
      const x = (t) => g.left + ((t - t0) / WINDOW_MS) * (g.right - g.left);
      const y = (v) => g.bottom - (v / max) * (g.bottom - g.top);
      const fmt = mode === 'bytes' ? fmtBytes : fmtRate;

      ctx.font = '11px system-ui, sans-serif';
      ctx.lineWidth = 1;
      ctx.strokeStyle = css('--grid');
      ctx.fillStyle = css('--muted');
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      for (let i = 0; i <= 4; i++) {
        const v = (max / 4) * i;
        const yy = Math.round(y(v)) + 0.5;
        ctx.beginPath(); ctx.moveTo(g.left, yy); ctx.lineTo(g.right, yy); ctx.stroke();
        ctx.fillText(fmt(v), g.left - 6, yy);
      }
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      for (let m = 15; m >= 0; m -= 5) {
        const xx = x(now - m * 60000);
        ctx.fillText(m === 0 ? 'now' : `−${m} min`, Math.min(Math.max(xx, g.left + 16), g.right - 14), g.bottom + 6);
      }
      for (const [i, , color] of series) {
        ctx.strokeStyle = css(color);
        ctx.lineWidth = 1.75;
        ctx.lineJoin = 'round';
        ctx.beginPath();
        let started = false, prevT = 0;
        for (const p of points) {
          // A gap of more than 5 s (server down, tab asleep) breaks the line.
          if (started && p[0] - prevT > 5000) started = false;
          const xx = x(p[0]), yy = y(p[i] || 0);
          if (started) ctx.lineTo(xx, yy); else ctx.moveTo(xx, yy);
          started = true;
          prevT = p[0];
        }
        ctx.stroke();
        // soft fill under the first series
        if (i === series[0][0] && points.length > 1) {
          ctx.globalAlpha = 0.08;
          ctx.lineTo(x(points[points.length - 1][0]), g.bottom);
          ctx.lineTo(x(points[0][0]), g.bottom);
          ctx.fillStyle = css(color);
          ctx.fill();
          ctx.globalAlpha = 1;
        }
      }
      if (!points.length) {
        ctx.fillStyle = css('--muted');
        ctx.textAlign = 'center';
        ctx.textBaseline = 'middle';
        ctx.fillText('waiting for data…', (g.left + g.right) / 2, (g.top + g.bottom) / 2);
      }
      // hover
      if (hoverX != null && points.length) {
        const t = t0 + ((hoverX - g.left) / (g.right - g.left)) * WINDOW_MS;
        let best = points[0];
        for (const p of points) if (Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
        const xx = Math.round(x(best[0])) + 0.5;
        ctx.strokeStyle = css('--muted');
        ctx.lineWidth = 1;
        ctx.setLineDash([3, 3]);
        ctx.beginPath(); ctx.moveTo(xx, g.top); ctx.lineTo(xx, g.bottom); ctx.stroke();
        ctx.setLineDash([]);
        tip.replaceChildren(el('div', { class: 'muted', text: fmtClock(best[0]) }),
          ...series.map(([i, label]) => el('div', { text: `${label}: ${fmt(best[i] || 0)}` })));
        tip.hidden = false;
        const left = xx + 12 + 160 > g.w ? xx - 172 : xx + 12;
        tip.style.left = `${Math.max(0, left)}px`;
      } else {
        tip.hidden = true;
      }
    }
    canvas.addEventListener('pointermove', (e) => {
      const r = canvas.getBoundingClientRect();
      hoverX = e.clientX - r.left;
      draw();
    });
    canvas.addEventListener('pointerleave', () => { hoverX = null; draw(); });
    document.querySelectorAll('.seg button').forEach((b) => b.addEventListener('click', () => {
      mode = b.dataset.series;
      document.querySelectorAll('.seg button').forEach((o) => o.setAttribute('aria-pressed', String(o === b)));
      legend();
      draw();
    }));
    new ResizeObserver(() => resize()).observe(canvas);
    legend();
    return {
      setHistory(ps) { points = ps.slice(); draw(); },
      push(p) {
        if (points.length && p[0] <= points[points.length - 1][0]) return;
        points.push(p);
        draw();
      },
      draw,
      resize,
    };
  })();

  // ---------- topic table ----------
  const topics = (() => {
    let rows = [];
    let total = 0;
    let sortKey = 'last_publish_at';
    let sortDir = -1;
    const lastSeen = new Map(); // id -> events_published, to flash rows that moved

    const kindOf = (t) => (t.static ? 'static' : t.persist ? 'persistent' : 'memory');
    const keyOf = (t, key) => {
      switch (key) {
        case 'kind': return kindOf(t);
        case 'last_publish_at': return t.last_publish_at ? Date.parse(t.last_publish_at) : 0;
        case 'id': return (t.name || '') + ' ' + t.id;
        default: return t[key] == null ? 0 : t[key];
      }
    };

    function update(data) {
      rows = data.pubsubs || [];
      total = data.total == null ? rows.length : data.total;
      render();
    }

    function render() {
      const q = $('topic-filter').value.trim().toLowerCase();
      const shown = rows.filter((t) => !q || t.id.toLowerCase().includes(q)
        || (t.name || '').toLowerCase().includes(q) || kindOf(t).includes(q));
      shown.sort((a, b) => {
        const x = keyOf(a, sortKey), y = keyOf(b, sortKey);
        return (x < y ? -1 : x > y ? 1 : 0) * sortDir || (a.id < b.id ? -1 : 1);
      });
      const operator = role === 'operator';
      const body = $('topic-rows');
      const frag = document.createDocumentFragment();
      for (const t of shown) {
        const tr = el('tr', { 'data-topic': t.id });
        const idCell = el('td', { class: 'id', 'data-label': 'Topic' }, el('code', { text: t.id }));
        if (t.name) idCell.append(el('span', { class: 'tname', text: t.name }));
        const kind = kindOf(t);
        tr.append(
          idCell,
          el('td', { 'data-label': 'Kind' }, el('span', { class: `tag ${kind === 'persistent' ? 'persist' : kind}`, text: kind })),
          el('td', { class: 'num', 'data-label': 'Subscribers', text: fmtInt(t.subscribers) }),
          el('td', { class: 'num events', 'data-label': 'Events', text: fmtInt(t.events_published) }),
          el('td', { 'data-label': 'Last publish', text: fmtAgo(t.last_publish_at), title: t.last_publish_at || '' }),
          el('td', { class: 'num', 'data-label': 'History', text: `${fmtInt(t.history_events)} · ${fmtBytes(t.history_bytes)}` }),
        );
        if (operator) {
          const actions = el('td', { class: 'actions' },
            el('button', { type: 'button', class: 'small', text: 'Tail', 'data-action': 'tail' }),
            el('button', { type: 'button', class: 'small', text: 'Publish', 'data-action': 'publish' }));
          if (!t.static) actions.append(el('button', { type: 'button', class: 'small danger', text: 'Delete', 'data-action': 'delete' }));
          tr.append(actions);
        }
        const before = lastSeen.get(t.id);
        if (before != null && before !== t.events_published) tr.classList.add('fresh');
        lastSeen.set(t.id, t.events_published);
        frag.append(tr);
      }
      body.replaceChildren(frag);
      $('topics-empty').hidden = shown.length > 0;
      $('topics-empty').textContent = rows.length ? 'No topics match the filter.' : 'No topics yet.';
      $('topic-count').textContent = total > rows.length
        ? `(${fmtInt(shown.length)} shown of the ${fmtInt(rows.length)} most active; ${fmtInt(total)} in all)`
        : `(${fmtInt(shown.length)}${shown.length !== total ? ' of ' + fmtInt(total) : ''})`;
      $('topic-ids').replaceChildren(...rows.slice(0, 200).map((t) => el('option', { value: t.id })));
      document.querySelectorAll('#topics th[data-key]').forEach((th) => {
        th.setAttribute('aria-sort', th.dataset.key === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
      });
    }

    document.querySelectorAll('#topics th[data-key] button').forEach((b) => b.addEventListener('click', () => {
      const key = b.parentElement.dataset.key;
      if (key === sortKey) sortDir = -sortDir;
      else { sortKey = key; sortDir = key === 'id' || key === 'kind' ? 1 : -1; }
      render();
    }));
    $('topic-filter').addEventListener('input', render);
    $('topic-rows').addEventListener('click', async (e) => {
      const b = e.target.closest('button[data-action]');
      if (!b) return;
      const id = b.closest('tr').dataset.topic;
      if (b.dataset.action === 'tail') { $('tail-topic').value = id; tail.start(id); $('tail-topic').scrollIntoView({ block: 'nearest' }); }
      if (b.dataset.action === 'publish') { $('publish-topic').value = id; $('publish-message').focus(); }
      if (b.dataset.action === 'delete') {
        if (!confirm(`Delete topic ${id}? Its subscribers are disconnected and its history is dropped.`)) return;
        try {
          await api('DELETE', `/api/v1/pubsubs/${encodeURIComponent(id)}`);
          toast(`Deleted ${id}.`);
          refresh();
        } catch (err) { toast(`Delete failed: ${err.message}`, true); }
      }
    });
    // Relative times ("3s ago") keep moving between updates.
    setInterval(() => { if (rows.length && !$('app').hidden) render(); }, 5000);
    return { update };
  })();

  async function refresh() {
    try { topics.update(await api('GET', '/api/v1/pubsubs')); } catch { /* the stream will catch up */ }
  }

  // ---------- connections: who is connected, presence counts, kick ----------
  // The list comes from GET /api/v1/connections, a page at a time (the
  // server pages by cursor: the last id seen). The first page reloads by
  // itself when the stats stream's connection counts move, and every 10 s;
  // later pages only on demand, so the page being read does not shift.
  // Whether identity tokens are on comes from the stats stream too
  // (`identity` is null when they are off).
  const connections = (() => {
    const PRESENCE = [
      ['users_online', 'Users online', (s) => s.identity && s.identity.users_online],
      ['devices_online', 'Devices online', (s) => s.identity && s.identity.devices_online],
      ['identity_connections', 'Identity connections', (s) => s.streams && s.streams.identity],
      ['topic_connections', 'Topic connections', (s) => s.streams && s.streams.topic],
    ];
    const KICK_REASON = 'kicked from the dashboard';
    let identityOn = null; // unknown until the first stats event
    let cursors = [null]; // the cursor of every page up to the one shown
    let nextCursor = null;
    let filter = {};
    let rows = [];
    let countsKey = null;
    let lastLoad = 0;
    let loading = false;
    let again = false;
    let resultTimer = null;

    function renderPresence() {
      const box = $('presence-counters');
      if (box.childElementCount) return;
      for (const [key, label] of PRESENCE) {
        box.append(el('div', { class: 'counter', 'data-presence': key },
          el('div', { class: 'name', text: label, title: label }),
          el('div', { class: 'value', text: '–' })));
      }
    }

    function onStats(s) {
      renderPresence();
      const on = s.identity != null;
      for (const [key, , read] of PRESENCE) {
        const card = document.querySelector(`.counter[data-presence="${key}"]`);
        const raw = key === 'topic_connections' || on ? read(s) : null;
        card.querySelector('.value').textContent = fmtInt(raw);
        card.dataset.value = raw == null ? '' : String(raw);
      }
      if (on !== identityOn) {
        identityOn = on;
        $('identity-off').hidden = on;
        $('conn-view').hidden = !on;
        $('conn-filter').hidden = !on;
        $('conn-result').hidden = true;
        if (!on) { rows = []; render(); $('conn-count').textContent = ''; }
      }
      if (!on) return;
      const key = s.streams ? `${s.streams.topic}/${s.streams.identity}` : '';
      const moved = key !== countsKey;
      countsKey = key;
      if (cursors.length === 1 && (moved || Date.now() - lastLoad > 10000)) load();
    }

    async function load() {
      if (loading) { again = true; return; }
      loading = true;
      lastLoad = Date.now();
      try {
        const q = new URLSearchParams({ limit: $('conn-limit').value });
        for (const k of ['app', 'user', 'device']) if (filter[k]) q.set(k, filter[k]);
        const cursor = cursors[cursors.length - 1];
        if (cursor) q.set('cursor', cursor);
        const page = await api('GET', `/api/v1/connections?${q}`);
        rows = page.connections || [];
        nextCursor = page.next_cursor || null;
        render();
        // A listing error is over once a listing works.
        if ($('conn-result').classList.contains('err')) $('conn-result').hidden = true;
      } catch (err) {
        if (err.status === 401) return signOut('The server no longer accepts this token. Sign in again.');
        result(`Could not list connections: ${err.message}`, true);
      } finally {
        loading = false;
        if (again) { again = false; load(); }
      }
    }

    const dash = '—';
    function render() {
      const operator = role === 'operator';
      const frag = document.createDocumentFragment();
      for (const c of rows) {
        const tr = el('tr', { 'data-conn': c.id });
        const app = el('td', { 'data-label': 'App' });
        if (c.app == null) app.append(el('span', { class: 'tag', text: 'topic', title: 'Opened with a topic token: no application, user or device' }));
        else app.append(el('code', { text: c.app }));
        const streams = (c.streams || []).join(' ');
        tr.append(
          el('td', { class: 'id', 'data-label': 'Connection' }, el('code', { text: c.id })),
          app,
          el('td', { 'data-label': 'User' }, c.user == null ? dash : el('code', { text: c.user })),
          el('td', { 'data-label': 'Device' }, c.device == null ? dash : el('code', { text: c.device })),
          el('td', { 'data-label': 'Address', text: c.remote_addr || dash }),
          el('td', { 'data-label': 'Connected', text: fmtAgo(c.connected_at), title: c.connected_at || '' }),
          el('td', { class: 'streams', 'data-label': 'Streams', text: streams || dash, title: streams }),
          el('td', { class: 'last-id', 'data-label': 'Last event id', text: c.last_event_id || dash, title: c.last_event_id || '' }),
        );
        if (operator) {
          tr.append(el('td', { class: 'actions' },
            el('button', { type: 'button', class: 'small danger', text: 'Kick', 'data-action': 'kick', title: 'End this connection: its stream gets sser.kicked' })));
        }
        frag.append(tr);
      }
      $('conn-rows').replaceChildren(frag);
      const filtered = Object.values(filter).some(Boolean);
      $('conns-empty').hidden = rows.length > 0;
      $('conns-empty').textContent = cursors.length > 1 ? 'No more connections.'
        : filtered ? 'No connection matches the filter.' : 'No connections.';
      $('conn-page').textContent = `page ${cursors.length}`;
      $('conn-prev').disabled = cursors.length === 1;
      $('conn-next').disabled = !nextCursor;
      $('conn-count').textContent = rows.length ? `(${fmtInt(rows.length)} shown${nextCursor || cursors.length > 1 ? ', more on other pages' : ''})` : '';
    }

    function result(text, isError = false) {
      const r = $('conn-result');
      r.textContent = text;
      r.classList.toggle('err', isError);
      r.hidden = false;
      clearTimeout(resultTimer);
      resultTimer = setTimeout(() => { r.hidden = true; }, 8000);
    }

    function firstPage() { cursors = [null]; nextCursor = null; load(); }

    $('conn-filter').addEventListener('submit', (e) => {
      e.preventDefault();
      filter = { app: $('conn-app').value.trim(), user: $('conn-user').value.trim(), device: $('conn-device').value.trim() };
      firstPage();
    });
    $('conn-filter-clear').addEventListener('click', () => {
      for (const k of ['conn-app', 'conn-user', 'conn-device']) $(k).value = '';
      filter = {};
      firstPage();
    });
    $('conn-limit').addEventListener('change', firstPage);
    $('conn-refresh').addEventListener('click', load);
    $('conn-next').addEventListener('click', () => { if (nextCursor) { cursors.push(nextCursor); load(); } });
    $('conn-prev').addEventListener('click', () => { if (cursors.length > 1) { cursors.pop(); load(); } });
    $('conn-rows').addEventListener('click', async (e) => {
      const b = e.target.closest('button[data-action="kick"]');
      if (!b) return;
      const id = b.closest('tr').dataset.conn;
      const c = rows.find((r) => r.id === id);
      const who = c && c.app != null ? ` (${[c.app, c.user, c.device].filter((x) => x != null).join(' / ')})` : '';
      if (!confirm(`Kick connection ${id}${who}? Its stream gets sser.kicked and ends; the client may reconnect.`)) return;
      b.disabled = true;
      try {
        const res = await api('DELETE', `/api/v1/connections/${encodeURIComponent(id)}?reason=${encodeURIComponent(KICK_REASON)}`);
        result(`Kicked ${id}${who}: ${res.ended === 1 ? 'its stream got sser.kicked and ended' : `${res.ended} ended`}.`);
      } catch (err) {
        if (err.status === 404) result(`Connection ${id} was already gone.`);
        else { result(`Kick failed: ${err.message}`, true); b.disabled = false; return; }
      }
      load();
    });
    // "3s ago" keeps moving between loads.
    setInterval(() => { if (rows.length && !$('app').hidden) render(); }, 5000);

    function reset() {
      identityOn = null;
      countsKey = null;
      cursors = [null];
      nextCursor = null;
      rows = [];
      $('conn-rows').replaceChildren();
      $('conn-result').hidden = true;
      $('identity-off').hidden = true;
      $('conn-view').hidden = true;
    }
    return { onStats, reset };
  })();

  // ---------- operator actions ----------
  let toastTimer = null;
  function toast(text, isError = false) {
    const t = $('toast');
    t.textContent = text;
    t.classList.toggle('err', isError);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const res = await api('POST', '/api/v1/pubsubs', { pubsub: { persist: $('create-persist').checked } });
      $('created-id').textContent = res.pubsub.id;
      $('created-token').textContent = res.pubsub.token;
      $('created').hidden = false;
      $('publish-topic').value = res.pubsub.id;
      $('tail-topic').value = res.pubsub.id;
      toast(`Created ${res.pubsub.id}.`);
      refresh();
    } catch (err) { toast(`Create failed: ${err.message}`, true); }
  });
  $('copy-token').addEventListener('click', async () => {
    try { await navigator.clipboard.writeText($('created-token').textContent); toast('Token copied.'); } catch { toast('Copy failed: select the token and copy it.', true); }
  });

  $('publish-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = $('publish-topic').value.trim();
    const event = { message: $('publish-message').value };
    const type = $('publish-type').value.trim();
    if (type) event.type = type;
    try {
      const res = await api('POST', `/api/v1/pubsubs/${encodeURIComponent(id)}/events`, { event });
      toast(`Published event ${res.event.id} to ${id}.`);
    } catch (err) { toast(`Publish failed: ${err.message}`, true); }
  });

  // ---------- tail ----------
  const tail = (() => {
    let ctrl = null;
    let current = null;
    const log = $('tail-log');

    function line(cls, meta, etype, text) {
      const li = el('li', { class: cls });
      li.append(el('span', { class: 'meta', text: meta }));
      if (etype) li.append(el('span', { class: 'etype', text: etype }));
      li.append(document.createTextNode(text));
      log.append(li);
      while (log.childElementCount > TAIL_MAX) log.firstElementChild.remove();
      log.scrollTop = log.scrollHeight;
    }
    function state(text) { $('tail-state').textContent = text; }

    function stop(quiet) {
      if (ctrl) ctrl.abort();
      ctrl = null;
      $('tail-stop').disabled = true;
      $('tail-start').disabled = false;
      if (!quiet && current) state(`Stopped tailing ${current}.`);
      current = null;
    }

    async function start(id) {
      stop(true);
      const my = new AbortController();
      ctrl = my;
      current = id;
      $('tail-stop').disabled = false;
      state(`Connecting to ${id}…`);
      try {
        await readSSE(`/api/v1/pubsubs/${encodeURIComponent(id)}/events`, my.signal,
          () => state(`Tailing ${id}: live events appear below.`),
          (ev) => {
            const time = fmtClock(Date.now());
            if (ev.event.startsWith('sser.')) line('notice', time, ev.event, ev.data);
            else if (!ev.id && ev.data === '{"status": "closed"}') line('notice', time, 'closed', 'The topic was deleted.');
            else line('', `${time} #${ev.id ?? ''}`, ev.event === 'message' ? '' : ev.event, ev.data);
          });
        if (!my.signal.aborted) { state(`The stream of ${id} ended.`); stop(true); }
      } catch (err) {
        if (my.signal.aborted) return;
        state(`Tail of ${id} failed: ${err.message}`);
        stop(true);
      }
    }
    return { start, stop };
  })();
  $('tail-form').addEventListener('submit', (e) => { e.preventDefault(); tail.start($('tail-topic').value.trim()); });
  $('tail-stop').addEventListener('click', () => tail.stop());
  $('tail-clear').addEventListener('click', () => $('tail-log').replaceChildren());

  // ---------- boot ----------
  applyTheme(localStorage.getItem(THEME_KEY) || 'auto');
  if (token) {
    const saved = token;
    api('GET', '/api/v1/whoami').then((who) => enter(who.role)).catch((err) => {
      if (err.status === 401) return signOut('The saved token is no longer accepted. Sign in again.');
      // Server unreachable: keep the token for a reload, but show the form.
      signOut(`Could not reach the server (${err.message}). Reload to try again, or sign in.`);
      sessionStorage.setItem(TOKEN_KEY, saved);
    });
  } else {
    signOut();
  }
})();
