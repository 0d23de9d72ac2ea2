import { constants } from 'node:fs';
import { access, lstat, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { BaseFrameSource, errorMessage, type FrameSourceDeps } from './source.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { endsWithEoi, isJpeg } from './jpeg.js';

export interface DirectorySourceOptions {
  cameraId: string;
  /** Where the camera uploads its JPEGs (usually by FTP). */
  dir: string;
  /** Directory scan period (default 500 ms). */
  pollIntervalMs?: number;
  /**
   * A file is complete once its size and mtime were unchanged in two scans at least this far apart
   * (default 1000 ms), and it is a whole JPEG (SOI ... EOI).
   */
  stableMs?: number;
  /**
   * A file first seen with an mtime at least this old was renamed (or copied) into place already
   * complete, and is taken at once if it is a whole JPEG (default 5000 ms). Compared with the system
   * wall clock, as file times are.
   */
  settledAgeMs?: number;
  /** A stable file that is still not a whole JPEG after this long is rejected (default 60 s). */
  abandonMs?: number;
  /** What to do with a file once emitted (or rejected): move it aside (default) or delete it. */
  after?: 'move' | 'delete';
  /** Default `<dir>/processed`. */
  processedDir?: string;
  /** Where rejected files go when `after` is 'move'; default `<dir>/rejected`. */
  rejectedDir?: string;
  /** Emission order of the files ready in one scan: natural name order (default) or mtime. */
  order?: 'name' | 'mtime';
  /** File extensions considered, case-insensitive (default .jpg, .jpeg). Upload temp names are ignored. */
  extensions?: string[];
  /** Larger files are rejected (default 20 MB). */
  maxBytes?: number;
  /** At most this many files are emitted per scan, so a backlog does not starve the event loop (default 50). */
  maxPerScan?: number;
  backoff?: BackoffOptions;
}

interface Tracked {
  /** inode, size and mtime: any change means the file is still being written (or replaced). */
  key: string;
  ino: number;
  size: number;
  mtimeMs: number;
  /** Monotonic time this key was first seen. */
  since: number;
  checks: number;
  /** Renamed into place: no need to wait for a second scan. */
  settled: boolean;
}

interface Candidate {
  name: string;
  path: string;
  tracked: Tracked;
}

/**
 * Frames from JPEG files a camera uploads into a directory. Files are picked up only once complete,
 * emitted in order, then moved to `processed/` (or deleted), and never emitted twice. A missing
 * directory is waited for (state `backoff`, with the reason in lastError).
 */
export class DirectorySource extends BaseFrameSource {
  readonly #opts: DirectorySourceOptions;
  readonly #exts: Set<string>;
  #tracked = new Map<string, Tracked>();
  /** Files emitted (or rejected) that could not be moved or deleted: name → key. */
  #done = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> | undefined;

  constructor(opts: DirectorySourceOptions, deps: FrameSourceDeps = {}) {
    super(opts.cameraId, deps, { minDelayMs: 500, maxDelayMs: 5_000, ...opts.backoff });
    this.#opts = opts;
    this.#exts = new Set((opts.extensions ?? ['.jpg', '.jpeg']).map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase()));
  }

  get processedDir(): string {
    return this.#opts.processedDir ?? join(this.#opts.dir, 'processed');
  }

  get rejectedDir(): string {
    return this.#opts.rejectedDir ?? join(this.#opts.dir, 'rejected');
  }

  protected open(gen: number): void {
    this.#schedule(gen, 0);
  }

  protected async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#scanning;
  }

  #schedule(gen: number, delay: number): void {
    if (!this.isCurrent(gen)) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#scanning = this.#scan(gen)
        .catch((err: unknown) => this.fail(gen, new Error(`scanning ${this.#opts.dir}: ${errorMessage(err)}`)))
        .finally(() => {
          this.#scanning = undefined;
          this.#schedule(gen, this.#opts.pollIntervalMs ?? 500);
        });
    }, delay);
  }

  async #scan(gen: number): Promise<void> {
    const { dir } = this.#opts;
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') this.fail(gen, new Error(`directory ${dir} does not exist (waiting for it)`));
      else if (code === 'ENOTDIR') this.fail(gen, new Error(`${dir} is not a directory`));
      else this.fail(gen, new Error(`cannot read directory ${dir}: ${errorMessage(err)}`));
      return;
    }
    if (!this.isCurrent(gen)) return;
    this.markRunning(gen);
    const stableMs = this.#opts.stableMs ?? 1000;
    const settledAgeMs = this.#opts.settledAgeMs ?? 5000;
    const present = new Set<string>();
    const ready: Candidate[] = [];
    for (const entry of entries) {
      if (!entry.isFile() || !this.#exts.has(extname(entry.name).toLowerCase())) continue;
      present.add(entry.name);
      const path = join(dir, entry.name);
      let st;
      try {
        st = await lstat(path); // never follows a link swapped in since readdir
      } catch {
        continue; // gone between readdir and stat
      }
      if (!this.isCurrent(gen)) return;
      if (!st.isFile()) continue;
      const key = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (this.#done.get(entry.name) === key) continue;
      const now = this.clock.monoNow();
      const prev = this.#tracked.get(entry.name);
      if (!prev || prev.key !== key) {
        // Files are compared with the system clock that stamped them, not the injected one.
        const settled = !prev && Date.now() - st.mtimeMs >= settledAgeMs;
        const tracked: Tracked = { key, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, since: now, checks: 1, settled };
        this.#tracked.set(entry.name, tracked);
        if (settled) ready.push({ name: entry.name, path, tracked });
        continue;
      }
      prev.checks++;
      if (prev.settled || (prev.checks >= 2 && now - prev.since >= stableMs)) ready.push({ name: entry.name, path, tracked: prev });
    }
    for (const name of this.#tracked.keys()) if (!present.has(name)) this.#tracked.delete(name);
    for (const name of this.#done.keys()) if (!present.has(name)) this.#done.delete(name);

    if (this.#opts.order === 'mtime') ready.sort((a, b) => a.tracked.mtimeMs - b.tracked.mtimeMs || naturalCompare(a.name, b.name));
    else ready.sort((a, b) => naturalCompare(a.name, b.name));
    for (const candidate of ready.slice(0, this.#opts.maxPerScan ?? 50)) {
      if (!this.isCurrent(gen)) return;
      await this.#take(gen, candidate);
    }
  }

  async #take(gen: number, { name, path, tracked }: Candidate): Promise<void> {
    const maxBytes = this.#opts.maxBytes ?? 20 * 1024 * 1024;
    if (tracked.size > maxBytes) {
      await this.#reject(gen, name, path, tracked, `${name}: ${tracked.size} bytes is over the ${maxBytes}-byte cap`);
      return;
    }
    let read: CandidateRead;
    try {
      read = await readCandidate(path, tracked);
    } catch (err) {
      this.#gone(name, err) || this.softError(gen, new Error(`cannot read ${path}: ${errorMessage(err)}`));
      return;
    }
    if (!this.isCurrent(gen)) return;
    switch (read.kind) {
      case 'refused':
        await this.#reject(gen, name, path, tracked, `${name}: ${read.reason}`);
        return;
      case 'changed':
        this.#tracked.delete(name); // changed while we read it: start over
        return;
      case 'incomplete': {
        const abandonMs = this.#opts.abandonMs ?? 60_000;
        if (this.clock.monoNow() - tracked.since >= abandonMs)
          await this.#reject(gen, name, path, tracked, `${name}: not a complete JPEG after ${abandonMs} ms`);
        return; // else: an upload that paused; wait for more data
      }
    }
    this.#tracked.delete(name);
    await this.#dispose(gen, name, path, tracked, this.processedDir);
    this.emitFrame(gen, read.data);
  }

  async #reject(gen: number, name: string, path: string, tracked: Tracked, reason: string): Promise<void> {
    this.#tracked.delete(name);
    this.drop(gen, reason);
    await this.#dispose(gen, name, path, tracked, this.rejectedDir);
  }

  /** Moves the file into `target` (or deletes it); if that fails, remembers it so it is never taken again. */
  async #dispose(gen: number, name: string, path: string, tracked: Tracked, target: string): Promise<void> {
    try {
      if (this.#opts.after === 'delete') await unlink(path);
      else {
        await mkdir(target, { recursive: true });
        await rename(path, await freeName(target, name));
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.#done.set(name, tracked.key);
      this.softError(gen, new Error(`cannot ${this.#opts.after === 'delete' ? 'delete' : `move to ${target}`} ${path}: ${errorMessage(err)}`));
    }
  }

  #gone(name: string, err: unknown): boolean {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    this.#tracked.delete(name);
    return true;
  }
}

export type CandidateRead =
  | { kind: 'frame'; data: Buffer }
  /** Not (yet) a whole JPEG: an upload that may still be going on. */
  | { kind: 'incomplete' }
  /** Another file, or other bytes, than the scans tracked: track it again. */
  | { kind: 'changed' }
  /** Never a frame: a link or a special file put in the upload directory. */
  | { kind: 'refused'; reason: string };

/**
 * Checks and reads a candidate through one descriptor, so whoever can write the upload directory
 * cannot swap the checked file for something else before it is read: a symlink (to a secret,
 * /dev/zero) is not followed (O_NOFOLLOW), a FIFO does not block the open (O_NONBLOCK) and, like
 * any file that is not regular, is refused; the descriptor's inode and size must be the tracked
 * ones. Throws what open throws otherwise (ENOENT: the file is gone).
 */
export async function readCandidate(path: string, expected: { ino: number; size: number }): Promise<CandidateRead> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') return { kind: 'refused', reason: 'a symbolic link' };
    throw err;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) return { kind: 'refused', reason: 'not a regular file' };
    if (st.ino !== expected.ino || st.size !== expected.size) return { kind: 'changed' };
    const { size } = st;
    if (size < 4) return { kind: 'incomplete' };
    // Head and tail first: an upload still going on costs two small reads, not the whole file.
    const head = Buffer.alloc(3);
    await handle.read(head, 0, 3, 0);
    if (!isJpeg(head)) return { kind: 'incomplete' };
    const tailLen = Math.min(size, 1026);
    const tail = Buffer.alloc(tailLen);
    const { bytesRead: tailRead } = await handle.read(tail, 0, tailLen, size - tailLen);
    if (tailRead !== tailLen || !endsWithEoi(tail)) return { kind: 'incomplete' };
    const data = Buffer.alloc(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(data, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled !== size || !isJpeg(data) || !endsWithEoi(data)) return { kind: 'changed' };
    return { kind: 'frame', data };
  } finally {
    await handle.close();
  }
}

/** `name`, or `name` with a counter before the extension if the target already holds one. */
async function freeName(dir: string, name: string): Promise<string> {
  const ext = extname(name);
  const stem = basename(name, ext);
  for (let n = 0; n < 1000; n++) {
    const candidate = join(dir, n === 0 ? name : `${stem}.${n}${ext}`);
    try {
      await access(candidate, constants.F_OK);
    } catch {
      return candidate;
    }
  }
  return join(dir, `${stem}.${Date.now()}${ext}`);
}

const collator = new Intl.Collator('en', { numeric: true });

function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}
