import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { Clock } from './clock.js';
import { writeFileDurably } from './durable-file.js';

export type SyncSource = 'auto' | 'timesyncd' | 'file' | 'assume-synced' | 'never';

export interface ClockSyncOptions {
  source: SyncSource;
  syncFile: string;
  pollIntervalMs: number;
  /** Injected so tests need neither systemd nor timedatectl. */
  probeTimedatectl?: () => Promise<boolean>;
  /**
   * Where the last trusted wall time is kept across restarts (`<data_dir>/trusted-time`). The
   * real time is never earlier than it, which bounds what an old command or a spoofed clock
   * source can claim before the clock syncs again.
   */
  markFile?: string;
}

/** While synced, the trusted wall time is written this often (one small write: SD cards wear). */
const MARK_INTERVAL_MS = 10 * 60_000;

/**
 * Knows whether the wall clock can be trusted. A Pi boots with the time it had at shutdown (or
 * 1970); NTP or GPS later steps it. Until then events carry `clock: "unsynced"` and the gateway
 * corrects their time from the monotonic clock before sending, if the sync happened in the same boot.
 */
export class ClockSync extends EventEmitter<{ synced: [source: string] }> {
  #synced = false;
  #source = '';
  #timer: NodeJS.Timeout | undefined;
  #markTimer: NodeJS.Timeout | undefined;
  #notBefore: number | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly opts: ClockSyncOptions,
  ) {
    super();
  }

  start(): void {
    this.#notBefore = this.#readMark();
    if (this.opts.source === 'assume-synced') return this.markSynced('assumed');
    if (this.opts.source === 'never') return;
    const poll = async () => {
      if (await this.#probe()) return this.markSynced(this.opts.source === 'auto' ? 'system' : this.opts.source);
      this.#timer = setTimeout(() => void poll(), this.opts.pollIntervalMs);
      this.#timer.unref();
    };
    void poll();
  }

  stop(): void {
    clearTimeout(this.#timer);
    clearInterval(this.#markTimer);
    if (this.#synced) this.#writeMark();
  }

  /**
   * The last wall time this device trusted (from an earlier run too), or null if it never synced:
   * whatever a clock or a command says, the real time is not earlier than this.
   */
  notBefore(): number | null {
    return this.#notBefore;
  }

  synced(): boolean {
    return this.#synced;
  }

  source(): string {
    return this.#source;
  }

  /** Called by the poller, and by GPS or other time sources once they have a trustworthy fix. */
  markSynced(source: string): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#source = source;
    clearTimeout(this.#timer);
    this.#writeMark();
    this.#markTimer = setInterval(() => this.#writeMark(), MARK_INTERVAL_MS);
    this.#markTimer.unref();
    this.emit('synced', source);
  }

  #readMark(): number | null {
    if (!this.opts.markFile) return null;
    try {
      const value = Number(readFileSync(this.opts.markFile, 'utf8').trim());
      return Number.isFinite(value) && value > 0 ? value : null;
    } catch {
      return null;
    }
  }

  /** Records the current wall time as trusted (only while synced) and returns the mark. */
  mark(): number | null {
    if (this.#synced) this.#writeMark();
    return this.#notBefore;
  }

  #writeMark(): void {
    const now = this.clock.wallNow();
    this.#notBefore = Math.max(this.#notBefore ?? 0, now);
    if (!this.opts.markFile) return;
    try {
      writeFileDurably(this.opts.markFile, `${this.#notBefore}\n`);
    } catch {
      // A missing mark only makes the checks that use it weaker, never wrong.
    }
  }

  /**
   * Wall time for an event recorded at monotonic `monoMs` in this boot, using today's offset
   * between the (now trusted) wall clock and the monotonic clock.
   */
  correctedWall(monoMs: number): number {
    return monoMs + (this.clock.wallNow() - this.clock.monoNow());
  }

  async #probe(): Promise<boolean> {
    if (existsSync(this.opts.syncFile)) return true;
    if (this.opts.source !== 'auto') return false;
    return (this.opts.probeTimedatectl ?? probeTimedatectl)();
  }
}

/** NTPSynchronized reflects the kernel's sync status, so it covers chrony and ntpd as well. */
export function probeTimedatectl(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 2000 }, (err, stdout) => resolve(!err && stdout.trim() === 'yes'));
  });
}
