import type { EventEmitter } from 'node:events';

/**
 * One interface over the three ways Linux exposes GPIO lines: the character device
 * (`/dev/gpiochipN`, libgpiod semantics), the legacy sysfs interface (`/sys/class/gpio`, through
 * onoff) and a simulation. Values are logical: `true` means active, whatever `active_low` says
 * about the voltage.
 */

export type Bias = 'as-is' | 'pull-up' | 'pull-down' | 'disabled';

/**
 * Which line: by line name (`GPIO17`, as the device tree names Raspberry Pi header pins), or by
 * chip and offset. `chip` is the chip's label (`pinctrl-bcm2711`, `pinctrl-rp1`...), its device
 * name (`gpiochip0`) or path (`/dev/gpiochip0`).
 */
export type LineRef = { name: string; chip?: string } | { chip: string; offset: number };

export interface InputOptions {
  activeLow: boolean;
  bias: Bias;
  /** Shown as the line's consumer (`gpioinfo`). */
  consumer: string;
}

export interface OutputOptions {
  activeLow: boolean;
  /** Logical value set when the line is requested: the output's safe state. */
  initial: boolean;
  consumer: string;
}

/** An edge on an input: its new logical value and when the kernel saw it (monotonic ms, the Clock's time base). */
export interface EdgeEvent {
  value: boolean;
  monoMs: number;
}

export interface InputLine extends Pick<EventEmitter<{ edge: [EdgeEvent]; error: [Error] }>, 'on' | 'off' | 'once'> {
  /** Human-readable description of the resolved line, e.g. `pinctrl-bcm2711:17 (GPIO17)`. */
  readonly id: string;
  /** The current logical value. */
  read(): Promise<boolean>;
  close(): Promise<void>;
}

export interface OutputLine {
  readonly id: string;
  set(value: boolean): Promise<void>;
  /** The last value set. */
  value(): boolean;
  close(): Promise<void>;
}

export interface GpioBackend {
  readonly kind: 'chardev' | 'sysfs' | 'sim';
  input(ref: LineRef, opts: InputOptions): Promise<InputLine>;
  output(ref: LineRef, opts: OutputOptions): Promise<OutputLine>;
  /** Releases every line (outputs are left in the state last set). */
  close(): Promise<void>;
}

/** A line that does not exist or cannot be requested; the message says which and why. */
export class GpioLineError extends Error {
  override readonly name = 'GpioLineError';
}

export function describeRef(ref: LineRef): string {
  return 'name' in ref ? (ref.chip ? `${ref.chip}/${ref.name}` : ref.name) : `${ref.chip}:${ref.offset}`;
}

/** What the hardware backends log: a pino logger fits, and tests pass a recorder. */
export interface GpioLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}
