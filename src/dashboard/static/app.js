// raftkv dashboard: polls the node's JSON endpoints and redraws. No
// libraries; the chart is drawn by hand on a canvas.
'use strict';

const POLL_MS = 500;        // at least one update a second, even with a slow poll
const WINDOW_MS = 120000;   // chart history
const LAG_FULL = 100000;    // a lag bar is full at this many entries (log scale)

const samples = [];         // {t, rate, mean, p99}
let prevCommit = null;      // {t, index}
const prevLatency = new Map(); // node -> commit latency histogram
let busy = false;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// A node with TLS wants a token (read-only is enough). The page takes it
// from the URL's fragment (#token=...), which the browser never sends to
// a server, or from the form shown on a 401; it keeps it in
// sessionStorage (gone when the tab closes) and removes it from the
// address bar, so that it is neither bookmarked nor shared by copying the
// URL.
const TOKEN_KEY = 'raftkv-token';
(function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
})();

class AuthError extends Error {}

async function getJSON(path) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 2000);
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  try {
    const r = await fetch(path, { signal: ctl.signal, cache: 'no-store', headers });
    if (r.status === 401 || r.status === 403) {
      let msg = 'HTTP ' + r.status;
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new AuthError(msg);
    }
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

function showLogin(msg) {
  $('login').hidden = false;
  $('login-msg').textContent = msg;
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const v = $('token-input').value.trim();
  $('token-input').value = '';
  if (v) sessionStorage.setItem(TOKEN_KEY, v);
  $('login').hidden = true;
  poll();
});

// The security the serving node runs with (/v1/status).
function renderSecurity(self) {
  const s = $('security');
  const secure = self.peer_tls && self.client_tls && self.tokens;
  s.className = 'conn ' + (secure ? 'ok' : 'bad');
  s.dataset.secure = secure ? 'true' : 'false';
  s.textContent = secure ? 'TLS + tokens' : 'INSECURE (plaintext, no tokens)';
}

async function poll() {
  if (busy) return;
  busy = true;
  try {
    const [cluster, self, summary] = await Promise.all([
      getJSON('/v1/cluster'),
      getJSON('/v1/status'),
      getJSON('/v1/metrics-summary?scope=cluster').catch(() => null),
    ]);
    render(cluster.nodes || [], self, summary ? summary.nodes || [] : []);
    renderSecurity(self);
    setConn(true, 'live · ' + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof AuthError) {
      setConn(false, 'token needed: ' + e.message);
      showLogin(e.message);
    } else {
      setConn(false, 'node not answering: ' + e.message);
    }
  } finally {
    busy = false;
  }
}

function setConn(ok, text) {
  const c = $('conn');
  c.className = 'conn ' + (ok ? 'ok' : 'bad');
  c.textContent = text;
}

const reachable = (n) => n.reachable !== false && !n.error;

// The leader is the reachable node that says it leads in the highest term;
// failing that, whom the serving node believes leads.
function findLeader(nodes, self) {
  let best = null;
  for (const n of nodes) {
    if (reachable(n) && n.role === 'leader' && (!best || n.term > best.term)) best = n;
  }
  if (best) return best;
  return nodes.find((n) => n.name === self.leader && reachable(n)) || null;
}

function render(nodes, self, summaries) {
  const leader = findLeader(nodes, self);
  const ln = $('leader-name');
  ln.textContent = leader ? leader.name : 'none';
  ln.dataset.leader = leader ? leader.name : '';
  $('term').textContent = leader ? leader.term : Math.max(0, ...nodes.filter(reachable).map((n) => n.term));
  $('self-name').textContent = self.name;
  renderNodes(nodes, leader, self);
  renderLags(nodes, leader, summaries);
  addSample(nodes, summaries);
  drawChart();
}

function renderNodes(nodes, leader, self) {
  const box = $('nodes');
  box.replaceChildren(...nodes.map((n) => {
    const up = reachable(n);
    const isLeader = leader && n.name === leader.name;
    const card = el('div', {
      class: 'node' + (isLeader ? ' leader' : '') + (up ? '' : ' down'),
      'data-node': n.name, 'data-role': up ? n.role : 'unreachable',
    });
    const top = el('div', { class: 'top' }, el('span', { class: 'name' }, n.name));
    if (up) top.append(el('span', { class: 'badge ' + n.role }, n.role));
    else top.append(el('span', { class: 'badge down' }, 'unreachable'));
    if (n.name === self.name) top.append(el('span', { class: 'badge self' }, 'this page'));
    card.append(top);
    if (up) {
      const rows = [
        ['term', n.term], ['leader', n.leader || '–'], ['commit index', n.commit_index],
        ['applied index', n.applied_index], ['last log index', n.last_log_index], ['snapshot index', n.snapshot_index],
        ['member', n.suffrage || 'not yet'], ['incarnation', n.incarnation || '–'],
      ];
      card.append(el('table', {}, ...rows.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v)))));
    } else {
      card.append(el('div', { class: 'err' }, n.error || 'no answer'));
    }
    return card;
  }));
}

