/**
 * The alarm queue: panic presses, community remotes and plate hits, newest on top, a sound and a flash for a new
 * one; acknowledge and clear send the signed commands through the server, and the state shown is
 * the pole's own answer (`alarm.acknowledged`, `alarm.cleared`) as it comes back.
 */
export const ALARMS_JS = `
const alarms = new Map();

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

function renderAlarm(a) {
  const e = a.event;
  const p = e.payload || {};
  let li = document.getElementById('alarm-' + a.alarm_id);
  const fresh = !li;
  if (fresh) li = el('li', { id: 'alarm-' + a.alarm_id, class: 'alarm' });
  li.dataset.state = a.answer ? a.answer.state : 'raised';
  li.dataset.device = e.device;
  li.replaceChildren();
  const what =
    e.type === 'plate.hit' ? t('hit') + ' ' + (p.display || p.plate || '')
    : e.type === 'alarm.panic' ? t('panic')
    : e.type === 'alarm.remote' ? t('remote') + ' · ' + (p.household ? p.household.name : p.remote)
    : e.type === 'alarm.personal' ? t('personal') + ' · ' + (p.person ? p.person.name : p.tag)
    : e.type;
  // A community kit's remote or a personal tag: who pressed, where they live and how to call them back.
  const who = e.type === 'alarm.remote' ? p.household : e.type === 'alarm.personal' ? p.person : null;
  const home = who ? [who.address, who.phone, who.notes].filter(Boolean).join(' · ') : '';
  // A tag is heard within radio range of the device, not at it: say how close.
  const near = e.type === 'alarm.personal'
    ? t('tag') + ' ' + p.tag_id + (p.rssi_dbm === null || p.rssi_dbm === undefined ? '' : ' · ' + p.rssi_dbm + ' dBm')
    : '';
  const geo = e.geo || (deviceRows.get(e.site + '/' + e.device) || {}).geo;
  const info = el('div', {},
    el('div', { class: 'what', text: what }),
    home ? el('div', { class: 'household', text: home }) : null,
    near ? el('div', { class: 'tag', text: near }) : null,
    el('div', { text: e.site + ' / ' + e.device + ' · ' + fmtTime(e.time) }),
    el('div', { class: e.clock === 'synced' ? '' : 'unsynced', text: t('clock') + ': ' + t(e.clock) }),
    geo ? el('div', { class: 'geo', text: (e.geo ? 'GPS ' : '') + geo.lat.toFixed(5) + ', ' + geo.lon.toFixed(5) }) : null,
    p.entry ? el('div', { class: 'entry', text: p.entry.reason + ' (' + p.entry.source + ') · ' + t('match') + ': ' + (p.match ? t(p.match.kind) : '') }) : null,
    a.snapshot ? el('img', { class: 'snapshot', alt: t('snapshot'), src: 'data:' + a.snapshot.content_type + ';base64,' + a.snapshot.data }) : null,
    p.evidence && p.evidence.crop ? el('img', { class: 'crop', alt: t('plate'), src: 'data:' + p.evidence.crop.content_type + ';base64,' + p.evidence.crop.data }) : null,
    p.evidence && p.evidence.frame ? el('img', { class: 'frame', alt: 'frame', src: 'data:' + p.evidence.frame.content_type + ';base64,' + p.evidence.frame.data }) : null,
  );
  const badge = el('span', { class: 'badge', text: t(li.dataset.state) + (a.answer && a.answer.operator ? ' ' + t('by') + ' ' + a.answer.operator : '') });
  const actions = el('div', { class: 'actions' }, badge);
  if ((e.type === 'alarm.panic' || e.type === 'alarm.remote' || e.type === 'alarm.personal') && li.dataset.state !== 'cleared') {
    if (li.dataset.state === 'raised') actions.append(alarmButton('ack', a));
    actions.append(alarmButton('clear', a));
  }
  li.append(info, actions);
  if (fresh) {
    li.classList.add('new');
    $('#alarms').prepend(li);
  }
}

function alarmButton(kind, a) {
  const b = el('button', { type: 'button', class: kind, text: t(kind) });
  b.addEventListener('click', async () => {
    b.disabled = true;
    const r = await api('POST', '/api/commands/alarm.' + kind, { site: a.event.site, device: a.event.device, alarm_id: a.alarm_id });
    if (r.status !== 202) b.disabled = false;
  });
  return b;
}

/** Open alarms (not cleared), for the count and the map. */
function openAlarms() { return [...alarms.values()].filter((a) => !(a.answer && a.answer.state === 'cleared')); }
function renderCount() { const n = openAlarms().filter((a) => !a.answer).length; $('#open-count').textContent = n ? String(n) : ''; }

async function loadAlarms() {
  const list = await api('GET', '/api/alarms');
  for (const a of (list.data.alarms || []).reverse()) {
    alarms.set(a.alarm_id, a);
    renderAlarm(a);
    document.getElementById('alarm-' + a.alarm_id).classList.remove('new');
  }
  renderCount();
}

renderers.push(() => { for (const a of alarms.values()) renderAlarm(a); renderCount(); });
listeners.push((s) => {
  const e = s.event;
  let changed = false;
  if (e.priority === 'alarm') {
    if (!alarms.has(s.alarm_id)) {
      alarms.set(s.alarm_id, { ...s, answer: null });
      renderAlarm(alarms.get(s.alarm_id));
      beep();
      changed = true;
    }
  } else if (e.type === 'alarm.snapshot' && alarms.has(e.payload.alarm_id)) {
    alarms.get(e.payload.alarm_id).snapshot = e.payload.image;
    renderAlarm(alarms.get(e.payload.alarm_id));
  } else if ((e.type === 'alarm.acknowledged' || e.type === 'alarm.cleared') && alarms.has(e.payload.alarm_id)) {
    const a = alarms.get(e.payload.alarm_id);
    if (!(a.answer && a.answer.state === 'cleared')) a.answer = { state: e.type === 'alarm.cleared' ? 'cleared' : 'acknowledged', operator: e.payload.operator };
    renderAlarm(a);
    changed = true;
  }
  if (changed) { renderCount(); renderMap(); }
});
`;
