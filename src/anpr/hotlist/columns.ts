/**
 * Entries being collected, as parallel growable typed arrays, and the sorting and searching the
 * list does over them.
 */
import { SCRATCH, validate } from './entry.js';
import { ownCopy } from './own-copy.js';

/**
 * Typed arrays of one length carved out of a single ArrayBuffer. A list of a million entries
 * needs a few dozen arrays of 4-8 MB while it is built; allocated one by one, the C allocator
 * keeps the freed ones for later (tens of MB of RSS that never come back), while one large block
 * is returned to the system whole when it is freed.
 */
export class Arena {
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
export type Scratch = { keys: Float64Array; lo: Uint32Array; hi: Uint32Array; a: Uint32Array; b: Uint32Array };

export class Columns {
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

/**
 * Stable LSD radix sort of the first n integer keys (below 2^53): the order in which to take them,
 * in scratch.a or scratch.b (4 passes of 13-14 bits; a pass whose digit is the same for every key
 * is skipped).
 */
export function sortOrder(keys: Float64Array, n: number, scratch: Scratch): Uint32Array {
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

export function lowerBound(sorted: Float64Array, n: number, key: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
