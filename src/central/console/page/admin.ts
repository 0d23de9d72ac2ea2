/** Operators (admin) and the audit trail (supervisor): the server checks the role again. */
export const ADMIN_JS = `
async function loadUsers() {
  const r = await api('GET', '/api/users');
  if (r.status !== 200) return;
  $('#users tbody').replaceChildren(...r.data.users.map((u) => {
    const remove = el('button', { type: 'button', class: 'remove', text: t('removeUser') });
    remove.disabled = u.name === me.user;
    remove.addEventListener('click', async () => {
      const res = await api('DELETE', '/api/users/' + encodeURIComponent(u.name));
      $('#users-status').textContent = res.status === 200 ? '' : res.data.error || String(res.status);
      loadUsers();
    });
    return el('tr', { 'data-user': u.name }, el('td', { text: u.name }), el('td', { text: t(u.role) }), el('td', {}, remove));
  }));
}

$('#user-add').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const r = await api('POST', '/api/users', { name: f.get('name'), role: f.get('role'), password: f.get('password') });
  $('#users-status').textContent = r.status === 201 ? '' : r.data.error || String(r.status);
  if (r.status === 201) ev.target.reset();
  loadUsers();
});

async function loadAudit() {
  const r = await api('GET', '/api/audit?limit=200');
  if (r.status !== 200) return;
  $('#audit tbody').replaceChildren(...r.data.audit.map((a) => el('tr', { 'data-action': a.action },
    el('td', { text: fmtTime(a.at) }), el('td', { text: a.user }), el('td', { text: a.action }), el('td', { text: a.target }), el('td', { text: a.remote }))));
}
tabLoaders.users = loadUsers;
tabLoaders.audit = loadAudit;
`;
