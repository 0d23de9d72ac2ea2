import { EventEmitter } from 'node:events';
import { delimiter, join } from 'node:path';
import type { BackoffOptions } from '../../core/backoff.js';
import type { Clock } from '../../core/clock.js';
import { isExecutable } from '../../core/executable.js';
import type { Timers } from '../../core/timers.js';
import { type ProcessFailure, SupervisedProcess } from '../gpio/supervisor.js';
import { pt2262Tristate, type ReceiverStats, type RemoteFrame, type RemoteReceiver } from './types.js';

/**
 * 433 MHz remotes through an RTL-SDR dongle, decoded by `rtl_433` (Debian package `rtl-433`,
 * 22.11 in bookworm) running as a supervised child process that prints one JSON object per
 * decoded transmission.
 *
 * Why rtl_433: it does the whole radio side (tuning, gain, IQ to envelope, adaptive OOK level,
 * pulse slicing) and has decoders for the remotes the kits use, maintained against real devices;
 * a dongle that is pulled out ends the process (a failed read, or its stalled-read watchdog:
 * "Async read stalled, exiting!"), not the daemon, and it is started again with backoff until
 * the dongle is back (without one it exits at once with "No supported devices found.").
 *
 * Decoders (`-R`, numbers as `rtl_433 -R help` lists them in 22.11):
 * - 30 "Generic Remote SC226x EV1527": the 24-bit fixed-code remotes (EV1527, PT2262 and clones).
 *   JSON `{"model":"Generic-Remote","id":<upper 16 bits>,"cmd":<low 8 bits>,"tristate":"<12 of
 *   0 1 Z X>"}`. Its pulse windows are fixed (464 ± 200 µs short, 1404 ± 200 µs long), so it
 *   decodes only remotes whose pulse unit is ~405-530 µs, and it rejects codes whose upper 16 or
 *   lower 8 bits are all zero.
 * - The flex decoder EV1527_FLEX_SPEC (`-X`, model `EV1527-Wide`), for the rest: many cheap
 *   remotes run at 250-400 µs (their oscillator resistor sets it), and codes ending in a zero
 *   byte exist. Fallback only (`priority=1`: it runs on a transmission no regular decoder took),
 *   so a frame both can read is reported once. Together: pulse units of ~215-530 µs.
 * - 131 "Microchip HCS200/HCS300 KeeLoq Hopping Encoder based remotes" (OOK). JSON `{"model":
 *   "Microchip-HCS200","id":"<serial, 7 hex>","battery_ok":1,"button":<S3..S0>,"learn":0,
 *   "repeat":0,"encrypted":"<hopping word, 8 hex>"}`. 218 is its FSK twin; the kits' remotes are OOK.
 * Latency: rtl_433 decodes a transmission once it ends (a gap over 10 ms, or 10 times its
 * longest pulse) or at 1200 pulses. A remote with a unit over ~325 µs has sync gaps long enough
 * (31 units) to end each frame; below that a held button comes out in batches of 48 frames
 * (~0.45 s at 300 µs), or when it is released.
 * Only these run: every other decoder would turn the street's weather stations and tyre sensors
 * into lines to parse and throw away, and costs CPU on a Pi. Whatever does come through with
 * another model is counted as undecoded, by model.
 *
 * Other options: `-F json` (one object per line; rtl_433 leaves stdout unbuffered, so each line
 * comes as soon as its transmission is decoded); `-M level` adds rssi/snr/noise (dB) to each line; `-M time:unix:usec` makes the time field unambiguous in logs (it is
 * not used to stamp frames, see #onLine); `-c /dev/null` keeps an rtl_433.conf lying in the
 * working directory, ~/.config or /etc from adding decoders or outputs behind our back (tuning
 * such as `-g` or `-p` goes in extraArgs). `-r FILE` reads an IQ file instead of the dongle: the
 * process then exits at the end of the file, which ends the run (inputEnded()) instead of
 * restarting it.
 */

