/**
 * OOK (on-off keying) pulse trains as 433 MHz remotes send them, for tests that synthesise a
 * button press: a train is a list of durations in microseconds, alternating carrier on (even
 * indices) and carrier off (odd indices), starting with carrier on.
 */

export type PulseTrain = number[];

import type { Ev1527Options } from '../../src/drivers/radio/ook.js';

export { type Ev1527Options, ev1527Train } from '../../src/drivers/radio/ook.js';

/** Random pulses between minUs and maxUs: what an OOK receiver module outputs with no signal (its AGC turns noise into edges). */
export function noiseTrain(count: number, random: () => number, minUs = 50, maxUs = 2_000): PulseTrain {
  const train: number[] = [];
  for (let i = 0; i < count * 2; i++) train.push(Math.round(minUs + random() * (maxUs - minUs)));
  return train;
}

/** Total duration of a train in µs. */
export function trainDurationUs(train: PulseTrain): number {
  return train.reduce((a, b) => a + b, 0);
}

export interface Hcs200Frame {
  /** The 32-bit hopping word (what a real encoder computes with KeeLoq from its counter and key). */
  encrypted: number;
  /** The 28-bit serial number. */
  serial: number;
  /** The button bits as the number S3 S2 S1 S0 (rtl_433's `button`); default 0b0010. */
  buttons?: number;
  batteryLow?: boolean;
  /** The RPT status bit (HCS300: the frame is a repeat while the button is held). */
  repeat?: boolean;
}

export interface Hcs200Options {
  /** The basic pulse element TE in µs (HCS200 datasheet: 400 typical; default 400). */
  teUs?: number;
  /** Times the frame is sent (default 2). */
  repeats?: number;
}

/**
 * A Microchip HCS200/HCS300 KeeLoq code-hopping transmission: a preamble of 12 pulses (1 TE on,
 * 1 TE off), a header of 10 TE off, 66 bits sent LSB first (32 encrypted, 28 serial, the button
 * bits in the order S3 S0 S1 S2, battery low, repeat), each bit 3 TE: 1 TE on + 2 off for a 1,
 * 2 TE on + 1 off for a 0; then a guard time of 39 TE off before the next frame.
 */
export function hcs200Train(frame: Hcs200Frame, opts: Hcs200Options = {}): PulseTrain {
  const te = opts.teUs ?? 400;
  const repeats = opts.repeats ?? 2;
  const { encrypted, serial } = frame;
  const buttons = frame.buttons ?? 0b0010;
  if (!Number.isInteger(encrypted) || encrypted < 0 || encrypted > 0xffffffff) throw new Error(`hcs200Train: encrypted must be 32 bits, got ${encrypted}`);
  if (!Number.isInteger(serial) || serial < 0 || serial > 0xfffffff) throw new Error(`hcs200Train: serial must be 28 bits, got ${serial}`);
  if (!Number.isInteger(buttons) || buttons < 0 || buttons > 0xf) throw new Error(`hcs200Train: buttons must be 4 bits, got ${buttons}`);

  const bits: number[] = [];
  for (let i = 0; i < 32; i++) bits.push((encrypted >>> i) & 1);
  for (let i = 0; i < 28; i++) bits.push((serial >>> i) & 1);
  for (const s of [3, 0, 1, 2]) bits.push((buttons >> s) & 1);
  bits.push(frame.batteryLow ? 1 : 0, frame.repeat ? 1 : 0);

  const train: number[] = [];
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < 12; i++) train.push(te, i < 11 ? te : 10 * te);
    bits.forEach((bit, i) => {
      const last = i === bits.length - 1;
      if (bit) train.push(te, 2 * te + (last ? 39 * te : 0));
      else train.push(2 * te, te + (last ? 39 * te : 0));
    });
  }
  return train;
}

