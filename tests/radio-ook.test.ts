import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { SimGpio } from '../src/drivers/gpio/sim.js';
import type { EdgeEvent, GpioBackend, InputLine, InputOptions } from '../src/drivers/gpio/types.js';
import { GpioRemoteReceiver } from '../src/drivers/radio/gpio-receiver.js';
import { OokDecoder, type OokFrame, toRemoteFrame } from '../src/drivers/radio/ook.js';
import type { RemoteFrame } from '../src/drivers/radio/types.js';
import { ev1527Train, jitterTrain, noiseTrain, playTrain, pt2262Code, rcswitchTrain, trainDurationUs } from './helpers/ook.js';
import { mulberry32 } from './helpers/random.js';

/** Remote a5c3b, button 9. Its first bit pair is 10, so it has no PT2262 reading. */
const CODE = 0xa5c3b9;
/** Durations in one EV1527 frame: 24 bits × 2 + the sync's 2. */
const EV1527_FRAME_PULSES = 50;

function decode(train: number[]): { frames: OokFrame[]; decoder: OokDecoder } {
  const decoder = new OokDecoder();
  return { frames: decoder.pulses(train), decoder };
}

/** The end of every frame's last pulse (= the start of its sync gap) in a train of identical frames, µs from the train's start. */
function frameEndsUs(train: number[], framePulses: number): number[] {
  const ends: number[] = [];
  let elapsed = 0;
  for (let i = 0; i < train.length; i++) {
    if (i % framePulses === framePulses - 1) ends.push(elapsed);
    elapsed += train[i]!;
  }
  return ends;
}

