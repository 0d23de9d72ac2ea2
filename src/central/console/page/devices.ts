/**
 * The devices: a table (online or not, outbox depth, clock, last event, cameras, list) and a map
 * drawn on a plain grid of latitude and longitude, with no tiles: the page asks nothing of any
 * other machine. Positions are GPS fixes, or where a fixed device is installed (its birth message).
 */
export const DEVICES_JS = `
const deviceRows = new Map();
let devicesTimer = null;

async function loadDevices() {
  const r = await api('GET', '/api/devices');
  if (r.status !== 200) return;
  deviceRows.clear();
  for (const d of r.data.devices) deviceRows.set(d.site + '/' + d.device, d);
  renderDevices();
  renderMap();
  fillDeviceChoices();
}
/** Many devices report at once: one reload for a burst. */
function loadDevicesSoon() { if (!devicesTimer) devicesTimer = setTimeout(() => { devicesTimer = null; loadDevices(); }, 300); }

function camerasText(d) {
  if (!d.cameras) return '–';
  return Object.entries(d.cameras).map(([id, s]) => id + ': ' + (s === 'online' || s === 'streaming' ? t('online') : s === 'offline' ? t('offline') : s)).join(', ');
}

function renderDevices() {
  const body = $('#devices tbody');
  body.replaceChildren(...[...deviceRows.values()].map((d) => el('tr', { 'data-device': d.device },
    el('td', { text: d.site + ' / ' + d.device }),
    el('td', { class: d.state || '', text: t(d.state || 'offline') + (d.reason && d.state === 'offline' ? ' (' + d.reason + ')' : '') }),
    el('td', { text: d.health && d.health.outbox ? String(d.health.outbox.depth) : '–' }),
    el('td', { class: d.health && d.health.clock !== 'synced' ? 'unsynced' : '', text: d.health ? t(d.health.clock) : '–' }),
    el('td', { text: d.last_event_at ? fmtTime(d.last_event_at) : '–' }),
    el('td', { class: 'telemetry', text: d.health ? fmtTime(d.health.time) : '–' }),
    el('td', { class: 'cameras', text: camerasText(d) }),
    el('td', { class: 'hotlist' + (d.hotlist && d.hotlist.stale ? ' warn' : ''), text: d.hotlist ? d.hotlist.size + ' · ' + d.hotlist.version.slice(0, 8) + (d.hotlist.stale ? ' · ' + t('stale') : '') : '–' }),
  )));
}

function fillDeviceChoices() {
  const select = $('#search select[name=device]');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '', 'data-t': 'any', text: t('any') }),
    ...[...deviceRows.values()].map((d) => el('option', { value: d.site + '/' + d.device, text: d.site + ' / ' + d.device })));
  select.value = chosen;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A round grid step (degrees) giving about five lines over span. */
function gridStep(span) {
  const raw = span / 5;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw);
}

function renderMap() {
  const map = $('#map');
  if (!map) return;
  const W = 600, H = 420, PAD = 30;
  const points = [];
  for (const d of deviceRows.values()) if (d.geo) points.push({ kind: 'device', d, lat: d.geo.lat, lon: d.geo.lon });
  for (const a of openAlarms()) {
    const geo = a.event.geo || (deviceRows.get(a.event.site + '/' + a.event.device) || {}).geo;
    if (geo) points.push({ kind: 'alarm', a, lat: geo.lat, lon: geo.lon });
  }
  map.replaceChildren();
  if (points.length === 0) { map.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, t('noPosition'))); return; }
  let [s, n, w, e] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const p of points) { s = Math.min(s, p.lat); n = Math.max(n, p.lat); w = Math.min(w, p.lon); e = Math.max(e, p.lon); }
  // Degrees of longitude are shorter than degrees of latitude by cos(latitude); at least ~1 km
  // across and a margin, so one device alone sits in the middle of its street grid.
  const k = Math.cos(((s + n) / 2) * Math.PI / 180);
  const spanLat = Math.max(n - s, 0.01) * 1.2, spanLon = Math.max((e - w) * k, 0.01) * 1.2;
  const scale = Math.min((W - 2 * PAD) / spanLon, (H - 2 * PAD) / spanLat); // px per degree of latitude
  const cy = (s + n) / 2, cx = (w + e) / 2;
  const x = (lon) => W / 2 + (lon - cx) * scale * k;
  const yLat = (lat) => H / 2 - (lat - cy) * scale;
  const latOf = (py) => cy - (py - H / 2) / scale;
  const lonOf = (px) => cx + (px - W / 2) / (scale * k);
  const step = gridStep(latOf(0) - latOf(H));
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  for (let lon = Math.ceil(lonOf(0) / step) * step; lon <= lonOf(W); lon += step) {
    map.append(svg('line', { x1: x(lon), y1: 0, x2: x(lon), y2: H, class: 'grid' }), svg('text', { x: x(lon) + 2, y: H - 4, class: 'axis' }, lon.toFixed(digits)));
  }
  for (let lat = Math.ceil(latOf(H) / step) * step; lat <= latOf(0); lat += step) {
    map.append(svg('line', { x1: 0, y1: yLat(lat), x2: W, y2: yLat(lat), class: 'grid' }), svg('text', { x: 2, y: yLat(lat) - 2, class: 'axis' }, lat.toFixed(digits)));
  }
  // A scale bar of a round distance (1 degree of latitude is 111.32 km).
  const mPerPx = 111320 / scale;
  const meters = [50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000].find((m) => m / mPerPx >= 60) || 100000;
  const len = meters / mPerPx;
  map.append(svg('path', { d: 'M' + (W - 20 - len) + ' ' + (H - 28) + ' v6 h' + len + ' v-6', class: 'scale' }),
    svg('text', { x: W - 20 - len / 2, y: H - 32, 'text-anchor': 'middle', class: 'scale-label' }, meters >= 1000 ? meters / 1000 + ' km' : meters + ' m'));
  for (const p of points.filter((p) => p.kind === 'device')) {
    const g = svg('g', { 'data-device': p.d.device });
    g.append(svg('title', {}, p.d.site + ' / ' + p.d.device + ' · ' + t(p.d.state || 'offline')),
      svg('circle', { cx: x(p.lon), cy: yLat(p.lat), r: 7, class: 'device ' + (p.d.state || 'unknown') }),
      svg('text', { x: x(p.lon) + 10, y: yLat(p.lat) + 4, class: 'name' }, p.d.device));
    map.append(g);
  }
  for (const p of points.filter((p) => p.kind === 'alarm')) {
    const ring = svg('circle', { cx: x(p.lon), cy: yLat(p.lat), r: 14, class: 'alarm-ring', 'data-alarm': p.a.alarm_id });
    ring.append(svg('title', {}, (p.a.event.type === 'plate.hit' ? t('hit') : t('panic')) + ' · ' + p.a.event.device));
    map.append(ring);
  }
}

renderers.push(() => { renderDevices(); renderMap(); });
listeners.push((s) => {
  const e = s.event;
  if (e.type === 'health' || e.type === 'hotlist.updated' || e.type.startsWith('camera.') || e.priority === 'alarm' || e.geo) loadDevicesSoon();
});
tabLoaders.devices = loadDevices;
tabLoaders.map = loadDevices;
`;
