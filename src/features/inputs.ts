import { EventEmitter } from 'node:events';
import type { Clock } from '../core/clock.js';
import type { TimerHandle, Timers } from '../core/timers.js';
import type { EdgeEvent } from '../drivers/gpio/types.js';

/**
 * What raw edges mean. Contacts bounce for a few milliseconds, PIR sensors chatter, and a panic
 * button can jam: these classes turn a line's edges into the few events a call center cares about.
 * They read no clock and set no timer of their own (both are injected), so every behaviour is
 * tested by advancing a manual scheduler.
 */

export interface InputDeps {
  clock: Clock;
  timers: Timers;
}

/**
 * Leading-edge debounce: the first edge after a quiet period counts at once (a panic press must
 * not wait for the contact to settle), edges during the following `debounceMs` are ignored, and
 * at the end of that window the line's last value is taken, so a change that happened during the
 * bounce is never lost. Such a late change locks out only what is left of `debounceMs` since the
 * line last moved: a quick tap then a new press is not held back by a window counted from when
 * the tap's release was reported. Emits `change` with the edge's own timestamp.
 */
export class Debouncer extends EventEmitter<{ change: [value: boolean, monoMs: number] }> {
  #state: boolean;
  #raw: boolean;
  #rawAt = 0;
  #lockout: TimerHandle | undefined;
  #bounces = 0;

  constructor(
    initial: boolean,
    private readonly debounceMs: number,
    private readonly deps: InputDeps,
  ) {
    super();
    this.#state = initial;
    this.#raw = initial;
  }

  get value(): boolean {
    return this.#state;
  }

  /** Edges ignored as bounce. */
  get bounces(): number {
    return this.#bounces;
  }

  edge(e: EdgeEvent): void {
    this.#raw = e.value;
    this.#rawAt = e.monoMs;
    if (this.#lockout) {
      this.#bounces++;
      return;
    }
    if (e.value === this.#state) return;
    this.#accept(e.value, e.monoMs);
  }

  stop(): void {
    this.deps.timers.clearTimeout(this.#lockout);
    this.#lockout = undefined;
  }

  /** `lockoutMs`: how long edges after this one are taken as its bounce. */
  #accept(value: boolean, monoMs: number, lockoutMs = this.debounceMs): void {
    this.#state = value;
    if (lockoutMs > 0) {
      this.#lockout = this.deps.timers.setTimeout(() => {
        this.#lockout = undefined;
        // The contact settled somewhere else than where it first went: that is a real change too.
        // It has been still since its last edge: only the rest of a window from there is bounce.
        if (this.#raw !== this.#state) {
          const rest = this.#rawAt + this.debounceMs - this.deps.clock.monoNow();
          this.#accept(this.#raw, Math.max(this.#rawAt, monoMs + this.debounceMs), rest);
        }
      }, lockoutMs);
    }
    this.emit('change', value, monoMs);
  }
}

/** A jammed button must stay released this long before it counts as working again. */
export const RECOVERY_MS = 2000;

export interface PanicButtonOptions {
  debounceMs: number;
  /** Held this long: `long_press` (e.g. a technician's test, or a duress signal). */
  longPressMs: number;
  /** Held this long: the button is jammed. One `stuck` fault, no further alarms until it is released. */
  stuckMs: number;
}

export interface PanicButtonEvents {
  press: [monoMs: number];
  release: [monoMs: number, heldMs: number];
  long_press: [monoMs: number];
  stuck: [monoMs: number, heldMs: number];
  /** A stuck button released for good (`RECOVERY_MS` without contact): it can raise alarms again. */
  recovered: [monoMs: number];
}

/**
 * A panic button. A press is reported the moment its first edge arrives. A button found pressed
 * at start, or held past `stuckMs`, is a fault (`stuck`), not an alarm that never ends: presses
 * are ignored until it has been released.
 */
export class PanicButton extends EventEmitter<PanicButtonEvents> {
  readonly #debouncer: Debouncer;
  #pressedAt: number | null = null;
  #stuck = false;
  #longTimer: TimerHandle | undefined;
  #stuckTimer: TimerHandle | undefined;
  #recoveryTimer: TimerHandle | undefined;
  #counts = { presses: 0, long_presses: 0, stuck_faults: 0 };

  constructor(
    initial: boolean,
    private readonly opts: PanicButtonOptions,
    private readonly deps: InputDeps,
  ) {
    super();
    this.#debouncer = new Debouncer(initial, opts.debounceMs, deps);
    this.#debouncer.on('change', (v, t) => (v ? this.#down(t) : this.#up(t)));
    if (initial) {
      // Pressed before we were even running: a jammed button, or a wiring fault (active_low wrong).
      this.#stuck = true;
      this.#pressedAt = deps.clock.monoNow();
    }
  }

  /** Call once listeners are attached: reports a button already held at start. */
  start(): void {
    if (this.#stuck) {
      this.#counts.stuck_faults++;
      this.emit('stuck', this.deps.clock.monoNow(), 0);
    }
  }

  get pressed(): boolean {
    return this.#debouncer.value;
  }

  get stuck(): boolean {
    return this.#stuck;
  }

