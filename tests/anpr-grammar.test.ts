import { describe, expect, it } from 'vitest';
import { charsFromText, displayPlate, getGrammar, grammarFor, matchesForRead } from '../src/anpr/grammar.js';
import { combineGrammars, SECONDARY_PRIOR } from '../src/anpr/grammars/combined.js';
import { Hotlist } from '../src/anpr/hotlist/list.js';
import type { PlateGrammar, RecognisedChar } from '../src/anpr/grammars/types.js';
import { GRAMMAR_NAMES } from '../src/config/schema.js';
import { brOldToMercosul } from '../src/anpr/grammars/br.js';
import { normalisePlateText } from '../src/anpr/plate-text.js';

const cl = getGrammar('cl');
const br = getGrammar('br');
const eu = getGrammar('eu');
const generic = getGrammar('generic');
const ar = getGrammar('ar');
const bo = getGrammar('bo');
const pe = getGrammar('pe');

/** Text read at `prob` everywhere, with explicit alternatives at some positions. */
function reading(text: string, prob: number, alternatives: Record<number, Array<[string, number]>> = {}): RecognisedChar[] {
  return charsFromText(text, prob).map((rc, i) => {
    const alts = alternatives[i];
    if (alts === undefined) return rc;
    const [best, bestProb] = alts[0]!;
    return { best, prob: bestProb, alternatives: alts.map(([char, p]) => ({ char, prob: p })) };
  });
}

const top = (chars: RecognisedChar[], grammar = cl) => grammar.interpret(chars)[0];

/** Mean time of `grammar.interpret` on a reading needing two repairs, in microseconds. */
function microsPerCall(grammar: PlateGrammar, calls: number): number {
  const chars = reading('8BCL1Z', 0.8, {
    5: [
      ['Z', 0.6],
      ['2', 0.3],
    ],
  });
  const started = performance.now();
  for (let i = 0; i < calls; i++) grammar.interpret(chars);
  return ((performance.now() - started) * 1000) / calls;
}

describe('grammar registry', () => {
  it('knows cl, ar, bo, pe, br, eu and generic and names them when asked for another', () => {
    expect([...GRAMMAR_NAMES].sort()).toEqual(['ar', 'bo', 'br', 'cl', 'eu', 'generic', 'pe']);
    expect(getGrammar('cl').name).toBe('cl');
    expect(() => getGrammar('uy')).toThrow(/unknown plate grammar "uy".*cl, ar, bo, pe, br, eu, generic/);
    expect(() => getGrammar('toString')).toThrow(/unknown plate grammar/);
  });
});

describe('normalise', () => {
  it.each([
    ['BB·CL·12', 'BBCL12'],
    ['ab-12.34', 'AB1234'],
    ['  bc d 12 ', 'BCD12'],
    ['ABC-1234', 'ABC1234'],
    ['m·ü 1234', 'MÜ1234'],
    ['', ''],
  ])('%j → %j', (input, expected) => {
    expect(cl.normalise(input)).toBe(expected);
    expect(normalisePlateText(input)).toBe(expected);
  });
});

