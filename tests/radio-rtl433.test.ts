import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/core/clock.js';
import { DEFAULT_RTL433_PROTOCOLS, EV1527_FLEX_SPEC, parseRtl433Line, Rtl433Receiver, type Rtl433Options, rtl433Args } from '../src/drivers/radio/rtl433.js';
import { pt2262Tristate, type RemoteFrame } from '../src/drivers/radio/types.js';
import { writeCu8, writeNoiseCu8 } from './helpers/iq.js';
import { ev1527Train, hcs200Train, noiseTrain, pt2262Code, trainDurationUs } from './helpers/ook.js';
import { mulberry32 } from './helpers/random.js';

const run = promisify(execFile);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'vigia-rtl433-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const receivers: Rtl433Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.stop()));
});

function receiver(opts: Omit<Rtl433Options, 'clock'>): Rtl433Receiver {
  const r = new Rtl433Receiver({ clock: systemClock, ...opts });
  receivers.push(r);
  return r;
}

/** Runs the receiver on an IQ file with the real rtl_433 and returns what it emitted. */
async function decodeFile(path: string, opts: Omit<Rtl433Options, 'clock' | 'inputFile'> = {}) {
  const r = receiver({ ...opts, inputFile: path });
  const frames: RemoteFrame[] = [];
  const errors: Error[] = [];
  r.on('frame', (f) => frames.push(f));
  r.on('error', (e) => errors.push(e));
  await r.start();
  await r.inputEnded();
  return { frames, errors, stats: r.stats(), undecoded: r.undecodedByReason() };
}

