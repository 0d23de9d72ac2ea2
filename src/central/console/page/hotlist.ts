/**
 * The stolen-vehicle list: the center's version, a change (entries added, plates removed, or a
 * whole new list, typed or from a file) signed by the server, and each device's standing with
 * it; "send" gives the chosen devices the signed deltas they lack. The page shows a device as up
 * to date only once the device itself reports the new version.
 */
export const HOTLIST_JS = `
let hotlist = null;
let hotlistNote = '';

async function loadHotlist() {
  const r = await api('GET', '/api/hotlist');
  if (r.status !== 200) return;
  hotlist = r.data;
  renderHotlist();
}

function renderHotlist() {
  if (!hotlist) return;
  const cur = hotlist.current;
  $('#hotlist-current').textContent = hotlist.enabled
    ? t('version') + ' ' + cur.version.slice(0, 12) + ' · ' + cur.size + ' ' + t('size').toLowerCase() + (cur.serial ? ' · ' + t('serial').toLowerCase() + ' ' + cur.serial : '')
    : t('noHotlistKey');
  $('#hotlist-change').hidden = !hotlist.enabled || !can('supervisor');
  $('#hotlist-send').hidden = !hotlist.enabled || !can('supervisor');
  $('#hotlist-devices tbody').replaceChildren(...hotlist.devices.map((d) => el('tr', { 'data-device': d.device, 'data-standing': d.standing },
    el('td', {}, d.standing === 'behind' || d.standing === 'current' ? el('input', { type: 'checkbox', value: d.site + '/' + d.device, 'aria-label': d.device }) : null),
    el('td', { text: d.site + ' / ' + d.device }),
    el('td', { class: 'standing' + (d.standing === 'current' ? ' online' : ' warn'), text: t(d.standing) + (d.behind ? ' (' + d.behind + ')' : '') + (d.version ? ' · ' + d.version.slice(0, 8) : '') }),
    el('td', { text: d.size === null || d.size === undefined ? '–' : String(d.size) }))));
  $('#hotlist-history tbody').replaceChildren(...(hotlist.history || []).map((h) => el('tr', {},
    el('td', { text: String(h.serial) }), el('td', { text: fmtTime(h.issued) }), el('td', { text: h.by }),
    el('td', { text: String(h.added) }), el('td', { text: String(h.removed) }))));
  $('#hotlist-status').textContent = hotlistNote;
}

$('#hotlist-change input[name=file]').addEventListener('change', async (ev) => {
  const file = ev.target.files[0];
  if (file) $('#hotlist-change textarea').value = await file.text();
});

$('#hotlist-change').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const text = String(f.get('text') || '');
  const remove = String(f.get('remove') || '').split(',').map((p) => normalisePlate(p)).filter(Boolean);
  const r = await api('POST', '/api/hotlist/changes', { text, format: text.trim().startsWith('[') || text.trim().startsWith('{') ? 'json' : 'csv', replace: f.get('replace') === 'on', remove });
  if (r.status === 201) {
    hotlistNote = t('signed') + ': +' + r.data.added + ' −' + r.data.removed;
    ev.target.reset();
  } else hotlistNote = (r.data.error || String(r.status)) + (r.data.errors ? ' ' + r.data.errors.slice(0, 5).map((e) => e.line + ': ' + e.message).join('; ') : '');
  await loadHotlist();
});

$('#hotlist-send').addEventListener('click', async () => {
  const chosen = [...document.querySelectorAll('#hotlist-devices input:checked')].map((c) => { const [site, device] = c.value.split('/'); return { site, device }; });
  if (chosen.length === 0) { hotlistNote = t('nothingSelected'); renderHotlist(); return; }
  const r = await api('POST', '/api/hotlist/send', { devices: chosen });
  hotlistNote = r.status === 202 ? r.data.results.map((x) => x.device + ': ' + (x.result === 'sent' ? t('sent') + ' (' + x.sent + ')' : t(x.result))).join(', ') : r.data.error || String(r.status);
  renderHotlist();
});

renderers.push(renderHotlist);
listeners.push((s) => {
  const e = s.event;
  if (e.type === 'hotlist.rejected') { hotlistNote = e.device + ' ' + t('rejected') + ': ' + e.payload.reason; }
  if ((e.type === 'hotlist.updated' || e.type === 'hotlist.rejected') && currentTab === 'hotlist') setTimeout(loadHotlist, 300);
});
tabLoaders.hotlist = loadHotlist;
`;
