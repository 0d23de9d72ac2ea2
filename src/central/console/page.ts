/**
 * The operator console's page: one HTML file, one script, one stylesheet, served by the console
 * server from memory (nothing fetched from elsewhere; the Content-Security-Policy allows only
 * this origin). Spanish first, English on the toggle. Plain DOM code: the page is small, and a
 * build step for a framework would be the largest part of it.
 */

export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const INDEX_HTML = `<!doctype html>
<html lang="es">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vigía — central 1457</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="/app.js" defer></script>
</head>
<body>
<header>
  <h1>Vigía <span data-t="center">Central 1457</span></h1>
  <div id="who" hidden><span id="user"></span> · <button id="logout" data-t="logout">Salir</button></div>
  <button id="lang" type="button">English</button>
</header>
<main>
  <form id="login" hidden>
    <h2 data-t="login">Ingreso de operador</h2>
    <label><span data-t="user">Usuario</span> <input name="user" autocomplete="username" required></label>
    <label><span data-t="password">Contraseña</span> <input name="password" type="password" autocomplete="current-password" required></label>
    <button type="submit" data-t="enter">Entrar</button>
    <p id="login-error" role="alert"></p>
  </form>
  <section id="console" hidden>
    <section id="alarms-box">
      <h2 data-t="alarms">Alarmas</h2>
      <p id="link" data-state="connecting"></p>
      <ol id="alarms"></ol>
    </section>
    <section id="devices-box">
      <h2 data-t="devices">Equipos</h2>
      <table id="devices"><thead><tr><th data-t="device">Equipo</th><th data-t="state">Estado</th><th data-t="outbox">Cola</th><th data-t="clock">Reloj</th><th data-t="last">Último evento</th></tr></thead><tbody></tbody></table>
    </section>
  </section>
</main>
</body>
</html>
`;

export const APP_CSS = `
body { font-family: system-ui, sans-serif; margin: 0; background: #f3f4f6; color: #111; }
header { display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #0b3d2e; color: #fff; }
header h1 { font-size: 1.2rem; margin: 0; flex: 1; }
main { padding: 1rem; }
#console { display: grid; grid-template-columns: 2fr 1fr; gap: 1rem; }
#alarms { list-style: none; padding: 0; margin: 0; }
.alarm { background: #fff; border-left: .5rem solid #b91c1c; margin-bottom: .5rem; padding: .5rem .75rem; display: grid; grid-template-columns: 1fr auto; gap: .25rem .75rem; }
.alarm.new { animation: flash 1s ease-in-out 3; }
.alarm[data-state="acknowledged"] { border-left-color: #d97706; }
.alarm[data-state="cleared"] { border-left-color: #6b7280; opacity: .7; }
.alarm .what { font-weight: 600; }
.alarm img { max-width: 320px; display: block; }
.alarm .actions { display: flex; gap: .5rem; align-items: start; }
.badge { font-size: .8rem; padding: .1rem .4rem; border-radius: .25rem; background: #fee2e2; }
.alarm[data-state="acknowledged"] .badge { background: #fef3c7; }
.alarm[data-state="cleared"] .badge { background: #e5e7eb; }
.unsynced { color: #b45309; }
#link[data-state="down"] { color: #b91c1c; }
table { border-collapse: collapse; width: 100%; background: #fff; }
td, th { padding: .25rem .5rem; border-bottom: 1px solid #e5e7eb; text-align: left; font-size: .9rem; }
.online { color: #047857; } .offline { color: #b91c1c; }
@keyframes flash { 50% { background: #fecaca; } }
`;

