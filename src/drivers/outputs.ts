import { EventEmitter } from 'node:events';
import type { Clock } from '../core/clock.js';
import type { TimerHandle, Timers } from '../core/timers.js';
import type { OutputLine } from './gpio/types.js';

/**
 * Strobes, sirens, relays and the button's LED. An output plays a pattern; every pattern except
 * `off` is stopped by the output's safety cut-off after `maxOnMs` (a siren must never sound
 * forever, whatever a command or a bug asked for), and `safe()` puts the line in its safe state.
 */

export type Pattern =
  | { mode: 'off' }
  | { mode: 'on'; for_ms?: number }
  | { mode: 'blink'; period_ms: number; duty?: number; for_ms?: number }
  /** One pulse of `ms`, then off (a door strike, a bell). */
  | { mode: 'pulse'; ms: number }
  /** Steps of on/off with durations; played once, or `repeat`ed. */
  | { mode: 'sequence'; steps: Array<{ on: boolean; ms: number }>; repeat?: boolean; for_ms?: number };

export const PATTERN_MODES = ['off', 'on', 'blink', 'pulse', 'sequence'] as const;

export interface OutputOptions {
  name: string;
  /** Safety cut-off for any pattern but `off`; 0 = none (only for harmless outputs like an LED). */
  maxOnMs: number;
  clock: Clock;
  timers: Timers;
}

/** Checks a pattern from a command or the configuration; the message says what is wrong. */
export function parsePattern(input: unknown): Pattern {
  if (typeof input === 'string') input = { mode: input };
  if (typeof input !== 'object' || input === null) throw new TypeError('pattern must be a mode name or an object with a mode');
  const p = input as Record<string, unknown>;
  const ms = (key: string, required: boolean, min = 1): number | undefined => {
    const v = p[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > 86_400_000) throw new TypeError(`${key} must be a number of milliseconds from ${min} to 86400000`);
    return v;
  };
  switch (p.mode) {
    case 'off':
      return { mode: 'off' };
    case 'on': {
      const for_ms = ms('for_ms', false);
      return for_ms === undefined ? { mode: 'on' } : { mode: 'on', for_ms };
    }
    case 'blink': {
      const duty = p.duty === undefined ? undefined : Number(p.duty);
      if (duty !== undefined && !(duty > 0 && duty < 1)) throw new TypeError('duty must be between 0 and 1');
      const period_ms = ms('period_ms', true, 20)!;
      const for_ms = ms('for_ms', false);
      return { mode: 'blink', period_ms, ...(duty !== undefined ? { duty } : {}), ...(for_ms !== undefined ? { for_ms } : {}) };
    }
    case 'pulse':
      return { mode: 'pulse', ms: ms('ms', true)! };
    case 'sequence': {
      if (!Array.isArray(p.steps) || p.steps.length === 0 || p.steps.length > 64) throw new TypeError('steps must be a list of 1 to 64 {on, ms}');
      const steps = p.steps.map((s: unknown, i) => {
        const step = s as Record<string, unknown>;
        if (typeof step !== 'object' || step === null || typeof step.on !== 'boolean') throw new TypeError(`steps[${i}].on must be true or false`);
        if (typeof step.ms !== 'number' || !(step.ms >= 10 && step.ms <= 600_000)) throw new TypeError(`steps[${i}].ms must be 10 to 600000`);
        return { on: step.on, ms: step.ms };
      });
      const for_ms = ms('for_ms', false);
      return { mode: 'sequence', steps, ...(p.repeat === true ? { repeat: true } : {}), ...(for_ms !== undefined ? { for_ms } : {}) };
    }
    default:
      throw new TypeError(`unknown pattern mode ${JSON.stringify(p.mode)} (${PATTERN_MODES.join(', ')})`);
  }
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
        return this.#run(gen, [{ on: true, ms: onMs }, { on: false, ms: Math.max(1, pattern.period_ms - onMs) }], true);
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
