import { GRAMMAR_NAMES, type GrammarName, isGrammarName } from '../config/schema.js';
import { br } from './grammars/br.js';
import { cl } from './grammars/cl.js';
import { eu } from './grammars/eu.js';
import { generic } from './grammars/generic.js';
import type { PlateGrammar, RecognisedChar } from './grammars/types.js';

/** Keyed by the configuration's list of names: a grammar missing here, or unknown there, does not compile. */
const GRAMMARS: Readonly<Record<GrammarName, PlateGrammar>> = { cl, br, eu, generic };

/** The grammar by name (`anpr.grammar`, a camera's `grammar`, `vigia anpr read --grammar`). */
export function getGrammar(name: string): PlateGrammar {
  if (!isGrammarName(name)) throw new Error(`unknown plate grammar ${JSON.stringify(name)} (known: ${GRAMMAR_NAMES.join(', ')})`);
  return GRAMMARS[name];
}

/**
 * Per-character input for a reading that only has text (a recogniser without alternatives, a
 * typed plate, a test): every position certain at `prob`, with no alternatives but itself.
 */
export function charsFromText(text: string, prob = 1): RecognisedChar[] {
  return [...text].map((ch) => ({ best: ch, prob, alternatives: [{ char: ch, prob }] }));
}
