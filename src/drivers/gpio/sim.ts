import { EventEmitter } from 'node:events';
import type { Clock } from '../../core/clock.js';
import {
  describeRef,
  type EdgeEvent,
  type GpioBackend,
  GpioLineError,
  type InputLine,
  type InputOptions,
  type LineRef,
  type OutputLine,
  type OutputOptions,
} from './types.js';

/**
 * Simulated GPIO: lines exist when first requested; tests and `vigia sim` drive inputs with
 * `drive()` and read outputs back. Values given to `drive()` are levels at the pin (as a switch
 * would pull them), so `active_low` and the bias are exercised as on real hardware.
 */

class SimInput extends EventEmitter<{ edge: [EdgeEvent]; error: [Error] }> implements InputLine {
  level: boolean;

  constructor(
    readonly id: string,
    readonly opts: InputOptions,
    private readonly clock: Clock,
    private readonly onClose: () => void,
  ) {
    super();
    // An unconnected pin floats to its bias; a simulated one starts there.
    this.level = opts.bias === 'pull-up';
  }

  logical(level: boolean): boolean {
    return level !== this.opts.activeLow;
  }

  async read(): Promise<boolean> {
    return this.logical(this.level);
  }

  drive(level: boolean, monoMs = this.clock.monoNow()): void {
    if (level === this.level) return;
    this.level = level;
    this.emit('edge', { value: this.logical(level), monoMs });
  }

  async close(): Promise<void> {
    this.onClose();
  }
}

class SimOutput implements OutputLine {
  #value: boolean;
  /** Every logical value set, with its monotonic time. */
  readonly history: Array<{ value: boolean; monoMs: number }> = [];

  constructor(
    readonly id: string,
    readonly opts: OutputOptions,
    private readonly clock: Clock,
    private readonly onClose: () => void,
  ) {
    this.#value = opts.initial;
  }

  async set(value: boolean): Promise<void> {
    this.#value = value;
    this.history.push({ value, monoMs: this.clock.monoNow() });
  }

  value(): boolean {
    return this.#value;
  }

  /** The voltage level at the pin. */
  level(): boolean {
    return this.#value !== this.opts.activeLow;
  }

  async close(): Promise<void> {
    this.onClose();
  }
}

export class SimGpio implements GpioBackend {
  readonly kind = 'sim' as const;
  readonly #inputs = new Map<string, SimInput>();
  readonly #outputs = new Map<string, SimOutput>();

  constructor(private readonly clock: Clock) {}

  async input(ref: LineRef, opts: InputOptions): Promise<InputLine> {
    const id = describeRef(ref);
    this.#claim(id);
    const line = new SimInput(id, opts, this.clock, () => this.#inputs.delete(id));
    this.#inputs.set(id, line);
    return line;
  }

  async output(ref: LineRef, opts: OutputOptions): Promise<OutputLine> {
    const id = describeRef(ref);
    this.#claim(id);
    const line = new SimOutput(id, opts, this.clock, () => this.#outputs.delete(id));
    this.#outputs.set(id, line);
    return line;
  }

  /** Sets the level at an input pin, as a switch or sensor would. */
  drive(ref: LineRef | string, level: boolean, monoMs?: number): void {
    const id = typeof ref === 'string' ? ref : describeRef(ref);
    const line = this.#inputs.get(id);
    if (!line) throw new GpioLineError(`no simulated input line ${id}`);
    line.drive(level, monoMs);
  }

  /** Sets an input's logical value (active or not), whatever its polarity. */
  activate(ref: LineRef | string, active: boolean, monoMs?: number): void {
    const id = typeof ref === 'string' ? ref : describeRef(ref);
    const line = this.#inputs.get(id);
    if (!line) throw new GpioLineError(`no simulated input line ${id}`);
    line.drive(active !== line.opts.activeLow, monoMs);
  }

  outputLine(ref: LineRef | string): SimOutput | undefined {
    return this.#outputs.get(typeof ref === 'string' ? ref : describeRef(ref));
  }

  async close(): Promise<void> {
    this.#inputs.clear();
    this.#outputs.clear();
  }

  #claim(id: string): void {
    if (this.#inputs.has(id) || this.#outputs.has(id)) throw new GpioLineError(`line ${id} is already in use`);
  }
}
