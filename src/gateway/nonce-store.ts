import type Database from 'better-sqlite3';
import type { NonceStore } from './command-auth.js';

/** Command nonces kept next to the outbox, so a replay is refused even after a restart. */
export class SqliteNonceStore implements NonceStore {
  readonly #seen: Database.Statement;
  readonly #remember: Database.Statement;
  readonly #prune: Database.Statement;

  constructor(db: Database.Database) {
    this.#seen = db.prepare('SELECT 1 FROM nonces WHERE nonce = ?');
    this.#remember = db.prepare('INSERT OR REPLACE INTO nonces (nonce, expires) VALUES (?, ?)');
    this.#prune = db.prepare('DELETE FROM nonces WHERE expires < ?');
  }

  seen(nonce: string): boolean {
    return this.#seen.get(nonce) !== undefined;
  }

  remember(nonce: string, expiresAtMs: number): void {
    this.#remember.run(nonce, expiresAtMs);
  }

  prune(nowMs: number): void {
    this.#prune.run(nowMs);
  }
}
