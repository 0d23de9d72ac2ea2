import { pt2262Tristate, type RemoteFrame } from './types.js';

/**
 * Decodes fixed-code 433 MHz remotes (EV1527, PT2262 and the other timings rc-switch knows) from
 * the pulse timings of a plain OOK receiver module: a stream of durations, alternately carrier on
 * and carrier off, as the module's data pin reports them. Pure and streaming: it holds the last
 * 128 durations in a ring and allocates only when it returns a frame, because a module with no
 * transmitter in range turns noise into thousands of edges a second, all of which pass through here.
 *
 * The approach is rc-switch's receiver (RCSwitch.cpp, `handleInterrupt`/`receiveProtocol`), with
 * the changes below and why:
 * - Sync: a carrier-off pulse long enough to be some protocol's sync gap (31 units for EV1527)
 *   ends a frame, which is read backwards from it. The unit is taken from the gap itself (gap / its
 *   units), so a remote whose oscillator runs fast or slow decodes (EV1527 units are anywhere from
 *   250 to 450 µs); a gap whose unit is outside 0.5-1.7 × the protocol's nominal unit is not that
 *   protocol's sync, and for non-inverted protocols the carrier-on part of the sync (just before
 *   the gap) must fit too: without that check, timings of one protocol pass for another's.
 * - Frame start: the previous frame's sync gap (an off pulse nearer the gap's length than a bit's
 *   longest: protocol 4's 6-unit gap is close to its 3-unit bit pulses), or the first pair of
 *   pulses whose period is no bit's, so that the first frame of a press decodes although noise
 *   precedes it. rc-switch needs the gap before a frame instead, and drops that first frame.
 *   The bits found must be as many as the protocol has (EV1527: 24): a frame cut short is
 *   dropped, and so is one whose preceding noise happened to look like one more bit.
 * - Unit: the gap gives a first estimate, good enough to find the frame's bits (each bit's period
 *   within 40 % of its nominal length); the bits are then checked against the unit re-estimated
 *   from the frame's own bit periods. A sync gap is the pulse a receiver module measures worst (its
 *   gain rises during the silence) and a single jittered gap would otherwise skew every bit.
 * - Tolerance: each pulse of a bit must be within 15 % of the bit's period of its expected length:
 *   ±0.6 units for the 4-unit bits of EV1527, as in rc-switch (cheap receiver modules stretch or
 *   shrink pulses by a fixed 50-150 µs depending on signal strength, a large part of a 250 µs
 *   unit). It is never more than 0.4 × the difference between that pulse's length in a zero and
 *   in a one, so the two windows stay apart: ±0.4 units for the 1:2 bits of protocols 2, 5 and 6,
 *   where rc-switch's ±0.6 lets them overlap. rc-switch's tolerance is in units, which makes
 *   protocol 3's (unit 100 µs, pulses of 4-11 units) a strict ±60 µs; ours is ±200 µs.
 * - Protocol: every protocol whose sync fits is tried and the best fit wins (least mean squared
 *   deviation, in tolerances), not the first: protocols 3 and 5 differ by only 100 µs a pulse.
 * - Bit count: protocol 1 (EV1527/PT2262) frames have exactly 24 bits; the others 12 to 32
 *   (rc-switch accepts as few as 4, which noise produces readily; 32 is its longest code).
 * - Repeats: a frame is returned only when it follows an identical frame directly (same protocol,
 *   bits and code, the second starting right after the first's sync gap). Every real remote sends
 *   a frame many times per press (8-20 for a short press), while noise that happens to decode
 *   essentially never does so twice in a row with the same code. The cost: the first frame of a
 *   press is not reported by itself, so a press is reported one frame later (~45 ms for EV1527 at
 *   350 µs) and n repeats give n − 1 frames. rc-switch's own check is weaker: it only wants two
 *   gaps of similar length.
 * A frame is known once its sync gap ends, at the next edge; its time is that of the gap's start
 * (the frame's last edge). A transmission followed by complete silence leaves its last frame
 * undecoded, which costs nothing with repeats (receiver modules output noise when idle anyway).
 */

/**
 * One fixed-code timing, in rc-switch's table notation: lengths in pulse units, each pair
 * (first, second) being carrier on then off, or off then on when `inverted`.
 */
