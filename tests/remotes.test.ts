import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { loadConfig } from '../src/config/index.js';
import { ManualClock } from '../src/core/clock.js';
import { EVENT_TYPES, type EventPayload, type EventType } from '../src/core/events.js';
import { CommandError } from '../src/core/extension.js';
import { createLogger } from '../src/core/logger.js';
import type { ReceiverStats, RemoteFrame, RemoteReceiver } from '../src/drivers/radio/types.js';
import { type PressReport, Remotes, type RemotesContext, roleOf } from '../src/features/remotes.js';
import { writeDeviceConfig } from './helpers/daemon.js';

// Remotes in process: frames from a receiver become presses, registered remotes raise alarm.remote
// with their household, unknown codes are remembered for learning, hopping-code copies are refused.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

class FakeReceiver extends EventEmitter<{ frame: [RemoteFrame]; error: [Error] }> implements RemoteReceiver {
  readonly id = 'gpio:test';
  started = 0;
  async start() {
    this.started++;
  }
  async stop() {}
  stats(): ReceiverStats {
    return { frames: 0, undecoded: 0, restarts: 0 };
  }
}

const frame = (over: Partial<RemoteFrame> & { monoMs: number }): RemoteFrame => ({
  protocol: 'ev1527',
  id: 'a3f5c',
  button: 1,
  rolling: null,
  raw: 'a3f5c1',
  tristate: null,
  rssiDb: null,
  ...over,
});

function setup(remotes: Record<string, unknown>, dataDir?: string) {
  const { dir, file } = writeDeviceConfig('mqtt://127.0.0.1:1', {
    device: { profile: 'community' },
    radio: { receiver: 'gpio', line: 'GPIO27', press_gap: '1s', learn_window: 3 },
    remotes,
    ...(dataDir ? { paths: { data_dir: dataDir } } : {}),
  });
  dirs.push(dir);
  const config = loadConfig(file);
  mkdirSync(config.paths.data_dir, { recursive: true }); // the controller's job in the daemon
  const clock = new ManualClock();
  const events: Array<{ type: EventType; payload: Record<string, unknown> }> = [];
  const commands = new Map<string, { args: z.ZodType; handler: (args: unknown) => unknown }>();
  const streams = new Map<string, (args: Record<string, unknown>, send: (item: unknown) => void) => () => void>();
  const ctx = {
    config,
    logger: createLogger('silent'),
    clock,
    paths: { dataDir: config.paths.data_dir, runtimeDir: config.paths.runtime_dir },
    emit<T extends EventType>(type: T, payload: EventPayload<T>) {
      EVENT_TYPES[type].payload.parse(payload); // what the real sink checks
      events.push({ type, payload: payload as Record<string, unknown> });
      return Promise.resolve({ id: `e${events.length}`, type, payload });
    },
    commands: {
      register: (name: string, args: z.ZodType, handler: (args: unknown) => unknown) => commands.set(name, { args, handler }),
    },
    control: { handle: () => undefined, handleStream: (op: string, h: never) => streams.set(op, h) },
  } as unknown as RemotesContext;
  const command = async (name: string, args: unknown) => {
    const c = commands.get(name)!;
    return c.handler(c.args.parse(args));
  };
  const receiver = new FakeReceiver();
  const remotesFeature = new Remotes(ctx, [receiver], undefined);
  return { config, clock, events, command, receiver, remotes: remotesFeature, streams, dataDir: config.paths.data_dir };
}

const household = { name: 'Familia Rojas', address: 'Los Aromos 123, Las Compañías', phone: '+56 9 5555 0101' };

