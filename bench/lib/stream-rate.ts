// Plates read per second per core on camera streams: clips (bench/lib/clips.ts) fed as a daemon
// feeds a camera's frames, through the motion gate with the daemon's default settings, to a
// saturated worker pool (one ONNX thread per worker, two streams per worker so the queue never
// runs dry). With `saving` the pool gets what the daemon gives it under anpr.saving: the motion
// region and the previous frame's readings; without, whole frames read from scratch (the reader
// as it was before). A plate counts as read in a frame when a ranked reading at or above the
// default min_confidence has its text (O and 0 the same on European plates).
import { performance } from 'node:perf_hooks';
import type { PlateReading } from '../../src/anpr/engine.js';
import { getGrammar } from '../../src/anpr/grammar.js';
import { MotionGate } from '../../src/anpr/motion.js';
import { rankWithGrammar } from '../../src/anpr/pipeline.js';
import { AnprWorkerPool } from '../../src/anpr/worker.js';
import type { Clip } from './clips.js';
import { round } from './stats.js';

export interface StreamRate {
  /** Frames read (the motion gate passed them). */
  frames: number;
  /** Frames in which the clip's plate was read. */
  platesRead: number;
  seconds: number;
  platesPerSecondPerCore: number | null;
  /** Share of read frames in which the plate was read. */
  accuracy: number | null;
  /** Detections whose reading was carried over from the previous frame. */
  reused: number;
  /** Mean share of the frame the detector looked at. */
  detectedShare: number | null;
  /** Mean ms per frame in the worker (decode to ranking). */
  msPerFrame: number | null;
}

const o0 = (s: string) => s.replace(/O/g, '0');

export async function streamRate(clips: readonly Clip[], { workers, saving }: { workers: number; saving: boolean }): Promise<StreamRate> {
  const pool = new AnprWorkerPool({ workers, threadsPerWorker: 1, maxQueue: workers * 2 });
  await pool.ready();
  const streams = Array.from({ length: workers * 2 }, (_, s) => clips.filter((_, i) => i % (workers * 2) === s));
  let frames = 0;
  let platesRead = 0;
  let reused = 0;
  let share = 0;
  let workMs = 0;
  const t0 = performance.now();
  try {
    await Promise.all(
      streams.map(async (mine) => {
        let mono = 0;
        for (const clip of mine) {
          // A clip is another street: the gate learns it from its first frame (which is not read).
          const gate = new MotionGate({ width: 160, threshold: 18, minChangedFraction: 0.004, cooldownMs: 2000 });
          const grammar = getGrammar(clip.country === 'EU' ? 'eu' : 'br');
          let previous: PlateReading[] = [];
          for (const frame of clip.frames) {
            mono += 100;
            const { motion, region } = await gate.check(frame.jpeg, mono);
            if (!motion) {
              previous = [];
              continue;
            }
            const r = await pool.read(new Uint8Array(frame.jpeg), saving ? { ...(region ? { region } : {}), previous } : {});
            previous = r.plates;
            frames++;
            reused += r.timings.reused;
            share += r.timings.detectedShare;
            workMs += r.timings.total;
            const ranked = rankWithGrammar(r.plates, grammar).filter((p) => p.confidence >= 0.5);
            const same = (t: string) => (clip.country === 'EU' ? o0(t) === o0(clip.text) : t === clip.text);
            if (ranked.some((p) => same(p.text))) platesRead++;
          }
        }
      }),
    );
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    frames,
    platesRead,
    seconds: round(seconds, 2)!,
    platesPerSecondPerCore: round(platesRead / seconds / workers, 3),
    accuracy: frames ? round(platesRead / frames, 3) : null,
    reused,
    detectedShare: frames ? round(share / frames, 3) : null,
    msPerFrame: frames ? round(workMs / frames, 1) : null,
  };
}