describe('cl validity', () => {
  it.each([
    ['BBCL12', 'car_2007'],
    ['bb·cl·12', 'car_2007'],
    ['ZZZZ99', 'car_2007'],
    ['AB1234', 'car_old'],
    ['JA1234', 'car_old'],
    ['MW1234', 'car_old'],
    ['BCD12', 'moto_2007'],
    ['AB123', 'moto_old'],
    ['BCDFG1', 'car_next'],
    ['BCDF1', 'moto_next'],
  ])('%s is a valid %s', (text, format) => {
    expect(cl.isValid(text)).toBe(true);
    expect(cl.formatOf(text)).toBe(format);
  });

  it.each([
    ['BACL12', 'vowel A in a 2007 plate'],
    ['BBML12', 'M is not used since 2007'],
    ['BBNL12', 'N is not used since 2007'],
    ['BBQL12', 'Q is not used since 2007'],
    ['QB1234', 'Q is not used in old plates'],
    ['ÑB1234', 'Ñ is never used'],
    ['BAC12', 'vowel in a 2007 motorcycle plate'],
    ['BCDFA1', 'vowel in an announced car plate'],
    ['B1234', 'one letter'],
    ['ABC1234', 'Brazilian, too long'],
    ['1234AB', 'digits first'],
    ['BB1CD', 'digit between letters'],
    ['', 'empty'],
  ])('%s is invalid (%s)', (text) => {
    expect(cl.isValid(text)).toBe(false);
    expect(cl.formatOf(text)).toBeNull();
  });

  it('displays plates as printed', () => {
    expect(cl.display('BBCL12')).toBe('BB·CL·12');
    expect(cl.display('ab-1234')).toBe('AB·1234');
    expect(cl.display('BCD12')).toBe('BCD·12');
    expect(cl.display('AB123')).toBe('AB·123');
    expect(cl.display('BCDFG1')).toBe('BCDFG·1');
    expect(cl.display('xx')).toBe('XX');
  });
});

describe('cl interpretation', () => {
  it('keeps a clean reading unchanged, with its format and score', () => {
    const [best] = cl.interpret(charsFromText('BBCL12', 0.9));
    expect(best).toEqual({ text: 'BBCL12', format: 'car_2007', score: expect.closeTo(0.9, 6), corrected: 0, country: 'cl' });
  });

  it('replaces a letter in a digit position by the recogniser alternative of the right class', () => {
    const chars = reading('BBCL1Z', 0.95, {
      5: [
        ['Z', 0.6],
        ['2', 0.3],
        ['7', 0.1],
      ],
    });
    expect(top(chars)).toMatchObject({ text: 'BBCL12', format: 'car_2007', corrected: 1 });
  });

  it('prefers the right-class alternative over the confusion map (Z→7 when the recogniser says so)', () => {
    const chars = reading('BBCL1Z', 0.95, {
      5: [
        ['Z', 0.6],
        ['7', 0.3],
      ],
    });
    expect(top(chars)?.text).toBe('BBCL17');
  });

  it('falls back to the confusion map when there is no alternative', () => {
    expect(top(charsFromText('8BCL12'))).toMatchObject({ text: 'BBCL12', format: 'car_2007', corrected: 1 });
    expect(top(charsFromText('BBCL1Z'))).toMatchObject({ text: 'BBCL12', corrected: 1 });
    expect(top(charsFromText('B5CL12'))?.text).toBe('BSCL12');
    expect(top(charsFromText('AB12B4'))).toMatchObject({ text: 'AB1284', format: 'car_old' });
  });

  it('a repaired reading scores below the same reading without repair', () => {
    const clean = top(charsFromText('BBCL12', 0.9))!;
    const repaired = top(charsFromText('8BCL12', 0.9))!;
    expect(repaired.text).toBe(clean.text);
    expect(repaired.score).toBeLessThan(clean.score);
  });

  it('repairs O and 0 in both directions', () => {
    expect(top(charsFromText('AB12O4'))).toMatchObject({ text: 'AB1204', format: 'car_old', corrected: 1 });
    expect(top(charsFromText('0B1234'))).toMatchObject({ text: 'OB1234', format: 'car_old', corrected: 1 });
    // O is not a 2007 letter: a 0 or an O there is taken for D, the allowed look-alike.
    expect(top(charsFromText('0BCL12'))).toMatchObject({ text: 'DBCL12', format: 'car_2007', corrected: 1 });
    expect(top(charsFromText('OBCL12'))).toMatchObject({ text: 'DBCL12', format: 'car_2007', corrected: 1 });
  });

  it('replaces a letter the format forbids by the most probable allowed alternative', () => {
    const chars = reading('BACL12', 0.9, {
      1: [
        ['A', 0.7],
        ['E', 0.15],
        ['H', 0.1],
      ],
    });
    expect(top(chars)).toMatchObject({ text: 'BHCL12', format: 'car_2007', corrected: 1 });
    // Without an allowed alternative there is nothing honest to offer.
    expect(cl.interpret(charsFromText('BACL12'))).toEqual([]);
  });

  it('drops a spurious leading I or 1 (the plate border)', () => {
    expect(top(charsFromText('IBBCL12', 0.9))).toMatchObject({ text: 'BBCL12', format: 'car_2007', corrected: 1 });
    expect(top(charsFromText('1AB1234', 0.9))).toMatchObject({ text: 'AB1234', format: 'car_old' });
    expect(top(charsFromText('BBCL12I', 0.9))).toMatchObject({ text: 'BBCL12', format: 'car_2007' });
  });

  it('does not drop confident characters that are not border glyphs', () => {
    const texts = cl.interpret(charsFromText('BBCL12', 0.9)).map((c) => c.text);
    expect(texts).toEqual(['BBCL12']);
    expect(cl.interpret(charsFromText('XBBCL12', 0.9))).toEqual([]);
    // ...but one the recogniser doubted may go.
    const doubted = reading('XBBCL12', 0.9, { 0: [['X', 0.2]] });
    expect(top(doubted)?.text).toBe('BBCL12');
  });

  it('ranks announced formats below a current one that needs a single repair', () => {
    const candidates = cl.interpret(charsFromText('BBCLZ2', 0.9));
    expect(candidates.map((c) => [c.text, c.format])).toEqual(
      expect.arrayContaining([
        ['BBCL22', 'car_2007'],
        ['BBCLZ2', 'car_next'],
      ]),
    );
    expect(candidates[0]?.format).toBe('car_2007');
    // When the recogniser is sure and a repair is impossible, the announced format is still found.
    expect(top(charsFromText('BCDFX1', 0.9))).toMatchObject({ text: 'BCDFX1', format: 'car_next', corrected: 0 });
  });

  it('returns candidates best first, deduplicated by text', () => {
    const candidates = cl.interpret(
      reading('1BCL12', 0.9, {
        0: [
          ['1', 0.5],
          ['I', 0.3],
        ],
      }),
    );
    const texts = candidates.map((c) => c.text);
    expect(new Set(texts).size).toBe(texts.length);
    for (let i = 1; i < candidates.length; i++) expect(candidates[i - 1]!.score).toBeGreaterThanOrEqual(candidates[i]!.score);
  });

  it('accepts lower-case recogniser output and returns nothing for nothing', () => {
    expect(top(charsFromText('bbcl12'))?.text).toBe('BBCL12');
    expect(cl.interpret([])).toEqual([]);
    expect(cl.interpret(charsFromText('BB'))).toEqual([]);
  });

  it('is fast enough to run per frame and per candidate', () => {
    expect(microsPerCall(cl, 20_000)).toBeLessThan(100);
  });
});

