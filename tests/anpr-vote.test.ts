import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { charsFromText } from '../src/anpr/grammar.js';
import { editDistance, PlateTracker, type PlateBox, type PlateReadInput } from '../src/anpr/vote.js';

const LEFT: PlateBox = [100, 400, 120, 40];
const RIGHT: PlateBox = [900, 420, 120, 40];

function read(text: string, frameMono: number, confidence = 0.9, box: PlateBox = LEFT, extra: Partial<PlateReadInput> = {}): PlateReadInput {
  return { text, chars: null, confidence, box, frameMono, ...extra };
}

function tracker(opts: { dedupWindowMs?: number; maxGapMs?: number; minFrames?: number; maxTrackMs?: number } = {}) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1), 0);
  const t = new PlateTracker({
    dedupWindowMs: opts.dedupWindowMs ?? 60_000,
    maxGapMs: opts.maxGapMs ?? 500,
    minFrames: opts.minFrames,
    maxTrackMs: opts.maxTrackMs,
    clock,
  });
  return { t, clock };
}

describe('plate voting', () => {
  it('turns three noisy reads of one plate into one event with the majority text and first/last times', () => {
    const { t } = tracker();
    t.add('cam1', read('BBCL12', 1000, 0.9, [100, 400, 120, 40]));
    t.add('cam1', read('BBCL1Z', 1040, 0.6, [110, 402, 122, 41]));
    t.add('cam1', read('B8CL12', 1080, 0.7, [120, 404, 124, 42]));
    expect(t.flush(1300)).toEqual([]); // still in view as far as we know
    expect(t.stats().openTracks).toBe(1);
    const [event, ...rest] = t.flush(1600);
    expect(rest).toEqual([]);
    expect(event).toMatchObject({
      cameraId: 'cam1',
      text: 'BBCL12',
      firstSeenMono: 1000,
      lastSeenMono: 1080,
      frames: 3,
      bestFrameIndex: 0,
      bestFrameMono: 1000,
      box: [100, 400, 120, 40],
      format: null,
    });
    // Position 1: B from frames 0 and 1, 8 from frame 2; position 5: 2 from frames 0 and 2.
    expect(event!.perCharConfidence[0]).toBeCloseTo((0.9 + 0.6 + 0.7) / 3, 6);
    expect(event!.perCharConfidence[1]).toBeCloseTo((0.9 + 0.6) / 3, 6);
    expect(event!.perCharConfidence[5]).toBeCloseTo((0.9 + 0.7) / 3, 6);
    expect(event!.confidence).toBeGreaterThan(0.5);
    expect(event!.confidence).toBeLessThan(0.8);
    expect(t.stats()).toMatchObject({ reads: 3, openTracks: 0, emitted: 1, suppressedDuplicates: 0 });
  });

  it('weighs votes by confidence: one sure frame outvotes two doubtful ones', () => {
    const { t } = tracker();
    t.add('cam1', read('BBCL1Z', 0, 0.3));
    t.add('cam1', read('BBCL1Z', 40, 0.3));
    t.add('cam1', read('BBCL12', 80, 0.95));
    expect(t.flush(1000).map((e) => e.text)).toEqual(['BBCL12']);
  });

  it('uses per-character probabilities when the recogniser gives them', () => {
    const { t } = tracker();
    const sureOfZ = charsFromText('BBCL1Z', 0.9);
    sureOfZ[5] = {
      best: 'Z',
      prob: 0.2,
      alternatives: [
        { char: 'Z', prob: 0.2 },
        { char: '2', prob: 0.15 },
      ],
    };
    // Two frames say Z but were unsure of it; one frame says 2 with a weak whole-plate confidence.
    t.add('cam1', read('BBCL1Z', 0, 0.9, LEFT, { chars: sureOfZ }));
    t.add('cam1', read('BBCL1Z', 40, 0.9, LEFT, { chars: sureOfZ }));
    t.add('cam1', read('BBCL12', 80, 0.5));
    const [event] = t.flush(1000);
    expect(event?.text).toBe('BBCL12');
    expect(event?.perCharConfidence[5]).toBeCloseTo(0.5 / 3, 6);
  });

  it('aligns reads of another length to the majority length', () => {
    const { t } = tracker();
    t.add('cam1', read('IBBCL12', 0, 0.9)); // border read as I
    t.add('cam1', read('BBCL12', 40, 0.8));
    t.add('cam1', read('BBCL1Z', 80, 0.8));
    t.add('cam1', read('BBCL12', 120, 0.7));
    const [event] = t.flush(1000);
    expect(event?.text).toBe('BBCL12');
    expect(event?.frames).toBe(4);
    // The 7-character frame voted too: it supports the final 2 (0.9) beside frames 1 and 3.
    expect(event?.perCharConfidence[5]).toBeCloseTo((0.9 + 0.8 + 0.7) / 4, 6);
    expect(event?.bestFrameIndex).toBe(1); // the most confident frame that read the voted text
  });

  it('keeps two plates read in the same frames apart', () => {
    const { t } = tracker();
    for (let i = 0; i < 4; i++) {
      t.add('cam1', read(i === 2 ? 'BBCL1Z' : 'BBCL12', i * 40, 0.9, LEFT));
      t.add('cam1', read(i === 1 ? 'GHJK3A' : 'GHJK34', i * 40, 0.8, RIGHT));
    }
    const events = t.flush(2000);
    expect(events.map((e) => [e.text, e.frames, e.box[0]])).toEqual([
      ['BBCL12', 4, 100],
      ['GHJK34', 4, 900],
    ]);
  });

  it('keeps similar plates in different places apart even in alternating frames', () => {
    const { t } = tracker();
    t.add('cam1', read('BBCL12', 0, 0.9, LEFT));
    t.add('cam1', read('BBCL13', 20, 0.9, RIGHT));
    t.add('cam1', read('BBCL12', 40, 0.9, LEFT));
    t.add('cam1', read('BBCL13', 60, 0.9, RIGHT));
    expect(t.flush(2000).map((e) => e.text)).toEqual(['BBCL12', 'BBCL13']);
  });

  it('keeps cameras apart', () => {
    const { t } = tracker();
    t.add('cam1', read('BBCL12', 0));
    t.add('cam2', read('BBCL12', 10));
    expect(t.flush(2000).map((e) => e.cameraId)).toEqual(['cam1', 'cam2']);
  });

  it('suppresses a re-read of an emitted plate within the dedup window, and counts it', () => {
    const { t } = tracker({ dedupWindowMs: 10_000, maxGapMs: 500 });
    t.add('cam1', read('BBCL12', 0));
    t.add('cam1', read('BBCL12', 40));
    expect(t.flush(1000)).toHaveLength(1);
    t.add('cam1', read('BBCL12', 4000)); // the same car again, e.g. stopped at the light
    t.add('cam1', read('BBCL12', 4040));
    expect(t.flush(5000)).toEqual([]);
    expect(t.stats().suppressedDuplicates).toBe(1);
    t.add('cam2', read('BBCL12', 5000)); // another camera is not a duplicate
    expect(t.flush(6000)).toHaveLength(1);
    t.add('cam1', read('BBCL12', 10_100)); // more than the window after the emitted passage
    expect(t.flush(11_000).map((e) => e.firstSeenMono)).toEqual([10_100]);
    expect(t.stats()).toMatchObject({ emitted: 3, suppressedDuplicates: 1 });
  });

  it('splits a track at a gap longer than maxGapMs into two events', () => {
    const { t } = tracker({ dedupWindowMs: 0, maxGapMs: 500 });
    t.add('cam1', read('BBCL12', 0));
    t.add('cam1', read('BBCL12', 100));
    t.add('cam1', read('BBCL12', 700)); // 600 ms later: a new passage, even before any flush
    t.add('cam1', read('BBCL12', 800));
    const events = t.flush(5000);
    expect(events.map((e) => [e.firstSeenMono, e.lastSeenMono, e.frames])).toEqual([
      [0, 100, 2],
      [700, 800, 2],
    ]);
  });

  it('reports a plate that never leaves the view once per maxTrackMs, then deduplicates', () => {
    const { t, clock } = tracker({ dedupWindowMs: 60_000, maxGapMs: 500, maxTrackMs: 10_000 });
    const events = [];
    for (let ms = 0; ms <= 30_000; ms += 100) {
      clock.advance(100);
      t.add('cam1', read('BBCL12', clock.monoNow()));
      events.push(...t.flush()); // uses the injected clock
    }
    expect(events).toHaveLength(1);
    expect(events[0]!.lastSeenMono - events[0]!.firstSeenMono).toBeLessThan(10_000);
    expect(t.stats().suppressedDuplicates).toBe(2);
  });

  it('drops tracks shorter than minFrames', () => {
    const { t } = tracker({ minFrames: 2 });
    t.add('cam1', read('BBCL12', 0));
    t.add('cam1', read('GHJK34', 0, 0.9, RIGHT));
    t.add('cam1', read('GHJK34', 40, 0.9, RIGHT));
    expect(t.flush(2000).map((e) => e.text)).toEqual(['GHJK34']);
    expect(t.stats().discardedShort).toBe(1);
  });

  it('takes the format from the frames that read the voted text, and drain closes everything', () => {
    const { t } = tracker();
    t.add('cam1', read('BBCL12', 0, 0.9, LEFT, { format: 'car_2007' }));
    t.add('cam1', read('BCL12', 40, 0.4, LEFT, { format: 'moto_2007' }));
    t.add('cam1', read('bb·cl·12', 80, 0.8, LEFT, { format: 'car_2007' }));
    t.add('cam1', read('·-', 90)); // nothing readable
    const [event] = t.drain();
    expect(event).toMatchObject({ text: 'BBCL12', format: 'car_2007', frames: 3 });
    expect(t.stats()).toMatchObject({ openTracks: 0, ignored: 1, reads: 4 });
  });

  it('rejects nonsense options', () => {
    const clock = new ManualClock();
    expect(() => new PlateTracker({ dedupWindowMs: 0, maxGapMs: 0, clock })).toThrow(/maxGapMs/);
    expect(() => new PlateTracker({ dedupWindowMs: -1, maxGapMs: 100, clock })).toThrow(/dedupWindowMs/);
    expect(() => new PlateTracker({ dedupWindowMs: 0, maxGapMs: 100, minFrames: 0, clock })).toThrow(/minFrames/);
  });
});

describe('editDistance', () => {
  it.each([
    ['BBCL12', 'BBCL12', 0],
    ['BBCL12', 'BBCL1Z', 1],
    ['BBCL12', 'IBBCL12', 1],
    ['BBCL12', 'GHJK34', 6],
    ['', 'AB', 2],
  ])('%s → %s is %i', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
  });

  it('stops early past the limit', () => {
    expect(editDistance('BBCL12', 'GHJK34', 2)).toBe(3);
  });
});
