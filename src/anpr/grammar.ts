import { GRAMMAR_NAMES, type GrammarName, isGrammarName } from '../config/schema.js';
import { ar } from './grammars/ar.js';
import { bo } from './grammars/bo.js';
import { br } from './grammars/br.js';
import { cl } from './grammars/cl.js';
import { combineGrammars } from './grammars/combined.js';
import { eu } from './grammars/eu.js';
import { generic } from './grammars/generic.js';
import { pe } from './grammars/pe.js';
import type { PlateGrammar, RecognisedChar } from './grammars/types.js';
import type { HotlistMatch } from './hotlist/list.js';

/** Keyed by the configuration's list of names: a grammar missing here, or unknown there, does not compile. */
const GRAMMARS: Readonly<Record<GrammarName, PlateGrammar>> = { cl, ar, bo, pe, br, eu, generic };

/** The grammar by name (`anpr.grammar`, a camera's `grammar`, `vigia anpr read --grammar`). */
export function getGrammar(name: string): PlateGrammar {
  if (!isGrammarName(name)) throw new Error(`unknown plate grammar ${JSON.stringify(name)} (known: ${GRAMMAR_NAMES.join(', ')})`);
  return GRAMMARS[name];
}

/**
 * The grammar a camera (or `vigia anpr read`) reads with: `primary` alone, or combined with the
 * `secondaries` (`anpr.secondary_grammars`), each candidate tagged with its country. The
 * configuration has already refused `generic`, duplicates and the primary among the secondaries;
 * here they are refused again for callers that did not go through it.
 */
export function grammarFor(primary: string, secondaries: readonly string[] = []): PlateGrammar {
  const main = getGrammar(primary);
  if (secondaries.length === 0) return main;
  for (const name of secondaries) {
    if (name === 'generic') throw new Error('the generic grammar cannot be a secondary grammar: it accepts any text');
    if (name === primary) throw new Error(`${JSON.stringify(name)} is the primary grammar; it cannot also be a secondary one`);
  }
  return combineGrammars(main, secondaries.map(getGrammar));
}

/**
 * The plate as printed in its country: the country's own grammar when the read carries one that
 * accepts the text (an Argentine ABC123 is `ABC 123`, a Peruvian one `ABC-123`), else `grammar`'s.
 */
export function displayPlate(grammar: PlateGrammar, text: string, country?: string | null): string {
  if (country && isGrammarName(country) && country !== grammar.country) {
    const own = GRAMMARS[country];
    if (own.isValid(text)) return own.display(text);
  }
  return grammar.display(text);
}

/**
 * The hotlist matches a read may raise. The hotlist holds the primary country's plates: a read of
 * another country (a secondary grammar's) that only resembles a listed plate by confusable glyphs
 * is another car, so only an exact match counts for it. Reads of the primary country, and reads
 * with no country, keep every match.
 */
export function matchesForRead<M extends Pick<HotlistMatch, 'kind'>>(
  matches: readonly M[],
  readCountry: string | null | undefined,
  primaryCountry: string | undefined,
): M[] {
  if (!readCountry || primaryCountry === undefined || readCountry === primaryCountry) return [...matches];
  return matches.filter((m) => m.kind === 'exact');
}

/**
 * Per-character input for a reading that only has text (a recogniser without alternatives, a
 * typed plate, a test): every position certain at `prob`, with no alternatives but itself.
 */
export function charsFromText(text: string, prob = 1): RecognisedChar[] {
  return [...text].map((ch) => ({ best: ch, prob, alternatives: [{ char: ch, prob }] }));
}
