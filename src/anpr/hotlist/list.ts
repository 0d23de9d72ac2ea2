/**
 * The hotlist: plates whose vehicles are reported stolen ("encargo por robo") or otherwise wanted,
 * matched against every plate a reader sees. What an entry holds is described in entry.ts.
 *
 * The list is a set: identical entries count once, and one plate may have several entries (listed
 * by two sources, say); a lookup returns all of them. Entries that have expired stay in the list
 * (so its version stays that of the list as published) but never match.
 *
 * Version. `version` is the SHA-256 (hex) of the canonical text of the list: one line per entry,
 *
 *   <plate>\t<reason>\t<source>\t<added>\t<expires>\n
 *
 * with the plate normalised, a date written YYYY-MM-DD, a time as UTC with milliseconds
 * ("2025-03-10T17:05:00.000Z"), expires empty for never; lines sorted by their UTF-8 bytes, without
 * duplicates. Any publisher can compute it (`LC_ALL=C sort -u lines.tsv | sha256sum`), which is what
 * lets a signed delta name the exact list it applies to.
 *
 * Confusable matching. Plate readers mistake characters of similar shape. With `fuzzy`, a lookup
 * also returns listed plates of the same length that differ from the read only at 1 or 2 positions,
 * and only by characters of the same look-alike class (LOOKALIKE_CLASSES in plate-text.ts, which
 * says why these classes and no others). Each plate is also indexed under its "confusable key"
 * (every character replaced by its class representative), so a fuzzy lookup is a second binary
 * search plus a check of the few plates sharing the key, never a scan. A confusable match is still
 * only a candidate: consumers get `kind: 'confusable'` and the `distance`, and should have an
 * officer compare the image before acting.
 *
 * Memory. Nothing is kept per entry as a JS object: plates are packed into exact integers (base 37,
 * ten positions, which also sorts them), the other fields are parallel typed arrays, and reason and
 * source are indexes into one table of distinct strings. A million entries take about 45 MB.
 */
import { createHash } from 'node:crypto';
import { Arena, Columns, lowerBound, sortOrder } from './columns.js';
import { DAY_MS, dateBytes, formatDate } from './dates.js';
import { expiresText, F_ADDED_DATE, F_EXPIRES_DATE, MAX_REPORTED_ERRORS, type HotlistEntry, type HotlistEntryInput, type HotlistRowError } from './entry.js';
import { CSV_COLUMNS, scanCsv, scanJson, type HotlistFormat, type RowSink } from './parse.js';
import { confusableKey, decodePlate, encodePlate, MAX_PLATE_LENGTH, plateBytes, positionsApart } from './plate-code.js';

export type HotlistMatch = {
  entry: HotlistEntry;
  kind: 'exact' | 'confusable';
  /** Positions where the read and the listed plate differ (0 for an exact match). */
  distance: number;
};

export type HotlistLoadResult = {
  /** The list, or null when the text had any invalid row (then `errors` says which). */
  hotlist: Hotlist | null;
  errors: HotlistRowError[];
  invalidRows: number;
  /** Rows (CSV, header excluded) or array elements (JSON) read. */
  rows: number;
};

export type HotlistDelta = { add?: readonly HotlistEntryInput[]; remove?: readonly string[] };

export type LookupOptions = {
  /** Also return confusable matches (default false). */
  fuzzy?: boolean;
  /** Time of the read in ms since the epoch (default Date.now()); entries expired by then never match. */
  now?: number;
};

/** Largest number of differing positions for a confusable match. */
export const MAX_CONFUSABLE_DISTANCE = 2;

/** Thrown by fromEntries/applyDelta for invalid input; carries every problem found. */
export class HotlistError extends Error {
  constructor(
    message: string,
    readonly errors: HotlistRowError[],
  ) {
    super(message);
    this.name = 'HotlistError';
  }
}

type Store = {
  n: number;
  code: Float64Array;
  reason: Uint32Array;
  source: Uint32Array;
  added: Float64Array;
  until: Float64Array;
  flags: Uint8Array;
  strings: readonly string[];
  /** Confusable keys, sorted, and the entry each belongs to. */
  ckey: Float64Array;
  cidx: Uint32Array;
  version: string;
  expiredAtBuild: number;
};

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * What a finished list keeps per entry, carved in this order out of one block: the block alone then
 * carries every column to another thread.
 */
const LIST_LAYOUT = { f64: 4, u32: 3, u8: 1 };
type ListColumns = Pick<Store, 'code' | 'added' | 'until' | 'ckey' | 'reason' | 'source' | 'cidx' | 'flags'>;

