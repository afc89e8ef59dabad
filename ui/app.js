// The UI talks to the peer only through Tauri commands (invoke) and events (listen).
'use strict';

const tauri = window.__TAURI__;
const invoke = (cmd, args) => tauri.core.invoke(cmd, args);
const $ = (id) => document.getElementById(id);

// The pins view shows pages the peer searched and filtered; `next` is where the following
// page starts. `seen` is the pin count and queue of the last snapshot: when they change, the
// rows shown are fetched again.
const state = { snapshot: null, peers: [], pins: [], next: null, seen: '', health: null, view: 'overview' };
const PAGE = 50;

function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${units[i]}`;
}

function metricOf(list, peer) {
  const m = (list || []).find((x) => x.peer === peer);
  return m && m.valid && m.expire / 1e6 > Date.now() ? m : null;
}

function short(id) {
  return id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : (id || '—');
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function showView(view) {
  state.view = view;
  for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.view === view);
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== `view-${view}`;
  if (view === 'invite') loadInvitation();
}

function renderSnapshot(s) {
  state.snapshot = s;
  $('first-run').hidden = s.configured;
  $('main').hidden = !s.configured;
  if (!s.configured) return;
  const id = s.id || {};
  $('ov-peer').textContent = short(id.id);
  $('ov-peer').title = id.id || '';
  $('ov-name').textContent = id.peername || '';
  $('ov-role').textContent = id.role || (s.running ? '…' : 'stopped');
  $('ov-ready').textContent = s.consensus_stopped
    ? 'stopped after a storage error (disk full?): free space, then quit and start the app again'
    : s.running ? (s.ready ? 'ready' : 'starting…') : 'not running';
  $('ov-leader').textContent = short(id.leader);
  const ipfs = s.ipfs || {};
  const ipfsOk = id.ipfs && !id.ipfs.error;
  $('ov-ipfs').textContent = ipfsOk ? 'connected' : (id.ipfs ? 'unreachable' : '—');
  $('ov-ipfs').className = `value ${ipfsOk ? 'ok' : 'bad'}`;
  $('ov-ipfs-msg').textContent = ipfs.message || (id.ipfs && id.ipfs.error) || '';
  $('ov-rest').textContent = s.rest_api || '—';
  $('ov-secret').textContent = s.secret_location || '';
  $('btn-pause').textContent = s.paused ? 'Resume pinning' : 'Pause pinning';
  $('btn-pause').classList.toggle('warn', s.paused);
  $('ov-pins').textContent = s.pins == null ? '—' : s.pins.toLocaleString();
  $('ov-pins-sub').textContent = s.queued ? `${s.queued.toLocaleString()} being pinned or unpinned here` : 'nothing in progress here';
  const seen = `${s.pins}/${s.queued}`;
  if (s.running && seen !== state.seen) {
    state.seen = seen;
    reloadPins();
  }
}

function renderPeers(peers) {
  state.peers = peers;
  const body = $('peers-body');
  body.replaceChildren();
  const me = state.snapshot && state.snapshot.id ? state.snapshot.id.id : '';
  for (const p of peers) {
    const ok = !p.error;
    body.append(el('tr', { 'data-peer': p.id },
      el('td', { class: 'mono', title: p.id }, short(p.id), p.id === me ? el('span', { class: 'badge' }, 'this') : ''),
      el('td', {}, p.peername || ''),
      el('td', {}, p.role || ''),
      el('td', { class: 'mono' }, p.ipfs && p.ipfs.id ? short(p.ipfs.id) : (p.ipfs && p.ipfs.error ? 'error' : '—')),
      el('td', {}, (() => { const m = state.health && metricOf(state.health.freespace, p.id); return m ? bytes(m.value) : '—'; })()),
      el('td', {}, (() => { const m = state.health && metricOf(state.health.numpin, p.id); return m ? m.value : '—'; })()),
      el('td', { class: ok ? 'ok' : 'bad', title: p.error || '' }, ok ? 'online' : 'unreachable'),
      el('td', {}, p.id === me ? '' : el('button', { class: 'ghost small', onclick: () => removePeer(p.id) }, 'Remove')),
    ));
  }
  const down = peers.filter((p) => p.error).length;
  $('ov-health').textContent = down ? `${down} of ${peers.length} unreachable` : `${peers.length} ${peers.length === 1 ? 'peer' : 'peers'} online`;
  $('ov-health').className = `value ${down ? 'bad' : 'ok'}`;
}

function renderHealth(h) {
  state.health = h;
  const list = $('alerts');
  list.replaceChildren();
  const alerts = (h.alerts || []).slice(-20).reverse();
  if (!alerts.length) list.append(el('li', { class: 'sub' }, 'No alerts: every peer reports in time.'));
  for (const a of alerts) {
    list.append(el('li', {}, el('span', { class: 'bad' }, '●'), ` ${short(a.peer)} stopped sending “${a.name}” `,
      el('span', { class: 'sub' }, new Date(a.triggered_at).toLocaleString())));
  }
  renderPeers(state.peers);
}

function statusClass(s) {
  if (s === 'pinned') return 'ok';
  if (s.includes('error') || s === 'unexpectedly_unpinned') return 'bad';
  if (s === 'remote') return 'muted';
  return 'busy';
}

function renderPins() {
  const body = $('pins-body');
  body.replaceChildren();
  for (const g of state.pins) {
    const per = el('td', { class: 'statuses' });
    for (const [peer, info] of Object.entries(g.peer_map || {})) {
      per.append(el('span', { class: `status ${statusClass(info.status)}`, title: `${peer}${info.error ? `: ${info.error}` : ''}` },
        `${info.peername || short(peer)}: ${info.status}`));
    }
    body.append(el('tr', { 'data-cid': g.cid },
      el('td', { class: 'mono', title: g.cid }, short(g.cid)),
      el('td', {}, g.name || ''),
      per,
      el('td', { class: 'actions' },
        el('button', { class: 'ghost small', onclick: () => act('recover', { cid: g.cid }) }, 'Recover'),
        el('button', { class: 'ghost small', onclick: () => act('unpin', { cid: g.cid }) }, 'Unpin')),
    ));
  }
  $('pins-more').hidden = !state.next;
  const searching = $('pin-search').value.trim() || $('pin-filter').value;
  $('pins-empty').hidden = state.pins.length > 0 || !!state.next;
  $('pins-empty').textContent = searching ? 'No pin matches.' : 'No pins yet.';
}

function pinsQuery(after, limit) {
  return { search: $('pin-search').value.trim(), filter: $('pin-filter').value, after, limit };
}

// The next page, after the rows shown (or the first page when `fresh`).
async function loadPins(fresh) {
  try {
    const page = await invoke('pins_page', { query: pinsQuery(fresh ? null : state.next, PAGE) });
    state.pins = fresh ? page.pins : state.pins.concat(page.pins);
    state.next = page.next;
    renderPins();
  } catch (e) {
    if (state.snapshot && state.snapshot.running) message(errorText(e), true);
  }
}

// The rows shown so far, fetched again (their statuses change as peers pin).
let reloading = false;
async function reloadPins() {
  if (reloading) return;
  reloading = true;
  try {
    const page = await invoke('pins_page', { query: pinsQuery(null, Math.min(500, Math.max(PAGE, state.pins.length))) });
    state.pins = page.pins;
    state.next = page.next;
    renderPins();
  } catch (_) { /* not running yet */ } finally {
    reloading = false;
  }
}

// Errors from the peer arrive as {kind, message} (bad_input, not_found, refused, unavailable,
// ipfs, internal); anything else is shown as it is.
function errorText(e) {
  return e && typeof e === 'object' && e.message ? e.message : String(e);
}

function message(text, bad = false) {
  $('pin-message').textContent = text;
  $('pin-message').className = bad ? 'error' : 'sub';
}

async function act(cmd, args) {
  try {
    await invoke(cmd, args);
    await refresh();
  } catch (e) {
    message(errorText(e), true);
  }
}

async function removePeer(id) {
  if (!confirm(`Remove peer ${id} from the cluster?`)) return;
  await act('remove_peer', { id });
}

async function pinText(what, name = '', replication = null) {
  message(`Pinning ${what}…`);
  try {
    const pin = await invoke('pin', { what, name, replication });
    message(`Pinned ${pin.cid}: copies are being made.`);
    await refresh();
  } catch (e) {
    message(errorText(e), true);
  }
}

async function pinPaths(paths) {
  message(`Adding ${paths.length} file(s) to IPFS…`);
  try {
    const pins = await invoke('add_paths', { paths });
    message(`Added and pinned ${pins.map((p) => p.cid).join(', ')}`);
    await refresh();
  } catch (e) {
    message(errorText(e), true);
  }
}

// Text dropped on the window (a CID or a link): pin it.
function handleDroppedText(text) {
  const what = (text || '').trim().split(/\s+/)[0];
  if (!what) return;
  showView('pins');
  return pinText(what);
}
window.handleDroppedText = handleDroppedText;

async function loadInvitation() {
  try {
    const inv = await invoke('invitation');
    $('invite-qr').innerHTML = inv.svg.replace(/^<\?xml[^>]*>/, '');
    $('invite-text').value = inv.text;
    const boot = (inv.bootstrap || [])[0];
    $('invite-cli').textContent = `CLUSTER_SECRET=… ipfs-cluster-service daemon --bootstrap ${boot || '…'}`;
  } catch (e) {
    $('invite-text').value = errorText(e);
  }
}

async function refresh() {
  renderSnapshot(await invoke('status'));
  if (state.snapshot.running) {
    try { renderPeers(await invoke('peers')); } catch (_) { /* not ready yet */ }
    await reloadPins();
  }
}

async function firstRun(cmd, args) {
  $('first-run-error').textContent = '';
  for (const b of document.querySelectorAll('#first-run button')) b.disabled = true;
  try {
    renderSnapshot(await invoke(cmd, args));
    await refresh();
  } catch (e) {
    $('first-run-error').textContent = errorText(e);
  } finally {
    for (const b of document.querySelectorAll('#first-run button')) b.disabled = false;
  }
}

function wire() {
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showView(b.dataset.view));
  $('btn-new').addEventListener('click', () => firstRun('new_cluster'));
  $('btn-join').addEventListener('click', () => firstRun('join_cluster', {
    invitation: $('join-invitation').value,
    secret: $('join-secret').value || null,
    voter: $('join-voter').checked,
  }));
  $('join-qr').addEventListener('change', async (e) => {
    const file = e.target.files && e.target.files[0];
    if (!file) return;
    $('first-run-error').textContent = '';
    try {
      const bytes = Array.from(new Uint8Array(await file.arrayBuffer()));
      $('join-invitation').value = await invoke('read_qr', { bytes });
    } catch (err) {
      $('first-run-error').textContent = errorText(err);
    }
  });
  $('pin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const r = $('pin-repl').value;
    pinText($('pin-cid').value, $('pin-name').value, r === '' ? null : Number(r));
    $('pin-cid').value = '';
  });
  let typing = null;
  $('pin-search').addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(() => loadPins(true), 250); });
  $('pin-filter').addEventListener('change', () => loadPins(true));
  $('pins-more').addEventListener('click', () => loadPins(false));
  $('btn-pause').addEventListener('click', () => act('set_paused', { paused: !(state.snapshot && state.snapshot.paused) }));
  $('btn-copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('invite-text').value));
  $('public-network').addEventListener('change', async (e) => {
    try {
      e.target.checked = await invoke('public_network', { enable: e.target.checked });
      message('The IPFS network setting applies when the built-in IPFS node next starts.');
    } catch (err) {
      e.target.checked = !e.target.checked;
      message(errorText(err), true);
    }
  });
  $('autostart').addEventListener('change', async (e) => {
    try { e.target.checked = await invoke('autostart', { enable: e.target.checked }); } catch (_) { e.target.checked = false; }
  });

  // Drag and drop: text through the page, files through Tauri (which knows their paths).
  const hint = $('drop-hint');
  document.addEventListener('dragover', (e) => { e.preventDefault(); hint.hidden = false; });
  document.addEventListener('dragleave', () => { hint.hidden = true; });
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    hint.hidden = true;
    const text = e.dataTransfer && (e.dataTransfer.getData('text/plain') || e.dataTransfer.getData('text/uri-list'));
    if (text) handleDroppedText(text);
  });
  tauri.event.listen('tauri://drag-enter', () => { hint.hidden = false; });
  tauri.event.listen('tauri://drag-leave', () => { hint.hidden = true; });
  tauri.event.listen('tauri://drag-drop', (e) => {
    hint.hidden = true;
    const paths = (e.payload && e.payload.paths) || [];
    if (paths.length) { showView('pins'); pinPaths(paths); }
  });

  // Live state from the peer.
  tauri.event.listen('snapshot', (e) => renderSnapshot(e.payload));
  tauri.event.listen('peers', (e) => renderPeers(e.payload));
  // Statuses on other peers change without the pin count changing: a slow refresh of the
  // rows shown, only while the window is visible.
  setInterval(() => { if (!document.hidden && state.view === 'pins') reloadPins(); }, 10000);
  tauri.event.listen('health', (e) => renderHealth(e.payload));
  invoke('autostart', {}).then((on) => { $('autostart').checked = on; }).catch(() => {});
  invoke('public_network', {}).then((on) => { $('public-network').checked = on; }).catch(() => {});
}

wire();
refresh();