export const APP_JS = `'use strict';
const T = {
  es: { center: 'Central 1457', logout: 'Salir', login: 'Ingreso de operador', user: 'Usuario', password: 'Contraseña', enter: 'Entrar',
    alarms: 'Alarmas', devices: 'Equipos', device: 'Equipo', state: 'Estado', outbox: 'Cola', clock: 'Reloj', last: 'Último evento',
    ack: 'Reconocer', clear: 'Despejar', raised: 'Nueva', acknowledged: 'Reconocida', cleared: 'Despejada', online: 'en línea', offline: 'fuera de línea',
    synced: 'sincronizado', unsynced: 'sin sincronizar', live: 'En vivo', reconnecting: 'Reconectando…', wrong: 'Usuario o contraseña incorrectos',
    limited: 'Demasiados intentos: espere unos minutos', panic: 'Botón de pánico', hit: 'Patente con encargo', by: 'por', match: 'coincidencia' },
  en: { center: '1457 call center', logout: 'Log out', login: 'Operator login', user: 'User', password: 'Password', enter: 'Log in',
    alarms: 'Alarms', devices: 'Devices', device: 'Device', state: 'State', outbox: 'Queue', clock: 'Clock', last: 'Last event',
    ack: 'Acknowledge', clear: 'Clear', raised: 'New', acknowledged: 'Acknowledged', cleared: 'Cleared', online: 'online', offline: 'offline',
    synced: 'synced', unsynced: 'not synced', live: 'Live', reconnecting: 'Reconnecting…', wrong: 'Wrong user or password',
    limited: 'Too many attempts: wait a few minutes', panic: 'Panic button', hit: 'Stolen plate', by: 'by', match: 'match' },
};
let lang = localStorage.getItem('vigia-lang') || 'es';
const t = (k) => (T[lang] && T[lang][k]) || T.es[k] || k;
let csrf = '';
const alarms = new Map();
const $ = (s) => document.querySelector(s);

function applyLang() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  $('#lang').textContent = lang === 'es' ? 'English' : 'Español';
  for (const a of alarms.values()) render(a);
}
$('#lang').addEventListener('click', () => { lang = lang === 'es' ? 'en' : 'es'; localStorage.setItem('vigia-lang', lang); applyLang(); });

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const data = await res.json().catch(() => ({}));
  return { status: res.status, data };
}

function beep() {
  try {
    const ctx = new AudioContext();
    const o = ctx.createOscillator();
    o.frequency.value = 880;
    o.connect(ctx.destination);
    o.start();
    o.stop(ctx.currentTime + 0.4);
  } catch { /* no sound device */ }
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'text') e.textContent = v; else e.setAttribute(k, v); }
  for (const c of children) if (c) e.append(c);
  return e;
}

function render(a) {
  const e = a.event;
  const p = e.payload || {};
  let li = document.getElementById('alarm-' + a.alarm_id);
  const fresh = !li;
  if (fresh) li = el('li', { id: 'alarm-' + a.alarm_id, class: 'alarm' });
  li.dataset.state = a.answer ? a.answer.state : 'raised';
  li.dataset.device = e.device;
  li.replaceChildren();
  const what = e.type === 'plate.hit' ? t('hit') + ' ' + (p.display || p.plate || '') : e.type === 'alarm.panic' ? t('panic') : e.type;
  const info = el('div', {},
    el('div', { class: 'what', text: what }),
    el('div', { text: e.site + ' / ' + e.device + ' · ' + new Date(e.time).toLocaleString(lang === 'es' ? 'es-CL' : 'en-GB') }),
    el('div', { class: e.clock === 'synced' ? '' : 'unsynced', text: t('clock') + ': ' + t(e.clock) }),
    e.geo ? el('div', { class: 'geo', text: 'GPS ' + e.geo.lat.toFixed(5) + ', ' + e.geo.lon.toFixed(5) }) : null,
    p.entry ? el('div', { text: p.entry.reason + ' (' + p.entry.source + ') · ' + t('match') + ': ' + (p.match ? p.match.kind : '') }) : null,
    a.snapshot ? el('img', { class: 'snapshot', alt: 'snapshot', src: 'data:' + a.snapshot.content_type + ';base64,' + a.snapshot.data }) : null,
    p.evidence && p.evidence.crop ? el('img', { class: 'crop', alt: 'plate', src: 'data:' + p.evidence.crop.content_type + ';base64,' + p.evidence.crop.data }) : null,
  );
  const badge = el('span', { class: 'badge', text: t(li.dataset.state) + (a.answer && a.answer.operator ? ' ' + t('by') + ' ' + a.answer.operator : '') });
  const actions = el('div', { class: 'actions' }, badge);
  if (e.type === 'alarm.panic' && li.dataset.state !== 'cleared') {
    if (li.dataset.state === 'raised') actions.append(button('ack', a));
    actions.append(button('clear', a));
  }
  li.append(info, actions);
  if (fresh) {
    li.classList.add('new');
    $('#alarms').prepend(li);
  }
}

function button(kind, a) {
  const b = el('button', { type: 'button', class: kind, text: t(kind) });
  b.addEventListener('click', async () => {
    b.disabled = true;
    const r = await api('POST', '/api/commands/alarm.' + kind, { site: a.event.site, device: a.event.device, alarm_id: a.alarm_id });
    if (r.status !== 202) b.disabled = false;
  });
  return b;
}

function onEvent(s) {
  const e = s.event;
  if (e.priority === 'alarm') {
    if (!alarms.has(s.alarm_id)) {
      alarms.set(s.alarm_id, { ...s, answer: null });
      render(alarms.get(s.alarm_id));
      beep();
    }
  } else if (e.type === 'alarm.snapshot' && alarms.has(e.payload.alarm_id)) {
    alarms.get(e.payload.alarm_id).snapshot = e.payload.image;
    render(alarms.get(e.payload.alarm_id));
  } else if ((e.type === 'alarm.acknowledged' || e.type === 'alarm.cleared') && alarms.has(e.payload.alarm_id)) {
    const a = alarms.get(e.payload.alarm_id);
    if (!(a.answer && a.answer.state === 'cleared')) a.answer = { state: e.type === 'alarm.cleared' ? 'cleared' : 'acknowledged', operator: e.payload.operator };
    render(a);
  }
  if (e.type === 'health' || e.type === 'alarm.panic') loadDevices();
}

async function loadDevices() {
  const r = await api('GET', '/api/devices');
  if (r.status !== 200) return;
  const body = $('#devices tbody');
  body.replaceChildren(...r.data.devices.map((d) => el('tr', { 'data-device': d.device },
    el('td', { text: d.site + ' / ' + d.device }),
    el('td', { class: d.state || '', text: t(d.state || 'offline') }),
    el('td', { text: d.health && d.health.outbox ? String(d.health.outbox.depth) : '–' }),
    el('td', { text: d.health ? t(d.health.clock) : '–' }),
    el('td', { text: d.last_event_at ? new Date(d.last_event_at).toLocaleTimeString(lang === 'es' ? 'es-CL' : 'en-GB') : '–' }))));
}

async function start() {
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#who').hidden = false;
  const list = await api('GET', '/api/alarms');
  for (const a of (list.data.alarms || []).reverse()) {
    alarms.set(a.alarm_id, a);
    render(a);
    document.getElementById('alarm-' + a.alarm_id).classList.remove('new');
  }
  await loadDevices();
  const source = new EventSource('/api/stream');
  source.addEventListener('open', () => { $('#link').dataset.state = 'live'; $('#link').textContent = t('live'); });
  source.addEventListener('error', () => { $('#link').dataset.state = 'down'; $('#link').textContent = t('reconnecting'); });
  source.addEventListener('vigia', (m) => onEvent(JSON.parse(m.data)));
}

$('#login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await api('POST', '/api/login', { user: f.get('user'), password: f.get('password') });
  if (r.status === 200) { csrf = r.data.csrf; $('#user').textContent = r.data.user + ' (' + r.data.role + ')'; start(); }
  else $('#login-error').textContent = r.status === 429 ? t('limited') : t('wrong');
});
$('#logout').addEventListener('click', async () => { await api('POST', '/api/logout', {}); location.reload(); });

(async () => {
  applyLang();
  const me = await api('GET', '/api/me');
  if (me.status === 200) { csrf = me.data.csrf; $('#user').textContent = me.data.user + ' (' + me.data.role + ')'; start(); }
  else $('#login').hidden = false;
})();
`;