describe('OokDecoder: EV1527 / PT2262', () => {
  // 250-450 µs is the spread of real remotes; 245 and 455 are 350 µs running 30 % fast or slow.
  it.each([245, 250, 350, 450, 455])('decodes a press at a %i µs unit, each frame confirmed by the one before', (unitUs) => {
    const train = ev1527Train(CODE, { unitUs, repeats: 8 });
    const { frames, decoder } = decode(train);

    expect(frames).toHaveLength(7);
    for (const frame of frames) {
      expect(frame).toMatchObject({ protocol: 1, bitCount: 24, code: CODE });
      expect(frame.unitUs).toBeCloseTo(unitUs, 6);
    }
    // Frames 2-8 (the first has nothing before it to confirm it), each ending where its sync gap starts.
    expect(frames.map((f) => f.endUs)).toEqual(frameEndsUs(train, EV1527_FRAME_PULSES).slice(1));
    expect(toRemoteFrame(frames[0]!, 1234.5)).toEqual({
      protocol: 'ev1527',
      id: 'a5c3b',
      button: 9,
      rolling: null,
      raw: 'a5c3b9',
      tristate: null,
      rssiDb: null,
      monoMs: 1234.5,
    } satisfies RemoteFrame);
    expect(decoder.stats()).toMatchObject({ pulses: train.length, frames: 7, decoded: 8, undecoded: 0 });
  });

  it('reads a PT2262 code as its tri-state digits', () => {
    const tristate = '0F1F0F0F1FF0';
    const code = pt2262Code(tristate);
    expect(code).toBe(0b00_01_11_01_00_01_00_01_11_01_01_00);

    const { frames } = decode(ev1527Train(code, { unitUs: 400, repeats: 3 }));

    expect(frames).toHaveLength(2);
    const remote = toRemoteFrame(frames[1]!, 0);
    expect(remote).toMatchObject({ protocol: 'ev1527', tristate, raw: code.toString(16).padStart(6, '0'), id: code.toString(16).padStart(6, '0').slice(0, 5) });
    expect(remote.button).toBe(code & 0xf);
  });

  it('still decodes when every pulse, the sync gaps included, is off by up to ±15 %', () => {
    for (const unitUs of [250, 350, 450]) {
      for (let seed = 1; seed <= 20; seed++) {
        const train = jitterTrain(ev1527Train(CODE, { unitUs, repeats: 10 }), 0.15, mulberry32(seed));
        const { frames } = decode(train);
        expect({ unitUs, seed, codes: frames.map((f) => f.code) }).toEqual({ unitUs, seed, codes: Array(9).fill(CODE) });
      }
    }
  });

  it('drops a frame cut short: a frame is its 24 bits between two syncs', () => {
    // Every repeat lost its first 4 bits (the receiver's gain was still settling, say).
    const full = ev1527Train(CODE, { repeats: 1 });
    const cut = full.slice(8);
    const { frames, decoder } = decode([...cut, ...cut, ...cut, ...cut]);
    expect(frames).toEqual([]);
    expect(decoder.stats().decoded).toBe(0);

    // A whole frame, then one that stops halfway (its last 12 bits and the sync): nothing confirms anything.
    const half = full.slice(24);
    const second = decode([...full, ...half]);
    expect(second.frames).toEqual([]);
    expect(second.decoder.stats().decoded).toBe(1);
  });

  it('drops a frame with one corrupted pulse, and the frame after it has nothing to confirm it', () => {
    const unitUs = 350;
    const clean = ev1527Train(CODE, { unitUs, repeats: 2 });
    expect(decode(clean).frames).toHaveLength(1);

    // Bit 5's short pulse made 2 units long: the bit's period is still plausible (5 units for 4), its pulses fit neither a 0 nor a 1.
    const bit5 = 2 * 5;
    const shortIndex = clean[bit5]! === unitUs ? bit5 : bit5 + 1;
    for (const frame of [0, 1]) {
      const corrupted = [...clean];
      corrupted[frame * EV1527_FRAME_PULSES + shortIndex] = 2 * unitUs;
      const { frames, decoder } = decode(corrupted);
      expect(frames).toEqual([]);
      expect(decoder.stats().decoded).toBe(1);
    }
  });

  it('turns 10 minutes of receiver noise into no frame', () => {
    // 296,000 random pulse pairs of 50-2000 µs (~607 s): what an idle module outputs, ~1,000 edges/s.
    const noise = noiseTrain(296_000, mulberry32(0x5eed));
    expect(trainDurationUs(noise)).toBeGreaterThan(10 * 60e6);
    const { frames, decoder } = decode(noise);
    expect(frames).toEqual([]);
    const stats = decoder.stats();
    expect(stats.frames).toBe(0);
    // Everything but the last 66 durations (still pending) is counted as undecoded, minus any lone false decode.
    expect(stats.undecoded).toBeGreaterThan(noise.length - 66 - 10 * EV1527_FRAME_PULSES);
  });

  it('turns 10 minutes of noise with long gaps (up to 15 ms, sync-like for every protocol) into no frame', () => {
    const noise = noiseTrain(41_000, mulberry32(7), 50, 15_000);
    expect(trainDurationUs(noise)).toBeGreaterThan(10 * 60e6);
    expect(decode(noise).frames).toEqual([]);
  });

  it('finds a press between stretches of noise', () => {
    const random = mulberry32(42);
    for (let run = 0; run < 20; run++) {
      const train = [...noiseTrain(500, random), ...ev1527Train(CODE, { repeats: 8 }), ...noiseTrain(500, random)];
      const { frames } = decode(train);
      // Frames 3-8 at least: noise right before the first frame may look like a 25th bit, which drops that frame.
      expect(frames.length).toBeGreaterThanOrEqual(6);
      expect(frames.every((f) => f.protocol === 1 && f.code === CODE)).toBe(true);
    }
  });

  it('takes edges with timestamps, and an edge gone missing costs only the frames around it', () => {
    const train = ev1527Train(CODE, { repeats: 8 });
    const startUs = 3_600_000_000_000.5; // a Pi up for six weeks, in µs
    const edges: Array<{ level: boolean; timeUs: number }> = [];
    let timeUs = startUs;
    for (let i = 0; i < train.length; i++) {
      edges.push({ level: i % 2 === 0, timeUs });
      timeUs += train[i]!;
    }
    edges.push({ level: true, timeUs }); // ends the last sync gap
    const sync = (frame: number) => edges[frame * EV1527_FRAME_PULSES + 49]!.timeUs;

    const decoder = new OokDecoder();
    const frames = edges.map((e) => decoder.edge(e.level, e.timeUs)).filter((f) => f !== null);
    expect(frames.map((f) => f.endUs)).toEqual([1, 2, 3, 4, 5, 6, 7].map(sync));

    // Lose an edge in the middle of the third frame: it is dropped, and the fourth has no identical frame right before it.
    const lossy = edges.filter((_, i) => i !== 2 * EV1527_FRAME_PULSES + 20);
    const second = new OokDecoder();
    const kept = lossy.map((e) => second.edge(e.level, e.timeUs)).filter((f) => f !== null);
    expect(kept.map((f) => f.endUs)).toEqual([1, 4, 5, 6, 7].map(sync));
  });

  it('returns every valid frame when repeats are not required', () => {
    const frames = new OokDecoder({ requireRepeat: false }).pulses(ev1527Train(CODE, { repeats: 3 }));
    expect(frames.map((f) => f.code)).toEqual([CODE, CODE, CODE]);
  });
});

