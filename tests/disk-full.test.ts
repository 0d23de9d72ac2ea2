import { existsSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { VigiaEvent } from '../src/core/event.js';
import type { DaemonStatus } from '../src/status.js';
import { formatStatus } from '../src/status-format.js';
import { DaemonProcess, mergeConfig, writeDeviceConfig } from './helpers/daemon.js';
import { plateHitPayload } from './helpers/plate-hit.js';
import { startGate } from './helpers/gate.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { SmallFs } from './helpers/small-fs.js';
import { Subscriber } from './helpers/subscriber.js';

// A real full file system: each daemon runs with its data directory on a small tmpfs of its own
// (a user and mount namespace, no root needed), which the test fills until ENOSPC.

const MiB = 1024 * 1024;
type Outputs = Record<string, { value: boolean; pattern: { mode: string } }>;
type Sent = { id: string; seq: number };

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * A pole (panic button, lit button) whose data directory is a tmpfs of `fsBytes`, behind a gate to
 * the broker that is open now or later (`linkUp`); the call center's subscriber is there from the start.
 */
async function poleOnSmallFs({ fsBytes = 16 * MiB, over = {}, linkUp = true }: { fsBytes?: number; over?: Record<string, unknown>; linkUp?: boolean } = {}) {
  const fs = await SmallFs.create(fsBytes);
  cleanups.push(() => fs.stop());
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const gate = await startGate(broker.port, { open: linkUp });
  cleanups.push(() => gate.stop());
  const sub = new Subscriber(broker.url);
  await sub.connect();
  cleanups.push(() => sub.close());
  const cfg = writeDeviceConfig(
    `mqtt://127.0.0.1:${gate.port}`,
    mergeConfig(
      {
        paths: { data_dir: join(fs.dir, 'data') },
        outbox: { disk_reserve_bytes: '1MiB' },
        hardware: { backend: 'sim', inputs: { panic: { line: 'GPIO17', kind: 'panic' } }, outputs: { button_led: { line: 'GPIO25', kind: 'led' } } },
        pole: { led_output: 'button_led' },
      },
      over,
    ),
  );
  const daemon = new DaemonProcess(cfg.file, cfg.socket, fs.wrap);
  cleanups.push(() => daemon.kill('SIGKILL'));
  const rig = {
    fs,
    daemon,
    sub,
    gate,
    status: () => daemon.request<DaemonStatus>('status'),
    async statusUntil(pred: (s: DaemonStatus) => boolean, what: string, timeoutMs = 30_000): Promise<DaemonStatus> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const status = await rig.status();
        if (pred(status)) return status;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(status.disk ?? status.outbox)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    events: (type: string) => rig.sub.events.filter((e) => e.event.type === type).map((e) => e.event as VigiaEvent<Record<string, any>>),
    outputs: () => daemon.request<Outputs>('sim.outputs'),
    reserve: fs.path('data', 'outbox.db.reserve'),
  };
  return rig;
}

const pad = (bytes: number) => ({ pad: 'x'.repeat(bytes) });
const depthAndBytes = (s: DaemonStatus, except?: string) =>
  Object.fromEntries(
    Object.entries(s.outbox.by_priority)
      .filter(([p]) => p !== except)
      .map(([p, v]) => [p, { depth: v.depth, bytes: v.bytes }]),
  );
/** What a request was refused with, or null if it was not. */
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: Error & { code?: string }) => ({ code: err.code, message: err.message }),
  );

