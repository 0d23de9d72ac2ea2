import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PulseTrain } from './ook.js';
import { mulberry32 } from './random.js';

/**
 * IQ sample files of an OOK pulse train (ook.ts), as an RTL-SDR dongle would have recorded the
 * remote, for `rtl_433 -r FILE` to decode.
 *
 * Format: cu8 (interleaved I and Q, unsigned 8 bit, zero at 127.5). That is what the dongle itself
 * delivers and what `rtl_433 -S`/`-w` save, so the file goes through the same conversion and
 * demodulation path as live reception, 8-bit quantisation included; it is also the smallest.
 * rtl_433 takes the format and the sample rate from the file name (`..._250k.cu8`, centre
 * frequency `433.92M`), so nothing else has to be passed along with the file.
 *
 * Carrier on is a complex tone at `offsetHz` from the centre (a remote is never exactly on the
 * dongle's frequency), off is nothing; Gaussian noise (seeded) is added everywhere, so the level
 * estimator sees a noise floor as it does on air.
 */

/** rtl_433's default sample rate. */
export const IQ_SAMPLE_RATE = 250_000;

export interface IqOptions {
  /** Samples per second (default 250 kHz, rtl_433's default). */
  sampleRate?: number;
  /** Carrier amplitude in cu8 steps, 0-127 (default 100). rtl_433 ignores pulses under about -12 dB of full scale by default: below ~30 nothing decodes. */
  amplitude?: number;
  /** Standard deviation of the noise on I and on Q, in cu8 steps (default 2). */
  noise?: number;
  /** Carrier offset from the centre frequency in Hz (default 30 kHz). */
  offsetHz?: number;
  /** Seed of the noise (default 1). */
  seed?: number;
  /** Silence before the train, ms: rtl_433 needs a few ms of it to estimate the noise floor (default 100). */
  leadInMs?: number;
  /** Silence after the train, ms: a transmission ends on a long gap (default 200). */
  leadOutMs?: number;
}

/** One standard normal deviate (Box-Muller). */
function gaussian(random: () => number): number {
  const u = 1 - random(); // (0, 1]: log(0) must not happen
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** The train as cu8 IQ samples. */
export function trainToCu8(train: PulseTrain, opts: IqOptions = {}): Buffer {
  const rate = opts.sampleRate ?? IQ_SAMPLE_RATE;
  const amplitude = opts.amplitude ?? 100;
  const sigma = opts.noise ?? 2;
  const offsetHz = opts.offsetHz ?? 30_000;
  const random = mulberry32(opts.seed ?? 1);
  const leadIn = Math.round(((opts.leadInMs ?? 100) * rate) / 1000);
  const leadOut = Math.round(((opts.leadOutMs ?? 200) * rate) / 1000);

  // Edges at the sample nearest to their exact time, so rounding does not accumulate along the train.
  const carrier: boolean[] = new Array(leadIn).fill(false);
  let elapsedUs = 0;
  train.forEach((us, i) => {
    const end = leadIn + Math.round(((elapsedUs + us) * rate) / 1e6);
    while (carrier.length < end) carrier.push(i % 2 === 0);
    elapsedUs += us;
  });
  const total = carrier.length + leadOut;

  const out = Buffer.alloc(total * 2);
  const step = (2 * Math.PI * offsetHz) / rate;
  const toU8 = (v: number) => Math.max(0, Math.min(255, Math.round(127.5 + v)));
  for (let n = 0; n < total; n++) {
    // The oscillator runs through the gaps: phase is continuous from one pulse to the next.
    const a = carrier[n] ? amplitude : 0;
    out[2 * n] = toU8(a * Math.cos(step * n) + sigma * gaussian(random));
    out[2 * n + 1] = toU8(a * Math.sin(step * n) + sigma * gaussian(random));
  }
  return out;
}

/** Writes the train as `<dir>/<name>_433.92M_250k.cu8` (name and rate tell rtl_433 the format) and returns the path. */
export function writeCu8(dir: string, name: string, train: PulseTrain, opts: IqOptions = {}): string {
  const rate = opts.sampleRate ?? IQ_SAMPLE_RATE;
  const path = join(dir, `${name}_433.92M_${rate / 1000}k.cu8`);
  writeFileSync(path, trainToCu8(train, opts));
  return path;
}

/** A file of noise only, `ms` long. */
export function writeNoiseCu8(dir: string, name: string, ms: number, opts: IqOptions = {}): string {
  return writeCu8(dir, name, [0, ms * 1000], { ...opts, leadInMs: 0, leadOutMs: 0 });
}
