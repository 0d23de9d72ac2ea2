// tests/helpers/daemon.ts finds the daemon at ../../dist/cli.js from its own directory. Compiled into
// dist-bench/tests/helpers/, that names dist-bench/dist/cli.js, so dist-bench/dist is a link to the
// real dist/: the benchmarks run the daemon `npm run build` made (node runs a main script from its
// real path, so what the daemon finds beside itself is unchanged). Not needed once the helper finds
// dist/ from the repository root rather than from where it was compiled to.
import { lstatSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

const TARGET = join('..', 'dist');

/** Makes `outDir`/dist (outDir: dist-bench/, the root of the compiled tree) a link to the built daemon in ../dist. */
export function linkBuiltDaemon(outDir: string): void {
  const link = join(outDir, 'dist');
  try {
    symlinkSync(TARGET, link, 'dir');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    if (!lstatSync(link).isSymbolicLink() || readlinkSync(link) !== TARGET) throw new Error(`${link} is in the way: it should be a link to ${TARGET}`);
  }
}
