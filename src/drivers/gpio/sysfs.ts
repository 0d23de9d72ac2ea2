import { EventEmitter } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import {
  type Bias,
  type EdgeEvent,
  type GpioBackend,
  GpioLineError,
  type GpioLogger,
  type InputLine,
  type InputOptions,
  type LineRef,
  type OutputLine,
  type OutputOptions,
  describeRef,
} from './types.js';

/**
 * GPIO through the legacy sysfs interface (/sys/class/gpio), with the `onoff` package.
 *
 * - Numbers: sysfs addresses a line by its global number, base of its chip + offset. Bases are
 *   not 0: since kernel 6.6 they start at 512 (Pi 4: pinctrl-bcm2711 at 512; Pi 5: pinctrl-rp1
 *   at 571), so the number is computed from /sys/class/gpio/gpiochipN/{base,label,ngpio}.
 * - Names: sysfs has no line names. `GPIOn` is taken as offset n on the SoC's pin controller
 *   (what the device tree names the Raspberry Pi header pins); other names are refused.
 * - Chips given as `gpiochipN` or `/dev/gpiochipN` mean the character device, whose numbering
 *   differs from sysfs': they are matched through the chip's device directory, which lists its
 *   character device (a sysfs name such as `gpiochip512` is accepted too). Labels work everywhere.
 * - Edges: onoff reports the new value but no kernel timestamp, so an edge is stamped with the
 *   Clock when its callback runs (a few ms late under load; the chardev backend is exact).
 * - Bias: sysfs cannot set pull-ups. A bias other than as-is gives a warning; on a Raspberry Pi
 *   it is set at boot in config.txt instead, e.g. `gpio=17=pu` (pd: pull-down, pn: none).
 * - Polarity: onoff's activeLow makes reads, writes and edges logical; but sysfs' `high`/`low`
 *   directions set the raw level, so an output's initial direction is computed from the level.
 * - Closing an output leaves it exported and driven: unexporting may hand the pin back to the
 *   pin controller as an input, and outputs must stay in their last state.
 */

