import { EventEmitter } from 'node:events';
import type { Clock } from '../core/clock.js';
import type { TimerHandle, Timers } from '../core/timers.js';
import type { OutputLine } from '../drivers/gpio/types.js';
import type { Pattern } from '../core/pattern.js';

/**
 * Strobes, sirens, relays and the button's LED. An output plays a pattern; every pattern except
 * `off` is stopped by the output's safety cut-off after `maxOnMs` (a siren must never sound
 * forever, whatever a command or a bug asked for), and `safe()` puts the line in its safe state.
 */

export interface OutputOptions {
  name: string;
  /** Safety cut-off for any pattern but `off`; 0 = none (only for harmless outputs like an LED). */
  maxOnMs: number;
  clock: Clock;
  timers: Timers;
}

export interface OutputEvents {
  /** The safety cut-off stopped a pattern. */
  cutoff: [pattern: Pattern, ranMs: number];
  /** Writing the line failed (the pattern goes on trying). */
  write_error: [err: Error];
}

export class Output extends EventEmitter<OutputEvents> {
  #pattern: Pattern = { mode: 'off' };
  #startedAt = 0;
  #step: TimerHandle | undefined;
  #end: TimerHandle | undefined;
  #cutoff: TimerHandle | undefined;
  #value = false;
  #gen = 0;
  #counts = { cutoffs: 0, writes: 0, errors: 0 };

  constructor(
    private readonly line: OutputLine,
    private readonly opts: OutputOptions,
  ) {
    super();
  }

  get pattern(): Pattern {
    return this.#pattern;
  }

  /** The logical value the pattern is showing now. */
  get value(): boolean {
    return this.#value;
  }

  stats() {
    return { pattern: this.#pattern.mode, value: this.#value, since_ms: this.opts.clock.monoNow() - this.#startedAt, ...this.#counts };
  }

  /** Starts a pattern, replacing the current one. Resolves once its first state is on the line. */
  async play(pattern: Pattern): Promise<void> {
    this.#clear();
    const gen = ++this.#gen;
    this.#pattern = pattern;
    this.#startedAt = this.opts.clock.monoNow();
    if (pattern.mode === 'off') return this.#write(false);
    if (this.opts.maxOnMs > 0) {
      this.#cutoff = this.opts.timers.setTimeout(() => {
        this.#counts.cutoffs++;
        const ran = this.opts.clock.monoNow() - this.#startedAt;
        const stopped = this.#pattern;
        void this.play({ mode: 'off' });
        this.emit('cutoff', stopped, ran);
      }, this.opts.maxOnMs);
    }
    const forMs = pattern.mode === 'pulse' ? pattern.ms : pattern.for_ms;
    if (forMs !== undefined) this.#end = this.opts.timers.setTimeout(() => void this.play({ mode: 'off' }), forMs);
    switch (pattern.mode) {
      case 'on':
      case 'pulse':
        return this.#write(true);
      case 'blink': {
        const onMs = Math.max(1, Math.round(pattern.period_ms * (pattern.duty ?? 0.5)));
        return this.#run(
          gen,
          [
            { on: true, ms: onMs },
            { on: false, ms: Math.max(1, pattern.period_ms - onMs) },
          ],
          true,
        );
      }
      case 'sequence':
        return this.#run(gen, pattern.steps, pattern.repeat ?? false);
    }
  }

  /** Stops any pattern and puts the line in its safe (inactive) state. */
  safe(): Promise<void> {
    return this.play({ mode: 'off' });
  }

  stop(): void {
    this.#clear();
  }

  #run(gen: number, steps: Array<{ on: boolean; ms: number }>, repeat: boolean, i = 0): Promise<void> {
    if (gen !== this.#gen) return Promise.resolve();
    if (i >= steps.length) {
      if (!repeat) {
        void this.play({ mode: 'off' });
        return Promise.resolve();
      }
      i = 0;
    }
    const step = steps[i]!;
    this.#step = this.opts.timers.setTimeout(() => void this.#run(gen, steps, repeat, i + 1), step.ms);
    return this.#write(step.on);
  }

  #clear(): void {
    const { timers } = this.opts;
    timers.clearTimeout(this.#step);
    timers.clearTimeout(this.#end);
    timers.clearTimeout(this.#cutoff);
    this.#step = this.#end = this.#cutoff = undefined;
  }

  async #write(value: boolean): Promise<void> {
    this.#value = value;
    this.#counts.writes++;
    try {
      await this.line.set(value);
    } catch (err) {
      this.#counts.errors++;
      this.emit('write_error', err as Error);
    }
  }
}