describe('br', () => {
  it.each([
    ['ABC1D23', 'mercosul'],
    ['ABC1234', 'old'],
    ['abc-1234', 'old'],
  ])('%s is a valid %s', (text, format) => {
    expect(br.formatOf(text)).toBe(format);
  });

  it.each(['AB1234', 'ABCD123', 'ABC12D3', '1BC1234'])('%s is invalid', (text) => {
    expect(br.isValid(text)).toBe(false);
  });

  it('interprets both layouts and repairs class confusions', () => {
    expect(top(charsFromText('ABC1D23'), br)).toMatchObject({ text: 'ABC1D23', format: 'mercosul', corrected: 0 });
    expect(top(charsFromText('ABC1234'), br)).toMatchObject({ text: 'ABC1234', format: 'old', corrected: 0 });
    expect(top(charsFromText('A8C1D23'), br)).toMatchObject({ text: 'ABC1D23', format: 'mercosul', corrected: 1 });
    expect(top(charsFromText('ABCID23'), br)).toMatchObject({ text: 'ABC1D23', format: 'mercosul', corrected: 1 });
  });

  it('offers both readings when the fifth character is a look-alike', () => {
    const texts = br.interpret(charsFromText('ABC1O23')).map((c) => c.text);
    expect(texts[0]).toBe('ABC1O23');
    expect(texts).toContain('ABC1023');
  });

  it('displays old plates with a hyphen and maps them to their Mercosur form', () => {
    expect(br.display('ABC1234')).toBe('ABC-1234');
    expect(br.display('ABC1D23')).toBe('ABC1D23');
    expect(brOldToMercosul('ABC-1234')).toBe('ABC1C34');
    expect(brOldToMercosul('ABC1C34')).toBeNull();
  });
});