function renderLags(nodes, leader, summaries) {
  const box = $('lags');
  if (!leader) {
    box.replaceChildren(el('div', { class: 'muted' }, 'no leader: nothing to lag behind'));
    return;
  }
  const fromLeader = (summaries.find((s) => s.node === leader.name) || {}).follower_lag || null;
  const rows = nodes.filter((n) => n.name !== leader.name).map((n) => {
    const up = reachable(n);
    let lag = null;
    let how = '';
    if (fromLeader && n.name in fromLeader) {
      lag = fromLeader[n.name];
    } else if (up) {
      lag = Math.max(0, leader.last_log_index - n.last_log_index);
      how = ' (from status)';
    }
    const cls = 'lag' + (!up ? ' down' : lag > 1000 ? ' far' : lag > 10 ? ' behind' : '');
    const label = (lag === null ? '?' : lag + (lag === 1 ? ' entry' : ' entries')) + how + (up ? '' : ' · unreachable');
    return el('div', { class: cls, 'data-follower': n.name, 'data-lag': lag === null ? '' : lag },
      el('span', { class: 'name' }, n.name),
      el('div', { class: 'bar' }, el('div', { class: 'fill', style: '' })),
      el('span', { class: 'num' }, label));
  });
  box.replaceChildren(...rows);
  // Set widths after insertion so the CSS transition runs.
  rows.forEach((r) => {
    const n = r.getAttribute('data-lag');
    const lag = n === '' ? 0 : Number(n);
    r.querySelector('.fill').style.width = (lag ? Math.min(100, 100 * Math.log10(lag + 1) / Math.log10(LAG_FULL + 1)) : 0) + '%';
  });
}

// addSample turns cumulative values into one point of the chart: commits
// per second from the highest commit index any node reports (it only
// grows, whoever leads), and commit latency from the differences of every
// node's latency histogram (only a leader proposes, so after a failover
// the old leader's histogram simply stops moving).
function addSample(nodes, summaries) {
  const now = performance.now();
  const commit = Math.max(0, ...nodes.filter(reachable).map((n) => n.commit_index || 0));
  let rate = null;
  if (prevCommit && now > prevCommit.t) {
    rate = Math.max(0, commit - prevCommit.index) / ((now - prevCommit.t) / 1000);
  }
  prevCommit = { t: now, index: commit };

  let count = 0, sum = 0, bounds = null, buckets = null;
  for (const s of summaries) {
    const h = s.commit_latency_seconds;
    if (s.reachable === false || !h) continue;
    const prev = prevLatency.get(s.node);
    prevLatency.set(s.node, h);
    if (!prev || h.count < prev.count) continue; // first sight or a restart
    count += h.count - prev.count;
    sum += h.sum - prev.sum;
    if (h.upper_bounds) {
      bounds = h.upper_bounds;
      buckets = buckets || new Array(h.buckets.length).fill(0);
      h.buckets.forEach((b, i) => { buckets[i] += b - (prev.buckets[i] || 0); });
    }
  }
  let mean = null, p99 = null;
  if (count > 0) {
    mean = (sum / count) * 1000;
    const want = 0.99 * count;
    const i = buckets.findIndex((b) => b >= want);
    p99 = i >= 0 ? bounds[i] * 1000 : bounds[bounds.length - 1] * 1000;
    p99 = Math.max(p99, mean); // bucket bounds are coarse; never below the mean
  }
  if (rate !== null) samples.push({ t: now, rate, mean, p99 });
  while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
  const last = samples[samples.length - 1];
  if (last) {
    $('now-values').textContent = 'now: ' + last.rate.toFixed(0) + ' commits/s' +
      (last.mean !== null ? ' · mean ' + last.mean.toFixed(2) + ' ms · p99 ≤ ' + last.p99.toFixed(2) + ' ms' : ' · no commits');
  }
}

// niceMax rounds an axis maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + 'k';
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v.toFixed(v >= 1 ? 1 : 2);
}

