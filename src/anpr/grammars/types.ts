/**
 * Plate grammars: what a country's plates may look like, so a recogniser's per-character guesses
 * can be turned into valid plates. A reading that no format accepts is not a plate of that country
 * (or is misread); one that needs a repair carries the number of characters changed, so callers
 * can be stricter with repaired readings than with clean ones.
 */

/** One recogniser alternative for a position. */
export interface CharCandidate {
  char: string;
  prob: number;
}

/** A position as the recogniser saw it: `alternatives` sorted by probability, best included. */
export interface RecognisedChar {
  best: string;
  prob: number;
  alternatives: CharCandidate[];
}

export interface PlateCandidate {
  text: string;
  /** Name of the format the text matches, e.g. `car_2007`. */
  format: string;
  /** In (0, 1]: geometric mean of the chosen characters' probabilities times a penalty per change. */
  score: number;
  /** Characters changed from the recogniser's best reading; a dropped border character counts as one. */
  corrected: number;
  /**
   * Country whose plate this is (`cl`, `ar`, `bo`, `pe`, `br`), from the grammar that read it; absent
   * for grammars of no one country (`eu`, `generic`). Lets a combined grammar say which country won.
   */
  country?: string;
}

export interface PlateFormat {
  name: string;
  /** One class per position: `L` letter (from `letters` when given), `N` digit, `A` either. */
  pattern: string;
  /** Letters allowed at `L` positions; any letter when absent. */
  letters?: string;
  /** How the plate is written for people, e.g. `BB·CL·12`. */
  display?: (text: string) => string;
}

export interface PlateGrammar {
  name: string;
  /** The country the grammar's plates belong to (see `PlateCandidate.country`); absent for `eu` and `generic`. */
  country?: string;
  formats: PlateFormat[];
  /** Best valid readings of a recognised sequence, best first, using per-character confidence to repair OCR confusions. */
  interpret(chars: RecognisedChar[]): PlateCandidate[];
  /** Upper case, letters and digits only: strips separators, spaces, dots, hyphens and middle dots. */
  normalise(text: string): string;
  /** Whether the (normalised) text matches a format exactly, without repairs. */
  isValid(text: string): boolean;
  /** Name of the format the (normalised) text matches exactly, or null. */
  formatOf(text: string): string | null;
  /** The text as printed on the plate (e.g. `BB·CL·12`), or just normalised when no format matches. */
  display(text: string): string;
}
