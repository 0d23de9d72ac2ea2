import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HotlistStore } from '../src/anpr/hotlist/source.js';
import { HotlistChangeError, HotlistPublisher } from '../src/central/hotlist.js';
import { openStore } from '../src/central/service.js';
import type { CentralStore } from '../src/central/store.js';
import type { VigiaEvent } from '../src/core/event.js';
import { newEventId } from '../src/core/event.js';
import { type Postgres, startPostgres } from './helpers/postgres.js';

// The center's list and the deltas it signs, checked by the device's own code (HotlistStore):
// what the center sends is exactly what a device takes.

const KEYS = generateKeyPairSync('ed25519');
const PRIVATE = KEYS.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const HEADER = 'plate,reason,source,added,expires\n';
const row = (plate: string, reason = 'encargo por robo') => `${plate},${reason},Carabineros,2026-11-01,\n`;

function publisher(dir = mkdtempSync(join(tmpdir(), 'vigia-publisher-'))) {
  const p = new HotlistPublisher({ dir, privateKey: PRIVATE, scope: ['la-serena'] });
  p.open();
  return { p, dir };
}

async function device(): Promise<HotlistStore> {
  const store = new HotlistStore({
    dataDir: mkdtempSync(join(tmpdir(), 'vigia-device-')),
    site: 'la-serena',
    publicKey: KEYS.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    build: 'inline',
  });
  await store.open();
  return store;
}

async function applyChain(store: HotlistStore, p: HotlistPublisher): Promise<void> {
  const chain = p.chainFrom(store.current().version);
  if (chain === null) throw new Error('the device is not on a version the center issued');
  for (const d of chain) {
    const update = await store.applySignedDelta(Buffer.from(d.args.delta, 'utf8'), Buffer.from(d.args.signature, 'base64'));
    if (!update.ok) throw new Error(`${update.reason}: ${update.detail}`);
  }
}

describe('HotlistPublisher', () => {
  it('signs additions, removals and whole lists as deltas a device applies in order, from any version the center issued', async () => {
    const { p } = publisher();
    const dev = await device();
    p.change({ text: HEADER + row('BBCL12') + row('KXTR45') }, 'sara');
    const afterFirst = p.current().version;
    await applyChain(dev, p);
    expect(dev.current().version).toBe(afterFirst);
    expect(dev.current().size).toBe(2);

    // Two more changes while a second device is still at the first version: it gets both deltas.
    const late = await device();
    await applyChain(late, p);
    p.change({ remove: ['bb-cl-12'] }, 'sara');
    p.change({ text: HEADER + row('KXTR45', 'encargo por robo con violencia') + row('GHJK23'), replace: true }, 'ana');
    expect(p.chainFrom(afterFirst)).toHaveLength(3); // remove; then the replacement's removal of a changed entry and its additions
    await applyChain(dev, p);
    expect(dev.current().version).toBe(p.current().version);
    expect(dev.current().lookup('KXTR45')[0]?.entry.reason).toBe('encargo por robo con violencia');
    expect(dev.current().has('BBCL12')).toBe(false);
    expect(p.chainFrom(p.current().version)).toEqual([]);
    expect(p.chainFrom('0'.repeat(64))).toBeNull();
    await applyChain(late, p);
    expect(late.current().version).toBe(p.current().version);
    expect(p.history().map((h) => h.by)).toEqual(['ana', 'ana', 'sara', 'sara']);
    await dev.close();
    await late.close();
  });

  it('cuts a large change into deltas small enough for one command each, and refuses bad rows and empty changes whole', async () => {
    const { p } = publisher();
    const plates = Array.from({ length: 4500 }, (_, i) => `AB${String(1000 + i).padStart(4, '0')}`);
    const issued = p.change({ text: HEADER + plates.map((x) => row(x)).join('') }, 'ana');
    expect(issued.map((d) => d.added)).toEqual([2000, 2000, 500]);
    expect(Math.max(...issued.map((d) => Buffer.byteLength(JSON.stringify(d.args))))).toBeLessThan(512 * 1024);
    const dev = await device();
    await applyChain(dev, p);
    expect(dev.current().size).toBe(4500);

    const before = p.current();
    const bad = (() => {
      try {
        p.change({ text: `${HEADER + row('CCDD11')}not a plate!,x,y,2026-11-01,\n` }, 'ana');
      } catch (err) {
        return err;
      }
    })();
    expect(bad).toBeInstanceOf(HotlistChangeError);
    expect((bad as HotlistChangeError).errors[0]?.line).toBe(3);
    expect(() => p.change({ remove: ['ZZZZ99'] }, 'ana')).toThrow(/as it is/);
    expect(p.current()).toEqual(before);
    await dev.close();
  });

  it('comes back after a restart, and after a crash between writing the deltas and the list', () => {
    const { p, dir } = publisher();
    p.change({ text: HEADER + row('BBCL12') }, 'sara');
    const csvAtFirst = readFileSync(join(dir, 'hotlist.csv'), 'utf8');
    p.change({ text: HEADER + row('KXTR45') }, 'sara');
    const { p: again } = publisher(dir);
    expect(again.current()).toEqual(p.current());
    // The crash: the second delta is on disk, the list is still the first one.
    writeFileSync(join(dir, 'hotlist.csv'), csvAtFirst);
    const { p: recovered } = publisher(dir);
    expect(recovered.current()).toEqual(p.current());
    expect(recovered.entries().map((e) => e.plate)).toEqual(['BBCL12', 'KXTR45']);
    expect(() => new HotlistPublisher({ dir, privateKey: KEYS.publicKey.export({ type: 'spki', format: 'pem' }).toString() }).open()).toThrow();
  });
});