/** The decoders enabled by default: the generic fixed-code remote and the HCS200 (OOK). */
export const DEFAULT_RTL433_PROTOCOLS: readonly number[] = [30, 131];

export const EV1527_FLEX_MODEL = 'EV1527-Wide';

/**
 * EV1527/PT2262 with a pulse unit T of ~215-530 µs, any code. rtl_433's PWM slicer looks at pulse
 * widths only, in windows of nominal ± tolerance: here a pulse under 560 µs is a 1 (80 ± 480), one
 * of 640-1600 µs a 0 (1120 ± 480), inverted since these chips send a short pulse for a 0; any
 * other pulse breaks the row. 560-640 µs is in neither window, so a pulse of uncertain width
 * breaks the frame instead of flipping a bit: a weak remote gives no frame rather than a wrong
 * code. A gap over 5 ms ends a frame (bit gaps are up to 3 T, the sync gap 31 T); a frame is
 * exactly one row of 25 bits (24 + the sync pulse), which keeps 25-pulse stretches of longer
 * transmissions out. Below T ≈ 187 µs every pulse is a 1 and the code reads as all zeros, which
 * the parser rejects.
 */
export const EV1527_FLEX_SPEC = `n=${EV1527_FLEX_MODEL},m=OOK_PWM,s=80,l=1120,t=480,r=5000,bits=25,rows=1,invert,unique,get=@0:{24}:code,priority=1`;

export interface Rtl433Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface Rtl433Options {
  clock: Clock;
  /** The rtl_433 program: a name looked up on PATH, or a path (default `rtl_433`). */
  command?: string;
  /** rtl_433 `-d`: the dongle's index, or `:serial` (default `0`). */
  device?: string;
  /** rtl_433 `-f` (default `433.92M`). */
  frequency?: string;
  /** rtl_433 `-R` decoder numbers (default DEFAULT_RTL433_PROTOCOLS); empty: rtl_433's own default set. */
  protocols?: readonly number[];
  /** Adds the wide EV1527 fallback decoder (default true). */
  wideEv1527?: boolean;
  /** More options, after ours (gain: `-g 40`, frequency correction: `-p 30`...). */
  extraArgs?: readonly string[];
  /**
   * Reads this IQ file (`-r`; format and sample rate from its name, e.g. `x_250k.cu8`) instead of
   * the dongle: for tests and for replaying recordings. The run ends with the file.
   */
  inputFile?: string;
  timers?: Timers;
  logger?: Rtl433Logger;
  backoff?: BackoffOptions;
  random?: () => number;
  /** SIGTERM, then SIGKILL after this long. */
  killGraceMs?: number;
}

/** The command line, without the program. */
export function rtl433Args(opts: Omit<Rtl433Options, 'clock' | 'timers' | 'logger' | 'backoff' | 'random' | 'killGraceMs' | 'command'>): string[] {
  const args = ['-c', '/dev/null'];
  if (opts.inputFile !== undefined) args.push('-r', opts.inputFile);
  else args.push('-d', opts.device ?? '0', '-f', opts.frequency ?? '433.92M');
  for (const n of opts.protocols ?? DEFAULT_RTL433_PROTOCOLS) args.push('-R', String(n));
  if (opts.wideEv1527 ?? true) args.push('-X', EV1527_FLEX_SPEC);
  args.push('-F', 'json', '-M', 'level', '-M', 'time:unix:usec');
  args.push(...(opts.extraArgs ?? []));
  return args;
}

export type Rtl433Line = RemoteFrame | { undecoded: string } | null;

type Json = Record<string, unknown>;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIntIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** rtl_433's tristate string (Z: floating, X: the invalid pair 10) in our notation; undefined when it is not one. */
function normaliseTristate(value: unknown): string | null | undefined {
  if (typeof value !== 'string' || !/^[01ZXF]{12}$/i.test(value)) return undefined;
  const upper = value.toUpperCase();
  return upper.includes('X') ? null : upper.replaceAll('Z', 'F');
}

