import { createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { HotlistEntry, HotlistEntryInput, HotlistRowError } from '../anpr/hotlist/entry.js';
import { Hotlist, HotlistError } from '../anpr/hotlist/list.js';
import { parseHotlistCsv, parseHotlistJson } from '../anpr/hotlist/parse.js';

/**
 * The call center's copy of the stolen-vehicle list and the changes it signed. Every change
 * (entries added, plates removed, or a whole new list) becomes one or more signed `hotlist.delta`
 * commands with rising serials, kept in order in `deltas.jsonl`: a device whose list is any
 * version the center issued is brought up to date by the deltas after its version, in order. A
 * device with a list the center never issued (loaded from elsewhere) needs the whole list first
 * (`anpr.hotlist.url` or `file`); `chainFrom` says so with null.
 *
 * The publisher's Ed25519 private key stays in this process; the browser only asks for changes.
 */

export interface HotlistPublisherOptions {
  /** Where the list (`hotlist.csv`) and the signed deltas (`deltas.jsonl`) are kept. */
  dir: string;
  /** The list publisher's Ed25519 private key (PEM): devices check it with `anpr.hotlist.public_key`. */
  privateKey: string;
  /** Sites a delta may be installed at (default every site). */
  scope?: string[];
  now?: () => number;
}

/** One signed delta as a device takes it (`hotlist.delta` arguments), and what it changes. */
export interface IssuedDelta {
  serial: number;
  issued: string;
  base: string;
  version: string;
  /** The command's arguments: the delta's exact JSON text and its base64 signature. */
  args: { delta: string; signature: string };
  added: number;
  removed: number;
  by: string;
}

/** A change asked for: entries as CSV or JSON text, plates to remove, or a whole new list. */
export interface HotlistChange {
  /** CSV (`plate,reason,source,added,expires`) or JSON text of entries. */
  text?: string;
  format?: 'csv' | 'json';
  /** The text is the whole new list (plates missing from it are removed), not entries to add. */
  replace?: boolean;
  remove?: string[];
}

/** A change that could not be made: bad rows (line numbers of the text) or nothing to change. */
export class HotlistChangeError extends Error {
  constructor(
    message: string,
    readonly errors: HotlistRowError[] = [],
  ) {
    super(message);
    this.name = 'HotlistChangeError';
  }
}

/**
 * Entries per delta: a device takes commands up to `mqtt.max_incoming_bytes` (512 KiB by default,
 * about 2,700 added plates), so a large change is cut into several deltas applied one after another.
 */
const ENTRIES_PER_DELTA = 2000;

export class HotlistPublisher {
  #list: Hotlist = Hotlist.empty();
  #deltas: IssuedDelta[] = [];
  #key: KeyObject | null = null;
  readonly #now: () => number;

  constructor(private readonly opts: HotlistPublisherOptions) {
    this.#now = opts.now ?? Date.now;
  }

  /** Loads the key, the list and the deltas issued; throws when the key is not an Ed25519 private key. */
  open(): void {
    const key = createPrivateKey(this.opts.privateKey);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the hotlist key is a ${key.asymmetricKeyType} key, an Ed25519 key is needed`);
    this.#key = key;
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o700 });
    let csv: string | null = null;
    try {
      csv = readFileSync(this.#file('hotlist.csv'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (csv !== null) {
      const parsed = parseHotlistCsv(csv);
      if (parsed.invalidRows > 0) throw new Error(`${this.#file('hotlist.csv')}: ${parsed.invalidRows} invalid row(s)`);
      this.#list = Hotlist.fromEntries(parsed.entries, { now: this.#now() });
    }
    try {
      this.#deltas = readFileSync(this.#file('deltas.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as IssuedDelta);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Deltas are written before the list: a crash between the two leaves the list behind, and
    // the deltas after its version bring it up to date.
    const behind = this.chainFrom(this.#list.version);
    if (behind === null)
      throw new Error(`${this.#file('hotlist.csv')} is version ${this.#list.version.slice(0, 12)}…, which no delta in deltas.jsonl starts from`);
    if (behind.length > 0) {
      for (const d of behind) {
        const doc = JSON.parse(d.args.delta) as { add: HotlistEntryInput[]; remove: string[] };
        this.#list = this.#list.applyDelta(doc, { now: this.#now() });
      }
      this.#saveList(this.#list);
    }
  }

  /** The public key devices configure (`anpr.hotlist.public_key`), PEM. */
  publicKey(): string {
    return createPublicKey(this.#mustKey()).export({ type: 'spki', format: 'pem' }).toString();
  }

  current(): { version: string; size: number; serial: number | null; deltas: number } {
    return { version: this.#list.version, size: this.#list.size, serial: this.#deltas.at(-1)?.serial ?? null, deltas: this.#deltas.length };
  }

  entries(limit = 1000): HotlistEntry[] {
    const out: HotlistEntry[] = [];
    for (const e of this.#list.entries()) {
      if (out.length >= limit) break;
      out.push(e);
    }
    return out;
  }

  /** The latest deltas issued, newest first (without their signed text). */
  history(limit = 50): Array<Omit<IssuedDelta, 'args'>> {
    return this.#deltas
      .slice(-limit)
      .reverse()
      .map(({ args: _args, ...rest }) => rest);
  }

  /**
   * The deltas that bring a device from `version` to the current list, in order: empty when it is
   * up to date, null when `version` is not one the center issued.
   */
  chainFrom(version: string): IssuedDelta[] | null {
    // The last delta's version, not the list's: at open, a list left behind by a crash is what is brought up to it.
    if (version === (this.#deltas.at(-1)?.version ?? this.#list.version)) return [];
    // The last delta from that version: a list can come back to an earlier version, and the
    // device refuses serials at or below the ones it applied.
    for (let i = this.#deltas.length - 1; i >= 0; i--) if (this.#deltas[i]!.base === version) return this.#deltas.slice(i);
    return null;
  }

  /**
   * Makes a change: signs its deltas, keeps them and the new list (synced to disk before this
   * returns), and returns them. Throws HotlistChangeError for bad rows or when nothing changes.
   */
  change(change: HotlistChange, by: string): IssuedDelta[] {
    const key = this.#mustKey();
    let entries: HotlistEntryInput[] = [];
    if (change.text !== undefined && change.text.trim() !== '') {
      const parsed = change.format === 'json' ? parseHotlistJson(change.text) : parseHotlistCsv(change.text);
      if (parsed.invalidRows > 0) throw new HotlistChangeError(`${parsed.invalidRows} invalid row(s): nothing was changed`, parsed.errors);
      entries = parsed.entries;
    }
    let next: Hotlist;
    try {
      next = change.replace ? Hotlist.fromEntries(entries, { now: this.#now() }) : this.#list.applyDelta({ add: entries, remove: change.remove ?? [] });
    } catch (err) {
      if (err instanceof HotlistError) throw new HotlistChangeError(err.message, err.errors);
      throw err;
    }
    // What a device must do to get from the current list to the next: remove the plates whose
    // entry went or changed, add the entries that are new or changed.
    const before = new Map([...this.#list.entries()].map((e) => [e.plate, JSON.stringify(e)]));
    const after = [...next.entries()];
    const afterPlates = new Set(after.map((e) => e.plate));
    const add = after.filter((e) => before.get(e.plate) !== JSON.stringify(e));
    const changed = new Set(add.map((e) => e.plate));
    const remove = [...before.keys()].filter((p) => !afterPlates.has(p) || changed.has(p));
    if (add.length === 0 && remove.length === 0) throw new HotlistChangeError('the change leaves the list as it is');

    const issued: IssuedDelta[] = [];
    let list = this.#list;
    let serial = Math.max((this.#deltas.at(-1)?.serial ?? 0) + 1, Math.floor(this.#now() / 1000));
    const issuedAt = new Date(this.#now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    // Removals go in the first delta, additions in slices after: each delta stands alone.
    const steps: Array<{ add: HotlistEntryInput[]; remove: string[] }> = [];
    for (let i = 0; i < remove.length; i += ENTRIES_PER_DELTA) steps.push({ add: [], remove: remove.slice(i, i + ENTRIES_PER_DELTA) });
    for (let i = 0; i < add.length; i += ENTRIES_PER_DELTA) steps.push({ add: add.slice(i, i + ENTRIES_PER_DELTA), remove: [] });
    for (const step of steps) {
      const after = list.applyDelta(step);
      const doc = {
        base_version: list.version,
        add: step.add,
        remove: step.remove,
        version: after.version,
        serial,
        issued: issuedAt,
        scope: this.opts.scope ?? ['*'],
      };
      const delta = JSON.stringify(doc);
      issued.push({
        serial,
        issued: issuedAt,
        base: list.version,
        version: after.version,
        args: { delta, signature: sign(null, Buffer.from(delta, 'utf8'), key).toString('base64') },
        added: step.add.length,
        removed: step.remove.length,
        by,
      });
      list = after;
      serial++;
    }
    if (list.version !== next.version) throw new Error('the deltas do not lead to the new list');
    appendSynced(this.#file('deltas.jsonl'), issued.map((d) => `${JSON.stringify(d)}\n`).join(''));
    this.#saveList(next);
    this.#list = next;
    this.#deltas.push(...issued);
    return issued;
  }

  #saveList(list: Hotlist): void {
    const file = this.#file('hotlist.csv');
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      for (const chunk of list.csvBytes()) writeSync(fd, chunk);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  }

  #mustKey(): KeyObject {
    if (!this.#key) throw new Error('the hotlist publisher is not open');
    return this.#key;
  }

  #file(name: string): string {
    return join(this.opts.dir, name);
  }
}

function appendSynced(file: string, text: string): void {
  appendFileSync(file, text, { mode: 0o600 });
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
