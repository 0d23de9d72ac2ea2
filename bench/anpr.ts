// ANPR benchmark: accuracy and stage timings of the plate reader on real photos, and the
// throughput of a saturated worker pool with the main thread's event-loop delay meanwhile.
//
//   npm run build && npm run bench -- anpr [--quick]      (--quick: first 30 images of each set)
//
// Then, apart, the same reader on generated busy scenes (bench/lib/busy-scenes.ts, seed 1) and on
// camera streams, with and without the work saving of anpr.saving (bench/lib/stream-rate.ts): see
// the sections at the end. (overhead_ratio, total over session.run time, is retired: every cheaper
// resampler lost plates; what counts is plates read per second per core at equal accuracy.)
//
// Images come from ../shared/anpr-bench/{eu,br} (see its README; never copied into the repo).
// Score: top-1 exact match of the best plate (uppercase, separators removed); for eu the letter O
// and the digit 0 count as the same (the strict score is reported beside it).
// Progress goes to stderr; stdout gets the tables and, as its last line, one JSON object.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { AnprEngine, type EngineOptions } from '../src/anpr/engine.js';
import { getGrammar } from '../src/anpr/grammar.js';
import { rankWithGrammar } from '../src/anpr/pipeline.js';
import { AnprWorkerPool } from '../src/anpr/worker.js';
import { REPO_ROOT } from '../tests/helpers/repo.js';
import { GANTRY_SECONDARIES, MIN_CONFIDENCE, scoreBusy } from './lib/busy-score.js';
import { generateBusyScenes } from './lib/busy-scenes.js';
import { generateClips } from './lib/clips.js';
import { type StreamRate, streamRate } from './lib/stream-rate.js';
import { median, ratio, round } from './lib/stats.js';
import { fmt, table } from './lib/table.js';

