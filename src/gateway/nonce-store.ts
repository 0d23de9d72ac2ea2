import Database from 'better-sqlite3';
import type { NonceStore } from './command-auth.js';

export type CarryOverResult = { carried: number } | { lostUntil: number; error: string };

type Statements = {
  seen: Database.Statement;
  remember: Database.Statement;
  prune: Database.Statement;
  setLostUntil: Database.Statement;
};

/**
 * Command nonces kept next to the outbox, so a replay is refused even after a restart.
 *
 * The outbox replaces its database when it finds it corrupt, so the handle is asked for at each
 * use (statements are prepared again for a new one). When a database is replaced, carryOver()
 * copies the unexpired nonces out of the old file; if they cannot be read, the store remembers
 * when they were lost (in the new file, so across restarts too) and forgottenUntil() makes the
 * verifier refuse every command signed up to then: a replay of one of them could not be told.
 */
export class SqliteNonceStore implements NonceStore {
  #db: Database.Database | undefined;
  #statements: Statements | undefined;
  #lostUntil: number | undefined;
  /** The latest expiry remembered: a command's ts is at most its expiry minus the window. */
  #latestExpiry = 0;

  constructor(
    private readonly database: () => Database.Database,
    private readonly replayWindowMs: number,
  ) {}

  seen(nonce: string): boolean {
    return this.#use().seen.get(nonce) !== undefined;
  }

  remember(nonce: string, expiresAtMs: number): void {
    this.#use().remember.run(nonce, expiresAtMs);
    this.#latestExpiry = Math.max(this.#latestExpiry, expiresAtMs);
  }

  prune(nowMs: number): void {
    this.#use().prune.run(nowMs);
  }

  forgottenUntil(): number | undefined {
    this.#use();
    return this.#lostUntil;
  }

  /**
   * After the outbox moved a corrupt file aside: copies the nonces still in force out of it, or,
   * when its nonces table cannot be trusted, records that every nonce up to now was lost.
   */
  carryOver(corruptFile: string, nowMs: number): CarryOverResult {
    const statements = this.#use();
    let rows: Array<{ nonce: string; expires: number }>;
    let oldLostUntil: number | undefined;
    try {
      const old = new Database(corruptFile, { readonly: true, fileMustExist: true });
      try {
        const check = old.pragma('quick_check(nonces)', { simple: true });
        if (check !== 'ok') throw new Error(`quick_check(nonces): ${String(check)}`);
        rows = old.prepare('SELECT nonce, expires FROM nonces WHERE expires >= ?').all(nowMs) as typeof rows;
        oldLostUntil = lostUntilIn(old);
      } finally {
        old.close();
      }
    } catch (err) {
      // Also covers commands accepted with a timestamp ahead of this clock.
      const lostUntil = Math.max(nowMs, this.#latestExpiry - this.replayWindowMs);
      this.#setLostUntil(statements, lostUntil);
      return { lostUntil, error: (err as Error).message };
    }
    this.#db!.transaction(() => {
      for (const row of rows) this.remember(row.nonce, row.expires);
      if (oldLostUntil !== undefined) this.#setLostUntil(statements, oldLostUntil);
    })();
    return { carried: rows.length };
  }

  #setLostUntil(statements: Statements, until: number): void {
    this.#lostUntil = Math.max(this.#lostUntil ?? until, until);
    statements.setLostUntil.run(this.#lostUntil);
  }

  #use(): Statements {
    const db = this.database();
    if (db !== this.#db || !this.#statements) {
      db.exec('CREATE TABLE IF NOT EXISTS nonces_lost (id INTEGER PRIMARY KEY CHECK (id = 1), until INTEGER NOT NULL)');
      this.#statements = {
        seen: db.prepare('SELECT 1 FROM nonces WHERE nonce = ?'),
        remember: db.prepare('INSERT OR REPLACE INTO nonces (nonce, expires) VALUES (?, ?)'),
        prune: db.prepare('DELETE FROM nonces WHERE expires < ?'),
        setLostUntil: db.prepare('INSERT INTO nonces_lost (id, until) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET until = max(until, excluded.until)'),
      };
      this.#db = db;
      this.#lostUntil = lostUntilIn(db);
      const latest = (db.prepare('SELECT max(expires) AS latest FROM nonces').get() as { latest: number | null }).latest;
      this.#latestExpiry = Math.max(this.#latestExpiry, latest ?? 0);
    }
    return this.#statements;
  }
}

function lostUntilIn(db: Database.Database): number | undefined {
  const hasTable = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'nonces_lost'").get() !== undefined;
  if (!hasTable) return undefined;
  return (db.prepare('SELECT until FROM nonces_lost WHERE id = 1').get() as { until: number } | undefined)?.until;
}
