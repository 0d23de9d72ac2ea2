// Writes a set of busy street scenes (bench/lib/busy-scenes.ts) to a folder, to look at:
//
//   npm run bench -- busy-scenes [--out DIR] [--seed N] [--count N]
//
// DIR (default: busy-scenes-SEED under the system's temporary folder; never inside the
// repository) gets KIND-NNN.jpg for every scene and truth.json with the plates and distractors.
// --count is the number of scenes of each kind (default 6). Photos come from ../shared/anpr-bench.
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../tests/helpers/repo.js';
import { generateBusyScenes, SCENE_KINDS, truthOf } from './lib/busy-scenes.js';

const { values } = parseArgs({ options: { out: { type: 'string' }, seed: { type: 'string', default: '1' }, count: { type: 'string', default: '6' } } });
const seed = Number(values.seed);
const count = Number(values.count);
if (!Number.isInteger(seed) || !Number.isInteger(count) || count < 0) {
  process.stderr.write('usage: npm run bench -- busy-scenes [--out DIR] [--seed N] [--count N]   (N integers)\n');
  process.exit(2);
}
const out = resolve(values.out ?? join(tmpdir(), `busy-scenes-${seed}`));
const rel = relative(REPO_ROOT, out);
if (!rel.startsWith('..') && !rel.startsWith('/')) {
  process.stderr.write(`busy-scenes: ${out} is inside the repository; write the scenes elsewhere\n`);
  process.exit(2);
}

const scenes = await generateBusyScenes({
  photosDir: join(REPO_ROOT, '..', 'shared', 'anpr-bench'),
  seed,
  counts: Object.fromEntries(SCENE_KINDS.map((k) => [k, count])),
});
mkdirSync(out, { recursive: true });
for (const s of scenes) writeFileSync(join(out, `${s.id}.jpg`), s.jpeg);
writeFileSync(join(out, 'truth.json'), `${JSON.stringify(truthOf(scenes), null, 2)}\n`);
process.stdout.write(`${scenes.length} scenes (seed ${seed}) in ${out}\n`);
