// Plates read per second per core on camera streams, with the work saving of anpr.saving (motion
// region, unchanged plates not read again) and without it, measured in the same run:
//
//   npm run bench -- anpr-streams [--quick] [--clips N] [--seed N]
//
// Clips as bench/lib/clips.ts makes them (seed 1; 40 clips of 8 frames, 16 with --quick); the
// measure as bench/lib/stream-rate.ts says. The two arms alternate (A B A B) and the figure is the
// median per arm. The last line is one JSON object.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../tests/helpers/repo.js';
import { generateClips } from './lib/clips.js';
import { median, ratio } from './lib/stats.js';
import { type StreamRate, streamRate } from './lib/stream-rate.js';
import { fmt, table } from './lib/table.js';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, clips: { type: 'string' }, seed: { type: 'string', default: '1' }, rounds: { type: 'string' } },
});
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const count = Number(values.clips ?? (values.quick ? 16 : 40));
const rounds = Number(values.rounds ?? (values.quick ? 1 : 2));
const WORKERS = 2;

log(`clips: ${count} of 8 frames, seed ${values.seed}…`);
const clips = await generateClips({ photosDir: join(REPO_ROOT, '..', 'shared', 'anpr-bench'), seed: Number(values.seed), clips: count });
const runs: { base: StreamRate[]; saving: StreamRate[] } = { base: [], saving: [] };
for (let r = 0; r < rounds; r++) {
  for (const arm of ['base', 'saving'] as const) {
    log(`  round ${r + 1}: ${arm}…`);
    runs[arm].push(await streamRate(clips, { workers: WORKERS, saving: arm === 'saving' }));
  }
}
const pick = (xs: StreamRate[], k: keyof StreamRate) => median(xs.map((x) => x[k] as number | null));
const row = (name: string, xs: StreamRate[]) => [
  name,
  fmt(pick(xs, 'frames')),
  fmt(pick(xs, 'platesRead')),
  `${fmt((pick(xs, 'accuracy') ?? 0) * 100, 1)}%`,
  fmt(pick(xs, 'msPerFrame'), 1),
  fmt(pick(xs, 'detectedShare'), 2),
  fmt(pick(xs, 'reused')),
  fmt(pick(xs, 'platesPerSecondPerCore'), 2),
];
console.log(`Camera streams: ${count} clips x 8 frames, ${WORKERS} workers x 1 thread, medians of ${rounds} round(s)\n`);
console.log(
  table(
    ['reader', 'frames read', 'plates read', 'accuracy', 'ms/frame', 'detected share', 'reused', 'plates/s/core'],
    [row('whole frames (before)', runs.base), row('motion region + reuse', runs.saving)],
  ),
);
const base = pick(runs.base, 'platesPerSecondPerCore');
const saving = pick(runs.saving, 'platesPerSecondPerCore');
console.log(
  JSON.stringify({
    plates_per_s_per_core: saving,
    plates_per_s_per_core_baseline: base,
    plates_per_s_per_core_ratio: ratio(saving, base),
    stream_accuracy: pick(runs.saving, 'accuracy'),
    stream_accuracy_baseline: pick(runs.base, 'accuracy'),
    clips: count,
    rounds,
  }),
);
