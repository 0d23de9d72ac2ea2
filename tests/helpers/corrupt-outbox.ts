import { closeSync, openSync, writeSync } from 'node:fs';
import Database from 'better-sqlite3';

/**
 * Damages the tables of an outbox database that a running daemon holds open, as a failing SD card
 * would: their pages (indexes included) are overwritten on disk. A small write through a second
 * connection first makes every open connection drop its page cache, so the daemon's next
 * transaction reads the damaged pages and fails with SQLITE_CORRUPT. Returns the pages damaged.
 */
export function corruptOutboxTables(file: string, tables: readonly string[]): number {
  const db = new Database(file);
  let pages: number[];
  let pageSize: number;
  try {
    // Everything into the main file first: a newer copy of a page in the WAL would hide the damage.
    const [checkpoint] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    if (checkpoint?.busy) throw new Error('the outbox is busy: could not checkpoint it before damaging it');
    pageSize = db.pragma('page_size', { simple: true }) as number;
    const names = tables.map(() => '?').join(', ');
    pages = db
      .prepare(`SELECT pageno FROM dbstat WHERE name IN (${names}) OR name IN (SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN (${names}))`)
      .pluck()
      .all(...tables, ...tables) as number[];
    db.prepare("INSERT INTO meta (key, value) VALUES ('damaged_by_test', 1) ON CONFLICT (key) DO UPDATE SET value = value + 1").run();
  } finally {
    db.close();
  }
  const fd = openSync(file, 'r+');
  try {
    for (const page of pages) writeSync(fd, Buffer.alloc(pageSize, 0x5a), 0, pageSize, (page - 1) * pageSize);
  } finally {
    closeSync(fd);
  }
  return pages.length;
}
