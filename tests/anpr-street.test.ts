import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Detection } from '../src/anpr/detector.js';
import { AnprEngine, cropDetection, extendsReading, type PlateReading, REUSE_MAX_DISTANCE, REUSE_MAX_FRAMES, readingScore } from '../src/anpr/engine.js';
import { fingerprint, fingerprintDistance } from '../src/anpr/fingerprint.js';
import { charsFromText, getGrammar, grammarFor } from '../src/anpr/grammar.js';
import { decodeImage } from '../src/anpr/image.js';
import { MotionGate } from '../src/anpr/motion.js';
import { rankWithGrammar } from '../src/anpr/pipeline.js';
import { TEXT_PENALTY, textLikeness } from '../src/anpr/plate-likeness.js';
import { toRecognition } from '../src/anpr/recogniser.js';
import { oneLinePlate, scene, twoLinePlate } from './helpers/plates.js';

// Plate reading in street scenes: the rules that pick the plate out of other text, recover
// characters a tight box cut off, keep each plate of the frame apart, and save work on a camera's
// stream. Rules are tested on crafted readings; the engine on crafted frames with the real models.

/** A text label drawn straight onto a scene (a brand, a phone number on a truck, a timestamp overlay). */
function label(text: string, x: number, y: number, size: number, fill = '#111', background?: string): string {
  const w = text.length * size * 0.75 + size;
  const box = background ? `<rect x="${x}" y="${y}" width="${w}" height="${size * 1.5}" fill="${background}"/>` : '';
  return `${box}<text x="${x + size / 2}" y="${y + size * 1.15}" font-family="DejaVu Sans, sans-serif" font-weight="bold" font-size="${size}" fill="${fill}">${text}</text>`;
}

/** A reading as the engine gives it, for ranking tests. */
function reading(text: string, box: [number, number, number, number], prob = 0.98): PlateReading {
  const chars = charsFromText(text, prob);
  return { text, confidence: prob, box, detectorScore: 0.9, chars };
}

describe('plate-likeness of text', () => {
  it('scores plate-shaped text 1 and words, numbers and overlays far lower', () => {
    for (const plate of ['BBCL12', 'AB123CD', 'ABC1D23', '1234ABC', 'KX4821', 'W053011']) expect(textLikeness(plate), plate).toBeGreaterThanOrEqual(0.95);
    expect(textLikeness('JEEP')).toBeLessThan(0.35); // letters only, 4
    expect(textLikeness('CHEVROLET')).toBeLessThan(0.2); // letters only, a word
    expect(textLikeness('56987654321')).toBeLessThan(0.2); // a phone number
    expect(textLikeness('20261205140322')).toBeLessThan(0.2); // a timestamp overlay
    expect(textLikeness('AUTOMOTORA2000')).toBeLessThan(0.3); // a dealer's frame
    expect(textLikeness('RUTA68')).toBeCloseTo(TEXT_PENALTY.wordLikeRun, 5); // a word and a number, plate-long
    expect(textLikeness('BCDF12')).toBe(1); // four letters without vowels: a Chilean plate
    expect(textLikeness('')).toBe(0);
  });

  it('weighs raw readings by it', () => {
    expect(readingScore({ text: 'BBCL12', confidence: 0.9 })).toBeGreaterThan(readingScore({ text: 'SALVADOR', confidence: 0.99 }));
  });
});

