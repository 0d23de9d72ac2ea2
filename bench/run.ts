// Benchmark runner: `tsx bench/run.ts NAME [--quick] [...]` runs bench/NAME.ts in its own process.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { tsArgv } from './lib/ts-child.js';

const here = import.meta.dirname;
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !/^[a-z0-9][a-z0-9_-]*$/i.test(name) || !existsSync(join(here, `${name}.ts`))) {
  process.stderr.write(
    `${name ? `unknown benchmark ${JSON.stringify(name)}` : 'no benchmark named'}\n` +
      `usage: npm run bench -- NAME [--quick]\navailable: ${available.join(', ') || '(none)'}\n`,
  );
  process.exit(2);
}

const child = spawn(process.execPath, tsArgv(join(here, `${name}.ts`), rest), { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 1)));
