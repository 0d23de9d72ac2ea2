'use strict';
// Reopens a stopped daemon's outbox database and looks for one event by id. Prints one JSON
// object on stdout; exits 1 if the database fails its integrity check or the event is missing.
//
// Run from the installed application directory: node outbox-reopen.cjs OUTBOX_DB EVENT_ID

const Database = require('better-sqlite3');

const [file, id] = process.argv.slice(2);
if (!file || !id) {
  process.stderr.write('usage: node outbox-reopen.cjs OUTBOX_DB EVENT_ID\n');
  process.exit(2);
}

const db = new Database(file, { fileMustExist: true });
try {
  const result = {
    journal_mode: db.pragma('journal_mode', { simple: true }),
    integrity: db.pragma('integrity_check', { simple: true }),
    events: db.prepare('SELECT count(*) AS n FROM events').get().n,
    event: db.prepare('SELECT id, type, priority FROM events WHERE id = ?').get(id) ?? null,
  };
  result.ok = result.integrity === 'ok' && result.event !== null;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
} finally {
  db.close();
}