const DATA = join(REPO_ROOT, '..', 'shared', 'anpr-bench');
const QUICK = process.argv.includes('--quick');
const LIMIT = QUICK ? 30 : Infinity;
const SATURATE_MS = QUICK ? 5_000 : 10_000;
const POOL_WORKERS = 2;
const log = (msg: string) => process.stderr.write(`${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Data

interface LabelledImage {
  name: string;
  /** The plate as labelled, normalised. */
  truth: string;
  jpeg: Buffer;
}

function loadSet(name: string): LabelledImage[] {
  const dir = join(DATA, name);
  if (!existsSync(dir)) {
    log(`anpr bench: image folder ${dir} is missing (expected ../shared/anpr-bench/{eu,br} next to the repository)`);
    process.exit(1);
  }
  const images = readdirSync(dir)
    .filter((f) => f.endsWith('.jpg') && existsSync(join(dir, `${f.slice(0, -4)}.txt`)))
    .sort()
    .slice(0, LIMIT)
    .map((f) => {
      const line = readFileSync(join(dir, `${f.slice(0, -4)}.txt`), 'utf8')
        .trim()
        .split('\n')[0];
      const truth = normalise(line?.split('\t')[5] ?? '');
      return { name: f, truth, jpeg: readFileSync(join(dir, f)) };
    });
  if (images.length === 0) {
    log(`anpr bench: no labelled images in ${dir}`);
    process.exit(1);
  }
  return images;
}

const percent = (x: number | null) => (x === null ? null : x * 100);
const normalise = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '');
const o0 = (s: string) => s.replace(/O/g, '0');

// ---------------------------------------------------------------------------------------------
// Accuracy and stage timings, one image at a time on one engine

type Stage = 'decode' | 'detect' | 'recognise' | 'total' | 'sessionRun';
const STAGES: readonly Stage[] = ['decode', 'detect', 'recognise', 'total', 'sessionRun'];

interface Score {
  n: number;
  failed: number;
  top1: number | null;
  strict: number | null;
  /** Median ms per stage. */
  median: Record<Stage, number | null>;
  /** Images and median total ms by frame size. */
  bySize: Map<string, { n: number; total: number | null }>;
}

async function score(engine: AnprEngine, set: 'eu' | 'br', images: LabelledImage[], grammarName: string): Promise<Score> {
  const grammar = getGrammar(grammarName);
  const T: Record<Stage, number[]> = { decode: [], detect: [], recognise: [], total: [], sessionRun: [] };
  /** Total time by frame size (the targets name a 1280x720 frame). */
  const bySize = new Map<string, number[]>();
  let ok = 0;
  let strict = 0;
  let failed = 0;
  let i = 0;
  for (const img of images) {
    let r;
    try {
      r = await engine.read(new Uint8Array(img.jpeg));
    } catch (err) {
      // A rejected or unreadable image counts as a miss (and adds no timings).
      failed++;
      const e = err instanceof Error ? err : new Error(String(err));
      log(`  ${set}/${img.name}: ${e.name}: ${e.message}`);
      if (++i % 20 === 0) log(`  ${set}: ${i}/${images.length}`);
      continue;
    }
    for (const k of STAGES) T[k].push(r.timings[k]);
    const size = frameSize(r.width, r.height);
    if (!bySize.has(size)) bySize.set(size, []);
    bySize.get(size)!.push(r.timings.total);
    const ranked = rankWithGrammar(r.plates, grammar);
    const best = normalise(ranked[0]?.text ?? r.plates[0]?.text ?? '');
    if (best === img.truth) strict++;
    if (set === 'eu' ? o0(best) === o0(img.truth) : best === img.truth) ok++;
    if (++i % 20 === 0) log(`  ${set}: ${i}/${images.length}`);
  }
  const n = images.length;
  return {
    n,
    failed,
    top1: round(ok / n, 3),
    strict: round(strict / n, 3),
    median: Object.fromEntries(STAGES.map((k) => [k, round(median(T[k]), 1)])) as Record<Stage, number | null>,
    bySize: new Map([...bySize].map(([k, v]) => [k, { n: v.length, total: round(median(v), 1) }])),
  };
}

/** Frames a pixel or two short of a common size (cropped by an encoder) count as that size. */
function frameSize(width: number, height: number): string {
  const common: Array<[number, number]> = [
    [1280, 720],
    [1280, 960],
    [1280, 1280],
    [1920, 1080],
  ];
  const near = common.find(([w, h]) => w === width && Math.abs(h - height) <= 2);
  return near ? `${near[0]}x${near[1]}` : 'other';
}

async function withEngine<T>(opts: EngineOptions, fn: (engine: AnprEngine) => Promise<T>): Promise<T> {
  const engine = await AnprEngine.create(opts);
  try {
    return await fn(engine);
  } finally {
    await engine.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Saturated worker pool: keep every worker busy and the queue full for SATURATE_MS

async function saturate(images: LabelledImage[]) {
  const maxQueue = POOL_WORKERS;
  const pool = new AnprWorkerPool({ workers: POOL_WORKERS, threadsPerWorker: 1, maxQueue });
  try {
    await pool.ready();
    const inFlightMax = POOL_WORKERS + maxQueue;
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    let next = 0;
    let completed = 0;
    let failed = 0;
    let busy = 0;
    let stopping = false;
    const t0 = performance.now();
    const deadline = t0 + SATURATE_MS;
    let tEnd = t0;
    histogram.enable();
    await new Promise<void>((resolveAll) => {
      let inFlight = 0;
      const feed = () => {
        while (!stopping && inFlight < inFlightMax) {
          const img = images[next++ % images.length]!;
          inFlight++;
          // read() transfers the buffer: hand it a fresh copy every time.
          pool
            .read(new Uint8Array(img.jpeg))
            .then(
              () => {
                if (performance.now() <= deadline) completed++;
              },
              (err: unknown) => {
                if (err instanceof Error && err.name === 'AnprBusyError') busy++;
                else failed++;
              },
            )
            .finally(() => {
              inFlight--;
              if (performance.now() >= deadline) {
                if (!stopping) tEnd = performance.now();
                stopping = true;
              }
              if (stopping && inFlight === 0) resolveAll();
              else feed();
            });
        }
      };
      feed();
    });
    histogram.disable();
    const seconds = (Math.min(tEnd, deadline) - t0) / 1000;
    return {
      fps: round(completed / seconds, 2),
      completed,
      failed,
      busy,
      seconds: round(seconds, 2),
      loopP99: round(histogram.percentile(99) / 1e6, 2),
      loopMax: round(histogram.max / 1e6, 2),
      loopMean: round(histogram.mean / 1e6, 2),
    };
  } finally {
    await pool.close();
  }
}

// ---------------------------------------------------------------------------------------------

const eu = loadSet('eu');
const br = loadSet('br');
log(`anpr bench: ${eu.length} eu + ${br.length} br images${QUICK ? ' (quick)' : ''}`);

log('ppocr (default engine)…');
const [ppEu, ppBr] = await withEngine({ recogniser: 'ppocr' }, async (engine) => [await score(engine, 'eu', eu, 'eu'), await score(engine, 'br', br, 'br')]);

log('tesseract…');
const tessEu = await withEngine({ recogniser: 'tesseract' }, (engine) => score(engine, 'eu', eu, 'eu'));
const tessBr = await withEngine({ recogniser: 'tesseract' }, (engine) => score(engine, 'br', br, 'br'));

log(`saturated pool (${POOL_WORKERS} workers x 1 thread, ${SATURATE_MS / 1000} s)…`);
const sat = await saturate(br);

const scored: Array<[string, string, Score]> = [
  ['ppocr', 'eu', ppEu],
  ['ppocr', 'br', ppBr],
  ['tesseract', 'eu', tessEu],
  ['tesseract', 'br', tessBr],
];
const rows = scored.map(([rec, set, r]) => [
  rec,
  set,
  fmt(r.n),
  fmt(r.failed),
  `${fmt(percent(r.top1), 1)}%`,
  `${fmt(percent(r.strict), 1)}%`,
  fmt(r.median.decode, 1),
  fmt(r.median.detect, 1),
  fmt(r.median.recognise, 1),
  fmt(r.median.total, 1),
  fmt(r.median.sessionRun, 1),
  fmt(ratio(r.median.total, r.median.sessionRun), 2),
]);

console.log(`ANPR accuracy and stage timings (median ms per image, one engine, sequential)${QUICK ? ' — quick' : ''}\n`);
console.log(table(['recogniser', 'set', 'images', 'errors', 'top-1', 'strict', 'decode', 'detect', 'recognise', 'total', 'session.run', 'overhead'], rows));
console.log(
  '\ntop-1: O and 0 count as the same on eu; strict: exact. overhead = median total / median session.run.\n' +
    'JSON: median_ms_* are ppocr on eu; median_ms_total_br is ppocr on br (mostly 1280x1280 frames);\n' +
    'median_ms_total_1280x720 is ppocr on the br frames of that size, the one the latency target names.\n',
);
// Named sizes in numeric order, 'other' last.
const sizes = [...ppBr.bySize].sort(([a], [b]) => Number(a === 'other') - Number(b === 'other') || a.localeCompare(b, 'en', { numeric: true }));
console.log('ppocr on br by frame size (median ms per image)\n');
console.log(
  table(
    ['frame', 'images', 'total'],
    sizes.map(([size, v]) => [size, fmt(v.n), fmt(v.total, 1)]),
  ),
);
console.log('');
console.log(`Saturated worker pool (${POOL_WORKERS} workers x 1 thread, br images, queue kept full, ${sat.seconds} s)\n`);
console.log(
  table(
    ['frames', 'fps', 'failed', 'rejected busy', 'loop delay p99 ms', 'mean ms', 'max ms'],
    [[fmt(sat.completed), fmt(sat.fps, 2), fmt(sat.failed), fmt(sat.busy), fmt(sat.loopP99, 2), fmt(sat.loopMean, 2), fmt(sat.loopMax, 2)]],
  ),
);
console.log('');

// ---------------------------------------------------------------------------------------------
// Busy scenes (bench/lib/busy-scenes.ts, seed 1), scored as bench/lib/busy-score.ts says.

const BUSY_PER_KIND = QUICK ? 20 : 60;
log(`busy scenes (${BUSY_PER_KIND} of each kind, seed 1)…`);
const busyScenes = await generateBusyScenes({
  photosDir: DATA,
  seed: 1,
  counts: { busy: BUSY_PER_KIND, two_line: BUSY_PER_KIND, foreign: BUSY_PER_KIND, multi: BUSY_PER_KIND, negative: BUSY_PER_KIND },
});
const busy = await withEngine({ recogniser: 'ppocr' }, (engine) => scoreBusy((scene) => engine.read(new Uint8Array(scene.jpeg)), busyScenes));
const pct = (x: number | null) => `${fmt(percent(x), 1)}%`;
console.log(`Busy scenes (ppocr, ${busy.scenes} generated scenes, seed 1, ${BUSY_PER_KIND} of each kind; errors ${busy.failed})\n`);
console.log(
  table(
    ['grammar', 'busy top-1', 'two-line top-1', 'foreign top-1', 'recall, all plates', 'false plates / 100 negative frames'],
    [
      ['as configured', pct(busy.busy), pct(busy.twoLine), pct(busy.foreign), `${pct(busy.recall)} of ${busy.plates}`, `${fmt(busy.falsePer100, 1)} (cl)`],
      ['generic', pct(busy.busyGeneric), '–', pct(busy.foreignGeneric), '–', fmt(busy.falsePer100Generic, 1)],
    ],
  ),
);
console.log(
  `\nAs configured: busy and multi scenes eu or br (the photos' plates), two-line and foreign scenes cl with ${GANTRY_SECONDARIES.join(', ')} as\n` +
    `secondary grammars (a Chilean gantry). Recall: a reading at or above confidence ${MIN_CONFIDENCE} with the plate's text, any rank,\n` +
    'on every plate (two per multi scene). False plates: such readings in frames with no plate.\n',
);

// ---------------------------------------------------------------------------------------------
// Camera streams: plates read per second per core with anpr.saving and without (bench/lib/stream-rate.ts)

const CLIPS = QUICK ? 16 : 40;
log(`camera streams (${CLIPS} clips of 8 frames, seed 1; whole frames, then motion region + reuse, twice)…`);
const clips = await generateClips({ photosDir: DATA, seed: 1, clips: CLIPS });
const streams: { base: StreamRate[]; saving: StreamRate[] } = { base: [], saving: [] };
for (let round = 0; round < (QUICK ? 1 : 2); round++) {
  streams.base.push(await streamRate(clips, { workers: POOL_WORKERS, saving: false }));
  streams.saving.push(await streamRate(clips, { workers: POOL_WORKERS, saving: true }));
}
const streamFigure = (xs: StreamRate[], k: keyof StreamRate) => median(xs.map((x) => x[k] as number | null));
const streamRow = (name: string, xs: StreamRate[]) => [
  name,
  fmt(streamFigure(xs, 'frames')),
  pct(streamFigure(xs, 'accuracy')),
  fmt(streamFigure(xs, 'msPerFrame'), 1),
  fmt(streamFigure(xs, 'detectedShare'), 2),
  fmt(streamFigure(xs, 'reused')),
  fmt(streamFigure(xs, 'platesPerSecondPerCore'), 2),
];
console.log(`Camera streams (${CLIPS} clips x 8 frames, ${POOL_WORKERS} workers x 1 thread, saturated; medians of ${streams.base.length} run(s) per arm)\n`);
console.log(
  table(
    ['reader', 'frames read', 'plate read in', 'ms/frame', 'detected share', 'reused readings', 'plates/s/core'],
    [streamRow('whole frames, every plate read (before)', streams.base), streamRow('motion region + unchanged plates reused', streams.saving)],
  ),
);
console.log('');
const perCore = round(streamFigure(streams.saving, 'platesPerSecondPerCore'), 3);
const perCoreBase = round(streamFigure(streams.base, 'platesPerSecondPerCore'), 3);

const result = {
  eu_top1: ppEu.top1,
  eu_top1_strict: ppEu.strict,
  br_top1: ppBr.top1,
  median_ms_total: ppEu.median.total,
  median_ms_total_br: ppBr.median.total,
  median_ms_total_1280x720: ppBr.bySize.get('1280x720')?.total ?? null,
  images_1280x720: ppBr.bySize.get('1280x720')?.n ?? 0,
  median_ms_decode: ppEu.median.decode,
  median_ms_detect: ppEu.median.detect,
  median_ms_recognise: ppEu.median.recognise,
  median_ms_session_run: ppEu.median.sessionRun,
  fps_saturated: sat.fps,
  loop_delay_p99_ms: sat.loopP99,
  tesseract_eu_top1: tessEu.top1,
  tesseract_br_top1: tessBr.top1,
  images_eu: eu.length,
  images_br: br.length,
  quick: QUICK,
  busy_top1: busy.busy,
  two_line_top1: busy.twoLine,
  foreign_top1: busy.foreign,
  false_plates_per_100_negative_frames: busy.falsePer100,
  recall_all_plates: busy.recall,
  busy_top1_generic: busy.busyGeneric,
  foreign_top1_generic: busy.foreignGeneric,
  false_plates_per_100_negative_frames_generic: busy.falsePer100Generic,
  busy_scenes: busy.scenes,
  plates_per_s_per_core: perCore,
  plates_per_s_per_core_baseline: perCoreBase,
  plates_per_s_per_core_ratio: ratio(perCore, perCoreBase),
  stream_accuracy: streamFigure(streams.saving, 'accuracy'),
  stream_accuracy_baseline: streamFigure(streams.base, 'accuracy'),
};
console.log(JSON.stringify(result));
