// Benchmark runner: `node dist-bench/bench/run.js NAME [--quick] [...]` (what `npm run bench` does
// once it has compiled bench/tsconfig.json) runs the compiled bench/NAME.ts in its own process.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { nodeArgv } from './lib/child.js';

// This file runs from dist-bench/bench/, beside the compiled benchmarks.
const here = import.meta.dirname;
const available = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'run.js')
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !/^[a-z0-9][a-z0-9_-]*$/i.test(name) || !existsSync(join(here, `${name}.js`))) {
  process.stderr.write(
    `${name ? `unknown benchmark ${JSON.stringify(name)}` : 'no benchmark named'}\n` +
      `usage: npm run bench -- NAME [--quick]\navailable: ${available.join(', ') || '(none)'}\n`,
  );
  process.exit(2);
}

const child = spawn(process.execPath, nodeArgv(join(here, `${name}.js`), rest), { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 1)));