/** The part of onoff's Gpio used here, so tests can substitute a fake. */
export interface SysfsPin {
  read(): Promise<0 | 1>;
  write(value: 0 | 1): Promise<void>;
  watch(callback: (err: Error | null | undefined, value: 0 | 1) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

/** onoff's `new Gpio(number, direction, edge, options)`. */
export type SysfsPinFactory = (gpio: number, direction: 'in' | 'high' | 'low', edge: 'none' | 'both', options: { activeLow: boolean }) => SysfsPin;

export interface SysfsChip {
  /** Sysfs directory name, e.g. `gpiochip512`. */
  dir: string;
  base: number;
  label: string;
  ngpio: number;
  /** The character devices of the same chip (e.g. `gpiochip0`), when the kernel shows them. */
  chardevNames: string[];
}

/** Pin controllers whose offset n is the Raspberry Pi's GPIOn, most specific first (the Pi 5 header is on RP1). */
export const SOC_PIN_CONTROLLERS = ['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835', 'pinctrl-bcm2712'] as const;
const HEADER_GPIO_COUNT = 28;

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function readSysfsChips(root: string): SysfsChip[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  const chips: SysfsChip[] = [];
  for (const dir of entries.filter((e) => /^gpiochip\d+$/.test(e))) {
    const base = Number(readTrimmed(join(root, dir, 'base')));
    const ngpio = Number(readTrimmed(join(root, dir, 'ngpio')));
    const label = readTrimmed(join(root, dir, 'label'));
    if (!Number.isInteger(base) || !Number.isInteger(ngpio) || label === undefined) continue;
    let chardevNames: string[] = [];
    try {
      chardevNames = readdirSync(join(root, dir, 'device')).filter((e) => /^gpiochip\d+$/.test(e));
    } catch {
      /* older kernels and some layouts don't show it */
    }
    chips.push({ dir, base, label, ngpio, chardevNames });
  }
  return chips.sort((a, b) => a.base - b.base);
}

export interface SysfsLine {
  chip: SysfsChip;
  offset: number;
  /** base + offset: what sysfs and onoff call the GPIO. */
  number: number;
  name: string | undefined;
}

function listChips(chips: SysfsChip[]): string {
  return chips.map((c) => `${c.dir} [${c.label}] base ${c.base}, ${c.ngpio} lines`).join('; ') || 'none';
}

function matchChip(chips: SysfsChip[], spec: string): SysfsChip {
  if (spec.includes('/') || /^gpiochip\d+$/.test(spec)) {
    const name = basename(spec);
    // A parent device with several chips (gpio-sim banks, the Pi 5's brcmstb) lists all their
    // /dev names on each of them: then the name does not tell which chip is meant.
    const listing = chips.filter((c) => c.chardevNames.includes(name));
    if (listing.length > 1) {
      throw new GpioLineError(
        `${spec} cannot be told apart in sysfs (its device holds ${listing.map((c) => `${c.dir} [${c.label}]`).join(', ')}): give the chip's label instead`,
      );
    }
    const chip = listing[0] ?? chips.find((c) => c.dir === name);
    if (chip) return chip;
    throw new GpioLineError(
      `no sysfs GPIO chip matches ${spec}: sysfs numbers chips by base, not as /dev does; give the chip's label (chips: ${listChips(chips)})`,
    );
  }
  const byLabel = chips.filter((c) => c.label === spec);
  if (byLabel.length === 1) return byLabel[0]!;
  if (byLabel.length === 0) throw new GpioLineError(`no sysfs GPIO chip labelled ${spec} (chips: ${listChips(chips)})`);
  throw new GpioLineError(`several sysfs GPIO chips are labelled ${spec} (${byLabel.map((c) => c.dir).join(', ')})`);
}

/** The chip whose offset n is GPIOn: a known SoC pin controller, preferring one that has the header's 28 lines. */
export function socPinController(chips: SysfsChip[]): SysfsChip | undefined {
  const known = chips.filter((c) => (SOC_PIN_CONTROLLERS as readonly string[]).includes(c.label));
  const full = known.filter((c) => c.ngpio >= HEADER_GPIO_COUNT);
  const candidates = full.length > 0 ? full : known;
  const rank = (c: SysfsChip) => (SOC_PIN_CONTROLLERS as readonly string[]).indexOf(c.label);
  return candidates.sort((a, b) => rank(a) - rank(b))[0];
}

/** The global sysfs number of a line reference. */
export function resolveSysfsLine(chips: SysfsChip[], ref: LineRef): SysfsLine {
  let chip: SysfsChip;
  let offset: number;
  let name: string | undefined;
  if ('offset' in ref) {
    chip = matchChip(chips, ref.chip);
    offset = ref.offset;
  } else {
    const m = /^GPIO(\d+)$/i.exec(ref.name);
    if (!m) {
      throw new GpioLineError(
        `line ${ref.name}: the sysfs GPIO interface has no line names; use GPIOn (the Raspberry Pi's GPIO n) or {chip, offset}, or the chardev backend (apt install gpiod)`,
      );
    }
    offset = Number(m[1]);
    name = ref.name.toUpperCase();
    if (ref.chip !== undefined) chip = matchChip(chips, ref.chip);
    else {
      const soc = socPinController(chips);
      if (!soc) {
        throw new GpioLineError(
          `line ${ref.name}: no Raspberry Pi pin controller (${SOC_PIN_CONTROLLERS.join(', ')}) in sysfs; give {chip, offset} (chips: ${listChips(chips)})`,
        );
      }
      chip = soc;
    }
  }
  if (offset >= chip.ngpio) {
    throw new GpioLineError(`line ${describeRef(ref)}: offset ${offset} is out of range, ${chip.label} has ${chip.ngpio} lines`);
  }
  return { chip, offset, name, number: chip.base + offset };
}

function lineId(line: SysfsLine): string {
  return `${line.chip.label}:${line.offset} (${line.name ? `${line.name}, ` : ''}sysfs ${line.number})`;
}

const CONFIG_TXT_PULL: Record<Exclude<Bias, 'as-is'>, string> = { 'pull-up': 'pu', 'pull-down': 'pd', disabled: 'pn' };

/** The warning for a bias sysfs cannot set, with the config.txt line that sets it on a Pi. */
export function biasWarning(line: SysfsLine, bias: Bias): string | undefined {
  if (bias === 'as-is') return undefined;
  const onSoc = (SOC_PIN_CONTROLLERS as readonly string[]).includes(line.chip.label);
  const fix = onSoc ? `set it in config.txt: gpio=${line.offset}=${CONFIG_TXT_PULL[bias]}` : 'set it in the device tree or with the chardev backend';
  return `${lineId(line)}: the sysfs GPIO interface cannot set bias ${bias}; ${fix}`;
}

class SysfsInput extends EventEmitter<{ edge: [EdgeEvent]; error: [Error] }> implements InputLine {
  constructor(
    readonly id: string,
    private readonly pin: SysfsPin,
    clock: Clock,
    logger: GpioLogger | undefined,
    private readonly onClose: () => void,
  ) {
    super();
    pin.watch((err, value) => {
      if (err) {
        logger?.warn({ line: id, err: err.message }, 'GPIO sysfs watch failed');
        if (this.listenerCount('error') > 0) this.emit('error', err);
        return;
      }
      this.emit('edge', { value: value === 1, monoMs: clock.monoNow() });
    });
  }

  async read(): Promise<boolean> {
    return (await this.pin.read()) === 1;
  }

  async close(): Promise<void> {
    this.pin.unwatchAll();
    this.pin.unexport();
    this.onClose();
  }
}

class SysfsOutput implements OutputLine {
  #value: boolean;

  constructor(
    readonly id: string,
    private readonly pin: SysfsPin,
    initial: boolean,
    private readonly onClose: () => void,
  ) {
    this.#value = initial;
  }

  async set(value: boolean): Promise<void> {
    this.#value = value;
    await this.pin.write(value ? 1 : 0);
  }

  value(): boolean {
    return this.#value;
  }

  async close(): Promise<void> {
    this.onClose(); // stays exported and driven: see the header
  }
}

export interface SysfsOptions {
  clock: Clock;
  logger?: GpioLogger;
  /** Where chips are read from; default /sys/class/gpio (onoff itself always uses that path). */
  sysfsRoot?: string;
  /** Default: onoff's Gpio. */
  pinFactory?: SysfsPinFactory;
}

async function onoffFactory(): Promise<SysfsPinFactory> {
  const onoff = await import('onoff');
  const Gpio = onoff.Gpio ?? onoff.default.Gpio;
  return (gpio, direction, edge, options) => new Gpio(gpio, direction, edge, options);
}

export class SysfsGpio implements GpioBackend {
  readonly kind = 'sysfs' as const;
  /** Warnings given so far (bias that sysfs cannot set), also logged. */
  readonly warnings: string[] = [];
  readonly #opts: SysfsOptions;
  readonly #root: string;
  #factory: Promise<SysfsPinFactory> | undefined;
  readonly #claimed = new Set<number>();
  readonly #open = new Set<{ close(): Promise<void> }>();

  constructor(opts: SysfsOptions) {
    this.#opts = opts;
    this.#root = opts.sysfsRoot ?? '/sys/class/gpio';
  }

  resolve(ref: LineRef): SysfsLine {
    return resolveSysfsLine(readSysfsChips(this.#root), ref);
  }

  async input(ref: LineRef, opts: InputOptions): Promise<InputLine> {
    const line = this.resolve(ref);
    const id = lineId(line);
    const warning = biasWarning(line, opts.bias);
    if (warning) {
      this.warnings.push(warning);
      this.#opts.logger?.warn({ line: id, bias: opts.bias }, warning);
    }
    const pin = await this.#pin(line, 'in', 'both', opts.activeLow);
    const input = new SysfsInput(id, pin, this.#opts.clock, this.#opts.logger, () => {
      this.#claimed.delete(line.number);
      this.#open.delete(input);
    });
    this.#open.add(input);
    return input;
  }

  async output(ref: LineRef, opts: OutputOptions): Promise<OutputLine> {
    const line = this.resolve(ref);
    // `high`/`low` set the raw level, whatever active_low says.
    const direction = opts.initial !== opts.activeLow ? 'high' : 'low';
    const pin = await this.#pin(line, direction, 'none', opts.activeLow);
    const output = new SysfsOutput(lineId(line), pin, opts.initial, () => {
      this.#claimed.delete(line.number);
      this.#open.delete(output);
    });
    this.#open.add(output);
    return output;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#open].map((line) => line.close()));
  }

  async #pin(line: SysfsLine, direction: 'in' | 'high' | 'low', edge: 'none' | 'both', activeLow: boolean): Promise<SysfsPin> {
    if (this.#claimed.has(line.number)) throw new GpioLineError(`line ${lineId(line)} is already in use`);
    this.#claimed.add(line.number);
    try {
      this.#factory ??= this.#opts.pinFactory ? Promise.resolve(this.#opts.pinFactory) : onoffFactory();
      const factory = await this.#factory;
      return factory(line.number, direction, edge, { activeLow });
    } catch (err) {
      this.#claimed.delete(line.number);
      throw new GpioLineError(`line ${lineId(line)}: cannot export GPIO ${line.number} through sysfs: ${(err as Error).message}`);
    }
  }
}
