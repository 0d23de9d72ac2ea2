// Scores a plate reader on generated busy scenes (bench/lib/busy-scenes.ts): top-1 per kind,
// recall over every plate, false plates in frames without one, and the misses to look at.
//
// Grammars, as a camera would be configured:
// - busy and multi scenes hold the photos' own plates: eu or br, as in the main benchmark;
// - two-line scenes (Chilean and Argentine motorcycles, Chilean trailers) and foreign scenes: a
//   Chilean gantry's configuration, cl with ar, bo, pe and br as secondary grammars
//   (`anpr.secondary_grammars`);
// - `generic` beside them for busy and foreign scenes: with no format to lean on, the ranking
//   alone must prefer the plate over the words, numbers and overlays around it.
// Top-1 counts O and 0 as the same on European plates (as the main benchmark does). A plate counts
// as found (recall) when a ranked reading at or above the daemon's default min_confidence (0.5)
// has its text; a false plate is such a reading, with cl, in a frame with no plate.
import type { ReadResult } from '../../src/anpr/engine.js';
import { getGrammar, grammarFor } from '../../src/anpr/grammar.js';
import type { PlateGrammar } from '../../src/anpr/grammars/types.js';
import { type RankedPlate, rankWithGrammar } from '../../src/anpr/pipeline.js';
import type { BusyScene, TruthPlate } from './busy-scenes.js';
import { round } from './stats.js';

export const MIN_CONFIDENCE = 0.5;
export const GANTRY_SECONDARIES = ['ar', 'bo', 'pe', 'br'] as const;

const normalise = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '');
const o0 = (s: string) => s.replace(/O/g, '0');
const same = (truth: TruthPlate, text: string) => (truth.country === 'EU' ? o0(normalise(text)) === o0(truth.text) : normalise(text) === truth.text);

const gantry = grammarFor('cl', [...GANTRY_SECONDARIES]);
const generic = getGrammar('generic');

/** The grammar a camera that sees this plate would be configured with (see above). */
export function grammarForTruth(kind: BusyScene['kind'], truth: TruthPlate): PlateGrammar {
  if (kind === 'foreign' || kind === 'two_line') return gantry;
  if (truth.country === 'EU') return getGrammar('eu');
  if (truth.country === 'BR') return getGrammar('br');
  return getGrammar('cl');
}

export interface BusyMiss {
  id: string;
  kind: string;
  truth: string;
  /** The first three ranked readings. */
  got: string[];
}

export interface BusyScore {
  scenes: number;
  failed: number;
  busy: number | null;
  twoLine: number | null;
  foreign: number | null;
  busyGeneric: number | null;
  foreignGeneric: number | null;
  recall: number | null;
  plates: number;
  negatives: number;
  falsePer100: number | null;
  falsePer100Generic: number | null;
  misses: BusyMiss[];
}

export type Reader = (scene: BusyScene) => Promise<Pick<ReadResult, 'plates'>>;

export async function scoreBusy(read: Reader, scenes: readonly BusyScene[], progress?: (done: number) => void): Promise<BusyScore> {
  const top1: Record<string, [number, number]> = { busy: [0, 0], two_line: [0, 0], foreign: [0, 0], busy_generic: [0, 0], foreign_generic: [0, 0] };
  let plates = 0;
  let found = 0;
  let negatives = 0;
  const falsePlates = { cl: 0, generic: 0 };
  let failed = 0;
  const misses: BusyMiss[] = [];
  const confident = (ranked: RankedPlate[]) => ranked.filter((p) => p.confidence >= MIN_CONFIDENCE);
  for (const [i, scene] of scenes.entries()) {
    let r: Pick<ReadResult, 'plates'>;
    try {
      r = await read(scene);
    } catch {
      failed++;
      r = { plates: [] };
    }
    if (scene.kind === 'negative') {
      negatives++;
      falsePlates.cl += confident(rankWithGrammar(r.plates, getGrammar('cl'))).length;
      falsePlates.generic += confident(rankWithGrammar(r.plates, generic)).length;
    }
    for (const truth of scene.plates) {
      const ranked = rankWithGrammar(r.plates, grammarForTruth(scene.kind, truth));
      plates++;
      if (confident(ranked).some((p) => same(truth, p.text))) found++;
      if (scene.plates.length !== 1) continue;
      const t = top1[scene.kind];
      if (t) {
        t[1]++;
        if (same(truth, ranked[0]?.text ?? '')) t[0]++;
        else
          misses.push({
            id: scene.id,
            kind: scene.kind,
            truth: truth.text,
            got: ranked.slice(0, 3).map((p) => `${p.text}${p.country ? `/${p.country}` : ''} ${p.confidence.toFixed(2)}`),
          });
      }
      const g = top1[`${scene.kind}_generic`];
      if (g) {
        const rankedGeneric = rankWithGrammar(r.plates, generic);
        g[1]++;
        if (same(truth, rankedGeneric[0]?.text ?? '')) g[0]++;
        else
          misses.push({
            id: scene.id,
            kind: `${scene.kind} (generic)`,
            truth: truth.text,
            got: rankedGeneric.slice(0, 3).map((p) => `${p.text} ${p.confidence.toFixed(2)}`),
          });
      }
    }
    progress?.(i + 1);
  }
  const share = ([ok, n]: [number, number]) => (n === 0 ? null : round(ok / n, 3));
  return {
    scenes: scenes.length,
    failed,
    busy: share(top1.busy!),
    twoLine: share(top1.two_line!),
    foreign: share(top1.foreign!),
    busyGeneric: share(top1.busy_generic!),
    foreignGeneric: share(top1.foreign_generic!),
    recall: plates === 0 ? null : round(found / plates, 3),
    plates,
    negatives,
    falsePer100: negatives === 0 ? null : round((100 * falsePlates.cl) / negatives, 1),
    falsePer100Generic: negatives === 0 ? null : round((100 * falsePlates.generic) / negatives, 1),
    misses,
  };
}