describe('ranking the plates of a frame', () => {
  const generic = getGrammar('generic');

  it('prefers a plate over more confident words, numbers and overlays with the generic grammar', () => {
    const ranked = rankWithGrammar(
      [
        reading('LAMBORGHINI', [100, 100, 300, 40], 1),
        reading('20261205140322', [10, 680, 250, 20], 1),
        reading('56987654321', [700, 300, 200, 30], 1),
        reading('RUTA68', [900, 100, 150, 40], 1),
        reading('AB123CD', [500, 420, 200, 50], 0.93),
      ],
      generic,
    );
    expect(ranked[0]!.text).toBe('AB123CD');
    expect(ranked.filter((p) => p.confidence >= 0.5).map((p) => p.text)).toEqual(['AB123CD', 'RUTA68']);
  });

  it('gives one entry per place: the best reading stands for it, the others are its alternatives', () => {
    const ranked = rankWithGrammar(
      [
        reading('SALAZARISRAELBZM2227', [480, 380, 240, 100], 0.99), // the plate with its frame's dealer name
        reading('BZM2227', [500, 420, 200, 50], 0.97),
        reading('BZM222', [500, 420, 180, 50], 0.9), // a tight box
        reading('HJRS37', [900, 430, 180, 45], 0.95), // the other lane
      ],
      generic,
    );
    expect(ranked.map((p) => p.text)).toEqual(['BZM2227', 'HJRS37']);
    expect(ranked[0]!.alternatives.map((a) => a.text)).toEqual(['BZM222', 'SALAZARISRAELBZM2227']);
    expect(ranked[0]!.box).toEqual([500, 420, 200, 50]);
    expect(ranked[1]!.alternatives).toEqual([]);
  });

  it('keeps the formats: a text no format accepts is no plate, a foreign one carries its country', () => {
    const gantry = grammarFor('cl', ['ar', 'bo', 'pe', 'br']);
    const ranked = rankWithGrammar([reading('SALIDA12', [900, 100, 150, 40], 1), reading('AB123CD', [500, 420, 200, 50], 0.95)], gantry);
    expect(ranked.map((p) => [p.text, p.country])).toEqual([['AB123CD', 'ar']]);
    expect(rankWithGrammar([reading('SALIDA12', [900, 100, 150, 40], 1)], getGrammar('cl'))).toEqual([]);
  });
});

describe('edge recovery rule', () => {
  const rec = (text: string, probs: number[]) =>
    toRecognition([...text].map((c, i) => ({ best: c, prob: probs[i] ?? 0.99, alternatives: [{ char: c, prob: probs[i] ?? 0.99 }] })));

  it('takes a wider reading that adds sure characters at the ends, and only that', () => {
    expect(extendsReading(rec('CLVN3', []), rec('CCLVN3', []), 0.7)).toBe(true);
    expect(extendsReading(rec('HP995', []), rec('6HP995', [0.95]), 0.7)).toBe(true);
    expect(extendsReading(rec('YX880', []), rec('AYX8803', []), 0.7)).toBe(true); // both ends
    expect(extendsReading(rec('CLVN3', []), rec('ICLVN3', [0.3]), 0.7)).toBe(false); // an unsure extra: a bolt?
    expect(extendsReading(rec('CLVN3', []), rec('ICLVN3', [0.3]), 0)).toBe(true);
    expect(extendsReading(rec('4B39376', []), rec('4B389376', []), 0)).toBe(false); // a character inserted inside
    expect(extendsReading(rec('RK857AI', []), rec('RK857A1', []), 0)).toBe(false); // same length: a second opinion
  });
});