describe('OokDecoder: other rc-switch protocols', () => {
  it.each([
    [2, 0x5a5a5a, 24],
    [3, 0x123456, 24],
    [4, 0xabcdef, 24],
    [5, 0x0f0f0f, 24],
    [6, 0x9abcdef, 28], // HT6P20B: inverted, 28 bits
    [2, 0xc0ffee42, 32],
    [4, 0xfff, 12],
  ])('protocol %i: code %s in %i bits', (protocol, code, bitCount) => {
    const { frames } = decode(rcswitchTrain(protocol, code, bitCount, { repeats: 6 }));
    expect(frames).toHaveLength(5);
    for (const frame of frames) expect(frame).toMatchObject({ protocol, bitCount, code });
    const hex = code.toString(16).padStart(bitCount / 4, '0');
    expect(toRemoteFrame(frames[0]!, 5)).toEqual({
      protocol: `rcswitch-${protocol}`,
      id: hex,
      button: null,
      rolling: null,
      raw: hex,
      tristate: null,
      rssiDb: null,
      monoMs: 5,
    } satisfies RemoteFrame);
  });

  // Protocol 4's sync gap (6 units) is close to its longest bit pulse (3 units): the previous frame's gap must still end the frame.
  it.each([2, 4])('decodes protocol %i with every pulse off by up to ±15 %%', (protocol) => {
    for (let seed = 1; seed <= 20; seed++) {
      const train = jitterTrain(rcswitchTrain(protocol, 0x5a5a5a, 24, { repeats: 10 }), 0.15, mulberry32(seed));
      expect({ seed, codes: decode(train).frames.map((f) => `${f.protocol}:${f.code}`) }).toEqual({ seed, codes: Array(9).fill(`${protocol}:${0x5a5a5a}`) });
    }
  });

  it('does not accept fewer than 12 bits, which noise produces', () => {
    expect(decode(rcswitchTrain(2, 0xa5, 8, { repeats: 6 })).frames).toEqual([]);
  });

  it('does not cut a frame with too many bits down to size', () => {
    // EV1527 timing with 25 bits is not an EV1527 frame; rc-switch codes stop at 32 bits. Single frames count here.
    const single = () => new OokDecoder({ requireRepeat: false });
    expect(single().pulses(rcswitchTrain(1, 0x1a5c3b9, 25, { repeats: 3 }))).toEqual([]);
    expect(single().pulses(rcswitchTrain(2, 2 ** 32 + 0x5a5a5a, 33, { repeats: 3 }))).toEqual([]);
  });

  it('does not guess a 1:2 bit whose pulses are both 1.5 units', () => {
    const unitUs = 650;
    const train = rcswitchTrain(2, 0x5a5a5a, 24, { repeats: 3 });
    expect(decode(train).frames).toHaveLength(2);
    // The same bit of every repeat, so that repeats would confirm a guess.
    const framePulses = 24 * 2 + 2;
    for (let frame = 0; frame < 3; frame++) train.splice(frame * framePulses + 2 * 7, 2, 1.5 * unitUs, 1.5 * unitUs);
    const { frames, decoder } = decode(train);
    expect(frames).toEqual([]);
    expect(decoder.stats().decoded).toBe(0);
  });
});