function fixedCodeFrame(code: number, tristate: string | null | undefined, rssiDb: number | null, monoMs: number): RemoteFrame {
  const raw = code.toString(16).padStart(6, '0');
  return {
    protocol: 'ev1527',
    id: raw.slice(0, 5),
    button: code & 0xf,
    rolling: null,
    raw,
    tristate: tristate === undefined ? pt2262Tristate(code) : tristate,
    rssiDb,
    monoMs,
  };
}

/**
 * One line of `rtl_433 -F json` as a frame; `{ undecoded }` with the reason when it is not a frame
 * of a remote we know (another device's model, a malformed line); null for a blank line. Never throws.
 */
export function parseRtl433Line(line: string, monoMs: number): Rtl433Line {
  const text = line.trim();
  if (text === '') return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { undecoded: 'not JSON' };
  }
  if (!isRecord(json)) return { undecoded: 'not a JSON object' };
  const model = json.model;
  if (typeof model !== 'string') return { undecoded: 'no model' };
  const rssiDb = typeof json.rssi === 'number' && Number.isFinite(json.rssi) ? json.rssi : null;

  switch (model) {
    case 'Generic-Remote': {
      const { id, cmd } = json;
      if (!isIntIn(id, 0, 0xffff) || !isIntIn(cmd, 0, 0xff)) return { undecoded: `malformed ${model}` };
      return fixedCodeFrame((id << 8) | cmd, normaliseTristate(json.tristate), rssiDb, monoMs);
    }
    case EV1527_FLEX_MODEL: {
      const { code, len } = json;
      if (!isIntIn(code, 0, 0xffffff) || len !== 25) return { undecoded: `malformed ${model}` };
      // All zeros is what a remote too fast for the decoder's windows reads as (see EV1527_FLEX_SPEC).
      if (code === 0) return { undecoded: `${model} all-zero code` };
      return fixedCodeFrame(code, undefined, rssiDb, monoMs);
    }
    case 'Microchip-HCS200': {
      const { id, encrypted, button } = json;
      if (typeof id !== 'string' || !/^[0-9a-f]{1,7}$/i.test(id)) return { undecoded: `malformed ${model}` };
      if (typeof encrypted !== 'string' || !/^[0-9a-f]{8}$/i.test(encrypted)) return { undecoded: `malformed ${model}` };
      if (!isIntIn(button, 0, 0xf)) return { undecoded: `malformed ${model}` };
      const serial = id.toLowerCase().padStart(7, '0');
      const rolling = encrypted.toLowerCase();
      return {
        protocol: 'hcs200',
        id: serial,
        button,
        rolling,
        // The 64 bits that identify the transmission, as numbers (rtl_433 gives no bit dump):
        // hopping word, serial, button.
        raw: `${rolling}${serial}${button.toString(16)}`,
        tristate: null,
        rssiDb,
        monoMs,
      };
    }
    default:
      return { undecoded: `model ${model.slice(0, 80)}` };
  }
}

/** Distinct undecoded reasons kept for stats: a street has a few dozen devices, a flood of junk models stops here. */
const MAX_UNDECODED_REASONS = 64;

export class Rtl433Receiver extends EventEmitter<{ frame: [RemoteFrame]; error: [Error] }> implements RemoteReceiver {
  readonly id = 'rtl_433';
  readonly #opts: Rtl433Options;
  readonly #command: string;
  #process: SupervisedProcess | undefined;
  #frames = 0;
  #undecoded = 0;
  #restarts = 0;
  readonly #undecodedBy = new Map<string, number>();
  #inputEnded = Promise.resolve();
  #endInput = () => {};

  /** Does nothing yet: start() runs rtl_433. */
  constructor(opts: Rtl433Options) {
    super();
    this.#opts = opts;
    this.#command = opts.command ?? 'rtl_433';
  }

