import type { PlateReading } from './engine.js';
import type { PlateGrammar } from './grammars/types.js';

/**
 * Engine readings re-ranked through a plate grammar: each reading becomes its best valid plate
 * (grammar score times the engine's confidence), readings no format accepts are dropped (kept as
 * read with the `generic` grammar), and the result is best first.
 */

export interface RankedPlate {
  text: string;
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
}

export function rankWithGrammar(plates: readonly PlateReading[], grammar: PlateGrammar): RankedPlate[] {
  const out: Array<RankedPlate & { order: number }> = [];
  plates.forEach((plate, order) => {
    let best: RankedPlate | null = null;
    for (const c of grammar.interpret(plate.chars)) {
      const confidence = c.score * plate.confidence;
      const country = c.country ?? grammar.country;
      if (!best || confidence > best.confidence)
        best = {
          text: c.text,
          confidence,
          box: plate.box,
          format: c.format,
          ...(country !== undefined ? { country } : {}),
          raw: plate.text,
          chars: plate.chars,
        };
    }
    if (!best && grammar.name === 'generic' && plate.text.length > 0) {
      best = { text: plate.text, confidence: plate.confidence, box: plate.box, format: null, raw: plate.text, chars: plate.chars };
    }
    if (best) out.push({ ...best, order });
  });
  out.sort((a, b) => b.confidence - a.confidence || a.order - b.order);
  // One entry per plate text: the best.
  const seen = new Set<string>();
  const ranked: RankedPlate[] = [];
  for (const { order: _order, ...p } of out) {
    if (seen.has(p.text)) continue;
    seen.add(p.text);
    ranked.push(p);
  }
  return ranked;
}
