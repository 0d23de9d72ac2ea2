import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { buildRoiMask, FrameDecodeError, MotionGate, pointInPolygon, type Point } from '../src/anpr/motion.js';
import { mulberry32 as rng } from './helpers/random.js';

const W = 320;
const H = 240;
const LEFT_HALF: Point[] = [
  [0, 0],
  [0.5, 0],
  [0.5, 1],
  [0, 1],
];

/** A grey road with sensor noise, optionally a bright 48×36 "vehicle" with its top-left at (bx, by). */
async function frame(seed: number, block?: { x: number; y: number }): Promise<Buffer> {
  const rand = rng(seed);
  const px = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const inBlock = block && x >= block.x && x < block.x + 48 && y >= block.y && y < block.y + 36;
      const v = inBlock ? 235 : 110 + Math.round((rand() - 0.5) * 8);
      const i = (y * W + x) * 3;
      px[i] = v;
      px[i + 1] = v;
      px[i + 2] = v;
    }
  }
  return sharp(px, { raw: { width: W, height: H, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

function gate(extra: Partial<ConstructorParameters<typeof MotionGate>[0]> = {}): MotionGate {
  return new MotionGate({ width: 160, threshold: 25, minChangedFraction: 0.01, cooldownMs: 500, roi: LEFT_HALF, ...extra });
}

describe('pointInPolygon and the ROI mask', () => {
  it('classifies points against a triangle and a concave polygon', () => {
    const tri: Point[] = [
      [0, 0],
      [1, 0],
      [0, 1],
    ];
    expect(pointInPolygon(0.2, 0.2, tri)).toBe(true);
    expect(pointInPolygon(0.8, 0.8, tri)).toBe(false);
    const u: Point[] = [
      [0, 0],
      [0.3, 0],
      [0.3, 0.7],
      [0.7, 0.7],
      [0.7, 0],
      [1, 0],
      [1, 1],
      [0, 1],
    ];
    expect(pointInPolygon(0.5, 0.3, u)).toBe(false); // in the notch
    expect(pointInPolygon(0.5, 0.9, u)).toBe(true);
    expect(pointInPolygon(0.1, 0.1, u)).toBe(true);
  });

  it('builds a mask of exactly the pixels whose centres are inside', () => {
    const mask = buildRoiMask(160, 120, LEFT_HALF);
    expect(mask.reduce((n, v) => n + v, 0)).toBe(80 * 120);
    expect(mask[0]).toBe(1);
    expect(mask[79]).toBe(1);
    expect(mask[80]).toBe(0);
    expect(buildRoiMask(4, 3).every((v) => v === 1)).toBe(true);
  });

  it('rejects bad options', () => {
    expect(() =>
      gate({
        roi: [
          [0, 0],
          [1, 1],
        ],
      }),
    ).toThrow(RangeError);
    expect(() =>
      gate({
        roi: [
          [0, 0],
          [2, 0],
          [0, 1],
        ],
      }),
    ).toThrow(RangeError);
    expect(() => gate({ width: 0 })).toThrow(RangeError);
    expect(() => gate({ minChangedFraction: 1.5 })).toThrow(RangeError);
  });
});

describe('MotionGate', () => {
  it('reports no motion for a static scene with sensor noise', async () => {
    const g = gate();
    for (let i = 0; i < 8; i++) {
      const r = await g.check(await frame(100 + i), i * 100);
      expect(r.motion).toBe(false);
      expect(r.changed).toBeLessThan(0.001);
    }
  });

  it('reports motion for a block moving inside the ROI', async () => {
    const g = gate();
    await g.check(await frame(1), 0);
    await g.check(await frame(2), 100);
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await g.check(await frame(10 + i, { x: 10 + i * 25, y: 100 }), 200 + i * 100));
    for (const r of results) {
      expect(r.motion).toBe(true);
      // The 48×36 block covers 864/9600 of the half frame at 160 px; at least part of it is new each frame.
      expect(r.changed).toBeGreaterThan(0.02);
      expect(r.changed).toBeLessThan(0.2);
    }
  });

  it('ignores the same block moving outside the ROI', async () => {
    const g = gate();
    await g.check(await frame(1), 0);
    await g.check(await frame(2), 100);
    for (let i = 0; i < 4; i++) {
      const r = await g.check(await frame(10 + i, { x: 180 + i * 25, y: 100 }), 200 + i * 100);
      expect(r.motion).toBe(false);
      expect(r.changed).toBeLessThan(0.001);
    }
    // Without an ROI the same frames are motion.
    const whole = gate({ roi: undefined });
    await whole.check(await frame(1), 0);
    expect((await whole.check(await frame(10, { x: 180, y: 100 }), 100)).motion).toBe(true);
  });

  it('keeps reporting motion for cooldownMs after the last change', async () => {
    const g = gate({ cooldownMs: 500 });
    const still = await frame(1);
    await g.check(still, 0);
    expect((await g.check(still, 100)).motion).toBe(false);
    const moved = await g.check(await frame(2, { x: 40, y: 80 }), 1000);
    expect(moved.motion).toBe(true);
    // The scene is still again: nothing changes, but the vehicle may have just stopped.
    const after = await g.check(still, 1100);
    expect(after.changed).toBeLessThan(0.01);
    expect(after.motion).toBe(true);
    expect((await g.check(still, 1499)).motion).toBe(true);
    expect((await g.check(still, 1500)).motion).toBe(false);
    expect((await g.check(still, 2000)).motion).toBe(false);
  });

  it('rejects corrupt, truncated and non-JPEG input with FrameDecodeError and keeps working', async () => {
    const g = gate();
    const good = await frame(1);
    await g.check(good, 0);
    const truncated = good.subarray(0, Math.floor(good.length / 2));
    const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'white' } })
      .png()
      .toBuffer();
    // A bogus Huffman table: the counts of code lengths in the first DHT segment add up to far too many codes.
    const bogusTable = Buffer.from(good);
    const dht = bogusTable.indexOf(Buffer.from([0xff, 0xc4]));
    expect(dht).toBeGreaterThan(0);
    bogusTable.fill(0xff, dht + 5, dht + 21);
    for (const bad of [truncated, Buffer.alloc(0), Buffer.from('not an image'), png, good.subarray(0, 100), bogusTable]) {
      const err = await g.check(bad, 50).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FrameDecodeError);
      expect((err as Error).name).toBe('FrameDecodeError');
    }
    expect(await g.check(good, 100)).toEqual({ motion: false, changed: 0 });
  });
});
