/**
 * The hotlist: plates whose vehicles are reported stolen ("encargo por robo") or otherwise wanted,
 * matched against every plate a reader sees.
 *
 * An entry is { plate, reason, source, added, expires }:
 *
 *   plate    letters and digits; case, spaces, hyphens, dots and the middle dot of Chilean plates
 *            ("BB·CL·12") are ignored, any other character makes the entry invalid; 1 to 10
 *            characters once normalised ("BBCL12")
 *   reason   why the plate is listed ("robo", "encargo por robo con violencia"), 1 to 200 characters
 *   source   who listed it ("carabineros", "pdi", "municipal"), 1 to 200 characters
 *            (reason and source are trimmed and may not contain control characters)
 *   added    when it was listed: a date "2025-03-10" or a time with its offset "2025-03-10T14:05:00-03:00"
 *   expires  when the entry stops matching, in the same forms, or null/empty for never. A date means
 *            the end of that day in UTC (the entry still matches on 2025-03-10T23:59:59.999Z); give a
 *            time with its offset when the hour matters.
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
import { LOOKALIKE_CLASSES } from './plate-text.js';

export type HotlistEntryInput = {
  plate: string;
  reason: string;
  source: string;
  added: string;
  expires?: string | null;
};

/** An entry as stored: plate normalised, dates in canonical form. */
export type HotlistEntry = {
  plate: string;
  reason: string;
  source: string;
  added: string;
  expires: string | null;
};

export type HotlistMatch = {
  entry: HotlistEntry;
  kind: 'exact' | 'confusable';
  /** Positions where the read and the listed plate differ (0 for an exact match). */
  distance: number;
};

/** A row that could not be used; `line` is 1-based (for fromEntries/applyDelta: the item's position). */
export type HotlistRowError = { line: number; message: string };

export type HotlistParseResult = {
  /** The valid rows. If `errors` is not empty the file as a whole should be refused. */
  entries: HotlistEntryInput[];
  /** At most MAX_REPORTED_ERRORS, in file order. */
  errors: HotlistRowError[];
  /** Number of rows with errors (can exceed errors.length). */
  invalidRows: number;
};

export type HotlistFormat = 'csv' | 'json';

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

export const MAX_PLATE_LENGTH = 10;
export const MAX_TEXT_LENGTH = 200;
/** Largest number of differing positions for a confusable match. */
export const MAX_CONFUSABLE_DISTANCE = 2;
export const MAX_REPORTED_ERRORS = 1000;
export const CSV_COLUMNS = ['plate', 'reason', 'source', 'added', 'expires'] as const;

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

// ---------------------------------------------------------------------------------------------
// Plates as numbers: each character is a base-37 digit (0 = past the end, '0'..'9' = 1..10,
// 'A'..'Z' = 11..36), most significant first, padded to ten positions. 37^10 < 2^53, so every code
// is an exact double, and numeric order is the byte order of the plates.

const BASE = 37;
const POW: number[] = Array.from({ length: MAX_PLATE_LENGTH + 1 }, (_, i) => BASE ** i);
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const SEPARATOR = -2;
const INVALID = -1;
/** Digit of an ASCII character, SEPARATOR or INVALID. */
const ASCII_DIGIT = new Int8Array(128).fill(INVALID);
for (let i = 0; i < ALPHABET.length; i++) {
  ASCII_DIGIT[ALPHABET.charCodeAt(i)] = i + 1;
  ASCII_DIGIT[ALPHABET.toLowerCase().charCodeAt(i)] = i + 1;
}
for (const ch of ' -.') ASCII_DIGIT[ch.charCodeAt(0)] = SEPARATOR;
/** Non-ASCII characters ignored in plates: no-break space, middle dot, bullet, hyphens and dashes. */
const WIDE_SEPARATORS = new Set([0x00a0, 0x00b7, 0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2022, 0x2212]);

/** Class representative of each digit value (identity outside the confusable classes). */
const CLASS_OF = new Uint8Array(BASE).map((_, i) => i);
for (const cls of LOOKALIKE_CLASSES) {
  const rep = ALPHABET.indexOf(cls[0]!) + 1;
  for (const ch of cls) CLASS_OF[ALPHABET.indexOf(ch) + 1] = rep;
}

