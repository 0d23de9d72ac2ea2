import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import type { Priority } from '../src/core/event.js';
import { checkDynamicEvent } from '../src/core/events.js';
import { Outbox, type OutboxError, type OutboxOptions } from '../src/gateway/outbox.js';
import { corruptOutboxTables } from './helpers/corrupt-outbox.js';
import { testOutboxOptions } from './helpers/outbox.js';

const MiB = 1024 * 1024;
const opened: Outbox[] = [];

function makeOutbox(over: Partial<OutboxOptions> = {}, dir = mkdtempSync(join(tmpdir(), 'vigia-outbox-'))) {
  const clock = (over.clock as ManualClock | undefined) ?? new ManualClock();
  const outbox = new Outbox(testOutboxOptions(join(dir, 'outbox.db'), { clock, ...over }));
  opened.push(outbox);
  return { outbox, dir, clock, file: join(dir, 'outbox.db') };
}

const accept = (o: Outbox, priority: Priority, n = 1, bytes = 10) =>
  Promise.all(Array.from({ length: n }, (_, i) => o.accept({ type: `t.${priority}`, priority, payload: { i, pad: 'x'.repeat(bytes) } })));

/** Polls until `check` holds; fails with `what` after `timeoutMs` (a deadline, not a timing assertion). */
async function waitUntil(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const BUILT_CHECKPOINT_WORKER = new URL('../dist/gateway/checkpoint-worker.js', import.meta.url);

/**
 * A checkpoint worker script that dies while starting: every time, or only the first time (then
 * it runs the real, compiled worker).
 */
function dyingCheckpointWorker(dir: string, mode: 'once' | 'always'): URL {
  const flag = join(dir, 'die-next-time');
  writeFileSync(flag, '');
  const script = join(dir, `checkpoint-worker-dies-${mode}.mjs`);
  writeFileSync(
    script,
    `import { existsSync, unlinkSync } from 'node:fs';
const flag = ${JSON.stringify(flag)};
if (${mode === 'always'} || existsSync(flag)) {
  if (existsSync(flag)) unlinkSync(flag);
  throw new Error('checkpoint worker died');
}
await import(${JSON.stringify(BUILT_CHECKPOINT_WORKER.href)});
`,
  );
  return pathToFileURL(script);
}

const walSize = (file: string) => (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0);

afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

describe('outbox', () => {
  it('stores events durably and keeps the sequence number across restarts', async () => {
    const { outbox, dir } = makeOutbox();
    outbox.open();
    const first = await accept(outbox, 'read', 3);
    expect(first.map((e) => e.seq)).toEqual([1, 2, 3]);
    await outbox.close();

    const again = makeOutbox({}, dir).outbox;
    again.open();
    expect(again.depth()).toBe(3);
    const [next] = await accept(again, 'read');
    expect(next!.seq).toBe(4);
    expect(new Set([...first, next!].map((e) => e.id)).size).toBe(4);
    const stored = again.next(10).map((s) => JSON.parse(s.body) as { id: string; payload: { i: number } });
    expect(stored.map((s) => s.id)).toEqual([...first, next!].map((e) => e.id));
  });

  it('hands out events by priority, then oldest first, and deletes only acknowledged ones', async () => {
    const { outbox } = makeOutbox();
    outbox.open();
    await accept(outbox, 'telemetry', 2);
    await accept(outbox, 'read', 2);
    await accept(outbox, 'alarm', 2);
    await accept(outbox, 'hit', 1);
    const batch = outbox.next(100);
    expect(batch.map((e) => e.priority)).toEqual(['alarm', 'alarm', 'hit', 'read', 'read', 'telemetry', 'telemetry']);
    expect(outbox.next(100)).toEqual([]); // handed out already
    outbox.ack(batch[0]!.rowid);
    outbox.ack(batch[2]!.rowid);
    outbox.flush();
    expect(outbox.depth()).toBe(5);
    outbox.rewind();
    expect(outbox.next(100).map((e) => e.rowid)).toEqual(batch.filter((_, i) => i !== 0 && i !== 2).map((e) => e.rowid));
  });

  it('never skips an event stored after everything before it was deleted', async () => {
    const { outbox } = makeOutbox();
    outbox.open();
    await accept(outbox, 'read', 3);
    for (const e of outbox.next(10)) outbox.ack(e.rowid);
    outbox.flush();
    expect(outbox.depth()).toBe(0);
    const [late] = await accept(outbox, 'read');
    expect(outbox.next(10).map((e) => e.id)).toEqual([late!.id]);
  });

  it('groups non-alarm events into few commits but commits an alarm at once', async () => {
    const { outbox } = makeOutbox({ commitIntervalMs: 60_000 });
    outbox.open();
    const reads = accept(outbox, 'read', 1000);
    let readsDone = false;
    void reads.then(() => (readsDone = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(readsDone).toBe(false); // waiting for the (long) commit window
    const t0 = performance.now();
    await accept(outbox, 'alarm');
    expect(performance.now() - t0).toBeLessThan(1000); // not the 60 s window
    await reads; // the alarm's commit carried the pending reads too
    expect(outbox.stats().commits).toBe(1);
  });

  it('evicts a class beyond its quota, oldest first, and counts it', async () => {
    const { outbox } = makeOutbox({ quotaBytes: { alarm: 64 * MiB, hit: 16 * MiB, read: 20_000, telemetry: 16 * MiB } });
    outbox.open();
    const events = [];
    for (let i = 0; i < 10; i++) events.push(...(await accept(outbox, 'read', 10, 100)));
    const stats = outbox.stats();
    expect(stats.byPriority.read.bytes).toBeLessThanOrEqual(20_000);
    expect(stats.evicted.read.quota).toBeGreaterThan(0);
    expect(stats.evicted.read.quota + stats.byPriority.read.depth).toBe(100);
    const kept = outbox.next(1000).map((e) => e.id);
    expect(kept).toEqual(events.slice(-kept.length).map((e) => e.id)); // the newest survive
  });

  it('records eviction counts with the eviction and settles them only when a report storing them is committed', async () => {
    const quotaBytes = { alarm: 64 * MiB, hit: 16 * MiB, read: 20_000, telemetry: 16 * MiB };
    const { outbox, dir } = makeOutbox({ quotaBytes });
    outbox.open();
    for (let i = 0; i < 10; i++) await accept(outbox, 'read', 10, 100);
    const evicted = outbox.stats().evicted.read.quota;
    expect(evicted).toBeGreaterThan(0);
    expect(outbox.unreportedEvictions()).toEqual({ read: { quota: evicted } });
    await outbox.close(); // as if killed: nothing reported yet

    const again = makeOutbox({ quotaBytes }, dir).outbox;
    again.open();
    expect(again.unreportedEvictions()).toEqual({ read: { quota: evicted } }); // survives the restart
    const reported = again.unreportedEvictions();
    await accept(again, 'read', 10, 100); // more evictions while the report is being written
    const meanwhile = again.stats().evicted.read.quota;
    expect(meanwhile).toBeGreaterThan(0);
    await again.accept({ type: 'system.outbox_evicted', priority: 'hit', payload: { evicted: reported } });
    expect(again.unreportedEvictions()).toEqual({ read: { quota: meanwhile } }); // only what the report covers is settled
    await again.accept({ type: 'system.outbox_evicted', priority: 'hit', payload: { evicted: again.unreportedEvictions() } });
    expect(again.unreportedEvictions()).toEqual({});
    await again.close();

    const third = makeOutbox({ quotaBytes }, dir).outbox;
    third.open();
    expect(third.unreportedEvictions()).toEqual({}); // never reported twice
    expect(third.next(1000).filter((e) => e.type === 'system.outbox_evicted')).toHaveLength(2);
  });

  it('records expired events for the report too', async () => {
    const { outbox, clock } = makeOutbox();
    outbox.open();
    await accept(outbox, 'telemetry', 4);
    clock.advance(61_000);
    expect(outbox.expire()).toBe(4);
    expect(outbox.unreportedEvictions()).toEqual({ telemetry: { ttl: 4 } });
  });

  it('frees shared space lowest priority first, keeps a reserve for alarms and never evicts alarms', async () => {
    const probe = makeOutbox();
    probe.outbox.open();
    await accept(probe.outbox, 'read', 10, 100);
    const unit = probe.outbox.stats().bytes / 10; // bytes one of these events costs
    const { outbox } = makeOutbox({ maxBytes: Math.round(300 * unit), alarmReserveBytes: Math.round(100 * unit) });
    outbox.open();
    await accept(outbox, 'telemetry', 100, 100);
    await accept(outbox, 'hit', 100, 100);
    await accept(outbox, 'read', 50, 100); // non-alarm use would be 250 units, 200 allowed
    let s = outbox.stats();
    expect(s.bytes - s.byPriority.alarm.bytes).toBeLessThanOrEqual(200 * unit + 1);
    expect(s.evicted.telemetry.capacity).toBeGreaterThanOrEqual(50);
    expect(s.evicted.telemetry.capacity).toBeLessThanOrEqual(52); // only what was needed
    expect(s.evicted.hit.capacity).toBe(0);
    expect(s.byPriority.read.depth).toBe(50);
    await accept(outbox, 'alarm', 400, 100); // alarms use the reserve, then push the others out
    s = outbox.stats();
    expect(s.byPriority.alarm.depth).toBe(400);
    expect(s.byPriority.telemetry.depth + s.byPriority.read.depth + s.byPriority.hit.depth).toBe(0);
    expect(s.evicted.hit.capacity).toBe(100);
    expect(s.evicted.alarm).toEqual({ quota: 0, ttl: 0, capacity: 0, corrupt: 0, purged: 0 }); // kept beyond max_bytes
  });

  it('caps the alarm class: past its quota, hits are stored without their evidence images, never dropped, and a panic still fits', async () => {
    const { outbox, file } = makeOutbox({ maxBytes: 1 * MiB, alarmReserveBytes: 256 * 1024 });
    outbox.open();
    const image = (kb: number) => ({ content_type: 'image/jpeg' as const, width: 320, height: 240, data: 'A'.repeat(kb * 1024) });
    const hit = (i: number) => ({
      camera: 'cam-1',
      plate: 'BBCL12',
      display: 'BB·CL·12',
      confidence: 0.97,
      format: 'cl-2007',
      trigger: 'frame' as const,
      frames: 1,
      box: [10, 20, 120, 40],
      seen_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      match: { kind: 'exact' as const, distance: 0 },
      entry: { plate: 'BBCL12', reason: 'stolen', source: 'carabineros', added: '2026-01-01', expires: null },
      hotlist_version: 'v1',
      evidence: { crop: image(2), frame: image(6), files: { crop: `hit-${i}-crop.jpg`, frame: `hit-${i}-frame.jpg` } },
    });
    const payloads = Array.from({ length: 400 }, (_, i) => hit(i));
    const stored = await Promise.all(payloads.map((payload) => outbox.accept({ type: 'plate.hit', priority: 'alarm', payload })));
    expect(payloads[399]!.evidence.crop).toBeDefined(); // the producer's object is left whole
    const panic = await outbox.accept({
      type: 'alarm.panic',
      priority: 'alarm',
      payload: { input: 'panic-1', pressed_at: new Date().toISOString(), line_mono_ms: 1, alarm_id: null, press: 1, snapshot: null },
    });
    const s = outbox.stats();
    expect(s.byPriority.alarm.depth).toBe(401); // every hit, and the panic
    expect(s.bytes).toBeLessThanOrEqual(1 * MiB);
    const events = outbox.next(1000).map((e) => JSON.parse(e.body) as { id: string; type: string; priority: 'alarm'; payload: Record<string, unknown> });
    const hits = events.filter((e) => e.type === 'plate.hit');
    expect(hits.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    const evidence = hits.map((e) => e.payload.evidence as { crop?: unknown; frame?: unknown; files: { crop: string }; dropped?: string });
    const full = evidence.filter((e) => e.crop && e.frame && !e.dropped).length;
    expect(full).toBeGreaterThan(50); // the budget is used before anything is left out
    expect(evidence.slice(full).every((e) => e.dropped === 'quota' && !e.crop && !e.frame)).toBe(true);
    expect(evidence.map((e) => e.files.crop)).toEqual(payloads.map((p) => p.evidence.files.crop)); // the names of the files kept on the device
    for (const e of hits) expect(checkDynamicEvent(e.type, e.priority, e.payload)).toBeNull(); // still a valid plate.hit
    expect(stored[399]!.payload.evidence).toEqual(evidence[399]); // the producer is told what was stored
    expect(events.find((e) => e.id === panic.id)?.payload).toEqual(panic.payload);
    await outbox.close();
    // On disk: the accounted bytes plus SQLite's page overhead, a few percent (3.3 MB before the cap).
    expect(statSync(file).size).toBeLessThan(1.1 * MiB);
  });

  it('expires events by age measured on the monotonic clock, even when the wall clock jumps', async () => {
    const clock = new ManualClock(0, 1_000); // wall clock at 1970: not yet synced
    const { outbox } = makeOutbox({ clock });
    outbox.open();
    await accept(outbox, 'telemetry', 5);
    await accept(outbox, 'alarm', 1);
    clock.setWall(Date.UTC(2026, 10, 22)); // NTP steps the clock by 56 years: nothing is "old" because of that
    expect(outbox.expire()).toBe(0);
    clock.advance(61_000);
    expect(outbox.expire()).toBe(5);
    expect(outbox.stats().evicted.telemetry.ttl).toBe(5);
    expect(outbox.depth()).toBe(1); // alarms never expire
  });

  it('expires events from an earlier boot by wall time only when the clock is trusted', async () => {
    let synced = false;
    const clock = new ManualClock(Date.UTC(2026, 0, 1), 1_000);
    const a = makeOutbox({ clock, bootId: 'boot-a', clockSynced: () => true });
    a.outbox.open();
    await accept(a.outbox, 'telemetry', 3);
    await a.outbox.close();
    clock.advance(3_600_000);
    const b = makeOutbox({ clock, bootId: 'boot-b', clockSynced: () => synced }, a.dir);
    b.outbox.open();
    expect(b.outbox.expire()).toBe(0);
    synced = true;
    expect(b.outbox.expire()).toBe(3);
  });

  it('moves a corrupt database aside, never deletes it, and starts fresh', () => {
    const { outbox, dir, file } = makeOutbox();
    const garbage = Buffer.from('this is not an SQLite database '.repeat(200));
    writeFileSync(file, garbage);
    const report = outbox.open();
    expect(report).toBeDefined();
    expect(existsSync(report!.movedTo)).toBe(true);
    expect(readFileSync(report!.movedTo)).toEqual(garbage);
    expect(readdirSync(dir).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true);
    expect(outbox.depth()).toBe(0);
  });

  it('never hands out a sequence number twice, even after a corrupt file is replaced at start', async () => {
    const first = makeOutbox();
    first.outbox.open();
    const before = await accept(first.outbox, 'read', 50);
    const lastSeq = Math.max(...before.map((e) => e.seq));
    await first.outbox.close();
    writeFileSync(first.file, Buffer.from('this is not an SQLite database '.repeat(200)));
    const again = makeOutbox({}, first.dir);
    expect(again.outbox.open()).toBeDefined(); // moved aside, a fresh file
    const [next] = await accept(again.outbox, 'alarm');
    expect(next!.seq).toBeGreaterThan(lastSeq);
    await again.outbox.close();
    // And a plain restart goes on from where it was, without a jump.
    const third = makeOutbox({}, first.dir);
    third.outbox.open();
    const [after] = await accept(third.outbox, 'alarm');
    expect(after!.seq).toBe(next!.seq + 1);
    await third.outbox.close();
  });

  it('an acknowledgement of an event from a corrupt file replaced while running never deletes an event of the fresh one', async () => {
    const first = makeOutbox();
    first.outbox.open();
    await accept(first.outbox, 'read', 20);
    await first.outbox.close();
    // After a restart: the positions of the events in flight come from the file, not from this process.
    const { outbox, file } = makeOutbox({}, first.dir);
    outbox.open();
    const inFlight = outbox.next(20); // published, PUBACK not yet in
    expect(inFlight).toHaveLength(20);
    corruptOutboxTables(file, ['events']);
    const [fresh] = await accept(outbox, 'alarm'); // finds the damage: moved aside, stored in a fresh file
    expect(readdirSync(dirname(file)).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true);
    expect(outbox.depth()).toBe(1);
    // The broker's PUBACKs for the old file's events arrive now.
    for (const e of inFlight) outbox.ack(e.rowid);
    await accept(outbox, 'telemetry'); // a commit, carrying the deletions
    expect(outbox.depth()).toBe(2);
    expect(outbox.next(10).map((e) => e.id)).toContain(fresh!.id);
    await outbox.close();
  });

  it('detects a database damaged inside (valid header, broken pages)', async () => {
    const first = makeOutbox();
    first.outbox.open();
    await accept(first.outbox, 'read', 2000, 200);
    await first.outbox.close();
    const bytes = readFileSync(first.file);
    bytes.fill(0x5a, 4096 * 3, bytes.length - 4096); // scribble over most pages, keep the header page
    writeFileSync(first.file, bytes);
    const again = makeOutbox({}, first.dir);
    const report = again.outbox.open();
    expect(report?.error).toMatch(/malformed|quick_check|corrupt|not a database/i);
    await accept(again.outbox, 'alarm');
    expect(again.outbox.depth()).toBe(1);
  });

  it('reports stats: depth, bytes and oldest age per priority', async () => {
    const { outbox, clock } = makeOutbox();
    outbox.open();
    await accept(outbox, 'hit', 2);
    clock.advance(5_000);
    await accept(outbox, 'read', 1);
    const s = outbox.stats();
    expect(s.byPriority.hit.depth).toBe(2);
    expect(s.byPriority.hit.oldestAgeMs).toBe(5_000);
    expect(s.byPriority.read.oldestAgeMs).toBe(0);
    expect(s.byPriority.alarm.oldestAgeMs).toBeNull();
    expect(s.lastSeq).toBe(3);
  });

  it('restarts a WAL checkpoint worker that died, and checkpoints go on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-outbox-'));
    const { outbox, file } = makeOutbox(
      {
        checkpointInWorker: true,
        checkpointWorkerUrl: dyingCheckpointWorker(dir, 'once'),
        checkpointRestartBackoff: { minDelayMs: 10, maxDelayMs: 100 },
        quotaBytes: { alarm: 64 * MiB, hit: 16 * MiB, read: 64 * MiB, telemetry: 16 * MiB },
      },
      dir,
    );
    outbox.open();
    await waitUntil(() => outbox.stats().checkpointer?.restarts >= 1 && outbox.stats().checkpointer.running, 'the checkpoint worker to be restarted');
    // One commit of ~12 MiB: past the 8 MiB journal_size_limit, so a checkpoint then shows as a smaller WAL.
    await accept(outbox, 'read', 1200, 10_000);
    const peak = walSize(file);
    expect(peak).toBeGreaterThan(10 * MiB);
    await waitUntil(() => {
      void accept(outbox, 'read', 1, 10); // the first commit after a full checkpoint restarts (and truncates) the WAL
      return walSize(file) < peak;
    }, 'the restarted worker to checkpoint the WAL');
    expect(outbox.stats().checkpointer.mainCheckpoints).toBe(0); // the worker did it, not the fallback
    await waitUntil(() => outbox.stats().checkpointer.framesCheckpointed > 0, 'the worker to report the frames it copied');
    const cp = outbox.stats().checkpointer;
    expect(cp.checkpoints).toBeGreaterThan(0);
    expect(cp.maxMs).toBeGreaterThanOrEqual(cp.lastMs ?? Number.POSITIVE_INFINITY);
  });

  it('checkpoints on the main connection when no worker runs and the WAL outgrows its bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-outbox-'));
    const { outbox, file } = makeOutbox(
      {
        checkpointInWorker: true,
        checkpointWorkerUrl: dyingCheckpointWorker(dir, 'always'),
        walLimitBytes: 1 * MiB,
        quotaBytes: { alarm: 64 * MiB, hit: 16 * MiB, read: 64 * MiB, telemetry: 16 * MiB },
      },
      dir,
    );
    outbox.open();
    let maxWal = 0;
    for (let i = 0; i < 80; i++) {
      await accept(outbox, 'read', 50, 2_000); // one commit of ~100 KB; 8 MB in all
      maxWal = Math.max(maxWal, walSize(file));
    }
    expect(maxWal).toBeLessThan(4 * MiB); // bound + at most WAL_CHECK_EVERY_COMMITS commits, not the 8 MB written
    expect(outbox.stats().checkpointer?.running).toBe(false);
    expect(outbox.stats().checkpointer?.mainCheckpoints).toBeGreaterThan(0);
  });
});