describe('a full disk (a real tmpfs filled until ENOSPC)', () => {
  it('a commit that fails changes no counter, evicts nothing, and refuses its events with disk_full', async () => {
    // No broker: every event stays in the outbox. A shared capacity small enough that the big read must evict.
    const rig = await poleOnSmallFs({ linkUp: false, over: { outbox: { max_bytes: '1MB', alarm_reserve_bytes: '100kB' } } });
    await rig.daemon.start();
    for (let i = 0; i < 4; i++) await rig.daemon.request('sim.event', { type: 'sim.read', priority: 'read', payload: pad(200_000) });
    const before = await rig.status();
    expect(before.outbox.by_priority.read.depth).toBe(4);

    rig.fs.fill();
    const refused = await refusal(rig.daemon.request('sim.event', { type: 'sim.read', priority: 'read', payload: pad(300_000) }));
    const after = await rig.status();
    // (The alarm class may have the system.disk_full report by now.)
    expect(depthAndBytes(after, 'alarm')).toEqual(depthAndBytes(before, 'alarm'));
    expect(after.outbox.evicted).toEqual(before.outbox.evicted);
    expect(refused).toMatchObject({ code: 'disk_full', message: expect.stringMatching(/disk is full/) });
    expect(after.disk).toMatchObject({ full: true, error: expect.stringMatching(/SQLITE_FULL/), refused: { read: 1 } });
    // The room is kept for alarms: a small read is refused too, without trying.
    expect(await refusal(rig.daemon.request('sim.event', { type: 'sim.read', priority: 'read' }))).toMatchObject({ code: 'disk_full' });

    rig.fs.unfill();
    await rig.statusUntil((s) => !s.disk.full && s.events.accepted_by_type['system.disk_recovered'] === 1, 'the space back');
    await rig.daemon.request('sim.event', { type: 'sim.read', priority: 'read' });
    // What the daemon counted is what is in the file: counted again from it at the next start.
    const counted = await rig.status();
    expect(counted.outbox.by_priority.read.depth).toBe(5);
    await rig.daemon.kill('SIGTERM');
    await rig.daemon.start();
    expect(depthAndBytes(await rig.status())).toEqual(depthAndBytes(counted));
  });

  it("gives alarms the reserve's room, refuses everything else until the reserve is back, and says so in status, health and an event", async () => {
    const rig = await poleOnSmallFs({ over: { telemetry: { interval: '300ms' } } });
    await rig.daemon.start();
    const reserve = statSync(rig.reserve);
    expect(reserve.size).toBe(MiB);
    expect(reserve.blocks * 512).toBeGreaterThanOrEqual(MiB); // real blocks, not a hole
    expect(reserve.mode & 0o777).toBe(0o640);

    rig.fs.fill();
    // Bigger than anything written so far: the WAL must grow, so this commit meets the full disk.
    const alarm = await rig.daemon.request<Sent>('sim.event', { type: 'sim.alarm', priority: 'alarm', payload: pad(300_000) });
    expect(existsSync(rig.reserve)).toBe(false);
    let status = await rig.statusUntil((s) => s.events.accepted_by_type['system.disk_full'] === 1, 'the disk_full report stored');
    expect(status.disk).toMatchObject({ full: true, locking: 'normal', reserve: { bytes: MiB, state: 'released' }, held_alarms: { events: 0 } });
    expect(formatStatus(status)).toMatch(/^disk {7}FULL for \d+s, .* free: only alarms are stored, \d+ events refused; reserve 1\.0 MiB released/m);

    // The freed room is the alarms': lower classes are refused; alarms (without their pictures) are stored.
    expect(await refusal(rig.daemon.request('sim.event', { type: 'sim.hit', priority: 'hit' }))).toMatchObject({ code: 'disk_full' });
    const hit = await rig.daemon.request<Sent>('sim.event', { type: 'plate.hit', priority: 'alarm', payload: plateHit() });
    await rig.daemon.request('sim.input', { input: 'panic', active: true });
    await rig.sub.waitFor(() => rig.sub.byId.has(alarm.id) && rig.sub.byId.has(hit.id) && rig.events('alarm.panic').length === 1, 15_000, 'the alarms');
    expect((await rig.outputs()).button_led!.pattern.mode).toBe('blink');
    expect(rig.events('plate.hit')[0]!.payload.evidence).toEqual({ files: { crop: 'c.jpg', frame: 'f.jpg' }, dropped: 'disk_full' });
    await rig.sub.waitFor(() => rig.events('system.disk_full').length === 1, 15_000, 'system.disk_full');
    expect(rig.events('system.disk_full')[0]).toMatchObject({
      priority: 'alarm',
      payload: { at_start: false, locking: 'normal', error: expect.stringMatching(/SQLITE_FULL/) },
    });
    // Health reports cannot be stored now: they go out directly, and say it.
    await rig.sub.waitFor(() => rig.events('health').some((h) => h.payload.disk.full), 15_000, 'a health report of the full disk');
    expect(rig.events('health').find((h) => h.payload.disk.full)!.payload.disk).toMatchObject({ reserve: 'released', locking: 'normal' });

    rig.fs.unfill();
    status = await rig.statusUntil((s) => !s.disk.full, 'the space back');
    expect(status.disk.reserve).toEqual({ bytes: MiB, state: 'present' });
    expect(statSync(rig.reserve).size).toBe(MiB);
    expect(status.disk.refused.hit).toBeGreaterThanOrEqual(1);
    await rig.daemon.request('sim.event', { type: 'sim.hit', priority: 'hit' });
    await rig.sub.waitFor(() => rig.events('system.disk_recovered').length === 1, 15_000, 'system.disk_recovered');
    expect(rig.events('system.disk_recovered')[0]!.payload).toMatchObject({ refused: { hit: expect.any(Number) }, full_ms: expect.any(Number) });
    expect(formatStatus(await rig.status())).toMatch(/^disk {7}ok, .* free, reserve 1\.0 MiB present \(\d+ events refused while full\)$/m);
  });

  it('starts on a full disk by releasing the reserve, says so, and stores a panic press', async () => {
    const rig = await poleOnSmallFs();
    await rig.daemon.start();
    await rig.daemon.kill('SIGTERM');
    rig.fs.fill();

    await rig.daemon.start(); // before: SQLITE_IOERR_SHMSIZE, the daemon exited
    expect(rig.daemon.output).toMatch(/disk full at start: released the disk reserve to open the outbox/);
    const status = await rig.status();
    expect(status.disk).toMatchObject({ full: true, locking: 'normal', reserve: { state: 'released' }, error: expect.stringMatching(/SQLITE_IOERR_SHMSIZE/) });
    await rig.daemon.request('sim.input', { input: 'panic', active: true });
    await rig.sub.waitFor(() => rig.events('alarm.panic').length === 1 && rig.events('system.disk_full').length === 1, 15_000, 'the alarm and the report');
    expect(rig.events('system.disk_full')[0]!.payload).toMatchObject({ at_start: true, error: expect.stringMatching(/SQLITE_IOERR_SHMSIZE/) });
    expect((await rig.outputs()).button_led!.pattern.mode).toBe('blink');
  });

  it('starts on a full disk without a reserve (exclusive locking); a panic press waits in memory, goes out directly, and is stored once there is room', async () => {
    const rig = await poleOnSmallFs({ linkUp: false });
    await rig.daemon.start();
    const reads = await rig.daemon.request<{ ids: string[] }>('sim.burst', { count: 20, type: 'sim.read', priority: 'read' });
    await rig.daemon.kill('SIGTERM');
    unlinkSync(rig.reserve); // used up before this start
    rig.fs.fill();
    rig.gate.open();

    await rig.daemon.start();
    expect(rig.daemon.output).toMatch(/disk full at start: outbox opened with exclusive locking/);
    let status = await rig.status();
    expect(status.disk).toMatchObject({ full: true, locking: 'exclusive', reserve: { state: 'missing' } });
    expect(formatStatus(status)).toMatch(/outbox opened with exclusive locking/);
    // Delivered, but their deletion cannot be committed: still counted, as they still are in the file.
    await rig.sub.waitFor(() => rig.sub.missing(reads.ids).length === 0, 15_000, 'the stored reads');
    await rig.statusUntil((s) => s.link.acked >= reads.ids.length, 'the broker acknowledging them');

    await rig.daemon.request('sim.input', { input: 'panic', active: true });
    await rig.sub.waitFor(() => rig.events('alarm.panic').length === 1, 15_000, 'the alarm, published from memory');
    const panic = rig.events('alarm.panic')[0]!;
    status = await rig.statusUntil((s) => s.disk.direct.acked >= 2, 'the direct publishes acknowledged');
    expect(status.disk.held_alarms.events).toBe(2); // the press and the disk_full report
    expect(status.outbox.by_priority.read.depth).toBe(20);
    expect(status.outbox.by_priority.alarm.depth).toBe(0);
    expect((await rig.outputs()).button_led!.pattern.mode).toBe('off'); // not on disk: not "received" yet
    expect(formatStatus(status)).toMatch(/2 alarms waiting in memory \(2 published directly\)/);

    rig.fs.unfill();
    status = await rig.statusUntil((s) => !s.disk.full && s.disk.held_alarms.events === 0, 'the held alarms stored');
    expect(status.disk).toMatchObject({ locking: 'normal', held_stored: 2, held_lost: 0, reserve: { state: 'present' } });
    await rig.statusUntil((s) => s.outbox.depth === 0, 'the deliveries deleted');
    expect((await rig.outputs()).button_led!.pattern.mode).toBe('blink');
    // The stored copy goes out too, with the same id and body: the central side deduplicates by id.
    await rig.sub.waitFor(() => rig.sub.byId.get(panic.id) === 2, 15_000, 'the stored copy of the alarm');
    const copies = rig.events('alarm.panic');
    expect(copies.map((e) => e.id)).toEqual([panic.id, panic.id]);
    expect(copies[1]).toEqual(copies[0]);
    expect(new Set(rig.events('alarm.panic').map((e) => e.id)).size).toBe(1);
  });

  it('an alarm held while the link is down is retried until stored, and then arrives exactly once', async () => {
    const rig = await poleOnSmallFs({ linkUp: false, over: { outbox: { disk_reserve_bytes: '256KiB' } } });
    await rig.daemon.start();
    rig.fs.fill();
    // Bigger than the reserve: even its room is not enough.
    const sent = rig.daemon.request<Sent>('sim.event', { type: 'sim.big_alarm', priority: 'alarm', payload: pad(600_000) });
    const status = await rig.statusUntil((s) => s.disk.held_alarms.bytes >= 600_000, 'the alarm held in memory');
    expect(status.disk).toMatchObject({ full: true, reserve: { state: 'released' }, direct: { published: 0 } });

    rig.fs.unfill();
    const { id } = await sent;
    rig.gate.open();
    await rig.sub.waitFor(() => rig.sub.byId.has(id), 15_000, 'the alarm');
    await rig.statusUntil((s) => s.outbox.depth === 0, 'every event delivered');
    expect(rig.sub.byId.get(id)).toBe(1);
    const after = await rig.status();
    expect(after.disk).toMatchObject({ held_lost: 0, direct: { published: 0 } });
    expect(after.disk.held_stored).toBeGreaterThanOrEqual(1);
  });
});

/** A catalogued plate.hit with both evidence pictures embedded. */
function plateHit() {
  const jpeg = { content_type: 'image/jpeg', width: 4, height: 4, data: 'A'.repeat(20_000) };
  return plateHitPayload({ crop: jpeg, frame: jpeg, files: { crop: 'c.jpg', frame: 'f.jpg' } });
}
