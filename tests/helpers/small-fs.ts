import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small tmpfs of its own, to fill up for real: a holder process in a new user and mount
 * namespace (`unshare`, no root needed) mounts it over an empty directory and sleeps. Commands
 * started with `wrap` (`nsenter` into those namespaces) see the tmpfs at `dir`, and keep seeing the
 * same one across restarts; this process reaches it through `/proc/<holder>/root` (`path()`).
 * SQLite must run inside (it resolves that magic link to the directory underneath).
 */
export class SmallFs {
  private constructor(
    readonly dir: string,
    private readonly holder: ChildProcess,
  ) {}

  /** Fails, never skips, where user namespaces or tmpfs mounts are not allowed. */
  static async create(bytes: number): Promise<SmallFs> {
    for (const tool of ['unshare', 'nsenter']) {
      if (spawnSync(tool, ['--version']).status !== 0) throw new Error(`the full-disk tests need ${tool} (util-linux)`);
    }
    const dir = mkdtempSync(join(tmpdir(), 'vigia-smallfs-'));
    const holder = spawn(
      'unshare',
      ['--user', '--map-root-user', '--mount', 'sh', '-c', `mount -t tmpfs -o size=${bytes} tmpfs "$0" && echo mounted && exec sleep infinity`, dir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    live.add(holder);
    holder.once('exit', () => live.delete(holder));
    let output = '';
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (b: Buffer) => {
        output += b.toString();
        if (output.includes('mounted')) resolve();
      });
      holder.stderr!.on('data', (b: Buffer) => {
        output += b.toString();
      });
      holder.once('exit', (code) => reject(new Error(`cannot mount a tmpfs in a user namespace (exit ${code}): ${output.trim()}`)));
    });
    return new SmallFs(dir, holder);
  }

  /** The argv prefix that runs a command inside, where `dir` is the tmpfs. */
  get wrap(): string[] {
    return ['nsenter', `--target=${this.holder.pid}`, '--user', '--mount', '--preserve-credentials', '--'];
  }

  /** A path on the tmpfs, as this process reaches it. */
  path(...parts: string[]): string {
    return join(`/proc/${this.holder.pid}/root`, this.dir, ...parts);
  }

  freeBytes(): number {
    const s = statfsSync(this.path());
    return s.bavail * s.bsize;
  }

  /** Writes `name` until the file system has no block left; returns the bytes written. */
  fill(name = 'filler'): number {
    const fd = openSync(this.path(name), 'a');
    let written = 0;
    try {
      for (const size of [1 << 20, 1 << 16, 1 << 12, 1]) {
        const chunk = Buffer.alloc(size, 0x5a);
        try {
          for (;;) written += writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        }
      }
    } finally {
      closeSync(fd);
    }
    return written;
  }

  /** Deletes what fill() wrote. */
  unfill(name = 'filler'): void {
    unlinkSync(this.path(name));
  }

  async stop(): Promise<void> {
    if (this.holder.exitCode === null && this.holder.signalCode === null) {
      const exited = new Promise((resolve) => this.holder.once('exit', resolve));
      this.holder.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const holder of live) holder.kill('SIGKILL');
});
