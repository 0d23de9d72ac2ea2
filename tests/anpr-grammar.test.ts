import { describe, expect, it } from 'vitest';
import { charsFromText, getGrammar } from '../src/anpr/grammar.js';
import type { RecognisedChar } from '../src/anpr/grammars/types.js';
import { GRAMMAR_NAMES } from '../src/config/schema.js';
import { brOldToMercosul } from '../src/anpr/grammars/br.js';
import { normalisePlateText } from '../src/anpr/plate-text.js';

const cl = getGrammar('cl');
const br = getGrammar('br');
const eu = getGrammar('eu');
const generic = getGrammar('generic');

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

describe('grammar registry', () => {
  it('knows cl, br, eu and generic and names them when asked for another', () => {
    expect([...GRAMMAR_NAMES].sort()).toEqual(['br', 'cl', 'eu', 'generic']);
    expect(getGrammar('cl').name).toBe('cl');
    expect(() => getGrammar('ar')).toThrow(/unknown plate grammar "ar".*cl, br, eu, generic/);
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
    expect(best).toEqual({ text: 'BBCL12', format: 'car_2007', score: expect.closeTo(0.9, 6), corrected: 0 });
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
    const chars = reading('8BCL1Z', 0.8, {
      5: [
        ['Z', 0.6],
        ['2', 0.3],
      ],
    });
    const started = performance.now();
    for (let i = 0; i < 20_000; i++) cl.interpret(chars);
    const perCallUs = ((performance.now() - started) * 1000) / 20_000;
    expect(perCallUs).toBeLessThan(100);
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