/** The plate's code, or -1 when it is empty, too long or holds a character that is not allowed. */
function encodePlate(text: string): number {
  let code = 0;
  let len = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const d = c < 128 ? ASCII_DIGIT[c]! : WIDE_SEPARATORS.has(c) ? SEPARATOR : INVALID;
    if (d === SEPARATOR) continue;
    if (d === INVALID || ++len > MAX_PLATE_LENGTH) return -1;
    code = code * BASE + d;
  }
  return len === 0 ? -1 : code * POW[MAX_PLATE_LENGTH - len]!;
}

// Codes are taken apart as two halves of five positions (each below 2^27), so that the digit
// arithmetic stays in small integers.
const HALF = BASE ** 5;
const splitLo = (code: number): number => code % HALF;

/** Writes the ASCII bytes of the plate into `out` at `at`; returns the number written. */
function plateBytes(code: number, out: Uint8Array, at: number): number {
  const lo = splitLo(code);
  let n = halfBytes((code - lo) / HALF, out, at);
  n += halfBytes(lo, out, at + n);
  return n;
}

function halfBytes(x: number, out: Uint8Array, at: number): number {
  let n = 0;
  for (let p = HALF / BASE; p >= 1; p /= BASE) {
    const d = (x / p) | 0;
    x -= d * p;
    if (d === 0) return n;
    out[at + n++] = ALPHABET_BYTES[d - 1]!;
  }
  return n;
}

const ALPHABET_BYTES = Buffer.from(ALPHABET, 'latin1');

function decodePlate(code: number): string {
  const lo = splitLo(code);
  return halfText((code - lo) / HALF) + halfText(lo);
}

function halfText(x: number): string {
  let out = '';
  for (let p = HALF / BASE; p >= 1; p /= BASE) {
    const d = (x / p) | 0;
    x -= d * p;
    if (d === 0) break;
    out += ALPHABET[d - 1]!;
  }
  return out;
}

/** Confusable key of every group of 3 (and 2) positions, so that a half takes two look-ups. */
const B2 = BASE * BASE;
const KEY3 = new Uint16Array(B2 * BASE).map((_, g) => CLASS_OF[(g / B2) | 0]! * B2 + CLASS_OF[((g / BASE) | 0) % BASE]! * BASE + CLASS_OF[g % BASE]!);
const KEY2 = KEY3.subarray(0, B2);

function confusableHalf(x: number): number {
  const g = (x / B2) | 0;
  return KEY3[g]! * B2 + KEY2[x - g * B2]!;
}

function confusableKey(code: number): number {
  const lo = splitLo(code);
  return confusableHalf((code - lo) / HALF) * HALF + confusableHalf(lo);
}

function halfApart(a: number, b: number): number {
  let n = 0;
  for (let p = HALF / BASE; p >= 1; p /= BASE) {
    const da = (a / p) | 0;
    const db = (b / p) | 0;
    if (da !== db) n++;
    a -= da * p;
    b -= db * p;
  }
  return n;
}

/** Positions at which two codes differ. */
function positionsApart(a: number, b: number): number {
  const la = splitLo(a);
  const lb = splitLo(b);
  return halfApart((a - la) / HALF, (b - lb) / HALF) + halfApart(la, lb);
}

/**
 * "bb-cl 12" → "BBCL12"; null when the text is not a plate a list may hold (see the module comment).
 * Stricter than normalisePlateText (plate-text.ts), which normalises readings.
 */
export function normalisePlate(text: string): string | null {
  const code = encodePlate(text);
  return code < 0 ? null : decodePlate(code);
}

/** The plate with every character replaced by its confusable class representative ("BBCL1Z" → "88CL12"). */
export function confusableForm(text: string): string | null {
  const code = encodePlate(text);
  return code < 0 ? null : decodePlate(confusableKey(code));
}

// ---------------------------------------------------------------------------------------------
// Dates

const DAY_MS = 86_400_000;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/;

type ParsedDate = { ms: number; dateOnly: boolean };
const dateCache = new Map<string, ParsedDate | null>();

function parseDate(text: string): ParsedDate | null {
  const hit = dateCache.get(text);
  if (hit !== undefined) return hit;
  const parsed = parseDateUncached(text);
  if (dateCache.size >= 50_000) dateCache.clear();
  dateCache.set(ownCopy(text), parsed);
  return parsed;
}