describe('remotes', () => {
  it('folds the frames of a held button into one press and raises alarm.remote with the household', async () => {
    const t = setup({ 'casa-rojas': { code: 'ev1527:a3f5c', household } });
    await t.remotes.start();
    expect(t.receiver.started).toBe(1);
    // A held button: a frame every 40 ms for 1.2 s.
    for (let i = 0; i < 30; i++) {
      await t.remotes.frame(frame({ monoMs: t.clock.monoNow() }), 'gpio:test');
      t.clock.advance(40);
    }
    const alarms = t.events.filter((e) => e.type === 'alarm.remote');
    expect(alarms).toHaveLength(1);
    expect(alarms[0]!.payload).toMatchObject({
      remote: 'casa-rojas',
      code: 'ev1527:a3f5c',
      button: 1,
      household: { ...household, notes: null },
      receiver: 'gpio:test',
      alarm_id: null,
      press: 1,
    });
    // Released for longer than the gap: the next frames are a new press.
    t.clock.advance(1500);
    await t.remotes.frame(frame({ monoMs: t.clock.monoNow() }), 'gpio:test');
    expect(t.events.filter((e) => e.type === 'alarm.remote')).toHaveLength(2);
    expect(t.remotes.status()).toMatchObject({ frames: 31, presses: 2, alarms: 2, unknown_presses: 0 });
  });

  it('keeps the buttons of one remote apart and follows their roles', async () => {
    const t = setup({ 'casa-rojas': { code: 'ev1527:a3f5c', buttons: { '1': 'alarm', '2': 'silence', '8': 'ignore' }, household } });
    await t.remotes.start();
    await t.remotes.frame(frame({ button: 1, monoMs: t.clock.monoNow() }), 'gpio:test');
    t.clock.advance(40);
    await t.remotes.frame(frame({ button: 2, monoMs: t.clock.monoNow() }), 'gpio:test');
    t.clock.advance(40);
    await t.remotes.frame(frame({ button: 8, monoMs: t.clock.monoNow() }), 'gpio:test');
    expect(t.events.map((e) => e.type)).toEqual(['alarm.remote']);
    expect(t.remotes.status()).toMatchObject({ presses: 3, alarms: 1, silences: 1, ignored: 1 });
    expect(roleOf({ buttons: { '2': 'silence', '*': 'ignore' } }, 2)).toBe('silence');
    expect(roleOf({ buttons: { '2': 'silence', '*': 'ignore' } }, 3)).toBe('ignore');
    expect(roleOf({ buttons: {} }, null)).toBe('alarm');
  });

  it('remembers unknown codes for learning, most recent last, within the learn window, and raises nothing', async () => {
    const t = setup({});
    await t.remotes.start();
    const seen: unknown[] = [];
    for (const [i, id] of ['11111', '22222', '33333', '44444', '22222'].entries()) {
      t.clock.advance(2000);
      await t.remotes.frame(frame({ id, raw: `${id}${i}`, monoMs: t.clock.monoNow() }), 'gpio:test');
      if (i === 1) t.streams.get('remotes.learn')!({}, (item) => seen.push(item));
    }
    expect(t.events).toHaveLength(0);
    const unknown = t.remotes.list().unknown;
    // learn_window 3: the oldest is forgotten; 22222 heard twice is the most recent.
    expect(unknown.map((u) => u.code)).toEqual(['ev1527:33333', 'ev1527:44444', 'ev1527:22222']);
    expect(unknown[2]).toMatchObject({ presses: 2 });
    // The learner got what was already heard, then each press as it came.
    expect(seen[0]).toMatchObject({ unknown: { code: 'ev1527:11111' } });
    expect(seen.slice(2).map((s) => (s as { press: PressReport }).press.code)).toEqual(['ev1527:33333', 'ev1527:44444', 'ev1527:22222']);
    expect(t.remotes.status()).toMatchObject({ unknown_presses: 5, unknown_codes: 3 });
  });

  it('enrols and removes remotes by signed command, keeps them across a restart, and never overrides the file', async () => {
    const t = setup({ 'casa-rojas': { code: 'ev1527:a3f5c', household } });
    await t.remotes.start();
    t.clock.advance(2000);
    await t.remotes.frame(frame({ id: '0beef', monoMs: t.clock.monoNow() }), 'gpio:test');
    expect(t.remotes.list().unknown).toHaveLength(1);

    await expect(t.command('remotes.enroll', { name: 'casa-soto', code: 'ev1527:a3f5c' })).rejects.toMatchObject({ code: 'code_taken' });
    await expect(t.command('remotes.enroll', { name: 'casa-rojas', code: 'ev1527:0beef' })).rejects.toMatchObject({ code: 'in_config' });
    expect(() => t.command('remotes.enroll', { name: 'casa soto', code: 'ev1527:0beef' })).rejects.toThrow();
    expect(await t.command('remotes.enroll', { name: 'casa-soto', code: 'ev1527:0beef', household: { name: 'Soto' } })).toMatchObject({ name: 'casa-soto' });
    // Enrolled: no longer unknown, and a press now raises the alarm.
    expect(t.remotes.list().unknown).toHaveLength(0);
    t.clock.advance(2000);
    await t.remotes.frame(frame({ id: '0beef', monoMs: t.clock.monoNow() }), 'gpio:test');
    expect(t.events.at(-1)).toMatchObject({ type: 'alarm.remote', payload: { remote: 'casa-soto', household: { name: 'Soto', address: null } } });

    // A restart on the same data directory knows it.
    const again = setup({}, t.dataDir);
    await again.remotes.start();
    expect(again.remotes.registered()['casa-soto']).toMatchObject({ code: 'ev1527:0beef', source: 'command' });
    await expect(again.command('remotes.remove', { name: 'nobody' })).rejects.toBeInstanceOf(CommandError);
    await again.command('remotes.remove', { name: 'casa-soto' });
    expect(again.remotes.registered()['casa-soto']).toBeUndefined();
    expect(JSON.parse(readFileSync(join(t.dataDir, 'remotes.json'), 'utf8'))).toEqual({});
  });

  it('sets a damaged enrolment file aside instead of overwriting it', async () => {
    const first = setup({});
    await first.remotes.start();
    await first.command('remotes.enroll', { name: 'casa-soto', code: 'ev1527:0beef' });
    writeFileSync(join(first.dataDir, 'remotes.json'), '{"casa-soto": {"code": ');
    const again = setup({}, first.dataDir);
    await again.remotes.start();
    expect(again.remotes.registered()).toEqual({});
    expect(readdirSync(first.dataDir).some((f) => f.startsWith('remotes.json.damaged-'))).toBe(true);
  });

  it('refuses a hopping-code word already used, also after a restart, and reports it', async () => {
    const t = setup({ 'porton-1': { code: 'hcs200:1a2b3c4', household } });
    await t.remotes.start();
    const hop = (rolling: string) => frame({ protocol: 'hcs200', id: '1a2b3c4', button: 2, rolling, raw: rolling, monoMs: t.clock.monoNow() });
    await t.remotes.frame(hop('9f8e7d6c'), 'rtl_433');
    t.clock.advance(40);
    await t.remotes.frame(hop('9f8e7d6c'), 'rtl_433'); // the same press, repeated while held
    t.clock.advance(3000);
    await t.remotes.frame(hop('0c1d2e3f'), 'rtl_433'); // the next press: a new word
    t.clock.advance(3000);
    await t.remotes.frame(hop('9f8e7d6c'), 'rtl_433'); // a recording of the first press, played back
    expect(t.events.map((e) => e.type)).toEqual(['alarm.remote', 'alarm.remote', 'remote.replayed']);
    expect(t.events[2]!.payload).toMatchObject({ remote: 'porton-1', code: 'hcs200:1a2b3c4', button: 2 });
    expect(existsSync(join(t.dataDir, 'remote-hops.json'))).toBe(true);

    const again = setup({ 'porton-1': { code: 'hcs200:1a2b3c4', household } }, t.dataDir);
    await again.remotes.start();
    again.clock.advance(5000);
    await again.remotes.frame(hop('0c1d2e3f'), 'rtl_433');
    expect(again.events.map((e) => e.type)).toEqual(['remote.replayed']);
    expect(again.remotes.status()).toMatchObject({ replayed: 1, alarms: 0 });
  });
});