function drawChart() {
  const c = $('chart');
  const dpr = window.devicePixelRatio || 1;
  const cssW = c.clientWidth || 900, cssH = c.clientHeight || 260;
  if (c.width !== Math.round(cssW * dpr) || c.height !== Math.round(cssH * dpr)) {
    c.width = Math.round(cssW * dpr);
    c.height = Math.round(cssH * dpr);
  }
  const g = c.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, cssW, cssH);
  const L = 56, R = 60, T = 14, B = 26;
  const w = cssW - L - R, h = cssH - T - B;
  const now = performance.now();
  const x = (t) => L + w * (1 - (now - t) / WINDOW_MS);
  const rateMax = niceMax(Math.max(1, ...samples.map((s) => s.rate)));
  const latMax = niceMax(Math.max(0.1, ...samples.map((s) => s.p99 || 0), ...samples.map((s) => s.mean || 0)));
  const yRate = (v) => T + h * (1 - v / rateMax);
  const yLat = (v) => T + h * (1 - Math.min(v, latMax) / latMax);

  // Grid and axes.
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (h * i) / 4;
    g.strokeStyle = '#eceff3';
    g.beginPath(); g.moveTo(L, y); g.lineTo(L + w, y); g.stroke();
    g.fillStyle = '#1f6feb'; g.textAlign = 'right'; g.textBaseline = 'middle';
    g.fillText(fmt(rateMax * (1 - i / 4)), L - 6, y);
    g.fillStyle = '#e36209'; g.textAlign = 'left';
    g.fillText(fmt(latMax * (1 - i / 4)) + ' ms', L + w + 6, y);
  }
  g.fillStyle = '#6b7280'; g.textAlign = 'center'; g.textBaseline = 'top';
  for (let s = 0; s <= 120; s += 20) {
    const xx = L + w * (1 - s / 120);
    g.strokeStyle = '#eceff3';
    g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, T + h); g.stroke();
    g.fillText(s === 0 ? 'now' : '-' + s + 's', xx, T + h + 6);
  }
  g.strokeStyle = '#c9ced6';
  g.strokeRect(L, T, w, h);
  if (samples.length < 2) {
    g.fillStyle = '#6b7280'; g.textBaseline = 'middle';
    g.fillText('collecting samples…', L + w / 2, T + h / 2);
    return;
  }

  // Commits per second: filled area.
  g.beginPath();
  g.moveTo(x(samples[0].t), yRate(0));
  for (const s of samples) g.lineTo(x(s.t), yRate(s.rate));
  g.lineTo(x(samples[samples.length - 1].t), yRate(0));
  g.closePath();
  g.fillStyle = 'rgba(31,111,235,0.12)';
  g.fill();
  line(g, samples, (s) => s.rate, x, yRate, '#1f6feb', 2, []);
  // Latency lines, broken where no command committed.
  line(g, samples, (s) => s.p99, x, yLat, '#b31d28', 1.5, [5, 4]);
  line(g, samples, (s) => s.mean, x, yLat, '#e36209', 2, []);
}

function line(g, pts, val, x, y, color, width, dash) {
  g.save();
  g.strokeStyle = color;
  g.lineWidth = width;
  g.setLineDash(dash);
  g.beginPath();
  let pen = false;
  for (const p of pts) {
    const v = val(p);
    if (v === null || v === undefined) { pen = false; continue; }
    if (pen) g.lineTo(x(p.t), y(v)); else g.moveTo(x(p.t), y(v));
    pen = true;
  }
  g.stroke();
  g.restore();
}

// The live feed: a watch of every key from now, resumed from the last
// index seen when the stream ends (the node restarted, the stream was
// cancelled). Only the newest FEED_ROWS changes are shown.
const FEED_ROWS = 50;
let feedSince = null;
const feedShown = new Set(); // index/key of the rows shown: a resumed stream repeats an index


function feedRow(e) {
  const id = e.index + '/' + e.key;
  if (feedShown.has(id)) return;
  feedShown.add(id);
  if (feedShown.size > 4 * FEED_ROWS) feedShown.delete(feedShown.values().next().value);
  const v = e.value === undefined ? '' : (e.value.length > 80 ? e.value.slice(0, 80) + '…' : e.value);
  const tr = el('tr', { class: 'feed-' + e.type }, el('td', {}, String(e.index)), el('td', {}, e.type),
    el('td', {}, e.key), el('td', {}, v));
  const body = $('feed').tBodies[0];
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > FEED_ROWS) body.deleteRow(body.rows.length - 1);
}

async function watchFeed() {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  try {
    const path = '/v1/watch/' + (feedSince === null ? '' : '?since=' + feedSince);
    const r = await fetch(path, { cache: 'no-store', headers });
    if (r.status === 410) { feedSince = null; throw new Error('history compacted'); }
    if (!r.ok) throw new Error('HTTP ' + r.status);
    if (feedSince === null) feedSince = Number(r.headers.get('Raft-Index')) || 0;
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const e = JSON.parse(line);
        if (e.type === 'progress' || e.type === 'cancelled') continue;
        // Resume after the previous index: the events of one index come together.
        feedSince = Math.max(feedSince, e.index - 1);
        feedRow(e);
      }
    }
  } catch (e) {
    /* retried below */
  }
  setTimeout(watchFeed, 1000);
}

window.addEventListener('resize', drawChart);
poll();
setInterval(poll, POLL_MS);
watchFeed();