describe('GpioRemoteReceiver', () => {
  const LINE = 'GPIO27';

  function rig(opts: { activeLow?: boolean } = {}) {
    const clock = new ManualClock();
    const gpio = new SimGpio(clock);
    const receiver = new GpioRemoteReceiver({ backend: gpio, line: { name: LINE }, ...opts });
    const frames: RemoteFrame[] = [];
    receiver.on('frame', (f) => frames.push(f));
    return { clock, gpio, receiver, frames };
  }

  it('opens nothing before start(), and names itself after the line', async () => {
    const { gpio, receiver } = rig();
    expect(receiver.id).toBe('gpio:GPIO27');
    expect(() => gpio.drive(LINE, true, 1)).toThrow(/no simulated input line/);
    await receiver.start();
    expect(() => gpio.drive(LINE, true, 1)).not.toThrow();
    await receiver.stop();
  });

  it('reports a press with the time of each frame’s last edge, from the edges’ own timestamps', async () => {
    const { clock, gpio, receiver, frames } = rig();
    await receiver.start();

    const train = ev1527Train(CODE, { unitUs: 320, repeats: 6 });
    const startMs = clock.monoNow() + 0.0125;
    const edgesMs = playTrain(gpio, LINE, train, startMs);
    // Noise from the module once the remote stops ends the last sync gap.
    playTrain(gpio, LINE, noiseTrain(200, mulberry32(3)), startMs + trainDurationUs(train) / 1000);

    expect(frames).toHaveLength(5);
    for (const frame of frames) expect(frame).toMatchObject({ protocol: 'ev1527', id: 'a5c3b', button: 9, raw: 'a5c3b9', rssiDb: null, rolling: null });
    expect(frames.map((f) => f.monoMs)).toEqual([1, 2, 3, 4, 5].map((k) => edgesMs[k * EV1527_FRAME_PULSES + 49]));
    const stats = receiver.stats();
    expect(stats).toMatchObject({ frames: 5, restarts: 0 });
    await receiver.stop();
  });

  it('follows the line’s polarity: carrier on is the logical value', async () => {
    const { clock, gpio, receiver, frames } = rig({ activeLow: true });
    await receiver.start();
    // An active-low line idles high (logical false once driven there).
    gpio.drive(LINE, true, clock.monoNow());
    const train = ev1527Train(CODE, { repeats: 4 });
    playTrain(gpio, LINE, [...train, 500, 500], clock.monoNow() + 1);
    expect(frames.map((f) => f.raw)).toEqual(['a5c3b9', 'a5c3b9', 'a5c3b9']);
    await receiver.stop();
  });

  it('counts noise as undecoded', async () => {
    const { clock, gpio, receiver, frames } = rig();
    await receiver.start();
    const noise = noiseTrain(5_000, mulberry32(11));
    playTrain(gpio, LINE, noise, clock.monoNow());
    expect(frames).toEqual([]);
    // One edge per pulse: the first only starts the clock, the last pulse has not ended, and the last 66 durations are still pending.
    expect(receiver.stats()).toEqual({ frames: 0, undecoded: noise.length - 1 - 66, restarts: 0 });
    await receiver.stop();
  });

  it('closes the line on stop(), and can start again', async () => {
    const { clock, gpio, receiver, frames } = rig();
    await receiver.start();
    await receiver.stop();
    expect(() => gpio.drive(LINE, true, 1)).toThrow(/no simulated input line/);
    await receiver.stop(); // twice is fine

    await receiver.start();
    playTrain(gpio, LINE, [...ev1527Train(CODE, { repeats: 2 }), 300], clock.monoNow());
    expect(frames).toHaveLength(1);
    await receiver.stop();
  });

  /** A backend of one input line that the test drives directly (errors included), and a log recorder. */
  function fakeBackend(kind: GpioBackend['kind']) {
    const line = new (class extends EventEmitter<{ edge: [EdgeEvent]; error: [Error] }> implements InputLine {
      readonly id = 'fake:4';
      closed = false;
      async read(): Promise<boolean> {
        return false;
      }
      async close(): Promise<void> {
        this.closed = true;
      }
    })();
    const requests: InputOptions[] = [];
    const backend: GpioBackend = {
      kind,
      input: async (_ref, opts) => {
        requests.push(opts);
        return line;
      },
      output: async () => {
        throw new Error('no outputs here');
      },
      close: async () => {},
    };
    const logged: string[] = [];
    const logger = { info: (_: object, msg: string) => logged.push(`info ${msg}`), warn: (_: object, msg: string) => logged.push(`warn ${msg}`) };
    return { backend, line, requests, logged, logger };
  }

  it('requests the line as configured and passes its errors on', async () => {
    const { backend, line, requests, logged, logger } = fakeBackend('chardev');
    const receiver = new GpioRemoteReceiver({ backend, line: { chip: 'gpiochip0', offset: 4 }, logger });
    expect(receiver.id).toBe('gpio:gpiochip0:4');
    expect(requests).toEqual([]);

    await receiver.start();
    expect(requests).toEqual([{ activeLow: false, bias: 'disabled', consumer: 'vigia:radio' }]);
    expect(logged).toEqual(['info 433 MHz receiver module listening']);
    // Nobody listening: no crash.
    line.emit('error', new Error('gpiomon exited'));
    const errors: Error[] = [];
    receiver.on('error', (e) => errors.push(e));
    line.emit('error', new Error('gpiomon exited again'));
    expect(errors.map((e) => e.message)).toEqual(['gpiomon exited again']);

    await receiver.stop();
    expect(line.closed).toBe(true);
    expect(line.listenerCount('edge')).toBe(0);
    expect(line.listenerCount('error')).toBe(0);
  });

  it('warns that the sysfs backend cannot time the pulses', async () => {
    const { backend, logged, logger } = fakeBackend('sysfs');
    const receiver = new GpioRemoteReceiver({ backend, line: { name: 'GPIO17' }, activeLow: true, logger });
    await receiver.start();
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^warn GPIO sysfs stamps edges on receipt/);
    await receiver.stop();
  });
});