async function waitUntil(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('rtl_433 JSON lines', () => {
  const mono = 12_345;

  it('reads the generic remote decoder: 16-bit id and 8-bit cmd are the 24-bit code, Z is F', () => {
    const line =
      '{"time" : "1796502147.423304", "model" : "Generic-Remote", "id" : 4660, "cmd" : 86, "tristate" : "0Z0X01Z0ZZZX", "mod" : "ASK", "freq" : 433.954, "rssi" : -2.343, "snr" : 30.770, "noise" : -33.113}';
    expect(parseRtl433Line(line, mono)).toEqual({
      protocol: 'ev1527',
      id: '12345',
      button: 6,
      rolling: null,
      raw: '123456',
      tristate: null, // X: a 10 pair, no PT2262 digit
      rssiDb: -2.343,
      monoMs: mono,
    });
    expect(pt2262Code('0F0F0F0F0F11')).toBe(0x11111f);
    const pt = parseRtl433Line('{"model":"Generic-Remote","id":4369,"cmd":31,"tristate":"0Z0Z0Z0Z0Z11"}', mono) as RemoteFrame;
    expect(pt).toMatchObject({ raw: '11111f', id: '11111', button: 0xf, tristate: '0F0F0F0F0F11', rssiDb: null });
    // Without rtl_433's tristate, it is computed.
    expect(parseRtl433Line('{"model":"Generic-Remote","id":4369,"cmd":31}', mono)).toMatchObject({ tristate: '0F0F0F0F0F11' });
  });

  it('reads the wide EV1527 decoder, and rejects its all-zero read', () => {
    const line =
      '{"time" : "@0.144800s", "model" : "EV1527-Wide", "count" : 1, "num_rows" : 1, "len" : 25, "data" : "1234560", "code" : 1193046, "mod" : "ASK", "freq" : 433.954, "rssi" : -2.375, "snr" : 32.780, "noise" : -35.154}';
    expect(parseRtl433Line(line, mono)).toEqual({
      protocol: 'ev1527',
      id: '12345',
      button: 6,
      rolling: null,
      raw: '123456',
      tristate: null,
      rssiDb: -2.375,
      monoMs: mono,
    });
    expect(parseRtl433Line('{"model":"EV1527-Wide","len":25,"code":5}', mono)).toMatchObject({
      id: '00000',
      button: 5,
      raw: '000005',
      tristate: '0000000000FF',
    });
    expect(parseRtl433Line('{"model":"EV1527-Wide","len":25,"code":0}', mono)).toEqual({ undecoded: 'EV1527-Wide all-zero code' });
    expect(parseRtl433Line('{"model":"EV1527-Wide","len":40,"code":5}', mono)).toEqual({ undecoded: 'malformed EV1527-Wide' });
    expect(parseRtl433Line('{"model":"EV1527-Wide","code":5}', mono)).toEqual({ undecoded: 'malformed EV1527-Wide' });
  });

  it('reads the HCS200 decoder: serial as id, hopping word as rolling', () => {
    const line =
      '{"time" : "@0.100000s", "model" : "Microchip-HCS200", "id" : "0ABCDEF", "battery_ok" : 1, "button" : 2, "learn" : 0, "repeat" : 0, "encrypted" : "12345678", "mod" : "ASK", "freq" : 433.955, "rssi" : -2.290, "snr" : 30.823, "noise" : -33.113}';
    expect(parseRtl433Line(line, mono)).toEqual({
      protocol: 'hcs200',
      id: '0abcdef',
      button: 2,
      rolling: '12345678',
      raw: '123456780abcdef2',
      tristate: null,
      rssiDb: -2.29,
      monoMs: mono,
    });
    expect(parseRtl433Line('{"model":"Microchip-HCS200","id":"BCDEF","button":8,"encrypted":"9E3779B9"}', mono)).toMatchObject({
      id: '00bcdef',
      rolling: '9e3779b9',
    });
  });

  it('counts the other devices of a street as undecoded, by model', () => {
    const others = [
      '{"time" : "2026-12-05 20:30:01", "model" : "Acurite-Tower", "id" : 2922, "channel" : "A", "battery_ok" : 1, "temperature_C" : 12.3, "humidity" : 81, "mic" : "CHECKSUM"}',
      '{"time" : "2026-12-05 20:30:02", "model" : "Schrader", "type" : "TPMS", "flags" : "0", "id" : "00A1B2C3", "pressure_kPa" : 220.0, "temperature_C" : 18.0, "mic" : "CRC"}',
      '{"model":"Fineoffset-WHx080","subtype":0,"id":191,"temperature_C":21.4,"humidity":39}',
    ];
    expect(others.map((l) => parseRtl433Line(l, mono))).toEqual([
      { undecoded: 'model Acurite-Tower' },
      { undecoded: 'model Schrader' },
      { undecoded: 'model Fineoffset-WHx080' },
    ]);
  });

  it('never throws on a malformed line', () => {
    const cases: [string, string][] = [
      ['Registered 3 out of 223 device decoding protocols [ 30 131 ]', 'not JSON'],
      ['{"model" : "Generic-Remote", "id" : 46', 'not JSON'],
      ['[1,2,3]', 'not a JSON object'],
      ['42', 'not a JSON object'],
      ['null', 'not a JSON object'],
      ['{"time":"1796502147.1","noise":-33.1}', 'no model'],
      ['{"model":7}', 'no model'],
      ['{"model":"Generic-Remote","id":"4660","cmd":86}', 'malformed Generic-Remote'],
      ['{"model":"Generic-Remote","id":4660,"cmd":256}', 'malformed Generic-Remote'],
      ['{"model":"Generic-Remote","id":-1,"cmd":86}', 'malformed Generic-Remote'],
      ['{"model":"Generic-Remote","id":4660.5,"cmd":86}', 'malformed Generic-Remote'],
      ['{"model":"Microchip-HCS200","id":"0ABCDEF","button":2,"encrypted":"1234"}', 'malformed Microchip-HCS200'],
      ['{"model":"Microchip-HCS200","id":"0ABCDEFF","button":2,"encrypted":"12345678"}', 'malformed Microchip-HCS200'],
      ['{"model":"Microchip-HCS200","id":"0ABCDEF","button":16,"encrypted":"12345678"}', 'malformed Microchip-HCS200'],
      ['{"model":"Microchip-HCS200","id":"0ABCDEF","encrypted":"12345678"}', 'malformed Microchip-HCS200'],
    ];
    for (const [line, reason] of cases) expect(parseRtl433Line(line, mono), line).toEqual({ undecoded: reason });
    expect(parseRtl433Line('', mono)).toBeNull();
    expect(parseRtl433Line('   \r', mono)).toBeNull();
    // A bogus rssi is dropped, not the frame.
    expect(parseRtl433Line('{"model":"Generic-Remote","id":4660,"cmd":86,"rssi":"loud"}', mono)).toMatchObject({ raw: '123456', rssiDb: null });
  });

  it('reads 24-bit codes as PT2262 tri-state digits', () => {
    expect(pt2262Tristate(pt2262Code('0F1F0011FF0F'))).toBe('0F1F0011FF0F');
    expect(pt2262Tristate(0)).toBe('000000000000');
    expect(pt2262Tristate(0xffffff)).toBe('111111111111');
    expect(pt2262Tristate(0x800000)).toBeNull(); // a 10 pair
  });
});

describe('rtl_433 command line', () => {
  it('runs the remote decoders on the dongle, with JSON, levels and no stray config', () => {
    expect(rtl433Args({})).toEqual([
      '-c',
      '/dev/null',
      '-d',
      '0',
      '-f',
      '433.92M',
      '-R',
      '30',
      '-R',
      '131',
      '-X',
      EV1527_FLEX_SPEC,
      '-F',
      'json',
      '-M',
      'level',
      '-M',
      'time:unix:usec',
    ]);
    expect(DEFAULT_RTL433_PROTOCOLS).toEqual([30, 131]);
  });

  it('takes the device, frequency, decoders and extra options; a file instead of the dongle', () => {
    const args = rtl433Args({ device: ':00000433', frequency: '433.9M', protocols: [30], extraArgs: ['-g', '40'] });
    expect(args.slice(0, 8)).toEqual(['-c', '/dev/null', '-d', ':00000433', '-f', '433.9M', '-R', '30']);
    expect(args.slice(-2)).toEqual(['-g', '40']);
    // No -R at all: rtl_433's own default decoders.
    expect(rtl433Args({ protocols: [] }).includes('-R')).toBe(false);
    expect(rtl433Args({ wideEv1527: false }).includes('-X')).toBe(false);
    const file = rtl433Args({ inputFile: '/tmp/x_250k.cu8' });
    expect(file.slice(0, 4)).toEqual(['-c', '/dev/null', '-r', '/tmp/x_250k.cu8']);
    expect(file.includes('-d')).toBe(false);
    expect(new Rtl433Receiver({ clock: systemClock, command: '/opt/rtl_433' }).commandLine()[0]).toBe('/opt/rtl_433');
  });

  it('is what the installed rtl_433 takes: our decoders registered, then it looks for the dongle', async () => {
    const { stderr } = await run('rtl_433', rtl433Args({ extraArgs: ['-T', '1'] }), { timeout: 10_000 }).catch((e: { stderr: string }) => ({
      stderr: e.stderr,
    }));
    expect(stderr).toContain('Registered 3 out of 223 device decoding protocols [ 30 131 ]'); // 3: with the flex decoder
    expect(stderr).not.toContain('Bad flex spec');
    const { stderr: list } = await run('rtl_433', ['-R', 'help']).catch((e: { stderr: string }) => ({ stderr: e.stderr }));
    expect(list).toMatch(/\[30\]\s+Generic Remote SC226x EV1527\n/);
    expect(list).toMatch(/\[131\]\s+Microchip HCS200\/HCS300 KeeLoq Hopping Encoder based remotes\n/);
  });
});

describe('rtl_433 decoding synthesised IQ files', () => {
  const codes = [0x123456, 0xa5c3e9, 0x0f0f01, 0xfedcb7, 0x5a3c00];

  it.each([250, 300, 350, 400, 450])('decodes EV1527 codes at a %i µs pulse unit', async (unitUs) => {
    for (const [i, code] of codes.entries()) {
      const path = writeCu8(tmp, `ev1527-${unitUs}-${i}`, ev1527Train(code, { unitUs, repeats: 6 }), {
        seed: i + 1,
        offsetHz: [-40_000, 30_000, 5_000][i % 3]!,
      });
      const { frames, errors, stats } = await decodeFile(path);
      const raw = code.toString(16).padStart(6, '0');
      expect(errors).toEqual([]);
      // Every repeat, and nothing else (the 433.92 generic decoder and the fallback never both report one).
      expect(
        frames.map((f) => f.raw),
        `code ${raw} at ${unitUs} µs`,
      ).toEqual(Array(6).fill(raw));
      expect(frames[0]).toMatchObject({ protocol: 'ev1527', id: raw.slice(0, 5), button: code & 0xf, rolling: null });
      expect(frames[0]!.rssiDb).toBeTypeOf('number');
      expect(stats).toMatchObject({ frames: 6, undecoded: 0, restarts: 0 });
    }
  });

  it('decodes a PT2262 tri-state code, by the generic decoder and by the fallback', async () => {
    const digits = '0F1F0011FF0F';
    for (const unitUs of [300, 470]) {
      const { frames } = await decodeFile(writeCu8(tmp, `pt2262-${unitUs}`, ev1527Train(pt2262Code(digits), { unitUs, repeats: 4 })));
      expect(frames.length).toBe(4);
      for (const f of frames) expect(f.tristate).toBe(digits);
    }
  });

  it('gives no frame for noise, nor for random carrier bursts', async () => {
    for (const noise of [2, 20, 60]) {
      const { frames } = await decodeFile(writeNoiseCu8(tmp, `noise-${noise}`, 2000, { noise, seed: noise }));
      expect(frames, `noise σ ${noise}`).toEqual([]);
    }
    // What a neighbour's other 433 MHz gadgets look like to the decoders: on-off pulses of any width.
    for (let seed = 1; seed <= 12; seed++) {
      const train = noiseTrain(400, mulberry32(seed), 100, seed % 2 ? 1500 : 6000);
      const { frames } = await decodeFile(writeCu8(tmp, `bursts-${seed}`, train, { seed }));
      expect(frames, `bursts seed ${seed}`).toEqual([]);
    }
  });

  it('a weak remote decodes right or not at all, never as another code', async () => {
    const code = 0x9c3a57;
    const raw = code.toString(16);
    let sent = 0;
    let received = 0;
    // Carrier 100 against noise σ 40-55 per component: rtl_433 reports an SNR of 3-6 dB, where it
    // starts to miss frames.
    for (const unitUs of [300, 450]) {
      for (const noise of [40, 45, 50, 55]) {
        for (const seed of [1, 2, 3]) {
          const path = writeCu8(tmp, `weak-${unitUs}-${noise}-${seed}`, ev1527Train(code, { unitUs, repeats: 8 }), { amplitude: 100, noise, seed });
          const { frames } = await decodeFile(path);
          sent += 8;
          received += frames.length;
          for (const f of frames) expect(f.raw, `unit ${unitUs} µs, noise ${noise}, seed ${seed}`).toBe(raw);
        }
      }
    }
    console.log(`weak EV1527 at SNR ~3-6 dB: ${received} of ${sent} frames decoded, all right`);
    // The case is only worth something if it is on the edge: some frames lost, some through.
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(sent);
  });

  it('decodes HCS200 KeeLoq presses: the same remote, a new hopping word each time', async () => {
    const serial = 0x0abcdef;
    const first = await decodeFile(writeCu8(tmp, 'hcs200-1', hcs200Train({ encrypted: 0x12345678, serial, buttons: 0b0010 })));
    const second = await decodeFile(writeCu8(tmp, 'hcs200-2', hcs200Train({ encrypted: 0x9e3779b9, serial, buttons: 0b0010 }, { teUs: 360 }), { seed: 7 }));
    expect(first.frames.length).toBe(2);
    expect(second.frames.length).toBe(2);
    const [a, b] = [first.frames[0]!, second.frames[0]!];
    expect(a).toMatchObject({ protocol: 'hcs200', id: '0abcdef', button: 2, rolling: '12345678', tristate: null });
    expect(b).toMatchObject({ protocol: 'hcs200', id: '0abcdef', button: 2, rolling: '9e3779b9' });
    expect(a.rolling).not.toBe(b.rolling);
    // Another button of the same remote.
    const third = await decodeFile(writeCu8(tmp, 'hcs200-3', hcs200Train({ encrypted: 0x0badf00d, serial, buttons: 0b1000, batteryLow: true })));
    expect(third.frames[0]).toMatchObject({ id: '0abcdef', button: 8, rolling: '0badf00d' });
  });

  it('reports a file rtl_433 cannot open as an error', async () => {
    const { frames, errors } = await decodeFile(join(tmp, 'missing_433.92M_250k.cu8'));
    expect(frames).toEqual([]);
    expect(errors.map((e) => e.message).join()).toMatch(/Opening file: .*missing_433\.92M_250k\.cu8 failed/);
  });

  it('decodes every frame of a second of samples, five times over (the time it takes is reported, not asserted)', async () => {
    const train = ev1527Train(0x123456, { unitUs: 350, repeats: 20 });
    const path = writeCu8(tmp, 'one-second', train, { leadInMs: 50, leadOutMs: 1000 - 50 - trainDurationUs(train) / 1000 });
    expect(readFileSync(path).length).toBe(250_000 * 2);
    const args = rtl433Args({ inputFile: path });
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = process.hrtime.bigint();
      const { stdout } = await run('rtl_433', args);
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
      expect(stdout.trim().split('\n').length).toBe(20);
    }
    const median = times.sort((x, y) => x - y)[2]!;
    console.log(`rtl_433 -r of 1 s at 250 kS/s: median ${median.toFixed(1)} ms (runs: ${times.map((t) => t.toFixed(1)).join(', ')} ms)`);
  });
});