/** rc-switch's protocol table (RCSwitch.cpp, protocols 1-6), written out here independently of the decoder's copy. */
const RCSWITCH_TIMINGS: Record<number, { unitUs: number; sync: [number, number]; zero: [number, number]; one: [number, number]; inverted: boolean }> = {
  1: { unitUs: 350, sync: [1, 31], zero: [1, 3], one: [3, 1], inverted: false },
  2: { unitUs: 650, sync: [1, 10], zero: [1, 2], one: [2, 1], inverted: false },
  3: { unitUs: 100, sync: [30, 71], zero: [4, 11], one: [9, 6], inverted: false },
  4: { unitUs: 380, sync: [1, 6], zero: [1, 3], one: [3, 1], inverted: false },
  5: { unitUs: 500, sync: [6, 14], zero: [1, 2], one: [2, 1], inverted: false },
  6: { unitUs: 450, sync: [23, 1], zero: [1, 2], one: [2, 1], inverted: true },
};

/**
 * A frame as rc-switch's `send(code, bitCount)` transmits it with protocol 1-6: the bits MSB
 * first, then the sync, repeated. In an inverted protocol (6) every pair starts with carrier off;
 * as a PulseTrain starts with carrier on, its frames are rotated to start with the sync's on pulse
 * (sync on, bits, sync off): what a receiver sees from the second frame on.
 */
export function rcswitchTrain(protocol: number, code: number, bitCount: number, opts: Ev1527Options = {}): PulseTrain {
  const timing = RCSWITCH_TIMINGS[protocol];
  if (!timing) throw new Error(`rcswitchTrain: no protocol ${protocol}`);
  const t = opts.unitUs ?? timing.unitUs;
  const repeats = opts.repeats ?? 8;
  const frame: number[] = [];
  for (let bit = bitCount - 1; bit >= 0; bit--) {
    const [first, second] = Math.floor(code / 2 ** bit) % 2 === 1 ? timing.one : timing.zero;
    frame.push(first * t, second * t);
  }
  frame.push(timing.sync[0] * t, timing.sync[1] * t);
  const rotated = timing.inverted ? [frame[frame.length - 1]!, ...frame.slice(0, -1)] : frame;
  const train: number[] = [];
  for (let i = 0; i < repeats; i++) train.push(...rotated);
  return train;
}

/** The 24-bit code a PT2262 sends for 12 tri-state digits: 0 → 00, 1 → 11, F (floating) → 01. */
export function pt2262Code(tristate: string): number {
  if (!/^[01F]{12}$/.test(tristate)) throw new Error(`pt2262Code: 12 digits of 0, 1 or F, got ${tristate}`);
  let code = 0;
  for (const digit of tristate) code = code * 4 + (digit === '0' ? 0b00 : digit === '1' ? 0b11 : 0b01);
  return code;
}

/** Each duration scaled by a random factor within ±fraction, as a drifting oscillator and a noisy receiver module do. */
export function jitterTrain(train: PulseTrain, fraction: number, random: () => number): PulseTrain {
  return train.map((us) => us * (1 + (2 * random() - 1) * fraction));
}

/** Something that can set a simulated input's logical value at a given time (SimGpio). */
export interface EdgeDriver {
  activate(ref: string, active: boolean, monoMs?: number): void;
}

/**
 * Plays a train onto a simulated input: carrier on (logical true) at startMs, then an edge at
 * the end of every pulse but the last, whose end is left to what follows (the line stays at the
 * last pulse's level). The line should be idle (carrier off) before. Returns the edge times, ms.
 */
export function playTrain(gpio: EdgeDriver, line: string, train: PulseTrain, startMs: number): number[] {
  const edgesMs: number[] = [];
  let elapsedUs = 0;
  for (let i = 0; i < train.length; i++) {
    const atMs = startMs + elapsedUs / 1000;
    gpio.activate(line, i % 2 === 0, atMs);
    edgesMs.push(atMs);
    elapsedUs += train[i]!;
  }
  return edgesMs;
}
