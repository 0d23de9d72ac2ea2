import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cacheDirectory } from '../../scripts/hardware-rig.mjs';
import { REPO_ROOT } from './repo.js';

/**
 * The environment without what `npm test` sets for its scripts, which would steer another npm:
 * its npm_* variables, and the node_modules/.bin directories it puts first on PATH, where
 * Node-RED's own npm (10.9) would stand in for the system's, the one a technician's install runs.
 */
export const ENV_WITHOUT_NPM: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env)
    .filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD')
    .map(([k, v]) => [
      k,
      k === 'PATH'
        ? (v ?? '')
            .split(':')
            .filter((dir) => !/\/node_modules\/\.bin\/?$/.test(dir))
            .join(':')
        : v,
    ]),
);

/** Where the bundles' dependencies are kept, one directory per lockfile, Node ABI and architecture. */
export const RELEASE_DEPS_CACHE = cacheDirectory('vigia-release-deps');

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end without blocking the test worker (installs and builds take minutes). */
export function runProgram(command: string, args: readonly string[], env: NodeJS.ProcessEnv = ENV_WITHOUT_NPM): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

/**
 * Makes the bundle for this machine, `node scripts/release.mjs --with-deps`, into `outDir`, and
 * resolves to its path. Its dependencies are built once per lockfile (a few minutes: better-sqlite3
 * is compiled), then taken from RELEASE_DEPS_CACHE (seconds). Needs dist/ built, as `npm test` does
 * before the tests. Rejects with the script's output if it fails.
 */
export async function bundledRelease(outDir: string): Promise<string> {
  const args = [join(REPO_ROOT, 'scripts', 'release.mjs'), '--with-deps', '--cache', RELEASE_DEPS_CACHE, '--out', outDir];
  const r = await runProgram(process.execPath, args);
  // The last line of stdout: "PATH (SIZE, ...)".
  const tarball = /^(\/.+\.tgz) \(/.exec(r.stdout.trimEnd().split('\n').at(-1) ?? '')?.[1];
  if (r.status !== 0 || !tarball) throw new Error(`release.mjs --with-deps exited with ${r.status}:\n${r.stdout}${r.stderr}`);
  return tarball;
}