  /** The full command line (program first), as start() runs it. */
  commandLine(): string[] {
    return [this.#command, ...rtl433Args(this.#opts)];
  }

  async start(): Promise<void> {
    if (this.#process) return;
    const opts = this.#opts;
    const args = rtl433Args(opts);
    const proc = new SupervisedProcess({
      label: 'rtl_433',
      command: this.#command,
      args: () => args,
      clock: opts.clock,
      ...(opts.timers ? { timers: opts.timers } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
      ...(opts.random ? { random: opts.random } : {}),
      ...(opts.killGraceMs !== undefined ? { killGraceMs: opts.killGraceMs } : {}),
    });
    this.#process = proc;
    this.#inputEnded = new Promise((resolve) => {
      this.#endInput = resolve;
    });
    proc.on('line', (line) => this.#onLine(line));
    proc.on('failure', (failure) => this.#onFailure(proc, failure));
    opts.logger?.info({ command: this.#command, args }, 'rtl_433: starting');
    proc.start();
  }

  async stop(): Promise<void> {
    const proc = this.#process;
    this.#process = undefined;
    await proc?.stop();
    this.#endInput();
  }

  stats(): ReceiverStats {
    return { frames: this.#frames, undecoded: this.#undecoded, restarts: this.#restarts };
  }

  /** With `inputFile`: resolves once rtl_433 has read the whole file, every frame in it emitted (at once when not started). */
  inputEnded(): Promise<void> {
    return this.#inputEnded;
  }

  /** Undecoded lines by reason (`model Acurite-Tower`, `not JSON`...): which devices share the air. */
  undecodedByReason(): Record<string, number> {
    return Object.fromEntries(this.#undecodedBy);
  }

  #onLine(line: string): void {
    // Stamped on arrival, not with rtl_433's time field: that is the wall clock (wrong on a Pi
    // until NTP syncs; without `-M time` a file gives its position in the file instead), and
    // rtl_433 prints a frame as soon as it is decoded, unbuffered, so arrival is the same instant
    // give or take the pipe.
    const parsed = parseRtl433Line(line, this.#opts.clock.monoNow());
    if (parsed === null) return;
    if ('undecoded' in parsed) {
      this.#undecoded++;
      const reason = parsed.undecoded;
      if (this.#undecodedBy.has(reason) || this.#undecodedBy.size < MAX_UNDECODED_REASONS) {
        this.#undecodedBy.set(reason, (this.#undecodedBy.get(reason) ?? 0) + 1);
      }
      this.#opts.logger?.debug?.({ reason }, 'rtl_433: not a remote frame');
      return;
    }
    this.#frames++;
    this.emit('frame', parsed);
  }

  #onFailure(proc: SupervisedProcess, failure: ProcessFailure): void {
    const fileMode = this.#opts.inputFile !== undefined;
    // rtl_433 exits with 0 at the end of a file, and also when it cannot open it (saying so on stderr).
    const endOfFile = fileMode && failure.error.message.startsWith('rtl_433 exited with code 0') && !/Opening file: .* failed/.test(failure.error.message);
    const hint = this.#commandFound() ? '' : ` (${this.#command} not found: install the rtl-433 package)`;
    if (fileMode) {
      // A file is read once: its end (or a failure to read it) ends the run, nothing restarts.
      void proc.stop();
      if (this.#process === proc) this.#process = undefined;
      if (!endOfFile) {
        const error = new Error(`${failure.error.message}${hint}`);
        this.#opts.logger?.warn({ file: this.#opts.inputFile, err: error.message }, 'rtl_433 could not read the file');
        this.#report(error);
      }
      this.#endInput();
      return;
    }
    this.#restarts++;
    const error = new Error(`${failure.error.message}${hint}; restart ${failure.attempt} in ${failure.restartInMs} ms`);
    this.#opts.logger?.warn({ attempt: failure.attempt, restartInMs: failure.restartInMs, err: error.message }, 'rtl_433 stopped; restarting');
    this.#report(error);
  }

  /** An `error` event when someone listens: an EventEmitter throws an `error` nobody hears, and the failure is logged anyway. */
  #report(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  #commandFound(): boolean {
    if (this.#command.includes('/')) return isExecutable(this.#command);
    return (process.env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .some((dir) => isExecutable(join(dir, this.#command)));
  }
}