describe('eu', () => {
  it.each(['B AB 1234', 'AB-123-CD', 'MÜ AB 123', '1ABC234', 'AB12', '12345A78'])('%s is valid', (text) => {
    expect(eu.isValid(text)).toBe(true);
  });

  it.each(['ABC', 'ABCDEFG', '1234567', 'AB1234567', ''])('%s is invalid', (text) => {
    expect(eu.isValid(text)).toBe(false);
  });

  it('keeps what was read: without a known class per position there is nothing to repair', () => {
    expect(top(charsFromText('AB12O4'), eu)).toMatchObject({ text: 'AB12O4', corrected: 0 });
    expect(top(charsFromText('8BCL12'), eu)).toMatchObject({ text: '8BCL12', corrected: 0 });
    // All letters: invalid, and no position can be said to be the misread digit.
    expect(eu.interpret(charsFromText('ABCDEF'))).toEqual([]);
  });

  it('only replaces glyphs that are neither letters nor digits, and may drop a border', () => {
    const chars = reading('AB-1234', 0.9, {
      2: [
        ['-', 0.5],
        ['C', 0.3],
      ],
    });
    expect(top(chars, eu)).toMatchObject({ text: 'ABC1234', corrected: 1 });
    const bordered = eu.interpret(charsFromText('IAB1234', 0.9)).map((c) => c.text);
    expect(bordered[0]).toBe('IAB1234'); // as read first: an I may belong to the plate here
    expect(bordered).toContain('AB1234');
  });
});

describe('generic', () => {
  it('returns the reading unchanged, without repairs or trimming', () => {
    expect(generic.interpret(charsFromText('8BCL1Z', 0.9))).toEqual([{ text: '8BCL1Z', format: 'alnum6', score: expect.closeTo(0.9, 6), corrected: 0 }]);
    expect(generic.interpret(charsFromText('IBBCL12')).map((c) => c.text)).toEqual(['IBBCL12']);
    expect(generic.interpret(charsFromText('A'))).toEqual([]);
  });

  it.each([
    ['AB', true],
    ['ABCDEFGHIJ', true],
    ['ABCDEFGHIJK', false],
    ['A', false],
    ['CD-123', true],
  ])('%s valid: %s', (text, valid) => {
    expect(generic.isValid(text)).toBe(valid);
  });
});

describe('ar, bo and pe validity', () => {
  it.each([
    ['ar', 'AB123CD', 'mercosur'],
    ['ar', 'ab 123 cd', 'mercosur'],
    ['ar', 'ABC123', 'old'],
    ['ar', 'abc-123', 'old'],
    ['ar', 'A123BCD', 'moto_mercosur'],
    ['ar', '123ABC', 'moto_old'],
    ['bo', '1234ABC', 'current'],
    ['bo', '1234-abc', 'current'],
    ['bo', '123ABC', 'old'],
    ['pe', 'ABC123', 'current'],
    ['pe', 'A1B234', 'current'],
    ['pe', 'a12-345', 'current'],
    ['pe', 'AB1234', 'current'],
  ])('%s: %s is a valid %s', (name, text, format) => {
    expect(getGrammar(name).formatOf(text)).toBe(format);
  });

  it.each([
    ...['AB1234', 'BBCL12', 'ABCD12', 'AB12CD', 'A1234BC', '1234ABC', 'AB123C4'].map((t) => ['ar', t]),
    ...['ABC1234', '12345AB', '1234AB', 'AB1234', '123ABCD'].map((t) => ['bo', t]),
    ...['1BC123', 'ABC12D', 'ABC1234', 'ABCD12', 'AB123'].map((t) => ['pe', t]),
  ])('%s: %s is invalid', (name, text) => {
    expect(getGrammar(name!).isValid(text!)).toBe(false);
    expect(getGrammar(name!).formatOf(text!)).toBeNull();
  });
});

