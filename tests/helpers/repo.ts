import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The repository's root: the nearest directory above this file that holds package.json. The
 * helpers also run compiled for the benchmarks (from dist-bench/tests/helpers/), so paths into the
 * repository start from here, never from where a file happens to sit.
 */
export const REPO_ROOT = (() => {
  for (let dir = import.meta.dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${import.meta.dirname}`);
  }
})();
