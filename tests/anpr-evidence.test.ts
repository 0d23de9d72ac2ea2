import { mkdtempSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { EvidenceStore } from '../src/anpr/evidence.js';
import { plateHash } from '../src/anpr/privacy.js';
import { ManualClock } from '../src/core/clock.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 30, 12);

function store(opts: { synced?: boolean; maxBytes?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-evidence-'));
  const clock = new ManualClock(NOW);
  let synced = opts.synced ?? true;
  const evidence = new EvidenceStore({
    dir,
    retentionMs: 7 * DAY,
    maxBytes: opts.maxBytes ?? 1 << 30,
    frameWidth: 320,
    jpegQuality: 70,
    clock,
    clockSynced: () => synced,
    sweepIntervalMs: 3_600_000,
  });
  return { dir, clock, evidence, setSynced: (v: boolean) => (synced = v) };
}

/** A file in the evidence directory with the given age and size. */
function aged(dir: string, name: string, ageMs: number, size = 1000): void {
  const file = join(dir, name);
  writeFileSync(file, Buffer.alloc(size));
  const t = (NOW - ageMs) / 1000;
  utimesSync(file, t, t);
}

describe('hit evidence', () => {
  it('cuts a crop around the plate and a downscaled frame, both JPEG, and keeps them as files', async () => {
    const { dir, evidence } = store();
    await evidence.start();
    const frame = await sharp({ create: { width: 1280, height: 720, channels: 3, background: '#445566' } })
      .jpeg()
      .toBuffer();
    const e = await evidence.capture(frame, [500, 400, 300, 100], { camera: 'lane/1', plate: 'BBCL12' });
    const crop = await sharp(Buffer.from(e.crop.data, 'base64')).metadata();
    expect(crop).toMatchObject({ format: 'jpeg', width: 390, height: 130 }); // 15 % margin per side
    expect(e.crop).toMatchObject({ content_type: 'image/jpeg', width: 390, height: 130 });
    expect(e.frame).toMatchObject({ content_type: 'image/jpeg', width: 320, height: 180 });
    expect(e.files!.crop).toMatch(/^\d+-lane_1-BBCL12-crop\.jpg$/);
    expect(readdirSync(dir).sort()).toEqual([e.files!.crop, e.files!.frame].sort());
    expect(evidence.stats()).toMatchObject({ written: 2, errors: 0 });
    await evidence.stop();
  });

  it('clamps a box at the frame edge', async () => {
    const { evidence } = store();
    await evidence.start();
    const frame = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#000' } })
      .jpeg()
      .toBuffer();
    const e = await evidence.capture(frame, [600, 450, 100, 60], { camera: 'c', plate: 'P' });
    expect(e.crop.width).toBeLessThanOrEqual(640 - 585);
    expect(e.crop.height).toBeLessThanOrEqual(480 - 441);
    await evidence.stop();
  });

  it('deletes files past retention only once the clock can be trusted', async () => {
    const { dir, evidence, setSynced } = store({ synced: false });
    aged(dir, 'old-crop.jpg', 8 * DAY);
    aged(dir, 'new-crop.jpg', 1 * DAY);
    expect(await evidence.sweep()).toMatchObject({ deleted: 0 });
    setSynced(true);
    expect(await evidence.sweep()).toMatchObject({ deleted: 1 });
    expect(readdirSync(dir)).toEqual(['new-crop.jpg']);
  });

  it('keeps files whose time predates any real clock, unless space runs out', async () => {
    const { dir, evidence } = store({ maxBytes: 2500 });
    aged(dir, 'epoch-crop.jpg', NOW - 1000); // written in 1970 by a Pi without its time yet
    aged(dir, 'a-crop.jpg', 2 * DAY);
    aged(dir, 'b-crop.jpg', 1 * DAY);
    expect(await evidence.sweep()).toMatchObject({ deleted: 1, bytes: 2000 });
    expect(readdirSync(dir).sort()).toEqual(['a-crop.jpg', 'b-crop.jpg']);
    expect(statSync(join(dir, 'a-crop.jpg')).size).toBe(1000);
  });
});

describe('plate hash', () => {
  it('is a keyed HMAC of the normalised plate: stable, key-dependent, separator-blind', () => {
    const key = 'k'.repeat(32);
    expect(plateHash(key, 'BBCL12')).toMatch(/^[0-9a-f]{64}$/);
    expect(plateHash(key, 'bb·cl·12')).toBe(plateHash(key, 'BBCL12'));
    expect(plateHash(key, 'BBCL13')).not.toBe(plateHash(key, 'BBCL12'));
    expect(plateHash('x'.repeat(32), 'BBCL12')).not.toBe(plateHash(key, 'BBCL12'));
  });
});