describe('ar', () => {
  it('displays plates as printed', () => {
    expect(ar.display('AB123CD')).toBe('AB 123 CD');
    expect(ar.display('abc123')).toBe('ABC 123');
    expect(ar.display('A123BCD')).toBe('A123BCD');
    expect(ar.display('123ABC')).toBe('123 ABC');
  });

  it('interprets each layout and repairs look-alikes per class', () => {
    expect(top(charsFromText('AB123CD', 0.9), ar)).toEqual({ text: 'AB123CD', format: 'mercosur', score: expect.closeTo(0.9, 6), corrected: 0, country: 'ar' });
    expect(top(charsFromText('AB12OCD'), ar)).toMatchObject({ text: 'AB120CD', format: 'mercosur', corrected: 1 });
    expect(top(charsFromText('0B123CD'), ar)).toMatchObject({ text: 'OB123CD', format: 'mercosur', corrected: 1 });
    expect(top(charsFromText('AB1238D'), ar)).toMatchObject({ text: 'AB123BD', format: 'mercosur', corrected: 1 });
    expect(top(charsFromText('A8C123'), ar)).toMatchObject({ text: 'ABC123', format: 'old', corrected: 1 });
    expect(top(charsFromText('ABC12O'), ar)).toMatchObject({ text: 'ABC120', format: 'old', corrected: 1 });
    expect(top(charsFromText('A12OBCD'), ar)).toMatchObject({ text: 'A120BCD', format: 'moto_mercosur', corrected: 1 });
    // Car and motorcycle Mercosur plates differ at the second and fifth positions only: one glyph
    // misread there fits both, and both readings come back.
    expect(ar.interpret(charsFromText('AB12OCD')).map((c) => [c.text, c.format])).toEqual([
      ['AB120CD', 'mercosur'],
      ['A812OCD', 'moto_mercosur'],
    ]);
    expect(top(charsFromText('12OABC'), ar)).toMatchObject({ text: '120ABC', format: 'moto_old', corrected: 1 });
  });
});

describe('bo', () => {
  it('displays plates as printed and repairs look-alikes per class', () => {
    expect(bo.display('1234ABC')).toBe('1234 ABC');
    expect(bo.display('123ABC')).toBe('123 ABC');
    expect(top(charsFromText('12O4ABC'), bo)).toMatchObject({ text: '1204ABC', format: 'current', corrected: 1, country: 'bo' });
    expect(top(charsFromText('12348BC'), bo)).toMatchObject({ text: '1234BBC', format: 'current', corrected: 1 });
    expect(top(charsFromText('B23ABC'), bo)).toMatchObject({ text: '823ABC', format: 'old', corrected: 1 });
  });
});

describe('pe', () => {
  it('displays plates as printed', () => {
    expect(pe.display('ABC123')).toBe('ABC-123');
    expect(pe.display('a1b234')).toBe('A1B-234');
  });

  it('repairs the first (letter) and last three (digit) positions, and keeps the middle two as read', () => {
    expect(top(charsFromText('0BC123'), pe)).toMatchObject({ text: 'OBC123', corrected: 1, country: 'pe' });
    expect(top(charsFromText('ABC12O'), pe)).toMatchObject({ text: 'ABC120', corrected: 1 });
    expect(top(charsFromText('A0B123'), pe)).toMatchObject({ text: 'A0B123', corrected: 0 });
    expect(top(charsFromText('AOB123'), pe)).toMatchObject({ text: 'AOB123', corrected: 0 });
  });
});

