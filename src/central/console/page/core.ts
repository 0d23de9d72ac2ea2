/**
 * The page's shared part: texts in Spanish and English, the API call (with the session's CSRF
 * token), element building (text only: nothing from the server is parsed as HTML), the tabs, the
 * login, and the live stream that hands each event to the parts that follow it.
 */
export const CORE_JS = `'use strict';
const T = {
  es: { center: 'Central 1457', logout: 'Salir', login: 'Ingreso de operador', user: 'Usuario', password: 'Contraseña', enter: 'Entrar',
    alarms: 'Alarmas', devices: 'Equipos', device: 'Equipo', state: 'Estado', outbox: 'Cola', clock: 'Reloj', last: 'Último evento',
    ack: 'Reconocer', clear: 'Despejar', raised: 'Nueva', acknowledged: 'Reconocida', cleared: 'Despejada', online: 'en línea', offline: 'fuera de línea',
    synced: 'sincronizado', unsynced: 'sin sincronizar', live: 'En vivo', reconnecting: 'Reconectando…', connecting: 'Conectando…', wrong: 'Usuario o contraseña incorrectos',
    limited: 'Demasiados intentos: espere unos minutos', panic: 'Botón de pánico', remote: 'Control remoto vecinal', personal: 'Alarma personal', tag: 'Dispositivo', hit: 'Patente con encargo', by: 'por', match: 'coincidencia',
    exact: 'exacta', confusable: 'parecida', map: 'Mapa', search: 'Búsqueda', hotlist: 'Encargos', users: 'Usuarios', audit: 'Auditoría',
    openAlarm: 'alarma abierta', cameras: 'Cámaras', telemetry: 'Última telemetría', plate: 'Patente', hashKey: 'Clave de hash (lecturas con hash)', any: 'cualquiera',
    from: 'Desde', to: 'Hasta', find: 'Buscar', time: 'Hora', kind: 'Tipo', confidence: 'Confianza', read: 'lectura', hitKind: 'encargo',
    hashed: 'con hash', result: 'resultado', results: 'resultados', needCriteria: 'Indique una patente, un equipo o una fecha', noKeyCrypto: 'Este navegador no puede calcular el hash (requiere HTTPS)',
    entries: 'Entradas (CSV: plate,reason,source,added,expires, o JSON)', file: 'o un archivo', remove: 'Quitar patentes (separadas por coma)',
    replace: 'Es la lista completa (reemplaza la actual)', sign: 'Firmar cambio', standing: 'Lista', size: 'Patentes', send: 'Enviar a los seleccionados',
    changes: 'Cambios firmados', serial: 'Serie', added: 'Agregadas', removed: 'Quitadas', current: 'al día', behind: 'atrasada', foreign: 'desconocida (instale la lista completa)',
    none: 'sin lista', version: 'versión', noHotlistKey: 'El servidor no tiene la clave de la lista (--hotlist-key): solo lectura', signed: 'Cambio firmado',
    sent: 'enviado', nothingSelected: 'Seleccione equipos', role: 'Rol', operator: 'operador', supervisor: 'supervisor', admin: 'administrador',
    addUser: 'Agregar', removeUser: 'Quitar', action: 'Acción', target: 'Sobre', noPosition: 'Ningún equipo informa su posición todavía',
    rejected: 'rechazó la lista', stale: 'vencida', snapshot: 'Foto' },
  en: { center: '1457 call center', logout: 'Log out', login: 'Operator login', user: 'User', password: 'Password', enter: 'Log in',
    alarms: 'Alarms', devices: 'Devices', device: 'Device', state: 'State', outbox: 'Queue', clock: 'Clock', last: 'Last event',
    ack: 'Acknowledge', clear: 'Clear', raised: 'New', acknowledged: 'Acknowledged', cleared: 'Cleared', online: 'online', offline: 'offline',
    synced: 'synced', unsynced: 'not synced', live: 'Live', reconnecting: 'Reconnecting…', connecting: 'Connecting…', wrong: 'Wrong user or password',
    limited: 'Too many attempts: wait a few minutes', panic: 'Panic button', remote: 'Neighbourhood remote', personal: 'Personal alarm', tag: 'Tag', hit: 'Stolen plate', by: 'by', match: 'match',
    exact: 'exact', confusable: 'look-alike', map: 'Map', search: 'Search', hotlist: 'Hotlist', users: 'Users', audit: 'Audit',
    openAlarm: 'open alarm', cameras: 'Cameras', telemetry: 'Last telemetry', plate: 'Plate', hashKey: 'Hash key (hashed reads)', any: 'any',
    from: 'From', to: 'To', find: 'Search', time: 'Time', kind: 'Kind', confidence: 'Confidence', read: 'read', hitKind: 'hit',
    hashed: 'hashed', result: 'result', results: 'results', needCriteria: 'Give a plate, a device or a time', noKeyCrypto: 'This browser cannot compute the hash (needs HTTPS)',
    entries: 'Entries (CSV: plate,reason,source,added,expires, or JSON)', file: 'or a file', remove: 'Remove plates (comma-separated)',
    replace: 'This is the whole list (replaces the current one)', sign: 'Sign the change', standing: 'List', size: 'Plates', send: 'Send to the selected',
    changes: 'Signed changes', serial: 'Serial', added: 'Added', removed: 'Removed', current: 'up to date', behind: 'behind', foreign: 'unknown (install the whole list)',
    none: 'no list', version: 'version', noHotlistKey: 'The server has no list key (--hotlist-key): read only', signed: 'Change signed',
    sent: 'sent', nothingSelected: 'Select devices', role: 'Role', operator: 'operator', supervisor: 'supervisor', admin: 'administrator',
    addUser: 'Add', removeUser: 'Remove', action: 'Action', target: 'On', noPosition: 'No device reports its position yet',
    rejected: 'refused the list', stale: 'stale', snapshot: 'Snapshot' },
};
const ROLE_RANK = { operator: 1, supervisor: 2, admin: 3 };
let lang = localStorage.getItem('vigia-lang') || 'es';
const t = (k) => (T[lang] && T[lang][k]) || T.es[k] || k;
const locale = () => (lang === 'es' ? 'es-CL' : 'en-GB');
let csrf = '';
let me = null;
const $ = (s) => document.querySelector(s);
const renderers = [];
const listeners = [];
const tabLoaders = {};
let currentTab = 'map';

function applyLang() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll('[data-t]')) e.textContent = t(e.dataset.t);
  $('#lang').textContent = lang === 'es' ? 'English' : 'Español';
  $('#link').textContent = t($('#link').dataset.state);
  for (const r of renderers) r();
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

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'text') e.textContent = v; else if (v !== undefined && v !== null) e.setAttribute(k, v); }
  for (const c of children) if (c) e.append(c);
  return e;
}
const fmtTime = (ms) => new Date(ms).toLocaleString(locale());
const can = (role) => me && ROLE_RANK[me.role] >= ROLE_RANK[role];

function showTab(name) {
  currentTab = name;
  for (const b of document.querySelectorAll('#tabs button')) b.setAttribute('aria-selected', String(b.dataset.tab === name));
  for (const s of document.querySelectorAll('.tab')) s.hidden = s.id !== 'tab-' + name;
  if (tabLoaders[name]) tabLoaders[name]();
}
for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));

function setLink(state) { $('#link').dataset.state = state; $('#link').textContent = t(state); }

async function start() {
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#who').hidden = false;
  $('#user').textContent = me.user + ' (' + t(me.role) + ')';
  for (const e of document.querySelectorAll('[data-role]')) e.hidden = !can(e.dataset.role);
  await loadDevices(); // first: an alarm shows its device's position
  await loadAlarms();
  showTab('map');
  setLink('connecting');
  const source = new EventSource('/api/stream');
  source.addEventListener('open', () => setLink('live'));
  source.addEventListener('error', () => setLink('reconnecting'));
  source.addEventListener('vigia', (m) => { const s = JSON.parse(m.data); for (const l of listeners) l(s); });
}

$('#login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await api('POST', '/api/login', { user: f.get('user'), password: f.get('password') });
  if (r.status === 200) { csrf = r.data.csrf; me = r.data; start(); }
  else $('#login-error').textContent = r.status === 429 ? t('limited') : t('wrong');
});
$('#logout').addEventListener('click', async () => { await api('POST', '/api/logout', {}); location.reload(); });
`;

/** Runs last: everything is defined by then. */
export const BOOT_JS = `
(async () => {
  applyLang();
  const r = await api('GET', '/api/me');
  if (r.status === 200) { csrf = r.data.csrf; me = r.data; start(); }
  else $('#login').hidden = false;
})();
`;
