import { randomFillSync } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, renameSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { RESERVE_STATES } from '../core/events.js';
import { PRIVATE_FILE_MODE } from '../core/private-files.js';

/** `present`: on disk, whole; `released`: deleted for a full disk; `missing`: not there (yet), or not whole; `disabled`: size 0. */
export type ReserveState = (typeof RESERVE_STATES)[number];
/** `no_room`: the file system is full (ENOSPC); `failed`: anything else (logged). */
export type ReserveWrite = 'written' | 'no_room' | 'failed';

const CHUNK_BYTES = 1024 * 1024;

/**
 * Room set aside on the outbox's file system for the day it fills up: a file of real blocks beside
 * the database, deleted when SQLite finds the disk full so that alarms still get stored, written
 * again once the space is back. Random bytes, not zeros: a compressing file system (btrfs, ZFS)
 * would store zeros in almost nothing and the reserve would reserve nothing.
 */
export class DiskReserve {
  readonly file: string;
  #state: ReserveState;
  #creating: Promise<ReserveWrite> | undefined;

  constructor(
    outboxFile: string,
    readonly bytes: number,
    private readonly logger: Logger,
  ) {
    this.file = `${outboxFile}.reserve`;
    this.#state = bytes > 0 ? 'missing' : 'disabled';
  }

  state(): ReserveState {
    return this.#state;
  }

  /** Whether the file on disk is the whole reserve (a size changed in the config, or a write cut short, is not). */
  inspect(): ReserveState {
    if (this.bytes === 0) return this.#state;
    try {
      const st = statSync(this.file);
      this.#state = st.size === this.bytes && st.blocks * 512 >= this.bytes ? 'present' : 'missing';
    } catch {
      this.#state = 'missing';
    }
    return this.#state;
  }

  /** Deletes the reserve (or whatever part of it is there). True when that freed space. */
  release(): boolean {
    if (this.bytes === 0) return false;
    let freed = false;
    for (const file of [this.file, `${this.file}.tmp`]) {
      try {
        unlinkSync(file);
        freed = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.error({ err, file }, 'cannot delete the disk reserve');
      }
    }
    if (freed) this.#state = 'released';
    return freed;
  }

  /** Free bytes an unprivileged writer may use on the reserve's file system, or null if it cannot be asked. */
  freeBytes(): number | null {
    try {
      const s = statfsSync(dirname(this.file));
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  }

  /** Writes the reserve now, blocking: for the start, before anything else runs. Nothing is left behind when it fails. */
  createNow(): ReserveWrite {
    if (this.bytes === 0) return 'written';
    const tmp = `${this.file}.tmp`;
    let fd: number | undefined;
    try {
      fd = openSync(tmp, 'w', PRIVATE_FILE_MODE);
      const chunk = randomFillSync(Buffer.alloc(Math.min(CHUNK_BYTES, this.bytes)));
      for (let written = 0; written < this.bytes; ) written += writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - written));
      fsyncSync(fd);
      closeSync(fd);
      fd = undefined;
      chmodSync(tmp, PRIVATE_FILE_MODE);
      renameSync(tmp, this.file);
      this.#state = 'present';
      return 'written';
    } catch (err) {
      if (fd !== undefined) closeSync(fd);
      return this.#failed(err, tmp);
    }
  }

  /** Writes the reserve without blocking the event loop (while running). */
  create(): Promise<ReserveWrite> {
    if (this.bytes === 0) return Promise.resolve('written');
    this.#creating ??= this.#write().finally(() => {
      this.#creating = undefined;
    });
    return this.#creating;
  }

  async #write(): Promise<ReserveWrite> {
    const tmp = `${this.file}.tmp`;
    try {
      const handle = await open(tmp, 'w', PRIVATE_FILE_MODE);
      try {
        const chunk = randomFillSync(Buffer.alloc(Math.min(CHUNK_BYTES, this.bytes)));
        for (let written = 0; written < this.bytes; ) written += (await handle.write(chunk, 0, Math.min(chunk.length, this.bytes - written))).bytesWritten;
        await handle.sync();
      } finally {
        await handle.close();
      }
      await chmod(tmp, PRIVATE_FILE_MODE);
      await rename(tmp, this.file);
      this.#state = 'present';
      return 'written';
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      return this.#failed(err);
    }
  }

  #failed(err: unknown, tmp?: string): Exclude<ReserveWrite, 'written'> {
    if (tmp) {
      try {
        unlinkSync(tmp);
      } catch {
        /* never created */
      }
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return 'no_room';
    this.logger.error({ err, file: this.file }, 'cannot write the disk reserve');
    return 'failed';
  }
}
