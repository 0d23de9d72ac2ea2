// The hotlist benchmark's data, deterministic: entry i is a function of i alone, so the parent and
// the measurement children agree without passing the list around. 60% current Chilean plates LLLLNN
// (the 18 letters used since 2007), 40% older LLNNNN; each format is a fixed permutation of its
// whole space, so the plates are distinct and plates taken further along the permutation are
// guaranteed not to be on the list.
import { writeFileSync } from 'node:fs';
import type { HotlistEntryInput } from '../../src/anpr/hotlist/entry.js';
import { mulberry32 } from '../../tests/helpers/random.js';

/** Lookups timed per run. */
export const LOOKUPS = 200_000;
/** The time of every lookup: 2025-06-15T12:00:00Z (some entries have expired by then). */
export const NOW = Date.UTC(2025, 5, 15, 12);
export const DAY = 86_400_000;

const L4 = 'BCDFGHJKLPRSTVWXYZ';
const L2 = 'ABCDEFGHIJKLNPRSTUVWXYZ';
const SPACE_A = L4.length ** 4 * 100;
const SPACE_B = L2.length ** 2 * 10_000;
const MULT = 1_000_003; // prime, coprime with both space sizes

function plateA(k: number): string {
  let r = (MULT * k + 12_345) % SPACE_A;
  const nn = r % 100;
  r = (r - nn) / 100;
  let s = '';
  for (let j = 0; j < 4; j++) {
    s = L4[r % L4.length]! + s;
    r = Math.floor(r / L4.length);
  }
  return s + String(nn).padStart(2, '0');
}

function plateB(k: number): string {
  let r = (MULT * k + 54_321) % SPACE_B;
  const nnnn = r % 10_000;
  r = (r - nnnn) / 10_000;
  return L2[Math.floor(r / L2.length)]! + L2[r % L2.length]! + String(nnnn).padStart(4, '0');
}

/** Listed plate number i (0 <= i < n). */
export const listedPlate = (i: number): string => (i % 5 < 3 ? plateA(Math.floor(i / 5) * 3 + (i % 5)) : plateB(Math.floor(i / 5) * 2 + (i % 5) - 3));
/** A plate that is not on a list of n entries. */
const unlistedPlate = (n: number, j: number): string => (j % 5 < 3 ? plateA(Math.ceil(n * 0.6) + 10 + j) : plateB(Math.ceil(n * 0.4) + 10 + j));

type Weighted = ReadonlyArray<readonly [number, string]>;
const REASONS: Weighted = [
  [0.5, 'robo'],
  [0.15, 'robo con violencia'],
  [0.15, 'hurto'],
  [0.1, 'encargo por robo'],
  [0.05, 'apropiación indebida'],
  [0.05, 'robo, con intimidación'], // needs quoting in CSV
];
const SOURCES: Weighted = [
  [0.6, 'carabineros'],
  [0.25, 'pdi'],
  [0.1, 'fiscalia'],
  [0.05, 'municipal'],
];
function pickWeighted(choices: Weighted, x: number): string {
  for (const [w, v] of choices) if ((x -= w) < 0) return v;
  return choices.at(-1)![1];
}
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const ADDED_FROM = Date.UTC(2015, 0, 1);
const ADDED_DAYS = (Date.UTC(2025, 5, 30) - ADDED_FROM) / DAY;
const EXPIRES_FROM = Date.UTC(2024, 0, 1);
const EXPIRES_DAYS = (Date.UTC(2027, 11, 31) - EXPIRES_FROM) / DAY;

export function makeEntry(i: number): HotlistEntryInput & { expires: string | null } {
  const rnd = mulberry32(i * 2_654_435_761);
  return {
    plate: listedPlate(i),
    reason: pickWeighted(REASONS, rnd()),
    source: pickWeighted(SOURCES, rnd()),
    added: isoDay(ADDED_FROM + Math.floor(rnd() * ADDED_DAYS) * DAY),
    expires: rnd() < 0.25 ? isoDay(EXPIRES_FROM + Math.floor(rnd() * EXPIRES_DAYS) * DAY) : null,
  };
}

const csvCell = (s: string) => (/[",]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/** The first n entries as a hotlist CSV file. */
export function writeCsv(file: string, n: number): void {
  const parts = ['plate,reason,source,added,expires\n'];
  let chunk = '';
  for (let i = 0; i < n; i++) {
    const e = makeEntry(i);
    chunk += `${e.plate},${csvCell(e.reason)},${csvCell(e.source)},${e.added},${e.expires ?? ''}\n`;
    if (chunk.length > 1 << 20) {
      parts.push(chunk);
      chunk = '';
    }
  }
  parts.push(chunk);
  writeFileSync(file, parts.join(''));
}

// Confusable partners used to make "misread" queries (within LOOKALIKE_CLASSES of src/anpr/plate-text.ts).
const PARTNER: Record<string, string> = {
  B: '8',
  8: 'B',
  S: '5',
  5: 'S',
  Z: '2',
  2: 'Z',
  G: '6',
  6: 'G',
  T: '7',
  7: 'T',
  D: '0',
  0: 'O',
  1: 'I',
  4: 'A',
  A: '4',
  O: '0',
  I: '1',
  Q: '0',
};

export type QueryKind = 'hit' | 'confusable' | 'miss';

/**
 * LOOKUPS queries, one per line as "KIND PLATE", a third each: plates on the list, misreads of
 * listed plates (1-2 confusable characters), plates not on the list.
 */
export function writeQueries(file: string, n: number): void {
  const rnd = mulberry32(424_242);
  const lines: string[] = [];
  for (let q = 0; q < LOOKUPS; q++) {
    const kind = q % 3;
    if (kind === 0) lines.push(`hit ${listedPlate(Math.floor(rnd() * n))}`);
    else if (kind === 1) {
      const plate = listedPlate(Math.floor(rnd() * n)).split('');
      const spots = plate.map((c, k) => (PARTNER[c] ? k : -1)).filter((k) => k >= 0);
      const changes = Math.min(spots.length, rnd() < 0.5 ? 1 : 2);
      for (let c = 0; c < changes; c++) {
        const k = spots.splice(Math.floor(rnd() * spots.length), 1)[0]!;
        plate[k] = PARTNER[plate[k]!]!;
      }
      lines.push(`confusable ${plate.join('')}`);
    } else lines.push(`miss ${unlistedPlate(n, Math.floor(rnd() * n))}`);
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}