export interface OokProtocol {
  /** rc-switch's protocol number. */
  readonly number: number;
  /** Nominal pulse unit in µs. */
  readonly unitUs: number;
  readonly sync: readonly [number, number];
  readonly zero: readonly [number, number];
  readonly one: readonly [number, number];
  /** Pairs start with carrier off (HT6P20B). */
  readonly inverted: boolean;
  readonly minBits: number;
  readonly maxBits: number;
}

/** rc-switch's protocols 1-6 (its current table; 7 and later are rarer and not included). */
export const RCSWITCH_PROTOCOLS: readonly OokProtocol[] = [
  { number: 1, unitUs: 350, sync: [1, 31], zero: [1, 3], one: [3, 1], inverted: false, minBits: 24, maxBits: 24 },
  { number: 2, unitUs: 650, sync: [1, 10], zero: [1, 2], one: [2, 1], inverted: false, minBits: 12, maxBits: 32 },
  { number: 3, unitUs: 100, sync: [30, 71], zero: [4, 11], one: [9, 6], inverted: false, minBits: 12, maxBits: 32 },
  { number: 4, unitUs: 380, sync: [1, 6], zero: [1, 3], one: [3, 1], inverted: false, minBits: 12, maxBits: 32 },
  { number: 5, unitUs: 500, sync: [6, 14], zero: [1, 2], one: [2, 1], inverted: false, minBits: 12, maxBits: 32 },
  { number: 6, unitUs: 450, sync: [23, 1], zero: [1, 2], one: [2, 1], inverted: true, minBits: 12, maxBits: 32 },
];

/** A decoded frame, before normalisation to a RemoteFrame (see toRemoteFrame). */
export interface OokFrame {
  /** rc-switch protocol number. */
  protocol: number;
  bitCount: number;
  /** The bits, first received as most significant. */
  code: number;
  /** The pulse unit measured from the frame's bits, µs. */
  unitUs: number;
  /** When the frame's last pulse ended (its sync gap began): the edge time when fed edges, else the sum of the durations fed. */
  endUs: number;
}

export interface OokDecoderOptions {
  /** Return a frame only when an identical frame came directly before it (default true). */
  requireRepeat?: boolean;
  /** Default RCSWITCH_PROTOCOLS; when several fit, the best fit wins. */
  protocols?: readonly OokProtocol[];
}

export interface OokDecoderStats {
  /** Durations fed. */
  pulses: number;
  /** Frames returned. */
  frames: number;
  /** Valid frames, returned or not (a press's first frame, noise that happened to decode once). */
  decoded: number;
  /** Durations that are part of no valid frame; counted once they are too old to become part of one (the last 66 are pending). */
  undecoded: number;
}

const UNIT_MIN_FACTOR = 0.5;
const UNIT_MAX_FACTOR = 1.7;
const SYNC_ON_TOLERANCE = 0.6;
const PERIOD_TOLERANCE = 0.4;
const PULSE_TOLERANCE_OF_PERIOD = 0.15;
const PULSE_TOLERANCE_OF_SEPARATION = 0.4;

/** The ring holds at least the longest frame (2 × 32 bits + sync) and the pair before it. */
const RING_SIZE = 128;
const RING_MASK = RING_SIZE - 1;
const MAX_SUPPORTED_BITS = 32;
/** A duration this far behind the newest can no longer be part of a frame (2 × 32 bits + 2 sync pulses). */
const SETTLE_DISTANCE = 2 * MAX_SUPPORTED_BITS + 2;

/** The protocol table in the form the hot loop wants: everything precomputed. */
interface CompiledProtocol {
  number: number;
  minGapUs: number;
  maxGapUs: number;
  gapUnits: number;
  /** Units of the carrier-on sync pulse just before the gap; 0 when it comes after the gap (inverted). */
  syncOnUnits: number;
  inverted: boolean;
  /** Distance from the gap back to the last bit's second pulse. */
  lastSecondOffset: number;
  /** A bit's off pulse at least this fraction of the gap is the previous frame's sync gap. */
  syncGapRatio: number;
  bitUnits: number;
  zeroFirst: number;
  zeroSecond: number;
  oneFirst: number;
  oneSecond: number;
  firstTolerance: number;
  secondTolerance: number;
  minBits: number;
  maxBits: number;
}