function parseDateUncached(text: string): ParsedDate | null {
  let m = DATE_ONLY.exec(text);
  if (m) {
    const ms = utc(Number(m[1]), Number(m[2]), Number(m[3]), 0, 0, 0);
    return ms === null ? null : { ms, dateOnly: true };
  }
  m = DATE_TIME.exec(text);
  if (!m) return null;
  const base = utc(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
  if (base === null) return null;
  const frac = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0; // milliseconds; finer digits are dropped
  const zone = m[8]!;
  let offset = 0;
  if (zone !== 'Z') {
    const h = Number(zone.slice(1, 3));
    const min = Number(zone.slice(4, 6));
    if (h > 23 || min > 59) return null;
    offset = (zone[0] === '-' ? -1 : 1) * (h * 60 + min) * 60_000;
  }
  return { ms: base + frac - offset, dateOnly: false };
}

function utc(y: number, mo: number, d: number, h: number, mi: number, s: number): number | null {
  if (y < 1900 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  // Rejects 2025-02-30 and the like, which Date.UTC would roll over.
  return new Date(ms).getUTCDate() === d ? ms : null;
}

/** A copy of a string that may be a slice of a large text: kept, the slice would keep all of the text alive. */
function ownCopy(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}

const dayText = new Map<number, string>();
function formatDate(ms: number, dateOnly: boolean): string {
  if (!dateOnly) return new Date(ms).toISOString();
  let text = dayText.get(ms);
  if (text === undefined) {
    text = new Date(ms).toISOString().slice(0, 10);
    if (dayText.size >= 50_000) dayText.clear();
    dayText.set(ms, text);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Columns: entries being collected, as parallel growable typed arrays.

const F_ADDED_DATE = 1;
const F_EXPIRES_DATE = 2;
const BAD_TEXT = /[\u0000-\u001f\u007f]|\p{Surrogate}/u;

/**
 * Typed arrays of one length carved out of a single ArrayBuffer. A list of a million entries
 * needs a few dozen arrays of 4-8 MB while it is built; allocated one by one, the C allocator
 * keeps the freed ones for later (tens of MB of RSS that never come back), while one large block
 * is returned to the system whole when it is freed.
 */
class Arena {
  readonly #buf: ArrayBuffer;
  #at = 0;

  /** Carves `buffer` when given (it must have exactly the size of the layout), else a new block. */
  constructor(
    readonly length: number,
    layout: { f64: number; u32: number; u8: number },
    buffer?: ArrayBuffer,
  ) {
    const bytes = length * (8 * layout.f64 + 4 * layout.u32 + layout.u8);
    if (buffer && buffer.byteLength !== bytes) throw new RangeError(`a block of ${length} entries has ${bytes} bytes, not ${buffer.byteLength}`);
    this.#buf = buffer ?? new ArrayBuffer(bytes);
  }

  // Take every Float64Array first, then Uint32Array, then Uint8Array: offsets stay aligned.
  f64(): Float64Array {
    const a = new Float64Array(this.#buf, this.#at, this.length);
    this.#at += a.byteLength;
    return a;
  }

  u32(): Uint32Array {
    const a = new Uint32Array(this.#buf, this.#at, this.length);
    this.#at += a.byteLength;
    return a;
  }

  u8(): Uint8Array {
    const a = new Uint8Array(this.#buf, this.#at, this.length);
    this.#at += a.byteLength;
    return a;
  }
}

/** Work space for sorting and indexing, allocated with the columns. */
type Scratch = { keys: Float64Array; lo: Uint32Array; hi: Uint32Array; a: Uint32Array; b: Uint32Array };

class Columns {
  n = 0;
  code!: Float64Array;
  reason!: Uint32Array;
  source!: Uint32Array;
  added!: Float64Array;
  /** Last instant (ms) at which the entry still matches; Infinity when it never expires. */
  until!: Float64Array;
  flags!: Uint8Array;
  scratch!: Scratch;
  readonly strings: string[];
  readonly ids: Map<string, number>;

  constructor(capacity: number, strings: string[] = []) {
    this.#allocate(Math.max(16, capacity));
    this.strings = strings;
    this.ids = new Map(strings.map((s, i) => [s, i]));
  }

  get capacity(): number {
    return this.code.length;
  }

  #allocate(cap: number): void {
    const arena = new Arena(cap, { f64: 4, u32: 6, u8: 1 });
    this.code = arena.f64();
    this.added = arena.f64();
    this.until = arena.f64();
    const keys = arena.f64();
    this.reason = arena.u32();
    this.source = arena.u32();
    this.scratch = { keys, lo: arena.u32(), hi: arena.u32(), a: arena.u32(), b: arena.u32() };
    this.flags = arena.u8();
  }

  intern(text: string): number {
    let id = this.ids.get(text);
    if (id === undefined) {
      const own = ownCopy(text);
      id = this.strings.length;
      this.strings.push(own);
      this.ids.set(own, id);
    }
    return id;
  }

  reserve(extra: number): void {
    const need = this.n + extra;
    if (need <= this.capacity) return;
    const { n, code, reason, source, added, until, flags } = this;
    this.#allocate(Math.max(need, this.capacity * 2));
    this.code.set(code.subarray(0, n));
    this.reason.set(reason.subarray(0, n));
    this.source.set(source.subarray(0, n));
    this.added.set(added.subarray(0, n));
    this.until.set(until.subarray(0, n));
    this.flags.set(flags.subarray(0, n));
  }

  /** Validates one entry and appends it; returns the problem instead when it is invalid. */
  add(plate: unknown, reason: unknown, source: unknown, added: unknown, expires: unknown): string | undefined {
    const v = SCRATCH;
    const problem = validate(plate, reason, source, added, expires, v);
    if (problem !== undefined) return problem;
    this.reserve(1);
    const i = this.n++;
    this.code[i] = v.code;
    this.reason[i] = this.intern(v.reason);
    this.source[i] = this.intern(v.source);
    this.added[i] = v.added;
    this.until[i] = v.until;
    this.flags[i] = v.flags;
    // The scratch record lives on: it must not keep a substring (and so a whole file) alive.
    v.reason = v.source = '';
    return undefined;
  }
}

type Validated = { code: number; reason: string; source: string; added: number; until: number; flags: number };
const SCRATCH: Validated = { code: 0, reason: '', source: '', added: 0, until: 0, flags: 0 };

/** Checks one entry's fields into `out`; returns the problem instead when it is invalid. */
function validate(plate: unknown, reason: unknown, source: unknown, added: unknown, expires: unknown, out: Validated): string | undefined {
  if (typeof plate !== 'string') return 'plate must be a string';
  const code = encodePlate(plate);
  if (code < 0) return `plate ${JSON.stringify(plate.slice(0, 40))} is not 1 to ${MAX_PLATE_LENGTH} letters and digits`;
  const reasonText = checkText('reason', reason);
  if (typeof reasonText !== 'object') return reasonText;
  const sourceText = checkText('source', source);
  if (typeof sourceText !== 'object') return sourceText;
  if (typeof added !== 'string') return 'added must be a date string';
  const a = parseDate(added.trim());
  if (!a) return `added ${JSON.stringify(added.slice(0, 40))} is not a date (YYYY-MM-DD) or a time with offset (YYYY-MM-DDTHH:MM:SSZ)`;
  let until = Infinity;
  let flags = a.dateOnly ? F_ADDED_DATE : 0;
  const exp = typeof expires === 'string' ? expires.trim() : expires;
  if (exp !== null && exp !== undefined && exp !== '') {
    if (typeof exp !== 'string') return 'expires must be a date string or null';
    const e = parseDate(exp);
    if (!e) return `expires ${JSON.stringify(exp.slice(0, 40))} is not a date (YYYY-MM-DD) or a time with offset, nor empty`;
    until = e.dateOnly ? e.ms + DAY_MS - 1 : e.ms;
    if (e.dateOnly) flags |= F_EXPIRES_DATE;
  }
  out.code = code;
  out.reason = reasonText[0];
  out.source = sourceText[0];
  out.added = a.ms;
  out.until = until;
  out.flags = flags;
  return undefined;
}

/** [trimmed text] or the problem. */
function checkText(name: string, value: unknown): [string] | string {
  if (typeof value !== 'string') return `${name} must be a string`;
  const text = value.trim();
  if (text === '') return `${name} is empty`;
  if (text.length > MAX_TEXT_LENGTH) return `${name} is longer than ${MAX_TEXT_LENGTH} characters`;
  if (BAD_TEXT.test(text)) return `${name} contains a control character or an unpaired surrogate`;
  return [text];
}

function expiresText(until: number, flags: number): string | null {
  if (until === Infinity) return null;
  return flags & F_EXPIRES_DATE ? formatDate(until - (DAY_MS - 1), true) : formatDate(until, false);
}

/**
 * Stable LSD radix sort of the first n integer keys (below 2^53): the order in which to take them,
 * in scratch.a or scratch.b (4 passes of 13-14 bits; a pass whose digit is the same for every key
 * is skipped).
 */
function sortOrder(keys: Float64Array, n: number, scratch: Scratch): Uint32Array {
  const { lo, hi } = scratch;
  const SPLIT = 2 ** 26;
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    const h = Math.floor(k / SPLIT);
    hi[i] = h;
    lo[i] = k - h * SPLIT;
  }
  let order = scratch.a;
  let next = scratch.b;
  for (let i = 0; i < n; i++) order[i] = i;
  // Already in order (a list written by toCsv, a cache file): nothing to do.
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = keys[i - 1]! <= keys[i]!;
  if (sorted) return order;
  const counts = new Uint32Array(1 << 14);
  const passes: Array<[Uint32Array, number, number]> = [
    [lo, 0, 0x1fff],
    [lo, 13, 0x1fff],
    [hi, 0, 0x3fff],
    [hi, 14, 0x1fff],
  ];
  for (const [src, shift, mask] of passes) {
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(src[i]! >>> shift) & mask]!++;
    if (n > 0 && counts[(src[0]! >>> shift) & mask] === n) continue;
    let sum = 0;
    for (let d = 0; d <= mask; d++) {
      const c = counts[d]!;
      counts[d] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const idx = order[i]!;
      const d = (src[idx]! >>> shift) & mask;
      next[counts[d]!++] = idx;
    }
    [order, next] = [next, order];
  }
  return order;
}

function lowerBound(sorted: Float64Array, n: number, key: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------

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
 * threads (see hotlist-worker.ts); lists are built with fromEntries, parse and applyDelta.
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
      const problem =
        typeof e === 'object' && e !== null ? cols.add(e.plate, e.reason, e.source, e.added, e.expires) : 'entry is not an object';
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
    if (!Number.isSafeInteger(expiredAtBuild) || expiredAtBuild < 0 || expiredAtBuild > size) throw new RangeError(`not a count of expired entries: ${expiredAtBuild}`);
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
    remove.forEach((plate, k) => {
      const code = typeof plate === 'string' ? encodePlate(plate) : -1;
      if (code >= 0) return void gone.add(code);
      invalid++;
      if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line: k + 1, message: `remove: ${JSON.stringify(String(plate).slice(0, 40))} is not a plate` });
    });
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
        const rest = `${cols.strings[cols.reason[src]!]}\t${cols.strings[cols.source[src]!]}\t${formatDate(cols.added[src]!, (f & F_ADDED_DATE) !== 0)}\t${expiresText(cols.until[src]!, f) ?? ''}`;
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

/** formatDate as bytes: whole days kept by day number (a list has few distinct ones), times formatted each time. */
function dateBytes(): (ms: number, dateOnly: boolean) => Buffer {
  const days = new Map<number, Buffer>();
  return (ms, dateOnly) => {
    if (!dateOnly) return Buffer.from(formatDate(ms, false), 'latin1');
    let b = days.get(ms);
    if (!b) days.set(ms, (b = Buffer.from(formatDate(ms, true), 'latin1')));
    return b;
  };
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

// ---------------------------------------------------------------------------------------------
// Files

/**
 * CSV with a header row naming the columns plate, reason, source, added, expires (any order, any
 * case; other columns are ignored). RFC 4180 quoting ("a, b" and "say ""x"""), quoted fields may
 * span lines; UTF-8 BOM, CRLF or LF, blank lines skipped, unquoted fields trimmed. Errors carry the
 * line on which the row starts.
 */
export function parseHotlistCsv(text: string): HotlistParseResult {
  const scratch: Validated = { ...SCRATCH };
  const entries: HotlistEntryInput[] = [];
  const { errors, invalidRows } = scanCsv(text, (p, r, s, a, e) => {
    const problem = validate(p, r, s, a, e, scratch);
    if (problem === undefined) entries.push({ plate: p as string, reason: r as string, source: s as string, added: a as string, expires: e === '' ? null : (e as string) });
    return problem;
  });
  return { entries, errors, invalidRows };
}

/** Receives the five fields of one row; returns the problem when the row is invalid. */
type RowSink = (plate: unknown, reason: unknown, source: unknown, added: unknown, expires: unknown) => string | undefined;

type ErrorLog = { errors: HotlistRowError[]; invalidRows: number; rows: number };

function errorLog(): ErrorLog & { fail(line: number, message: string): void } {
  return {
    errors: [],
    invalidRows: 0,
    rows: 0,
    fail(line, message) {
      this.invalidRows++;
      if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push({ line, message });
    },
  };
}

function scanCsv(text: string, sink: RowSink): ErrorLog {
  const log = errorLog();
  const len = text.length;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let header: number[] | undefined; // field index of each CSV_COLUMNS name
  let width = 0;
  let nextQuote = -1;
  const reuse: string[] = [];

  while (pos < len) {
    const startLine = line;
    const nl = text.indexOf('\n', pos);
    const lineEnd = nl < 0 ? len : nl;
    let fields: string[];
    if (nextQuote < pos) nextQuote = text.indexOf('"', pos) >>> 0; // -1 becomes 2^32 - 1: none
    if (nextQuote > lineEnd) {
      let end = lineEnd;
      if (end > pos && text.charCodeAt(end - 1) === 13) end--;
      const start = pos;
      pos = lineEnd + 1;
      line++;
      fields = splitLine(text, start, end, reuse);
      if (fields.length === 1 && fields[0] === '') continue; // blank line
    } else {
      const r = readQuotedRecord(text, pos);
      if ('error' in r) {
        log.fail(startLine + r.lineOffset, r.error);
        break; // nothing after a broken quote can be trusted
      }
      fields = r.fields;
      pos = r.next;
      line += r.lines;
    }

    if (!header) {
      const names = fields.map((f) => f.toLowerCase());
      const missing = CSV_COLUMNS.filter((c) => !names.includes(c));
      const doubled = CSV_COLUMNS.filter((c) => names.indexOf(c) !== names.lastIndexOf(c));
      if (missing.length || doubled.length) {
        log.fail(startLine, `header must name the columns ${CSV_COLUMNS.join(',')}${missing.length ? `; missing ${missing.join(', ')}` : ''}${doubled.length ? `; repeated ${doubled.join(', ')}` : ''}`);
        break;
      }
      header = CSV_COLUMNS.map((c) => names.indexOf(c));
      fields = fields.slice(); // the header outlives `reuse`
      width = fields.length;
      continue;
    }
    log.rows++;
    if (fields.length !== width) {
      log.fail(startLine, `expected ${width} fields, found ${fields.length}`);
      continue;
    }
    const problem = sink(fields[header[0]!], fields[header[1]!], fields[header[2]!], fields[header[3]!], fields[header[4]!]);
    if (problem !== undefined) log.fail(startLine, problem);
  }
  if (!header && log.invalidRows === 0) log.fail(line, 'no header row (plate,reason,source,added,expires)');
  return log;
}

/** The comma-separated, trimmed fields of text[start, end) (which holds no quote), into `out`. */
function splitLine(text: string, start: number, end: number, out: string[]): string[] {
  out.length = 0;
  let from = start;
  for (;;) {
    let to = text.indexOf(',', from);
    if (to < 0 || to > end) to = end;
    let a = from;
    let b = to;
    while (a < b && text.charCodeAt(a) <= 32) a++;
    while (b > a && text.charCodeAt(b - 1) <= 32) b--;
    out.push(text.slice(a, b));
    if (to === end) return out;
    from = to + 1;
  }
}

type QuotedRecord = { fields: string[]; next: number; lines: number } | { error: string; lineOffset: number };

/** One record that contains a quote, from `pos` to the end of its (last) line. */
function readQuotedRecord(text: string, pos: number): QuotedRecord {
  const fields: string[] = [];
  let lines = 0;
  let i = pos;
  const len = text.length;
  for (;;) {
    // Start of a field: skip blanks, then either a quoted or a plain field.
    while (i < len && (text[i] === ' ' || text[i] === '\t')) i++;
    let value: string;
    if (text[i] === '"') {
      const opened = lines;
      let out = '';
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return { error: 'quoted field is never closed', lineOffset: opened };
        const piece = text.slice(i, q);
        for (let k = piece.indexOf('\n'); k >= 0; k = piece.indexOf('\n', k + 1)) lines++;
        out += piece;
        if (text[q + 1] === '"') {
          out += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      while (i < len && (text[i] === ' ' || text[i] === '\t')) i++;
      if (i < len && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && (i + 1 === len || text[i + 1] === '\n'))) {
        return { error: 'unexpected character after a closing quote', lineOffset: lines };
      }
      value = out;
    } else {
      let j = i;
      while (j < len && text[j] !== ',' && text[j] !== '\n') {
        if (text[j] === '"') return { error: 'quote inside an unquoted field (quote the whole field and double the quote)', lineOffset: lines };
        j++;
      }
      value = text.slice(i, j).trim();
      i = j;
    }
    fields.push(value);
    if (text[i] === '\r') i++;
    if (i >= len) return { fields, next: len, lines: lines + 1 };
    if (text[i] === '\n') return { fields, next: i + 1, lines: lines + 1 };
    i++; // the comma
  }
}

/**
 * JSON: an array of entry objects, or { "entries": [...] } (other members ignored; entry members
 * other than the five fields are ignored too). Errors carry the line on which the element starts.
 */
export function parseHotlistJson(text: string): HotlistParseResult {
  const scratch: Validated = { ...SCRATCH };
  const entries: HotlistEntryInput[] = [];
  const { errors, invalidRows } = scanJson(text, (p, r, s, a, e) => {
    const problem = validate(p, r, s, a, e, scratch);
    if (problem === undefined) entries.push({ plate: p as string, reason: r as string, source: s as string, added: a as string, expires: (e as string | null | undefined) ?? null });
    return problem;
  });
  return { entries, errors, invalidRows };
}

function scanJson(text: string, sink: RowSink, reserve?: (rows: number) => void): ErrorLog {
  const log = errorLog();
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message);
    log.fail(at ? lineAt(body, Number(at[1])) : 1, `not valid JSON: ${(err as Error).message}`);
    return log;
  }
  const wrapped = !Array.isArray(doc);
  const list = Array.isArray(doc) ? doc : isRecord(doc) && Array.isArray(doc.entries) ? (doc.entries as unknown[]) : undefined;
  if (!list) {
    log.fail(1, 'expected an array of entries or an object {"entries": [...]}');
    return log;
  }
  const bad: Array<{ index: number; message: string }> = [];
  log.rows = list.length;
  reserve?.(list.length);
  list.forEach((item, index) => {
    const problem = isRecord(item) ? sink(item.plate, item.reason, item.source, item.added, item.expires) : 'entry is not an object';
    if (problem === undefined) return;
    log.invalidRows++;
    if (bad.length < MAX_REPORTED_ERRORS) bad.push({ index, message: problem });
  });
  if (bad.length) {
    const lines = elementLines(body, wrapped);
    log.errors = bad.map((b) => ({ line: lines[b.index] ?? 1, message: `entry ${b.index + 1}: ${b.message}` }));
  }
  return log;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let k = text.indexOf('\n'); k >= 0 && k < offset; k = text.indexOf('\n', k + 1)) line++;
  return line;
}

/**
 * The line on which each element of the entries array starts, for text JSON.parse accepted: the
 * top-level array, or the array under the (last) top-level "entries" key.
 */
function elementLines(text: string, wrapped: boolean): number[] {
  const OBJECT = 0;
  const ARRAY = 1;
  const TARGET = 2;
  const stack: number[] = [];
  let lines: number[] = [];
  let line = 1;
  let expectElement = false;
  let expectKey = false;
  let lastKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      continue;
    }
    if (c === 32 || c === 9 || c === 13 || c === 58 /* : */) continue;
    const top = stack[stack.length - 1];
    const startsValue = c !== 44 && c !== 93 && c !== 125; // not , ] }
    if (startsValue && expectElement && top === TARGET) {
      lines.push(line);
      expectElement = false;
    }
    if (c === 34 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
      if (expectKey && stack.length === 1 && top === OBJECT) {
        lastKey = JSON.parse(text.slice(i, j + 1)) as string;
        expectKey = false;
      }
      i = j;
    } else if (c === 123 /* { */) {
      stack.push(OBJECT);
      expectKey = stack.length === 1;
    } else if (c === 91 /* [ */) {
      const target = wrapped ? stack.length === 1 && top === OBJECT && lastKey === 'entries' : stack.length === 0;
      stack.push(target ? TARGET : ARRAY);
      if (target) {
        lines = [];
        expectElement = true;
      }
    } else if (c === 93 || c === 125) {
      stack.pop();
      expectElement = false;
    } else if (c === 44 /* , */) {
      if (top === TARGET) expectElement = true;
      if (stack.length === 1 && top === OBJECT) expectKey = true;
    }
  }
  return lines;
}
