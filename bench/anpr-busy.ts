// The plate reader on generated busy scenes only, with the misses listed: where to look when a
// ranking or recovery rule is changed.
//
//   npm run bench -- anpr-busy [--quick] [--seed N] [--count N] [--misses]
//
// --count scenes of each kind (default 60, 20 with --quick), seed 1 as in the anpr benchmark.
// Scoring as bench/lib/busy-score.ts says. The last line is one JSON object.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AnprEngine } from '../src/anpr/engine.js';
import { REPO_ROOT } from '../tests/helpers/repo.js';
import { scoreBusy } from './lib/busy-score.js';
import { generateBusyScenes, SCENE_KINDS } from './lib/busy-scenes.js';
import { fmt, table } from './lib/table.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    count: { type: 'string' },
    misses: { type: 'boolean', default: false },
  },
});
const seed = Number(values.seed);
const count = Number(values.count ?? (values.quick ? 20 : 60));
const log = (msg: string) => process.stderr.write(`${msg}\n`);

log(`busy scenes: ${count} of each kind, seed ${seed}…`);
const scenes = await generateBusyScenes({
  photosDir: join(REPO_ROOT, '..', 'shared', 'anpr-bench'),
  seed,
  counts: Object.fromEntries(SCENE_KINDS.map((k) => [k, count])),
});
const engine = await AnprEngine.create();
const t0 = performance.now();
const score = await scoreBusy(
  (s) => engine.read(new Uint8Array(s.jpeg)),
  scenes,
  (n) => n % 50 === 0 && log(`  ${n}/${scenes.length}`),
);
const seconds = (performance.now() - t0) / 1000;
await engine.close();

const pct = (x: number | null) => (x === null ? '–' : `${fmt(x * 100, 1)}%`);
if (values.misses) {
  console.log(
    table(
      ['scene', 'kind', 'truth', 'ranked first three'],
      score.misses.map((m) => [m.id, m.kind, m.truth, m.got.join(' | ')]),
    ),
  );
  console.log('');
}
console.log(
  table(
    ['busy', 'busy (generic)', 'two-line', 'foreign', 'foreign (generic)', 'recall', 'false / 100 negative (cl)', '(generic)', 's'],
    [
      [
        pct(score.busy),
        pct(score.busyGeneric),
        pct(score.twoLine),
        pct(score.foreign),
        pct(score.foreignGeneric),
        `${pct(score.recall)} of ${score.plates}`,
        fmt(score.falsePer100, 1),
        fmt(score.falsePer100Generic, 1),
        fmt(seconds, 1),
      ],
    ],
  ),
);
const { misses: _misses, ...figures } = score;
console.log(JSON.stringify({ seed, count, ...figures }));
