import { normalisePlateText } from '../plate-text.js';
import type { PlateCandidate, PlateGrammar } from './types.js';

/**
 * One grammar reading the primary country's plates and, beside them, a few foreign ones: a Chilean
 * gantry near a border pass sees Argentine, Bolivian, Peruvian and Brazilian cars among its own.
 *
 * Every candidate is tagged with the country of the grammar that produced it (`country`; the
 * grammar's name for `eu`, which has none). The primary's candidates keep their score; a secondary
 * grammar's are multiplied by `SECONDARY_PRIOR`. The plates a gantry sees are mostly its own
 * country's, so when the same characters fit both a Chilean and a foreign format (or a reading
 * could be repaired into either), the foreign reading only ranks first when it is clearly better:
 * its score must exceed the primary's best by a factor 1 / 0.8 = 1.25. Ties between two secondaries
 * go to the one listed first.
 *
 * A text valid in several grammars is returned once, with the best-ranked grammar's tag.
 */

/** Score multiplier for readings of a secondary grammar. */
export const SECONDARY_PRIOR = 0.8;
const MAX_CANDIDATES = 8;

interface Ranked extends PlateCandidate {
  /** The grammar's place: 0 for the primary, then the secondaries as listed. */
  order: number;
  /** The candidate's place in its own grammar's ranking (which breaks its ties by format order). */
  rank: number;
}

const countryOf = (g: PlateGrammar): string => g.country ?? g.name;

export function combineGrammars(primary: PlateGrammar, secondaries: readonly PlateGrammar[], prior = SECONDARY_PRIOR): PlateGrammar {
  if (secondaries.length === 0) return primary;
  const all = [primary, ...secondaries];
  const names = all.map((g) => g.name);
  if (new Set(names).size !== names.length) throw new Error(`a plate grammar is listed twice: ${names.join(', ')}`);

  /** The first grammar (primary, then secondaries in order) that accepts the text exactly. */
  const accepting = (text: string): PlateGrammar | undefined => all.find((g) => g.isValid(text));

  return {
    name: names.join('+'),
    country: countryOf(primary),
    formats: all.flatMap((g) => g.formats),
    interpret(chars) {
      const found = new Map<string, Ranked>();
      all.forEach((g, order) => {
        const weight = order === 0 ? 1 : prior;
        const country = countryOf(g);
        g.interpret(chars).forEach((c, rank) => {
          const cand: Ranked = { text: c.text, format: c.format, score: c.score * weight, corrected: c.corrected, country, order, rank };
          const seen = found.get(cand.text);
          if (seen === undefined || better(cand, seen) < 0) found.set(cand.text, cand);
        });
      });
      return [...found.values()]
        .sort(better)
        .slice(0, MAX_CANDIDATES)
        .map(({ order: _order, rank: _rank, ...c }) => c);
    },
    normalise: normalisePlateText,
    isValid: (text) => accepting(text) !== undefined,
    formatOf: (text) => {
      const g = accepting(text);
      return g === undefined ? null : g.formatOf(text);
    },
    display(text) {
      const g = accepting(text);
      return g === undefined ? normalisePlateText(text) : g.display(text);
    },
  };
}

function better(a: Ranked, b: Ranked): number {
  return b.score - a.score || a.order - b.order || a.rank - b.rank || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);
}