  stats() {
    return { ...this.#counts, bounces: this.#debouncer.bounces, pressed: this.pressed, stuck: this.#stuck };
  }

  edge(e: EdgeEvent): void {
    this.#debouncer.edge(e);
  }

  stop(): void {
    this.#debouncer.stop();
    this.deps.timers.clearTimeout(this.#longTimer);
    this.deps.timers.clearTimeout(this.#stuckTimer);
    this.deps.timers.clearTimeout(this.#recoveryTimer);
  }

  #down(monoMs: number): void {
    this.#pressedAt = monoMs;
    if (this.#stuck) {
      // A jammed contact that flickers open is still jammed.
      this.deps.timers.clearTimeout(this.#recoveryTimer);
      this.#recoveryTimer = undefined;
      return;
    }
    this.#counts.presses++;
    const elapsed = Math.max(0, this.deps.clock.monoNow() - monoMs);
    this.#longTimer = this.deps.timers.setTimeout(
      () => {
        this.#counts.long_presses++;
        this.emit('long_press', monoMs + this.opts.longPressMs);
      },
      Math.max(0, this.opts.longPressMs - elapsed),
    );
    this.#stuckTimer = this.deps.timers.setTimeout(
      () => {
        this.#stuck = true;
        this.#counts.stuck_faults++;
        this.emit('stuck', monoMs + this.opts.stuckMs, this.opts.stuckMs);
      },
      Math.max(0, this.opts.stuckMs - elapsed),
    );
    this.emit('press', monoMs);
  }

  #up(monoMs: number): void {
    this.deps.timers.clearTimeout(this.#longTimer);
    this.deps.timers.clearTimeout(this.#stuckTimer);
    const held = this.#pressedAt === null ? 0 : Math.max(0, monoMs - this.#pressedAt);
    this.#pressedAt = null;
    if (this.#stuck) {
      this.deps.timers.clearTimeout(this.#recoveryTimer);
      this.#recoveryTimer = this.deps.timers.setTimeout(() => {
        this.#recoveryTimer = undefined;
        this.#stuck = false;
        this.emit('recovered', monoMs + RECOVERY_MS);
      }, RECOVERY_MS);
      return;
    }
    this.emit('release', monoMs, held);
  }
}

export interface MotionSensorOptions {
  debounceMs: number;
  /** Motion lasts this long after the sensor's last active edge; a new one extends it. */
  holdMs: number;
  /** At most one `motion` start per this interval; starts in between are counted, not reported. */
  minIntervalMs: number;
}

/**
 * A PIR sensor: `motion` when movement starts, `still` when nothing has moved for `holdMs`. A
 * sensor re-triggering all the time (a tree in the wind, a failing sensor) is rate-limited.
 */
export class MotionSensor extends EventEmitter<{ motion: [monoMs: number]; still: [monoMs: number, durationMs: number] }> {
  readonly #debouncer: Debouncer;
  #active = false;
  #startedAt = 0;
  #lastTrigger = 0;
  #lastReported = -Infinity;
  #holdTimer: TimerHandle | undefined;
  #counts = { motions: 0, suppressed: 0, triggers: 0 };

  constructor(
    private readonly opts: MotionSensorOptions,
    private readonly deps: InputDeps,
  ) {
    super();
    this.#debouncer = new Debouncer(false, opts.debounceMs, deps);
    this.#debouncer.on('change', (v, t) => v && this.#trigger(t));
  }

  get active(): boolean {
    return this.#active;
  }

  stats() {
    return { ...this.#counts, active: this.#active };
  }

  edge(e: EdgeEvent): void {
    this.#debouncer.edge(e);
  }

  stop(): void {
    this.#debouncer.stop();
    this.deps.timers.clearTimeout(this.#holdTimer);
  }

  #trigger(monoMs: number): void {
    this.#counts.triggers++;
    this.#lastTrigger = monoMs;
    this.deps.timers.clearTimeout(this.#holdTimer);
    this.#holdTimer = this.deps.timers.setTimeout(() => this.#expire(), this.opts.holdMs);
    if (this.#active) return;
    this.#active = true;
    this.#startedAt = monoMs;
    if (monoMs - this.#lastReported < this.opts.minIntervalMs) {
      this.#counts.suppressed++;
      return;
    }
    this.#lastReported = monoMs;
    this.#counts.motions++;
    this.emit('motion', monoMs);
  }

  #expire(): void {
    this.#holdTimer = undefined;
    this.#active = false;
    // Only periods that were reported get an end.
    if (this.#lastReported === this.#startedAt)
      this.emit('still', this.#lastTrigger + this.opts.holdMs, this.#lastTrigger + this.opts.holdMs - this.#startedAt);
  }
}

/** A door or tamper switch: debounced `open` / `close`, with the state it had at start. */
export class DoorSwitch extends EventEmitter<{ open: [monoMs: number]; close: [monoMs: number] }> {
  readonly #debouncer: Debouncer;

  constructor(initialOpen: boolean, debounceMs: number, deps: InputDeps) {
    super();
    this.#debouncer = new Debouncer(initialOpen, debounceMs, deps);
    this.#debouncer.on('change', (open, t) => this.emit(open ? 'open' : 'close', t));
  }

  get open(): boolean {
    return this.#debouncer.value;
  }

  edge(e: EdgeEvent): void {
    this.#debouncer.edge(e);
  }

  stop(): void {
    this.#debouncer.stop();
  }
}
