import type { PlateReading } from './engine.js';
import type { PlateGrammar } from './grammars/types.js';
import { overlapOfSmaller } from './image.js';
import { textLikeness } from './plate-likeness.js';

/**
 * Stage 3 of the plate reader: from the engine's readings (every text region it read) to the
 * plates in the frame, each ranked on its own. Every reading becomes its best valid plate through
 * the grammar (grammar score x the engine's confidence x the text's plate-likeness); readings of
 * one place in the frame (a plate, its two lines, the plate with its frame's dealer name, a
 * widened re-read) compete for that place and the best one stands for it, the others become its
 * alternatives; the places are returned best first. Two cars in two lanes are two plates.
 */

export interface PlateAlternative {
  text: string;
  confidence: number;
  format: string | null;
  country?: string;
}

export interface RankedPlate {
  text: string;
  /**
   * How sure the reader is that this is a plate and reads so, in [0, 1]: the grammar's score of
   * the text, times the recogniser's mean character probability, times the text's plate-likeness.
   */
  confidence: number;
  box: [number, number, number, number];
  /** Format the text matches, e.g. `car_2007`; null for an unformatted reading (generic grammar only). */
  format: string | null;
  /** Country of the plate (`cl`, `ar`...): the candidate's, else the grammar's; absent for `eu` and `generic`. */
  country?: string;
  /** The engine's raw text. */
  raw: string;
  /** The engine's per-character output for `raw` (for voting over frames). */
  chars: PlateReading['chars'];
  /** Other readings of the same place, best first (at most {@link MAX_ALTERNATIVES}). */
  alternatives: PlateAlternative[];
}

export const MAX_ALTERNATIVES = 4;

/** Two readings are of one place when they share at least this share of the smaller one's box. */
export const SAME_PLACE_OVERLAP = 0.5;

interface Scored extends Omit<RankedPlate, 'alternatives'> {
  order: number;
  /** The reading's other valid texts, best first. */
  others: PlateAlternative[];
}

export function rankWithGrammar(plates: readonly PlateReading[], grammar: PlateGrammar): RankedPlate[] {
  const scored: Scored[] = [];
  plates.forEach((plate, order) => {
    const valid: PlateAlternative[] = [];
    for (const c of grammar.interpret(plate.chars)) {
      const country = c.country ?? grammar.country;
      valid.push({
        text: c.text,
        confidence: c.score * plate.confidence * textLikeness(c.text),
        format: c.format,
        ...(country !== undefined ? { country } : {}),
      });
    }
    if (valid.length === 0 && grammar.name === 'generic' && plate.text.length > 0) {
      valid.push({ text: plate.text, confidence: plate.confidence * textLikeness(plate.text), format: null });
    }
    if (valid.length === 0) return;
    valid.sort((a, b) => b.confidence - a.confidence);
    const [best, ...others] = valid as [PlateAlternative, ...PlateAlternative[]];
    scored.push({ ...best, box: plate.box, raw: plate.text, chars: plate.chars, order, others });
  });
  scored.sort((a, b) => b.confidence - a.confidence || a.order - b.order);

  // Greedy, best first: a reading joins the first better-ranked place whose winner it overlaps.
  const places: Array<{ winner: Scored; members: Scored[] }> = [];
  for (const s of scored) {
    const place = places.find((p) => overlapOfSmaller(p.winner.box, s.box) >= SAME_PLACE_OVERLAP);
    if (place) place.members.push(s);
    else places.push({ winner: s, members: [s] });
  }

  // One entry per plate text: a text that won a place elsewhere already is not repeated.
  const shown = new Set<string>();
  const ranked: RankedPlate[] = [];
  for (const { winner, members } of places) {
    if (shown.has(winner.text)) continue;
    shown.add(winner.text);
    const alternatives: PlateAlternative[] = [];
    const seen = new Set([winner.text]);
    const pool = [...winner.others, ...members.slice(1).flatMap((m) => [m, ...m.others])].sort((a, b) => b.confidence - a.confidence);
    for (const a of pool) {
      if (alternatives.length >= MAX_ALTERNATIVES) break;
      if (seen.has(a.text)) continue;
      seen.add(a.text);
      alternatives.push({ text: a.text, confidence: a.confidence, format: a.format, ...(a.country !== undefined ? { country: a.country } : {}) });
    }
    const { order: _order, others: _others, ...plate } = winner;
    ranked.push({ ...plate, alternatives });
  }
  return ranked;
}