function compile(p: OokProtocol): CompiledProtocol {
  const bitUnits = p.zero[0] + p.zero[1];
  if (p.one[0] + p.one[1] !== bitUnits) throw new RangeError(`protocol ${p.number}: a zero and a one must last the same`);
  if (!(p.minBits >= 1 && p.minBits <= p.maxBits && p.maxBits <= MAX_SUPPORTED_BITS))
    throw new RangeError(`protocol ${p.number}: bits must be 1-${MAX_SUPPORTED_BITS}`);
  const gapUnits = p.inverted ? p.sync[0] : p.sync[1];
  return {
    number: p.number,
    minGapUs: gapUnits * p.unitUs * UNIT_MIN_FACTOR,
    maxGapUs: gapUnits * p.unitUs * UNIT_MAX_FACTOR,
    gapUnits,
    syncOnUnits: p.inverted ? 0 : p.sync[0],
    // Non-inverted: ... bit (on, off), sync on, [gap]. Inverted: ... bit (off, on), [gap], sync on.
    inverted: p.inverted,
    lastSecondOffset: p.inverted ? 1 : 2,
    // Halfway, in ratio, between a bit's longest off pulse and a gap: protocol 4's 3 and 6 units are close.
    syncGapRatio: Math.sqrt((p.inverted ? Math.max(p.zero[0], p.one[0]) : Math.max(p.zero[1], p.one[1])) / gapUnits),
    bitUnits,
    zeroFirst: p.zero[0],
    zeroSecond: p.zero[1],
    oneFirst: p.one[0],
    oneSecond: p.one[1],
    firstTolerance: Math.min(PULSE_TOLERANCE_OF_PERIOD * bitUnits, PULSE_TOLERANCE_OF_SEPARATION * Math.abs(p.one[0] - p.zero[0])),
    secondTolerance: Math.min(PULSE_TOLERANCE_OF_PERIOD * bitUnits, PULSE_TOLERANCE_OF_SEPARATION * Math.abs(p.one[1] - p.zero[1])),
    minBits: p.minBits,
    maxBits: p.maxBits,
  };
}

export class OokDecoder {
  readonly #protocols: CompiledProtocol[];
  readonly #requireRepeat: boolean;
  /** The shortest gap any protocol accepts: shorter off pulses skip the decode attempt. */
  readonly #minGapUs: number;
  readonly #ring = new Float64Array(RING_SIZE);
  /** Index of the next duration (= durations fed so far). */
  #next = 0;
  /** The first index after the last discontinuity: a frame may not reach back past it. */
  #validFrom = 0;
  #lastOn = false;
  #nowUs = 0;
  #lastEdgeUs = Number.NaN;
  #lastEdgeLevel = false;
  /** Every duration up to this index is either in a valid frame or counted as undecoded. */
  #countedThrough = -1;
  // The last valid frame, to confirm the next one.
  #prevProtocol = 0;
  #prevBitCount = 0;
  #prevCode = 0;
  #prevGapIndex = -1;
  #frames = 0;
  #decoded = 0;
  #undecoded = 0;

  constructor(opts: OokDecoderOptions = {}) {
    this.#protocols = (opts.protocols ?? RCSWITCH_PROTOCOLS).map(compile);
    this.#requireRepeat = opts.requireRepeat ?? true;
    this.#minGapUs = Math.min(...this.#protocols.map((p) => p.minGapUs));
  }