describe('secondary grammars beside cl', () => {
  const border = grammarFor('cl', ['ar', 'bo', 'pe', 'br']);

  it('is the primary itself without secondaries, and refuses generic, the primary or a duplicate', () => {
    expect(grammarFor('cl', [])).toBe(cl);
    expect(grammarFor('cl')).toBe(cl);
    expect(() => grammarFor('cl', ['generic'])).toThrow(/generic/);
    expect(() => grammarFor('cl', ['cl'])).toThrow(/primary/);
    expect(() => grammarFor('cl', ['ar', 'ar'])).toThrow(/twice/);
    expect(() => grammarFor('cl', ['uy'])).toThrow(/unknown plate grammar "uy"/);
    expect(border.country).toBe('cl');
  });

  it('reads Chilean plates as before, tagged cl, with the same score', () => {
    expect(top(charsFromText('BBCL12', 0.9), border)).toEqual({
      text: 'BBCL12',
      format: 'car_2007',
      score: expect.closeTo(0.9, 6),
      corrected: 0,
      country: 'cl',
    });
    expect(top(charsFromText('BCD12', 0.9), border)).toMatchObject({ text: 'BCD12', format: 'moto_2007', country: 'cl' });
  });

  it('ranks the Chilean reading first when the same characters fit a foreign format too', () => {
    // AB1234 is a Chilean car_old and also fits the Peruvian layout: one candidate, Chilean.
    const candidates = border.interpret(charsFromText('AB1234', 0.9));
    expect(candidates[0]).toMatchObject({ text: 'AB1234', format: 'car_old', country: 'cl', score: expect.closeTo(0.9, 6) });
    expect(candidates.filter((c) => c.text === 'AB1234')).toHaveLength(1);
    // Peru alone would read it as its own.
    expect(top(charsFromText('AB1234', 0.9), pe)).toMatchObject({ text: 'AB1234', country: 'pe' });
  });

  it('lets a foreign reading rank first only when it beats the Chilean one by a clear margin', () => {
    // Third glyph: C or 0. Nearly undecided: the Chilean AB0123 (one repair from the alternative) wins over the Argentine ABC123.
    const doubtful = reading('ABC123', 0.9, {
      2: [
        ['C', 0.5],
        ['0', 0.45],
      ],
    });
    const ranked = border.interpret(doubtful);
    expect(ranked[0]).toMatchObject({ text: 'AB0123', format: 'car_old', country: 'cl', corrected: 1 });
    expect(ranked.find((c) => c.text === 'ABC123')).toMatchObject({ country: 'ar', format: 'old' });
    // The recogniser is sure of the C: the Argentine plate wins.
    const sure = reading('ABC123', 0.9, {
      2: [
        ['C', 0.9],
        ['0', 0.05],
      ],
    });
    expect(top(sure, border)).toMatchObject({ text: 'ABC123', format: 'old', country: 'ar', corrected: 0 });
    expect(top(sure, border)!.score).toBeCloseTo(0.9 * SECONDARY_PRIOR, 6);
  });

  it('tags each foreign format with its country', () => {
    expect(top(charsFromText('AB123CD', 0.9), border)).toMatchObject({ text: 'AB123CD', format: 'mercosur', country: 'ar' });
    expect(top(charsFromText('AB12OCD', 0.9), border)).toMatchObject({ text: 'AB120CD', format: 'mercosur', country: 'ar', corrected: 1 });
    expect(top(charsFromText('1234ABC', 0.9), border)).toMatchObject({ text: '1234ABC', format: 'current', country: 'bo' });
    expect(top(charsFromText('A1B234', 0.9), border)).toMatchObject({ text: 'A1B234', format: 'current', country: 'pe' });
    expect(top(charsFromText('ABC1D23', 0.9), border)).toMatchObject({ text: 'ABC1D23', format: 'mercosul', country: 'br' });
  });

  it('gives a text two foreign grammars share to the one listed first', () => {
    expect(top(charsFromText('ABC123', 0.9), border)).toMatchObject({ country: 'ar', format: 'old' });
    expect(top(charsFromText('ABC123', 0.9), grammarFor('cl', ['pe', 'ar']))).toMatchObject({ country: 'pe', format: 'current' });
    expect(top(charsFromText('123ABC', 0.9), border)).toMatchObject({ country: 'ar', format: 'moto_old' });
  });

  it("validates and displays with the first grammar that accepts the text, or the read country's", () => {
    expect(border.isValid('AB123CD')).toBe(true);
    expect(border.isValid('ABCDEFG')).toBe(false);
    expect(border.formatOf('BBCL12')).toBe('car_2007');
    expect(border.formatOf('1234ABC')).toBe('current');
    expect(border.display('BBCL12')).toBe('BB·CL·12');
    expect(border.display('AB123CD')).toBe('AB 123 CD');
    expect(border.display('ABC123')).toBe('ABC 123');
    expect(displayPlate(border, 'ABC123', 'pe')).toBe('ABC-123');
    expect(displayPlate(border, 'AB1234', 'cl')).toBe('AB·1234');
    expect(displayPlate(border, 'AB1234', 'pe')).toBe('AB1-234');
    expect(displayPlate(cl, 'BBCL12', undefined)).toBe('BB·CL·12');
  });

  it('can combine any grammars, with the secondary prior applied', () => {
    const arFirst = combineGrammars(ar, [bo]);
    expect(arFirst.name).toBe('ar+bo');
    expect(top(charsFromText('123ABC', 0.9), arFirst)).toMatchObject({ country: 'ar', score: expect.closeTo(0.9, 6) });
    expect(top(charsFromText('1234ABC', 0.9), arFirst)).toMatchObject({ country: 'bo', score: expect.closeTo(0.9 * SECONDARY_PRIOR, 6) });
    expect(top(charsFromText('AB1234', 0.9), combineGrammars(generic, [eu]))).toMatchObject({ format: 'alnum6', country: 'generic' });
  });

  it('is fast enough to run per frame and per candidate', () => {
    expect(microsPerCall(border, 5_000)).toBeLessThan(300);
  });
});