describe.each(['sqlite', 'postgres'] as const)('what the center knows of each device (%s)', (kind) => {
  let pgServer: Postgres | undefined;
  let store: CentralStore;
  beforeAll(async () => {
    if (kind === 'postgres') pgServer = await startPostgres();
    store = await openStore(pgServer ? pgServer.url : `sqlite:${join(mkdtempSync(join(tmpdir(), 'vigia-facts-')), 'c.db')}`);
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await pgServer?.stop();
  });

  let seq = 0;
  const event = (type: string, priority: VigiaEvent['priority'], payload: Record<string, unknown>, extra: Partial<VigiaEvent> = {}): VigiaEvent => ({
    id: newEventId(),
    device: 'gantry-01',
    site: 'la-serena',
    type,
    priority,
    time: new Date(Date.UTC(2026, 11, 5, 10, 0, ++seq)).toISOString(),
    clock: 'synced',
    boot_id: 'b',
    mono_ms: seq,
    seq,
    payload,
    ...extra,
  });

  it('keeps the list version, each camera and the position from status, health, camera and GPS events', async () => {
    await store.setStatus(
      'la-serena',
      'gantry-01',
      { state: 'online', version: '0.1.0', profile: 'gantry', location: { lat: -29.95, lon: -71.3 } },
      Date.now(),
    );
    let d = (await store.devices()).find((x) => x.device === 'gantry-01')!;
    expect(d.geo).toMatchObject({ lat: -29.95, lon: -71.3, source: 'configured' });

    const version = 'a'.repeat(64);
    await store.addEvent(
      event('health', 'telemetry', {
        uptime_s: 1,
        extensions: {
          anpr: { state: 'running', cameras: { 'lane-1': 'streaming', 'lane-2': 'offline' }, hotlist: { version, serial: 7, size: 12, stale: false } },
        },
      }),
      Date.now(),
    );
    d = (await store.devices()).find((x) => x.device === 'gantry-01')!;
    expect(d.hotlist).toMatchObject({ version, serial: 7, size: 12, stale: false });
    expect(d.cameras).toEqual({ 'lane-1': 'streaming', 'lane-2': 'offline' });

    await store.addEvent(event('camera.online', 'hit', { camera: 'lane-2' }), Date.now());
    await store.addEvent(event('hotlist.updated', 'telemetry', { source: 'delta', version: 'b'.repeat(64), size: 13 }), Date.now());
    d = (await store.devices()).find((x) => x.device === 'gantry-01')!;
    expect(d.cameras).toEqual({ 'lane-1': 'streaming', 'lane-2': 'online' });
    expect(d.hotlist).toMatchObject({ version: 'b'.repeat(64), size: 13 });

    // A GPS fix wins over the configured position, and a later birth does not move it back.
    await store.addEvent(
      event('gps.fix_acquired', 'telemetry', { fix: '3d', satellites: 8, hdop: 0.9, without_fix_ms: 0 }, {
        geo: { lat: -29.9, lon: -71.25 },
      } as Partial<VigiaEvent>),
      Date.now(),
    );
    await store.setStatus('la-serena', 'gantry-01', { state: 'online', location: { lat: -29.95, lon: -71.3 } }, Date.now());
    d = (await store.devices()).find((x) => x.device === 'gantry-01')!;
    expect(d.geo).toMatchObject({ lat: -29.9, lon: -71.25, source: 'gps' });
  });

  it('stores an id twice in one group commit once, and keeps the newest of a group’s facts per device', async () => {
    const a = event('health', 'telemetry', { uptime_s: 1, extensions: { anpr: { cameras: { 'lane-1': 'offline' } } } }, { device: 'gantry-02' });
    const b = event('camera.online', 'hit', { camera: 'lane-1' }, { device: 'gantry-02' });
    const c = event('health', 'telemetry', { uptime_s: 2 }, { device: 'gantry-02' });
    const results = await Promise.all([a, a, b, c, b].map((e) => store.addEvent(e, Date.now())));
    expect(results).toEqual(['stored', 'duplicate', 'stored', 'stored', 'duplicate']);
    const d = (await store.devices()).find((x) => x.device === 'gantry-02')!;
    expect(d.last_seq).toBe(c.seq);
    expect(d.health).toMatchObject({ uptime_s: 2 });
    expect(d.cameras).toEqual({ 'lane-1': 'online' });
    const arrivals = (await store.events({ device: 'gantry-02' })).sort((x, y) => x.arrival - y.arrival).map((s) => s.event.id);
    expect(arrivals).toEqual([a.id, b.id, c.id]);
  });

  it('opens a store made before the devices table had its list and camera columns, and fills them', async () => {
    const oldDevices =
      'CREATE TABLE devices (site TEXT NOT NULL, device TEXT NOT NULL, state TEXT, reason TEXT, boot_id TEXT, version TEXT, profile TEXT, status_ms BIGINT, last_event_ms BIGINT, last_seq BIGINT, health TEXT, geo TEXT, PRIMARY KEY (site, device))';
    let url: string;
    if (pgServer) {
      const admin = new pg.Client({ connectionString: pgServer.url });
      await admin.connect();
      await admin.query('CREATE DATABASE before_columns');
      await admin.end();
      url = pgServer.url.replace(/\/[^/]*$/, '/before_columns');
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(oldDevices.replace(/ TEXT,/g, ' text,').replace('health text, geo text', 'health jsonb, geo jsonb'));
      await c.end();
    } else {
      const file = join(mkdtempSync(join(tmpdir(), 'vigia-before-')), 'c.db');
      const db = new Database(file);
      db.exec(oldDevices);
      db.close();
      url = `sqlite:${file}`;
    }
    const old = await openStore(url);
    try {
      await old.addEvent(event('hotlist.updated', 'telemetry', { source: 'delta', version: 'd'.repeat(64), size: 3 }, { device: 'gantry-old' }), Date.now());
      expect((await old.devices()).find((x) => x.device === 'gantry-old')?.hotlist).toMatchObject({ version: 'd'.repeat(64), size: 3 });
    } finally {
      await old.close();
    }
  });

  it('finds plate reads and hits together by plate, hash, device and time', async () => {
    const hash = 'c'.repeat(64);
    await store.addEvent(event('plate.read', 'read', { camera: 'lane-1', plate_hash: hash, hash: 'hmac-sha256', confidence: 0.9 }), Date.now());
    await store.addEvent(event('plate.hit', 'alarm', { camera: 'lane-1', plate: 'KXTR45', confidence: 0.9 }), Date.now());
    await store.addEvent(event('plate.read', 'read', { camera: 'lane-1', plate: 'KXTR45', confidence: 0.9 }), Date.now());
    const types = ['plate.read', 'plate.hit'];
    expect((await store.events({ types, plate: 'kxtr45' })).map((s) => s.event.type).sort()).toEqual(['plate.hit', 'plate.read']);
    expect(await store.events({ types, plateHash: hash })).toHaveLength(1);
    expect(await store.events({ types, device: 'gantry-01' })).toHaveLength(3);
    expect(await store.events({ types, device: 'gantry-01', from: Date.UTC(2027, 0, 1) })).toHaveLength(0);
  });
});
