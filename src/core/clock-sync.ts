import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { Clock } from './clock.js';

export type SyncSource = 'auto' | 'timesyncd' | 'file' | 'assume-synced' | 'never';

export interface ClockSyncOptions {
  source: SyncSource;
  syncFile: string;
  pollIntervalMs: number;
  /** Injected so tests need neither systemd nor timedatectl. */
  probeTimedatectl?: () => Promise<boolean>;
}

/**
 * Knows whether the wall clock can be trusted. A Pi boots with the time it had at shutdown (or
 * 1970); NTP or GPS later steps it. Until then events carry `clock: "unsynced"` and the gateway
 * corrects their time from the monotonic clock before sending, if the sync happened in the same boot.
 */
export class ClockSync extends EventEmitter<{ synced: [source: string] }> {
  #synced = false;
  #source = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly opts: ClockSyncOptions,
  ) {
    super();
  }

  start(): void {
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
    this.emit('synced', source);
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
function probeTimedatectl(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], { timeout: 2000 }, (err, stdout) => resolve(!err && stdout.trim() === 'yes'));
  });
}
