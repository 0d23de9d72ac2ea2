import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './ports.js';

/**
 * A real PostgreSQL server for a test: Debian's binaries, a cluster made by initdb in a temporary
 * folder, listening on a free loopback port, trust authentication for the `vigia` user, database
 * `vigia`. Durability settings are PostgreSQL's defaults (fsync, synchronous_commit on). Run as
 * the `postgres` system user when the tests run as root (the server refuses root).
 */

export interface Postgres {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM: a fast shutdown) and removes its folder. */
  stop(): Promise<void>;
}

function binDir(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], 'bin');
  }
  throw new Error(
    'PostgreSQL is not installed (/usr/lib/postgresql/VERSION/bin/postgres): run `node scripts/ensure-system-deps.mjs` as root, or apt-get install postgresql',
  );
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function startPostgres(): Promise<Postgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'vigia-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  let ids: { uid: number; gid: number } | Record<string, never> = {};
  if (asRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('running as root, but there is no postgres user to run the server as');
    chownSync(dir, uid, gid);
    ids = { uid, gid };
  }
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'vigia', '--auth=trust', '-E', 'UTF8', '--locale=C'], { ...ids, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  const server = spawn(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`], {
    ...ids,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(server);
  let log = '';
  server.stderr!.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const base = `postgres://vigia@127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const c = new pg.Client({ connectionString: `${base}/postgres` });
    try {
      await c.connect();
      await c.query('CREATE DATABASE vigia');
      await c.end();
      break;
    } catch (err) {
      await c.end().catch(() => undefined);
      if (server.exitCode !== null || Date.now() > deadline) {
        server.kill('SIGKILL');
        throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${log}`);
      }
      await sleep(100);
    }
  }
  return {
    url: `${base}/vigia`,
    port,
    async stop() {
      if (server.exitCode === null) {
        server.kill('SIGTERM');
        await Promise.race([exited, sleep(10_000)]);
        if (server.exitCode === null) server.kill('SIGKILL');
      }
      live.delete(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