describe('outbox on a full disk', () => {
  /**
   * SQLite's own SQLITE_FULL ("database or disk is full") from a page limit: unlike a full file
   * system (tests/disk-full.test.ts), it fails exactly the commit a test chooses, acknowledgements
   * and evictions included.
   */
  const limitPages = (o: Outbox) => o.database().pragma(`max_page_count = ${o.database().pragma('page_count', { simple: true }) as number}`);
  const unlimitPages = (o: Outbox) => o.database().pragma('max_page_count = 1073741823');

  it('keeps a disk reserve of real blocks beside the database, private, and writes it again when it is not whole', async () => {
    const { outbox, dir, file } = makeOutbox({ diskReserveBytes: 3 * MiB });
    outbox.open();
    const reserve = statSync(`${file}.reserve`);
    expect(reserve.size).toBe(3 * MiB);
    expect(reserve.blocks * 512).toBeGreaterThanOrEqual(3 * MiB);
    expect(reserve.mode & 0o777).toBe(0o640);
    expect(outbox.stats().disk.reserve).toEqual({ bytes: 3 * MiB, state: 'present' });
    await outbox.close();

    truncateSync(`${file}.reserve`, MiB); // a write cut short by a power cut
    const again = makeOutbox({ diskReserveBytes: 3 * MiB }, dir).outbox;
    again.open();
    expect(statSync(`${file}.reserve`).size).toBe(3 * MiB);
    expect(again.stats().disk).toMatchObject({ full: false, reserve: { state: 'present' } });
  });

  it('a failed commit changes no count, keeps its acknowledgements for the next commit and refuses its events with disk_full', async () => {
    const { outbox } = makeOutbox({ maxBytes: 100_000, alarmReserveBytes: 1000, diskCheckIntervalMs: 10 });
    outbox.open();
    await accept(outbox, 'read', 8, 3000);
    const before = outbox.stats();
    for (const e of outbox.next(3)) outbox.ack(e.rowid);
    limitPages(outbox);
    // With the acknowledgements in one commit; so big that every read left must be evicted for it.
    const big = outbox.accept({ type: 't.read', priority: 'read', payload: { pad: 'x'.repeat(200_000) } });
    const refused = await big.then(
      () => null,
      (err: unknown) => err,
    );
    const after = outbox.stats();
    expect(after.byPriority.read).toEqual(before.byPriority.read);
    expect([after.depth, after.bytes, after.acked, after.accepted]).toEqual([before.depth, before.bytes, before.acked, before.accepted]);
    expect(after.evicted).toEqual(before.evicted);
    expect(outbox.unreportedEvictions()).toEqual({});
    expect(refused).toMatchObject({ code: 'disk_full', event: { type: 't.read' } });
    expect(after.disk).toMatchObject({ full: true, refused: { read: 1 }, error: expect.stringMatching(/^SQLITE_FULL/) });

    unlimitPages(outbox);
    await waitUntil(() => !outbox.stats().disk.full, 'the space back');
    await accept(outbox, 'read'); // commits the kept acknowledgements with it
    expect(outbox.stats()).toMatchObject({ depth: 6, acked: 3 });
    expect(outbox.next(10)).toHaveLength(6);
  });

  it('keeps alarms it cannot store in memory, bounded, retries them and resolves them once stored', async () => {
    const { outbox } = makeOutbox({ heldLimits: { events: 2, bytes: MiB }, heldRetryBackoff: { minDelayMs: 5, maxDelayMs: 20 }, diskCheckIntervalMs: 10 });
    outbox.open();
    let held = 0;
    outbox.onHeld(() => held++);
    limitPages(outbox);
    const outcomes: string[] = [];
    const alarms = [1, 2, 3].map((i) =>
      outbox.accept({ type: 't.alarm', priority: 'alarm', payload: { i, pad: 'x'.repeat(50_000) } }).then(
        (e) => outcomes.push(`stored ${e.payload.i}`),
        (err: OutboxError) => outcomes.push(`${err.code} ${(err.event!.payload as { i: number }).i}`),
      ),
    );
    await waitUntil(() => outcomes.length === 1, 'the alarm that does not fit');
    expect(outcomes).toEqual(['held_full 3']);
    expect(held).toBeGreaterThan(0);
    expect(outbox.held().map((e) => [e.type, (JSON.parse(e.body) as { payload: { i: number } }).payload.i])).toEqual([
      ['t.alarm', 1],
      ['t.alarm', 2],
    ]);
    expect(outbox.stats().disk).toMatchObject({ held: { events: 2 }, heldLost: 1 });
    expect(outbox.depth()).toBe(0);

    unlimitPages(outbox);
    await Promise.all(alarms);
    expect(outcomes).toEqual(['held_full 3', 'stored 1', 'stored 2']);
    expect(outbox.stats().disk).toMatchObject({ held: { events: 0, bytes: 0 }, heldStored: 2, heldLost: 1 });
    expect(outbox.held()).toEqual([]);
    expect(outbox.next(10).map((e) => e.id)).toHaveLength(2);
  });
});
