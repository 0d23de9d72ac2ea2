import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Box, type BusyScene, generateBusyScenes, PhotosMissingError, SCENE_KINDS, truthOf } from '../bench/lib/busy-scenes.js';
import { REPO_ROOT } from './helpers/repo.js';

// The scenes are made from the real photos in ../shared/anpr-bench. Without them these tests fail
// (never skip): the generator's error names the folder and how to get it.
const PHOTOS = join(REPO_ROOT, '..', 'shared', 'anpr-bench');
const COUNTS = { busy: 3, two_line: 3, foreign: 3, multi: 2, negative: 3 };

const overlaps = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
const insideOf = (b: Box, s: BusyScene) => b.x >= 0 && b.y >= 0 && b.w > 0 && b.h > 0 && b.x + b.w <= s.width && b.y + b.h <= s.height;

/** The labelled plate of a shared photo (`eu/NAME.jpg`). */
function labelled(source: string): string {
  const line = readFileSync(join(PHOTOS, source.replace(/\.jpg$/, '.txt')), 'utf8')
    .trim()
    .split('\n')[0]!;
  return line
    .split('\t')[5]!
    .toUpperCase()
    .replace(/[^A-Z0-9]/g, '');
}

describe('busy street scenes', () => {
  let scenes: BusyScene[];
  beforeAll(async () => {
    scenes = await generateBusyScenes({ photosDir: PHOTOS, seed: 7, counts: COUNTS });
  });

  it('makes the scenes asked for, of every kind', () => {
    for (const kind of SCENE_KINDS) expect(scenes.filter((s) => s.kind === kind)).toHaveLength(COUNTS[kind]);
    expect(new Set(scenes.map((s) => s.id)).size).toBe(scenes.length);
  });

  it('gives byte-identical JPEGs and truth for the same seed, and others for another seed', async () => {
    const again = await generateBusyScenes({ photosDir: PHOTOS, seed: 7, counts: COUNTS });
    expect(again).toHaveLength(scenes.length);
    for (const [i, s] of again.entries()) expect(s.jpeg.equals(scenes[i]!.jpeg), s.id).toBe(true);
    expect(JSON.stringify(truthOf(again))).toBe(JSON.stringify(truthOf(scenes)));

    const other = await generateBusyScenes({ photosDir: PHOTOS, seed: 8, counts: COUNTS });
    const same = other.filter((s, i) => s.jpeg.equals(scenes[i]!.jpeg));
    expect(same).toHaveLength(0);
    expect(JSON.stringify(truthOf(other))).not.toBe(JSON.stringify(truthOf(scenes)));
  });

  it('decodes every scene at its stated size, with every box inside the image', async () => {
    for (const s of scenes) {
      const { width, height, format } = await sharp(s.jpeg).metadata();
      expect(format, s.id).toBe('jpeg');
      expect([width, height], s.id).toEqual([s.width, s.height]);
      await sharp(s.jpeg).raw().toBuffer();
      for (const p of s.plates) expect(insideOf(p.box, s), `${s.id} plate ${JSON.stringify(p.box)}`).toBe(true);
      for (const d of s.distractors) expect(insideOf(d.box, s), `${s.id} ${d.kind} ${JSON.stringify(d.box)}`).toBe(true);
    }
  });

  it('never puts a distractor over a plate, nor two distractors over each other', () => {
    for (const s of scenes) {
      for (const d of s.distractors) {
        for (const p of s.plates) expect(overlaps(d.box, p.box), `${s.id}: ${d.kind} ${d.text} over ${p.text}`).toBe(false);
        for (const e of s.distractors) if (e !== d) expect(overlaps(d.box, e.box), `${s.id}: ${d.text} over ${e.text}`).toBe(false);
      }
    }
  });

  it('keeps the photo’s own plate as the truth of a busy scene, among 3–6 distractors with a timestamp and a dealer frame', () => {
    for (const s of scenes.filter((x) => x.kind === 'busy')) {
      expect(s.sources).toHaveLength(1);
      expect(s.plates.map((p) => [p.text, p.lines])).toEqual([[labelled(s.sources[0]!), 1]]);
      expect(s.distractors.length, s.id).toBeGreaterThanOrEqual(3);
      expect(s.distractors.length, s.id).toBeLessThanOrEqual(6);
      const kinds = s.distractors.map((d) => d.kind);
      expect(kinds).toContain('timestamp');
      expect(kinds).toContain('dealer');
      const ts = s.distractors.find((d) => d.kind === 'timestamp')!.text;
      expect(ts).toMatch(/^(2026-\d\d-\d\d \d\d:\d\d:\d\d|2026\d{10})$/);
      // The dealer's strip sits right above or below the plate.
      const plate = s.plates[0]!.box;
      const dealer = s.distractors.find((d) => d.kind === 'dealer')!.box;
      const gap = dealer.y > plate.y ? dealer.y - (plate.y + plate.h) : plate.y - (dealer.y + dealer.h);
      expect(gap).toBeGreaterThanOrEqual(0);
      expect(gap).toBeLessThanOrEqual(6);
    }
  });

  it('writes two-line Chilean and Argentine plates whose truth is the lines concatenated', () => {
    const formats: Record<string, RegExp> = {
      // Motorcycle LLL/NN (since 2007) or LL/NNN, trailer LLLL/NN; no Q, and no vowels in the new series.
      CL: /^([B-DF-HJ-LP-TV-Z]{3}\d{2}|[A-PR-Z]{2}\d{3}|[B-DF-HJ-LP-TV-Z]{4}\d{2})$/,
      // Motorcycle L NNN/LLL (Mercosur) or NNN/LLL.
      AR: /^([A-Z]\d{3}[A-Z]{3}|\d{3}[A-Z]{3})$/,
    };
    const all = scenes.filter((x) => x.kind === 'two_line');
    for (const s of all) {
      expect(s.plates).toHaveLength(1);
      const p = s.plates[0]!;
      expect(p.lines).toBe(2);
      expect(formats[p.country], `${s.id} ${p.country}`).toBeDefined();
      expect(p.text).toMatch(formats[p.country]!);
      expect(p.text).not.toBe(labelled(s.sources[0]!));
    }
    // Over a larger set, both countries appear.
    return generateBusyScenes({ photosDir: PHOTOS, seed: 3, counts: { two_line: 12 } }).then((more) => {
      expect(new Set(more.map((s) => s.plates[0]!.country))).toEqual(new Set(['CL', 'AR']));
    });
  });

  it('draws foreign plates in their formats over the photo’s plate box', () => {
    const formats: Record<string, RegExp> = {
      AR: /^([A-Z]{2}\d{3}[A-Z]{2}|[A-Z]{3}\d{3})$/,
      BO: /^\d{4}[A-Z]{3}$/,
      PE: /^[A-Z]{3}\d{3}$/,
      BR: /^[A-Z]{3}\d[A-Z]\d{2}$/,
    };
    for (const s of scenes.filter((x) => x.kind === 'foreign')) {
      expect(s.plates).toHaveLength(1);
      const p = s.plates[0]!;
      expect(p.lines).toBe(1);
      expect(formats[p.country], p.country).toBeDefined();
      expect(p.text).toMatch(formats[p.country]!);
    }
  });

  it('puts two labelled plates in a multi scene, one in each half', () => {
    for (const s of scenes.filter((x) => x.kind === 'multi')) {
      expect(s.sources).toHaveLength(2);
      expect(s.plates.map((p) => p.text)).toEqual(s.sources.map(labelled));
      const [left, right] = s.plates.map((p) => p.box) as [Box, Box];
      expect(left.x + left.w).toBeLessThanOrEqual(right.x);
    }
  });

  it('has no plate in a negative scene, only distractors', () => {
    for (const s of scenes.filter((x) => x.kind === 'negative')) {
      expect(s.plates).toEqual([]);
      expect(s.distractors.length, s.id).toBeGreaterThanOrEqual(3);
    }
  });

  it('fails with a message naming the folder when the photos are missing', async () => {
    const missing = join(REPO_ROOT, '..', 'shared', 'no-such-anpr-bench');
    const err = await generateBusyScenes({ photosDir: missing, seed: 1, counts: { busy: 1 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PhotosMissingError);
    expect((err as Error).message).toContain(missing);
    expect((err as Error).message).toContain('openalpr/benchmarks');
  });

  it('reads the photos from ../shared/anpr-bench next to the repository', () => {
    expect(existsSync(join(PHOTOS, 'eu')) && existsSync(join(PHOTOS, 'br')), `${PHOTOS}/{eu,br} must exist`).toBe(true);
  });
});
