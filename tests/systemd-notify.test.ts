import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/gateway/control.js';
import { SystemdNotifier, takeServiceManagerEnv } from '../src/gateway/sd-notify.js';
import { statusLine } from '../src/service-supervision.js';
import { DaemonProcess, writeDeviceConfig } from './helpers/daemon.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { NotifySocket } from './helpers/notify-socket.js';
import { freePort } from './helpers/ports.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** systemd's WatchdogSec=200ms: the daemon must ping every 100 ms. */
const WATCHDOG_USEC = 200_000;

/**
 * The real daemon started the way systemd starts a `Type=notify` unit: NOTIFY_SOCKET, and with the
 * watchdog WATCHDOG_USEC plus WATCHDOG_PID set to the daemon's own pid (the shell's `$$` is the
 * pid `exec` hands to node). `watchdogPid` 'other' names another process.
 */
async function startUnderNotify(opts: { brokerUrl?: string; watchdogPid?: 'self' | 'other' } = {}) {
  const brokerUrl = opts.brokerUrl ?? `mqtt://127.0.0.1:${await freePort()}`;
  const cfg = writeDeviceConfig(brokerUrl, { log: { level: 'info' } });
  const notify = new NotifySocket(join(cfg.dir, 'notify.sock'));
  await notify.start();
  cleanups.push(() => notify.stop());
  const pid = opts.watchdogPid === 'other' ? '1' : '$$';
  const wrap = [
    'env',
    `NOTIFY_SOCKET=${notify.path}`,
    `WATCHDOG_USEC=${WATCHDOG_USEC}`,
    'VIGIA_DEBUG_OPS=1',
    'sh',
    '-c',
    `WATCHDOG_PID=${pid} exec "$@"`,
    'sh',
  ];
  const daemon = new DaemonProcess(cfg.file, cfg.socket, wrap);
  cleanups.push(() => daemon.kill('SIGKILL'));
  await daemon.start();
  return { cfg, notify, daemon };
}

const statusLines = (lines: readonly string[]) => lines.filter((l) => l.startsWith('STATUS='));

describe('systemd notification (sd_notify) from the real daemon', () => {
  it('READY=1 once the control socket answers, STATUS= with link and outbox, STOPPING=1 on SIGTERM', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    await broker.kill('SIGKILL'); // the link starts down; the broker comes back below
    const { cfg, notify, daemon } = await startUnderNotify({ brokerUrl: broker.url });

    await notify.waitFor('READY=1', (l) => l.includes('READY=1'));
    // The moment READY=1 is seen, the control socket already answers and the outbox takes events.
    await expect(controlRequest(cfg.socket, 'status')).resolves.toMatchObject({ outbox: { depth: 0 } });
    const ready = notify.lines.indexOf('READY=1');
    expect(notify.lines[ready + 1]).toMatch(/^STATUS=link (offline|connecting), outbox 0 events waiting$/);

    // Events wait in the outbox while the link is down: the status line follows the depth.
    await daemon.request('sim.burst', { count: 7, priority: 'read' });
    await notify.waitFor('the outbox depth in STATUS=', (l) => statusLines(l).some((s) => / outbox 7 events waiting$/.test(s)));

    // The link comes up and drains the outbox.
    await broker.restart();
    await notify.waitFor('link online in STATUS=', (l) => statusLines(l).some((s) => s === 'STATUS=link online, outbox 0 events waiting'));

    expect(await daemon.kill('SIGTERM')).toBe(0);
    await notify.waitFor('STOPPING=1', (l) => l.includes('STOPPING=1'));
    expect(notify.lines.indexOf('STOPPING=1')).toBeGreaterThan(ready);
    expect(notify.count('READY=1')).toBe(1);
  });

  it('pings WATCHDOG=1 from the event loop at half WATCHDOG_USEC, and not while the loop is blocked', async () => {
    const { notify, daemon } = await startUnderNotify({ watchdogPid: 'self' });
    await notify.waitFor('READY=1', (l) => l.includes('READY=1'));
    // The watchdog is fed from the start, before readiness.
    expect(notify.lines.indexOf('WATCHDOG=1')).toBeGreaterThanOrEqual(0);
    expect(notify.lines.indexOf('WATCHDOG=1')).toBeLessThan(notify.lines.indexOf('READY=1'));
    expect(daemon.output).toMatch(new RegExp(`"watchdog_interval_ms":${WATCHDOG_USEC / 2000}\\b`));
    await notify.waitFor('three pings', () => notify.count('WATCHDOG=1') >= 3);

    // A stalled loop for 3 s would have sent about 30 pings at 100 ms; it must send none. One sent
    // just before the stall and one just after it may land in the window.
    const before = notify.count('WATCHDOG=1');
    await daemon.request('debug.block_loop', { ms: 3000 });
    const during = notify.count('WATCHDOG=1') - before;
    expect(during).toBeLessThanOrEqual(2);

    // Once the loop runs again, so do the pings.
    await notify.waitFor('pings after the stall', () => notify.count('WATCHDOG=1') >= before + during + 3);
    expect(await daemon.kill('SIGTERM')).toBe(0);
  });

  it('sends no WATCHDOG=1 when WATCHDOG_PID names another process (an inherited environment)', async () => {
    const { notify, daemon } = await startUnderNotify({ watchdogPid: 'other' });
    await notify.waitFor('READY=1', (l) => l.includes('READY=1'));
    expect(await daemon.kill('SIGTERM')).toBe(0);
    await notify.waitFor('STOPPING=1', (l) => l.includes('STOPPING=1'));
    // The first ping would come before READY=1 and the rest every 100 ms until the exit.
    expect(notify.count('WATCHDOG=1')).toBe(0);
    expect(daemon.output).not.toContain('watchdog_interval_ms');
  });
});

describe('sd_notify protocol', () => {
  it('takes the watchdog only for this pid, and removes the variables so children never notify', () => {
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42', PATH: '/usr/bin' };
    expect(takeServiceManagerEnv({ ...env }, 42)).toEqual({ notifySocket: '/run/systemd/notify', watchdogMs: 30_000 });
    expect(takeServiceManagerEnv({ ...env }, 43)).toEqual({ notifySocket: '/run/systemd/notify', watchdogMs: null });
    expect(takeServiceManagerEnv({ ...env, WATCHDOG_PID: undefined }, 43)).toEqual({ notifySocket: '/run/systemd/notify', watchdogMs: 30_000 });
    expect(takeServiceManagerEnv({ ...env, WATCHDOG_USEC: 'x' }, 42)).toEqual({ notifySocket: '/run/systemd/notify', watchdogMs: null });
    expect(takeServiceManagerEnv({ PATH: '/usr/bin', WATCHDOG_USEC: '1' }, 42)).toBeNull();
    takeServiceManagerEnv(env, 42);
    expect(env).toEqual({ PATH: '/usr/bin' });
  });

  it('keeps a status on one line and survives a notify socket that is gone', async () => {
    const sent: string[] = [];
    const notifier = new SystemdNotifier(async (b) => void sent.push(b.toString()), pino({ level: 'silent' }));
    await notifier.status('link online\ninjected=1');
    expect(sent).toEqual(['STATUS=link online injected=1\n']);
    const failing = new SystemdNotifier(() => Promise.reject(new Error('ENOENT')), pino({ level: 'silent' }));
    await failing.watchdog();
    await failing.ready(statusLine({ link: 'online', outboxDepth: 1 }));
    expect(failing.failures).toBe(2);
    expect(statusLine({ link: 'online', outboxDepth: 1 })).toBe('link online, outbox 1 event waiting');
  });
});