  /**
   * One pulse: its level (true = carrier on) and duration in µs. Returns the frame this pulse
   * completes, if any. Two pulses in a row with the same level mean an edge went missing: the
   * pulses before cannot be trusted and are dropped.
   */
  pulse(on: boolean, durationUs: number): OokFrame | null {
    const index = this.#next;
    if (index > this.#validFrom && on === this.#lastOn) this.#validFrom = index;
    if (!(durationUs >= 0)) {
      // NaN or negative: a clock problem, not a signal.
      this.#validFrom = index + 1;
      durationUs = 0;
    }
    this.#ring[index & RING_MASK] = durationUs;
    this.#next = index + 1;
    this.#lastOn = on;
    const startUs = this.#nowUs;
    this.#nowUs = startUs + durationUs;
    const settled = index - SETTLE_DISTANCE;
    if (settled > this.#countedThrough) {
      this.#undecoded++;
      this.#countedThrough = settled;
    }
    if (on || durationUs < this.#minGapUs || index < this.#validFrom) return null;
    return this.#decodeAt(index, durationUs, startUs);
  }

  /** An edge: the level it goes to (true = carrier on) and when, µs (any time base, as long as it is the same for every edge). */
  edge(level: boolean, timeUs: number): OokFrame | null {
    const lastUs = this.#lastEdgeUs;
    const lastLevel = this.#lastEdgeLevel;
    this.#lastEdgeUs = timeUs;
    this.#lastEdgeLevel = level;
    if (Number.isNaN(lastUs)) {
      this.#nowUs = timeUs;
      return null;
    }
    if (level === lastLevel) {
      // Not an edge: one went missing in between, and where is unknown.
      this.#validFrom = this.#next;
      this.#nowUs = timeUs;
      return null;
    }
    this.#nowUs = lastUs;
    const frame = this.pulse(lastLevel, timeUs - lastUs);
    this.#nowUs = timeUs;
    return frame;
  }

  /** Durations alternating on and off, starting with `firstOn`; the frames they complete. */
  pulses(durationsUs: ArrayLike<number>, firstOn = true): OokFrame[] {
    const frames: OokFrame[] = [];
    let on = firstOn;
    for (let i = 0; i < durationsUs.length; i++) {
      const frame = this.pulse(on, durationsUs[i]!);
      if (frame) frames.push(frame);
      on = !on;
    }
    return frames;
  }

  stats(): OokDecoderStats {
    return { pulses: this.#next, frames: this.#frames, decoded: this.#decoded, undecoded: this.#undecoded };
  }

  /** Forgets the pulses held (the line was closed); the counters stay. */
  reset(): void {
    this.#validFrom = this.#next;
    this.#lastEdgeUs = Number.NaN;
    this.#prevGapIndex = -1;
  }

  #decodeAt(gapIndex: number, gapUs: number, gapStartUs: number): OokFrame | null {
    const ring = this.#ring;
    const validFrom = this.#validFrom;
    // Every protocol is tried and the best fit wins: some are near twins (3 and 5 differ by 100 µs a pulse).
    let best: CompiledProtocol | null = null;
    let bestMisfit = Number.POSITIVE_INFINITY;
    let bestBitCount = 0;
    let bestCode = 0;
    let bestUnitUs = 0;
    for (const p of this.#protocols) {
      if (gapUs < p.minGapUs || gapUs > p.maxGapUs) continue;
      const gapUnitUs = gapUs / p.gapUnits;
      if (p.syncOnUnits > 0) {
        if (gapIndex - 1 < validFrom) continue;
        const expected = p.syncOnUnits * gapUnitUs;
        if (Math.abs(ring[(gapIndex - 1) & RING_MASK]! - expected) > SYNC_ON_TOLERANCE * expected) continue;
      }

      // Find the bits: pairs whose period fits the gap's unit, back to the previous sync or the first pair that is no bit.
      const expectedPeriod = p.bitUnits * gapUnitUs;
      const periodTolerance = PERIOD_TOLERANCE * expectedPeriod;
      const previousSyncUs = p.syncGapRatio * gapUs;
      const lastSecond = gapIndex - p.lastSecondOffset;
      let bitCount = 0;
      let periodSum = 0;
      for (let second = lastSecond; bitCount <= p.maxBits; second -= 2) {
        if (second - 1 < validFrom) break;
        const first = ring[(second - 1) & RING_MASK]!;
        const last = ring[second & RING_MASK]!;
        if ((p.inverted ? first : last) >= previousSyncUs) break;
        const period = first + last;
        if (Math.abs(period - expectedPeriod) > periodTolerance) break;
        periodSum += period;
        bitCount++;
      }
      if (bitCount < p.minBits || bitCount > p.maxBits) continue;

      // Read them against the unit the bits themselves give. Misfit: mean squared deviation, in tolerances.
      const unitUs = periodSum / (bitCount * p.bitUnits);
      let code = 0;
      let misfit = 0;
      let bit = 0;
      for (let second = lastSecond; bit < bitCount; bit++, second -= 2) {
        const first = ring[(second - 1) & RING_MASK]! / unitUs;
        const last = ring[second & RING_MASK]! / unitUs;
        let firstDeviation = Math.abs(first - p.zeroFirst) / p.firstTolerance;
        let lastDeviation = Math.abs(last - p.zeroSecond) / p.secondTolerance;
        if (firstDeviation > 1 || lastDeviation > 1) {
          firstDeviation = Math.abs(first - p.oneFirst) / p.firstTolerance;
          lastDeviation = Math.abs(last - p.oneSecond) / p.secondTolerance;
          if (firstDeviation > 1 || lastDeviation > 1) break;
          code += 2 ** bit;
        }
        misfit += firstDeviation * firstDeviation + lastDeviation * lastDeviation;
      }
      if (bit < bitCount) continue;
      misfit /= bitCount;
      if (misfit < bestMisfit) {
        best = p;
        bestMisfit = misfit;
        bestBitCount = bitCount;
        bestCode = code;
        bestUnitUs = unitUs;
      }
    }
    return best ? this.#accept(best.number, bestBitCount, bestCode, bestUnitUs, gapIndex, gapStartUs) : null;
  }

  #accept(protocol: number, bitCount: number, code: number, unitUs: number, gapIndex: number, endUs: number): OokFrame | null {
    // The frame's durations run from its first bit (or, inverted, the sync's on pulse) to the gap.
    const firstIndex = gapIndex - 2 * bitCount - 1;
    if (firstIndex > this.#countedThrough + 1) this.#undecoded += firstIndex - this.#countedThrough - 1;
    if (gapIndex > this.#countedThrough) this.#countedThrough = gapIndex;
    this.#decoded++;
    // The previous frame's gap sits just before this frame's first pulse (2 per bit + the sync's on pulse).
    const repeated =
      this.#prevProtocol === protocol && this.#prevBitCount === bitCount && this.#prevCode === code && this.#prevGapIndex === gapIndex - 2 * bitCount - 2;
    this.#prevProtocol = protocol;
    this.#prevBitCount = bitCount;
    this.#prevCode = code;
    this.#prevGapIndex = gapIndex;
    if (this.#requireRepeat && !repeated) return null;
    this.#frames++;
    return { protocol, bitCount, code, unitUs, endUs };
  }
}

/** A decoded frame named as types.ts documents: protocol 1 with 24 bits is `ev1527`, the rest `rcswitch-N`. */
export function toRemoteFrame(frame: OokFrame, monoMs: number): RemoteFrame {
  const raw = frame.code.toString(16).padStart(Math.ceil(frame.bitCount / 4), '0');
  if (frame.protocol === 1 && frame.bitCount === 24) {
    return {
      protocol: 'ev1527',
      id: raw.slice(0, 5),
      button: frame.code & 0xf,
      rolling: null,
      raw,
      tristate: pt2262Tristate(frame.code),
      rssiDb: null,
      monoMs,
    };
  }
  return { protocol: `rcswitch-${frame.protocol}`, id: raw, button: null, rolling: null, raw, tristate: null, rssiDb: null, monoMs };
}

/** How an EV1527 remote transmits (the other direction, for the demo, `sim.radio` callers and the tests). */
export interface Ev1527Options {
  /** The pulse unit in µs (EV1527 remotes: ~250-450 depending on their oscillator resistor; default 350). */
  unitUs?: number;
  /** Times the frame is sent (a short press of a real remote: ~8-20; default 8). */
  repeats?: number;
}

/**
 * What an EV1527 / PT2262-style remote sends for a press, as durations in µs alternating carrier
 * on and off, starting with on: 24 bits, MSB first, each bit 1 unit on + 3 off (0) or 3 on + 1 off
 * (1), each frame followed by the sync (1 on + 31 off), repeated. `code` is the 24-bit code
 * (20-bit remote id << 4 | 4 button bits).
 */
export function ev1527Train(code: number, opts: Ev1527Options = {}): number[] {
  if (!Number.isInteger(code) || code < 0 || code > 0xffffff) throw new Error(`ev1527Train: code must be 24 bits, got ${code}`);
  const t = opts.unitUs ?? 350;
  const repeats = opts.repeats ?? 8;
  const frame: number[] = [];
  for (let bit = 23; bit >= 0; bit--) {
    if ((code >> bit) & 1) frame.push(3 * t, t);
    else frame.push(t, 3 * t);
  }
  frame.push(t, 31 * t);
  const train: number[] = [];
  for (let i = 0; i < repeats; i++) train.push(...frame);
  return train;
}