describe('plate reader on crafted street frames', () => {
  let engine: AnprEngine;
  beforeAll(async () => {
    engine = await AnprEngine.create({ threads: 2 });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('picks the plate out of brand, phone number and timestamp text (generic grammar)', async () => {
    const jpeg = await scene(
      label('CHEVROLET', 420, 300, 44, '#f0f0f0') +
        label('+56 9 8765 4321', 760, 560, 30, '#111', '#ffdd33') +
        label('2026-12-05 14:03:22', 10, 680, 22, '#fff', '#000') +
        oneLinePlate('KX 48 21', { x: 520, y: 440, w: 250, h: 64 }),
    );
    const r = await engine.read(jpeg);
    expect(r.plates.map((p) => p.text)).toEqual(expect.arrayContaining(['CHEVROLET'])); // the text is there...
    const ranked = rankWithGrammar(r.plates, getGrammar('generic'));
    expect(ranked[0]!.text).toBe('KX4821'); // ...but the plate ranks first
    expect(ranked.filter((p) => p.confidence >= 0.5).map((p) => p.text)).toEqual(['KX4821']);
  });

  it('reports every plate of the frame, each once: two cars in two lanes', async () => {
    const jpeg = await scene(oneLinePlate('BB·CL·12', { x: 300, y: 450, w: 220, h: 60 }) + oneLinePlate('HJ·RS·37', { x: 800, y: 430, w: 220, h: 60 }));
    const ranked = rankWithGrammar((await engine.read(jpeg)).plates, getGrammar('cl'));
    expect(ranked.map((p) => p.text).sort()).toEqual(['BBCL12', 'HJRS37']);
    const left = ranked.find((p) => p.text === 'BBCL12')!;
    expect(left.box[0]).toBeLessThan(400);
  });

  it('merges the two lines of a Chilean motorcycle plate and of an Argentine one into one plate', async () => {
    const gantry = grammarFor('cl', ['ar', 'bo', 'pe', 'br']);
    const moto = rankWithGrammar((await engine.read(await scene(twoLinePlate('LFG', '28', { x: 580, y: 400, w: 130, h: 110 })))).plates, gantry);
    expect([moto[0]!.text, moto[0]!.format, moto[0]!.country]).toEqual(['LFG28', 'moto_2007', 'cl']);
    const ar = rankWithGrammar((await engine.read(await scene(twoLinePlate('A123', 'BCD', { x: 580, y: 400, w: 140, h: 110 })))).plates, gantry);
    expect([ar[0]!.text, ar[0]!.format, ar[0]!.country]).toEqual(['A123BCD', 'moto_mercosur', 'ar']);
  });

  it('reads again, wider, a plate whose box cut off its first character, and keeps the whole reading', async () => {
    const spec = { x: 500, y: 420, w: 300, h: 80 };
    const img = await decodeImage(await scene(oneLinePlate('KX·TR·45', spec)));
    // What a tight detection gives: a box whose left edge runs through the K.
    const [full] = await engine.detector.detect(img);
    expect(full).toBeDefined();
    const [x, y, w, h] = full!.box;
    const cut = 0.14 * w; // about two thirds of the first character
    const tight: Detection = { box: [x + cut, y, w - cut, h], score: full!.score, lines: 1 };
    const first = await engine.recogniser.recognise(cropDetection(img, tight), { lines: 1 });
    expect(first.text).toBe('XTR45'); // the precondition: the tight box loses the K
    const readings = await engine.recogniseDetections(img, [tight]);
    expect(readings.map((r) => r.text)).toContain('KXTR45');
    expect(rankWithGrammar(readings, getGrammar('cl'))[0]!.text).toBe('KXTR45');
  });

  it('looks only at the region it is given, for less work, and finds the plate there', async () => {
    const jpeg = await scene(oneLinePlate('BB·CL·12', { x: 300, y: 450, w: 220, h: 60 }));
    const whole = await engine.read(jpeg);
    const region = await engine.read(jpeg, { region: [0.15, 0.5, 0.35, 0.4] });
    expect(region.plates[0]!.text).toBe('BBCL12');
    expect(region.plates[0]!.box).toEqual(whole.plates[0]!.box.map((v) => expect.closeTo(v, -1)));
    expect(region.timings.detectedShare).toBeLessThan(0.25);
    expect(whole.timings.detectedShare).toBe(1);
    const elsewhere = await engine.read(jpeg, { region: [0.6, 0.1, 0.3, 0.3] });
    expect(elsewhere.plates.filter((p) => p.text === 'BBCL12')).toEqual([]);
  });

  it("reuses the previous frame's reading of a plate that has not changed, at most a few frames in a row, never another plate's", async () => {
    const at = (dx: number, text = 'BB·CL·12') => scene(oneLinePlate(text, { x: 400 + dx, y: 450, w: 240, h: 64 }));
    const first = await engine.read(await at(0));
    expect(first.timings.reused).toBe(0);
    const plate = first.plates.find((p) => p.text === 'BBCL12')!;
    expect(plate.fingerprint).toBeInstanceOf(Uint8Array);

    // The same car a few pixels on: carried over, moved with the plate.
    let previous = first.plates;
    for (let frame = 1; frame <= REUSE_MAX_FRAMES; frame++) {
      const next = await engine.read(await at(frame * 4), { previous });
      expect(next.timings.reused, `frame ${frame}`).toBeGreaterThanOrEqual(1);
      const carried = next.plates.find((p) => p.text === 'BBCL12')!;
      expect(carried.reused).toBe(frame);
      expect(Math.abs(carried.box[0] - (plate.box[0] + frame * 4))).toBeLessThanOrEqual(3);
      previous = next.plates;
    }
    // After REUSE_MAX_FRAMES, read again.
    const fresh = await engine.read(await at((REUSE_MAX_FRAMES + 1) * 4), { previous });
    expect(fresh.plates.find((p) => p.text === 'BBCL12')!.reused).toBeUndefined();

    // Another plate in the same place is read, not carried over.
    const other = await engine.read(await at(4, 'HJ·RS·37'), { previous: first.plates });
    expect(other.timings.reused).toBe(0);
    expect(other.plates[0]!.text).toBe('HJRS37');
  });

  it('tells an unchanged plate from another one by its fingerprint', async () => {
    const img = await decodeImage(
      await scene(oneLinePlate('BB·CL·12', { x: 400, y: 450, w: 240, h: 64 }) + oneLinePlate('BB·CL·18', { x: 400, y: 150, w: 240, h: 64 })),
    );
    const a = fingerprint(cropDetection(img, { box: [395, 445, 250, 74], score: 1 }));
    const a2 = fingerprint(cropDetection(img, { box: [397, 446, 250, 74], score: 1 }));
    const b = fingerprint(cropDetection(img, { box: [395, 145, 250, 74], score: 1 }));
    expect(fingerprintDistance(a, a)).toBe(0);
    expect(fingerprintDistance(a, a2)).toBeLessThan(REUSE_MAX_DISTANCE);
    expect(fingerprintDistance(a, b)).toBeGreaterThan(REUSE_MAX_DISTANCE); // one character differs
    expect(fingerprintDistance(a, new Uint8Array(16))).toBe(1);
  });
});

describe('motion region', () => {
  /** A grey street with a dark car (a rectangle) at x. */
  const frame = (x: number) =>
    sharp({ create: { width: 640, height: 360, channels: 3, background: '#808080' } })
      .composite([
        {
          input: Buffer.from(
            `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360"><rect x="${x}" y="200" width="80" height="60" fill="#202020"/></svg>`,
          ),
          left: 0,
          top: 0,
        },
      ])
      .jpeg()
      .toBuffer();

  it('bounds the part of the frame that moved, and keeps it through the cooldown', async () => {
    const gate = new MotionGate({ width: 160, threshold: 18, minChangedFraction: 0.004, cooldownMs: 1000 });
    expect((await gate.check(await frame(100), 0)).region).toBeUndefined(); // the first frame is the background
    const moved = await gate.check(await frame(130), 100);
    expect(moved.motion).toBe(true);
    const [x, y, w, h] = moved.region!;
    // Old and new place of the car (100..210 px of 640, 200..260 of 360), with a margin of 5%.
    expect(x).toBeCloseTo(100 / 640 - 0.05, 1);
    expect(x + w).toBeCloseTo(210 / 640 + 0.05, 1);
    expect(y).toBeCloseTo(200 / 360 - 0.05, 1);
    expect(y + h).toBeCloseTo(260 / 360 + 0.05, 1);
    expect(w * h).toBeLessThan(0.15);
    // Stopped: still motion during the cooldown, where it stopped.
    const stopped = await gate.check(await frame(130), 600);
    expect(stopped.motion).toBe(true);
    expect(stopped.region).toEqual(moved.region);
    // Once the stopped car is part of the background and the cooldown is over: nothing.
    const still = await frame(130);
    let idle = await gate.check(still, 700);
    for (let t = 800; t < 20_000; t += 100) idle = await gate.check(still, t);
    expect([idle.motion, idle.region]).toEqual([false, undefined]);
  });
});