describe('hotlist matches of foreign reads', () => {
  const NOW = Date.UTC(2025, 5, 15, 12, 0, 0);
  const list = Hotlist.fromEntries([{ plate: 'AB1234', reason: 'robo', source: 'carabineros', added: '2025-01-10', expires: null }]);
  const lookup = (text: string, country: string | undefined) =>
    matchesForRead(list.lookup(text, { fuzzy: true, now: NOW }), country, 'cl').map((m) => `${m.kind}:${m.entry.plate}`);

  it('keeps confusable matches for Chilean reads and reads of no country', () => {
    expect(lookup('A81234', 'cl')).toEqual(['confusable:AB1234']);
    expect(lookup('A81234', undefined)).toEqual(['confusable:AB1234']);
  });

  it("drops a foreign read's confusable match and keeps its exact one", () => {
    // A Peruvian A81-234 is not the listed Chilean AB·1234, however alike the glyphs.
    expect(lookup('A81234', 'pe')).toEqual([]);
    expect(lookup('AB1234', 'pe')).toEqual(['exact:AB1234']);
  });

  it('applies to the reads the combined grammar tags as foreign', () => {
    const border = grammarFor('cl', ['ar', 'bo', 'pe', 'br']);
    const read = top(charsFromText('A81234', 0.9), border)!;
    expect(read).toMatchObject({ text: 'A81234', country: 'pe' });
    expect(lookup(read.text, read.country)).toEqual([]);
  });

  it("changes nothing when the primary has no country or the read is of the primary's country", () => {
    const matches = [{ kind: 'exact' as const }, { kind: 'confusable' as const }];
    expect(matchesForRead(matches, 'ar', undefined)).toEqual(matches);
    expect(matchesForRead(matches, 'ar', 'ar')).toEqual(matches);
    expect(matchesForRead(matches, 'ar', 'cl')).toEqual([{ kind: 'exact' }]);
    expect(matchesForRead(matches, null, 'cl')).toEqual(matches);
  });
});