function listColumns(arena: Arena): ListColumns {
  return {
    code: arena.f64(),
    added: arena.f64(),
    until: arena.f64(),
    ckey: arena.f64(),
    reason: arena.u32(),
    source: arena.u32(),
    cidx: arena.u32(),
    flags: arena.u8(),
  };
}

/**
 * A finished list as plain data for another thread: every column in one block (`buffer`, which can
 * be transferred instead of copied) and the table of strings. Only for moving lists between
 * threads (see build-worker.ts); lists are built with fromEntries, parse and applyDelta.
 */
export type PackedHotlist = {
  size: number;
  buffer: ArrayBuffer;
  strings: string[];
  version: string;
  expiredAtBuild: number;
};

/** A PackedHotlist without its block, and the size of the block. */
export type PackedHotlistHeader = Omit<PackedHotlist, 'buffer'> & { byteLength: number };

/**
 * An immutable, indexed hotlist. Build it with fromEntries() (or from a parsed file); a change
 * (applyDelta) returns a new instance, so whoever holds one always sees one consistent list.
 */
export class Hotlist {
  /** Replaced only by release(), which empties a list whose memory moves to another thread. */
  #s: Store;

  private constructor(store: Store) {
    this.#s = store;
  }

  static empty(): Hotlist {
    return Hotlist.fromEntries([]);
  }