describe('rtl_433 supervision', () => {
  /** A stand-in for rtl_433: records its arguments, prints JSON lines and a complaint, exits 1. */
  function fakeRtl433(dir: string): string {
    const path = join(dir, 'fake-rtl_433');
    writeFileSync(
      path,
      [
        '#!/bin/sh',
        `printf '%s\\n' "$@" > "${dir}/args-$$"`,
        `echo '{"time" : "1796502147.1", "model" : "Generic-Remote", "id" : 4660, "cmd" : 86, "tristate" : "0Z0X01Z0ZZZX", "rssi" : -7.5}'`,
        `echo '{"time" : "1796502147.2", "model" : "Acurite-Tower", "id" : 2922, "temperature_C" : 12.3}'`,
        `echo '{"time" : "1796502147.3", "model" : "Microchip-HCS200", "id" : "0ABCDEF", "button" : 2, "encrypted" : "12345678", "rssi" : -9.0}'`,
        "echo 'usb_claim_interface error -6' >&2",
        'exit 1',
        '',
      ].join('\n'),
    );
    chmodSync(path, 0o755);
    return path;
  }

  it('restarts rtl_433 when it exits, and its frames keep coming', async () => {
    const dir = mkdtempSync(join(tmp, 'fake-'));
    const r = receiver({ command: fakeRtl433(dir), device: '1', backoff: { minDelayMs: 20, maxDelayMs: 100, jitter: 0 } });
    const frames: RemoteFrame[] = [];
    const errors: Error[] = [];
    r.on('frame', (f) => frames.push(f));
    r.on('error', (e) => errors.push(e));
    await r.start();
    await waitUntil(() => frames.length >= 6 && errors.length >= 3, 'three runs');
    await r.stop();

    expect(frames.slice(0, 2).map((f) => [f.protocol, f.id, f.rssiDb])).toEqual([
      ['ev1527', '12345', -7.5],
      ['hcs200', '0abcdef', -9],
    ]);
    expect(errors[0]!.message).toMatch(/^rtl_433 exited with code 1: usb_claim_interface error -6; restart 1 in 20 ms$/);
    const stats = r.stats();
    expect(stats.frames).toBe(frames.length);
    expect(stats.undecoded).toBeGreaterThanOrEqual(3); // the weather station, once per run
    expect(stats.restarts).toBe(errors.length);
    expect(r.undecodedByReason()).toMatchObject({ 'model Acurite-Tower': stats.undecoded });
    // Each run got the same command line.
    const runs = readdirSync(dir).filter((f) => f.startsWith('args-'));
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const f of runs) expect(readFileSync(join(dir, f), 'utf8').trim().split('\n')).toEqual(rtl433Args({ device: '1' }));
  });

  it('a missing rtl_433 is an error event, not a crash, and is tried again', async () => {
    const r = receiver({ command: join(tmp, 'no-such-rtl_433'), backoff: { minDelayMs: 20, maxDelayMs: 50, jitter: 0 } });
    const errors: Error[] = [];
    r.on('error', (e) => errors.push(e));
    await r.start();
    await waitUntil(() => errors.length >= 2, 'two attempts');
    await r.stop();
    expect(errors[0]!.message).toMatch(/could not start: .*ENOENT.*not found: install the rtl-433 package/);
    expect(r.stats().restarts).toBeGreaterThanOrEqual(2);
  });

  it('without an error listener, a failure is only logged', async () => {
    const warnings: string[] = [];
    const logger = { info: () => {}, warn: (_: object, msg: string) => warnings.push(msg) };
    const r = receiver({ command: join(tmp, 'no-such-rtl_433'), logger, backoff: { minDelayMs: 20, maxDelayMs: 50, jitter: 0 } });
    await r.start();
    await waitUntil(() => warnings.length >= 1, 'a warning');
    await r.stop();
    expect(warnings[0]).toBe('rtl_433 stopped; restarting');
  });

  it('stop() ends rtl_433 and no restart follows', async () => {
    const dir = mkdtempSync(join(tmp, 'sleeper-'));
    const script = join(dir, 'sleepy-rtl_433');
    writeFileSync(script, `#!/bin/sh\necho $$ > "${dir}/pid"\necho '{"model":"Generic-Remote","id":4660,"cmd":86}'\nexec sleep 30\n`);
    chmodSync(script, 0o755);
    const r = receiver({ command: script });
    const frames: RemoteFrame[] = [];
    r.on('frame', (f) => frames.push(f));
    await r.start();
    await waitUntil(() => frames.length === 1, 'the first frame');
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
    await r.stop();
    expect(() => process.kill(pid, 0)).toThrow();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(r.stats()).toEqual({ frames: 1, undecoded: 0, restarts: 0 });
  });
});
