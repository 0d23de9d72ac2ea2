// The benchmarks run compiled, from dist-bench/bench/ (see bench/tsconfig.json), one level deeper
// than their sources: paths into or beside the repository start from its root, found here once.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository's root: this file runs as dist-bench/bench/lib/repo.js. */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..', '..');

if (!existsSync(join(REPO_ROOT, 'bench', 'tsconfig.json'))) {
  throw new Error(`${REPO_ROOT} is not the repository's root: run the benchmarks compiled, with \`npm run bench -- NAME\``);
}