  /**
   * Builds a list; throws HotlistError listing every invalid entry (nothing is half-built).
   * `now` (default Date.now()) only counts the entries that have already expired (`expiredAtBuild`);
   * they are kept so the version is that of the list as published.
   */
  static fromEntries(entries: Iterable<HotlistEntryInput>, opts: { now?: number } = {}): Hotlist {
    const cols = new Columns(Array.isArray(entries) ? entries.length : 1024);
    const errors: HotlistRowError[] = [];
    let invalid = 0;
    let item = 0;
    for (const e of entries) {
      item++;
      const problem = typeof e === 'object' && e !== null ? cols.add(e.plate, e.reason, e.source, e.added, e.expires) : 'entry is not an object';
      if (problem !== undefined) {
        invalid++;
        if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line: item, message: problem });
      }
    }
    if (invalid > 0) throw invalidError(invalid, item, errors);
    return new Hotlist(finish(cols, opts.now ?? Date.now()));
  }

  /**
   * Parses a CSV or JSON hotlist file (see parseHotlistCsv/parseHotlistJson) straight into a list,
   * without an object per row. `hotlist` is null when any row is invalid: a file is taken whole or
   * not at all.
   */
  static parse(text: string, format: HotlistFormat, opts: { now?: number } = {}): HotlistLoadResult {
    const cols = new Columns(format === 'csv' ? estimateRows(text) : 1024);
    const sink: RowSink = (p, r, s, a, e) => cols.add(p, r, s, a, e);
    const log = format === 'csv' ? scanCsv(text, sink) : format === 'json' ? scanJson(text, sink, (n) => cols.reserve(n)) : undefined;
    if (!log) throw new TypeError(`unknown hotlist format ${JSON.stringify(format)}`);
    const { errors, invalidRows, rows } = log;
    if (invalidRows > 0) return { hotlist: null, errors, invalidRows, rows };
    return { hotlist: new Hotlist(finish(cols, opts.now ?? Date.now())), errors, invalidRows, rows };
  }

  /**
   * Moves the list's memory out, to be transferred to another thread: the buffer returned is the one
   * this list was reading, so this instance is left empty. For the build worker only.
   */
  static release(list: Hotlist): PackedHotlist {
    const s = list.#s;
    list.#s = finish(new Columns(0), 0);
    return { size: s.n, buffer: s.code.buffer as ArrayBuffer, strings: [...s.strings], version: s.version, expiredAtBuild: s.expiredAtBuild };
  }

  /**
   * A list over memory that release() produced, possibly in another thread; takes ownership of
   * `packed.buffer`. Only the shape is checked: the contents come from finish() in this module, and
   * checking every entry would cost the receiving thread the time the transfer saved.
   */
  static adopt(packed: PackedHotlist): Hotlist {
    const { size, buffer, strings, version, expiredAtBuild } = packed;
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`not a list size: ${size}`);
    if (!Array.isArray(strings) || strings.some((t) => typeof t !== 'string')) throw new TypeError('strings must be an array of strings');
    if (typeof version !== 'string' || !/^[0-9a-f]{64}$/.test(version)) throw new TypeError('version must be a SHA-256 in hex');
    if (!Number.isSafeInteger(expiredAtBuild) || expiredAtBuild < 0 || expiredAtBuild > size) {
      throw new RangeError(`not a count of expired entries: ${expiredAtBuild}`);
    }
    const columns = listColumns(new Arena(size, LIST_LAYOUT, buffer));
    return new Hotlist({ n: size, ...columns, strings, version, expiredAtBuild });
  }

  /**
   * The list as a PackedHotlist for another thread while it stays in use here: its header, and
   * copies of its block in slices of at most `sliceBytes` (copying a 1M-entry block at once holds
   * the thread for tens of ms). For the build worker only.
   */
  static copyOut(list: Hotlist, sliceBytes: number): { header: PackedHotlistHeader; slices: () => Generator<ArrayBuffer> } {
    const s = list.#s;
    const block = new Uint8Array(s.code.buffer, 0, s.code.buffer.byteLength);
    const step = Math.max(1, Math.floor(sliceBytes));
    return {
      header: { size: s.n, byteLength: block.byteLength, strings: [...s.strings], version: s.version, expiredAtBuild: s.expiredAtBuild },
      *slices() {
        for (let at = 0; at < block.byteLength; at += step) yield block.slice(at, at + step).buffer;
      },
    };
  }

  /** Number of entries (expired ones included). */
  get size(): number {
    return this.#s.n;
  }

  /** SHA-256 (hex) of the canonical text of the list (see the module comment). */
  get version(): string {
    return this.#s.version;
  }

  /** Entries that had already expired when the list was built. */
  get expiredAtBuild(): number {
    return this.#s.expiredAtBuild;
  }

  /**
   * Entries matching a read plate, still valid at `now`: exact matches first, then (with `fuzzy`)
   * confusable ones by distance and plate. An unreadable plate matches nothing.
   */
  lookup(plate: string, opts: LookupOptions = {}): HotlistMatch[] {
    const s = this.#s;
    const code = encodePlate(plate);
    if (code < 0 || s.n === 0) return [];
    const now = opts.now ?? Date.now();
    if (!Number.isFinite(now)) throw new RangeError('now must be a finite number of milliseconds');
    const out: HotlistMatch[] = [];
    for (let i = lowerBound(s.code, s.n, code); i < s.n && s.code[i] === code; i++) {
      if (s.until[i]! >= now) out.push({ entry: this.#entry(i), kind: 'exact', distance: 0 });
    }
    if (opts.fuzzy) {
      const key = confusableKey(code);
      const exact = out.length;
      for (let j = lowerBound(s.ckey, s.n, key); j < s.n && s.ckey[j] === key; j++) {
        const i = s.cidx[j]!;
        const other = s.code[i]!;
        if (other === code || s.until[i]! < now) continue;
        const distance = positionsApart(other, code);
        if (distance <= MAX_CONFUSABLE_DISTANCE) out.push({ entry: this.#entry(i), kind: 'confusable', distance });
      }
      if (out.length - exact > 1) {
        const fuzzy = out.splice(exact).sort((a, b) => a.distance - b.distance || (a.entry.plate < b.entry.plate ? -1 : a.entry.plate > b.entry.plate ? 1 : 0));
        out.push(...fuzzy);
      }
    }
    return out;
  }

  /** Whether any entry (expired or not) has exactly this plate. */
  has(plate: string): boolean {
    const code = encodePlate(plate);
    if (code < 0) return false;
    const i = lowerBound(this.#s.code, this.#s.n, code);
    return i < this.#s.n && this.#s.code[i] === code;
  }

  /** Every entry, in canonical order. */
  *entries(): Generator<HotlistEntry> {
    for (let i = 0; i < this.#s.n; i++) yield this.#entry(i);
  }

  /** The list as CSV (header first, canonical order), in chunks of about 1 MB; parses back to the same version. */
  *toCsv(): Generator<string> {
    for (const chunk of this.csvBytes(1 << 20)) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
  }

  /**
   * The CSV of toCsv() as UTF-8, in chunks of about `chunkBytes` (default 64 KiB). Each chunk is a
   * view of one reused buffer, valid until the next one is asked for. No string is made per entry,
   * so writing a large list leaves no garbage for the collector (whose pauses would hold the
   * thread) and a chunk is a fraction of a millisecond of work.
   */
  *csvBytes(chunkBytes = 1 << 16): Generator<Uint8Array> {
    const s = this.#s;
    const cells = s.strings.map((t) => Buffer.from(/[",]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t, 'utf8'));
    const longestCell = cells.reduce((max, c) => Math.max(max, c.length), 0);
    const limit = Math.max(1, Math.floor(chunkBytes));
    // Room for a full chunk and one more line: plate, two cells, two dates of 24 bytes, separators.
    const buf = Buffer.allocUnsafe(limit + MAX_PLATE_LENGTH + 2 * longestCell + 64);
    const date = dateBytes();
    let at = buf.write(`${CSV_COLUMNS.join(',')}\n`, 'latin1');
    // Fields are short: a loop beats a native copy call.
    const put = (b: Uint8Array, sep: number) => {
      for (let k = 0; k < b.length; k++) buf[at++] = b[k]!;
      buf[at++] = sep;
    };
    const COMMA = 44;
    const NL = 10;
    for (let i = 0; i < s.n; i++) {
      if (at >= limit) {
        yield buf.subarray(0, at);
        at = 0;
      }
      at += plateBytes(s.code[i]!, buf, at);
      buf[at++] = COMMA;
      put(cells[s.reason[i]!]!, COMMA);
      put(cells[s.source[i]!]!, COMMA);
      const f = s.flags[i]!;
      put(date(s.added[i]!, (f & F_ADDED_DATE) !== 0), COMMA);
      const until = s.until[i]!;
      if (until !== Infinity) put(f & F_EXPIRES_DATE ? date(until - (DAY_MS - 1), true) : date(until, false), NL);
      else buf[at++] = NL;
    }
    if (at > 0) yield buf.subarray(0, at);
  }

  /**
   * A new list: this one without every entry of the plates in `remove`, plus the entries in `add`
   * (removals first, so an entry is changed by removing its plate and adding it again). Throws
   * HotlistError when an entry or plate is invalid; this list is never modified.
   */
  applyDelta(delta: HotlistDelta, opts: { now?: number } = {}): Hotlist {
    const s = this.#s;
    const add = delta.add ?? [];
    const remove = delta.remove ?? [];
    const errors: HotlistRowError[] = [];
    let invalid = 0;
    const gone = new Set<number>();
    for (const [k, plate] of remove.entries()) {
      const code = typeof plate === 'string' ? encodePlate(plate) : -1;
      if (code >= 0) {
        gone.add(code);
        continue;
      }
      invalid++;
      if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line: k + 1, message: `remove: ${JSON.stringify(String(plate).slice(0, 40))} is not a plate` });
    }
    const cols = new Columns(s.n + add.length, s.strings.slice());
    for (let i = 0; i < s.n; i++) {
      if (gone.size > 0 && gone.has(s.code[i]!)) continue;
      const k = cols.n++;
      cols.code[k] = s.code[i]!;
      cols.reason[k] = s.reason[i]!;
      cols.source[k] = s.source[i]!;
      cols.added[k] = s.added[i]!;
      cols.until[k] = s.until[i]!;
      cols.flags[k] = s.flags[i]!;
    }
    add.forEach((e, k) => {
      const problem = typeof e === 'object' && e !== null ? cols.add(e.plate, e.reason, e.source, e.added, e.expires) : 'entry is not an object';
      if (problem === undefined) return;
      invalid++;
      if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line: k + 1, message: `add: ${problem}` });
    });
    if (invalid > 0) throw invalidError(invalid, remove.length + add.length, errors);
    return new Hotlist(finish(cols, opts.now ?? Date.now()));
  }

  #entry(i: number): HotlistEntry {
    const s = this.#s;
    const flags = s.flags[i]!;
    return {
      plate: decodePlate(s.code[i]!),
      reason: s.strings[s.reason[i]!]!,
      source: s.strings[s.source[i]!]!,
      added: formatDate(s.added[i]!, (flags & F_ADDED_DATE) !== 0),
      expires: expiresText(s.until[i]!, flags),
    };
  }
}

/** Rows in a CSV text, to size the columns once (an estimate is enough). */
function estimateRows(text: string): number {
  if (text.length < 1 << 20) return 1024;
  let lines = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
  return lines + 1;
}

function invalidError(invalid: number, total: number, errors: HotlistRowError[]): HotlistError {
  const first = errors[0];
  return new HotlistError(`${invalid} of ${total} hotlist items are invalid${first ? ` (item ${first.line}: ${first.message})` : ''}`, errors);
}

/** Sorts, removes duplicate entries, drops unused strings, indexes confusable keys and hashes. */
function finish(cols: Columns, now: number): Store {
  const n0 = cols.n;
  const order = sortOrder(cols.code, n0, cols.scratch);

  // The rows to keep, in final order, written over `order` (never ahead of the reading position):
  // sorted by plate; one plate's several entries by the bytes of the rest of their line, without
  // identical ones.
  const pick = order;
  let n = 0;
  for (let i = 0; i < n0; ) {
    const c = cols.code[order[i]!]!;
    let j = i + 1;
    while (j < n0 && cols.code[order[j]!] === c) j++;
    if (j === i + 1) {
      pick[n++] = order[i]!;
    } else {
      const run: Array<{ src: number; rest: Buffer }> = [];
      for (let k = i; k < j; k++) {
        const src = order[k]!;
        const f = cols.flags[src]!;
        const added = formatDate(cols.added[src]!, (f & F_ADDED_DATE) !== 0);
        const rest = `${cols.strings[cols.reason[src]!]}\t${cols.strings[cols.source[src]!]}\t${added}\t${expiresText(cols.until[src]!, f) ?? ''}`;
        run.push({ src, rest: Buffer.from(rest, 'utf8') });
      }
      run.sort((a, b) => Buffer.compare(a.rest, b.rest));
      run.forEach((r, k) => {
        if (k === 0 || !r.rest.equals(run[k - 1]!.rest)) pick[n++] = r.src;
      });
    }
    i = j;
  }

  // Everything the list keeps, in one block.
  const columns = listColumns(new Arena(n, LIST_LAYOUT));
  const { code, added, until, ckey, reason, source, cidx, flags } = columns;
  for (let k = 0; k < n; k++) code[k] = cols.code[pick[k]!]!;
  for (let k = 0; k < n; k++) added[k] = cols.added[pick[k]!]!;
  for (let k = 0; k < n; k++) until[k] = cols.until[pick[k]!]!;
  for (let k = 0; k < n; k++) flags[k] = cols.flags[pick[k]!]!;

  // Strings still in use, renumbered in order of first use.
  const remap = new Int32Array(cols.strings.length).fill(-1);
  const strings: string[] = [];
  const renumber = (from: Uint32Array, to: Uint32Array): void => {
    for (let k = 0; k < n; k++) {
      const id = from[pick[k]!]!;
      let r = remap[id]!;
      if (r < 0) {
        r = remap[id] = strings.length;
        strings.push(cols.strings[id]!);
      }
      to[k] = r;
    }
  };
  renumber(cols.reason, reason);
  renumber(cols.source, source);

  // `pick` (scratch.a or .b) is no longer needed: the second sort may reuse it.
  const keys = cols.scratch.keys;
  for (let i = 0; i < n; i++) keys[i] = confusableKey(code[i]!);
  cidx.set(sortOrder(keys, n, cols.scratch).subarray(0, n));
  for (let j = 0; j < n; j++) ckey[j] = keys[cidx[j]!]!;

  let expiredAtBuild = 0;
  for (let i = 0; i < n; i++) if (until[i]! < now) expiredAtBuild++;

  const store: Store = { n, ...columns, strings, version: EMPTY_SHA256, expiredAtBuild };
  store.version = canonicalDigest(store);
  return store;
}

function canonicalDigest(s: Store): string {
  const hash = createHash('sha256');
  const text = s.strings.map((t) => Buffer.from(t, 'utf8'));
  const date = dateBytes();
  // A line is at most 10 + 2 x 800 (200 characters of UTF-8) + 2 x 24 + 5 bytes.
  const buf = Buffer.allocUnsafe(1 << 16);
  const room = buf.length - 2048;
  let at = 0;
  // Fields are short: a loop beats a native copy call.
  const put = (b: Uint8Array, sep: number) => {
    for (let k = 0; k < b.length; k++) buf[at++] = b[k]!;
    buf[at++] = sep;
  };
  const TAB = 9;
  const NL = 10;
  let lastAdded = NaN;
  let lastAddedBytes: Uint8Array = buf;
  for (let i = 0; i < s.n; i++) {
    if (at > room) {
      hash.update(buf.subarray(0, at));
      at = 0;
    }
    at += plateBytes(s.code[i]!, buf, at);
    buf[at++] = TAB;
    put(text[s.reason[i]!]!, TAB);
    put(text[s.source[i]!]!, TAB);
    const f = s.flags[i]!;
    const added = s.added[i]!;
    if (added !== lastAdded || (f & F_ADDED_DATE) === 0) {
      lastAddedBytes = date(added, (f & F_ADDED_DATE) !== 0);
      lastAdded = f & F_ADDED_DATE ? added : NaN;
    }
    put(lastAddedBytes, TAB);
    const until = s.until[i]!;
    if (until !== Infinity) put(f & F_EXPIRES_DATE ? date(until - (DAY_MS - 1), true) : date(until, false), NL);
    else buf[at++] = NL;
  }
  hash.update(buf.subarray(0, at));
  return hash.digest('hex');
}
