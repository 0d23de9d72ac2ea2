/**
 * Search of plate reads and hits by plate, device and time. Devices that send reads hashed
 * (`privacy.reads: hashed`) are searched by the keyed hash of the typed plate: the browser makes
 * it with the key the operator holds (Web Crypto), so the key never reaches the server. The
 * plate is normalised exactly as the devices do (upper case, letters and digits only).
 */
export const SEARCH_JS = `
function normalisePlate(text) {
  let out = '';
  for (const raw of text) {
    const c = raw.charCodeAt(0);
    let ch = raw;
    if (raw.length === 1 && c >= 97 && c <= 122) ch = String.fromCharCode(c - 32);
    else if (c >= 128) { const u = raw.toUpperCase(); ch = u.length === 1 ? u : raw; }
    const d = ch.charCodeAt(0);
    const digit = ch.length === 1 && d >= 48 && d <= 57;
    const letter = ch.length === 1 && (d < 128 ? (d >= 65 && d <= 90) || (d >= 97 && d <= 122) : ch.toUpperCase() !== ch.toLowerCase());
    if (digit || letter) out += ch;
  }
  return out;
}

async function plateHash(key, plate) {
  const enc = new TextEncoder();
  const k = await crypto.subtle.importKey('raw', enc.encode(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', k, enc.encode(normalisePlate(plate))));
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join('');
}

let lastResults = [];
/** The plate typed for each hash searched: a hashed read found is shown with it. */
const typedPlates = new Map();
function renderResults() {
  $('#results tbody').replaceChildren(...lastResults.map((s) => {
    const e = s.event, p = e.payload || {};
    const crop = p.evidence && p.evidence.crop ? el('img', { alt: t('plate'), src: 'data:' + p.evidence.crop.content_type + ';base64,' + p.evidence.crop.data }) : null;
    return el('tr', { 'data-type': e.type },
      el('td', { text: fmtTime(e.time) }),
      el('td', { text: e.site + ' / ' + e.device }),
      el('td', { text: e.type === 'plate.hit' ? t('hitKind') : t('read') }),
      el('td', { class: 'plate', text: p.display || p.plate || (p.plate_hash ? (typedPlates.get(p.plate_hash) || p.plate_hash.slice(0, 10) + '…') + ' (' + t('hashed') + ')' : '–') }),
      el('td', { text: typeof p.confidence === 'number' ? p.confidence.toFixed(2) : '–' }),
      el('td', {}, crop));
  }));
}

$('#search').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const plate = normalisePlate(String(f.get('plate') || ''));
  const key = String(f.get('key') || '');
  const params = new URLSearchParams();
  const device = String(f.get('device') || '');
  if (device) { const [site, dev] = device.split('/'); params.set('site', site); params.set('device', dev); }
  for (const k of ['from', 'to']) if (f.get(k)) params.set(k, new Date(String(f.get(k))).toISOString());
  if (!plate && !device && !params.has('from')) { $('#search-status').textContent = t('needCriteria'); return; }
  const queries = [];
  if (plate) { const q = new URLSearchParams(params); q.set('plate', plate); queries.push(q); }
  if (plate && key) {
    if (!window.crypto || !crypto.subtle) { $('#search-status').textContent = t('noKeyCrypto'); return; }
    const hash = await plateHash(key, plate);
    typedPlates.set(hash, plate);
    const q = new URLSearchParams(params); q.set('plate_hash', hash); queries.push(q);
  }
  if (!plate) queries.push(params);
  const seen = new Map();
  for (const q of queries) {
    const r = await api('GET', '/api/search?' + q.toString());
    if (r.status !== 200) { $('#search-status').textContent = r.data.error || String(r.status); return; }
    for (const s of r.data.results) seen.set(s.event.id, s);
  }
  lastResults = [...seen.values()].sort((a, b) => Date.parse(b.event.time) - Date.parse(a.event.time));
  $('#search-status').textContent = lastResults.length + ' ' + t(lastResults.length === 1 ? 'result' : 'results');
  renderResults();
});
renderers.push(renderResults);
`;
