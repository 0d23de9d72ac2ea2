import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plateHash } from '../src/anpr/privacy.js';
import type { VigiaEvent } from '../src/core/event.js';
import { CommandClient } from './helpers/commander.js';
import { DaemonProcess, writeDeviceConfig } from './helpers/daemon.js';
import { startMosquitto, type Broker } from './helpers/mosquitto.js';
import { chileanPlate, scene } from './helpers/plates.js';
import { Subscriber } from './helpers/subscriber.js';

// The whole path on real parts: a JPEG lands in a camera's upload directory, the daemon reads it in
// its worker thread with the bundled models, matches the hotlist and the event reaches a real
// Mosquitto; the hotlist then changes through a signed delta command.

const HASH_KEY = 'plate-hash-key-for-tests-0123456789';
const base = 'vigia/test-site/gantry-01';

type AnprStatus = { state: string; hits: number; reads: number; rejected_frames: Record<string, number>; hotlist: { size: number; version: string } };

describe('ANPR in the daemon (real models, real Mosquitto)', () => {
  let broker: Broker;
  let sub: Subscriber;
  let daemon: DaemonProcess;
  let commander: CommandClient;
  let upload: string;
  let dataDir: string;
  let hotlistKey: KeyObject;
  let n = 0;

  /** Drops a picture the way an FTP upload does: written under a temporary name, then renamed. */
  const drop = (jpeg: Buffer) => {
    const name = `img-${String(++n).padStart(4, '0')}`;
    writeFileSync(join(upload, `${name}.tmp`), jpeg);
    renameSync(join(upload, `${name}.tmp`), join(upload, `${name}.jpg`));
  };
  const events = (type: string) => sub.events.filter((e) => e.event.type === type).map((e) => e.event as VigiaEvent<Record<string, any>>);
  const status = async () => (await daemon.request<{ anpr: AnprStatus }>('status')).anpr;

  beforeAll(async () => {
    broker = await startMosquitto();
    sub = new Subscriber(broker.url);
    await sub.connect();
    const keys = generateKeyPairSync('ed25519');
    hotlistKey = keys.privateKey;
    const dir = mkdtempSync(join(tmpdir(), 'vigia-anpr-'));
    upload = join(dir, 'upload');
    dataDir = join(dir, 'data');
    mkdirSync(upload, { recursive: true });
    const hotlist = join(dir, 'hotlist.csv');
    writeFileSync(
      hotlist,
      'plate,reason,source,added,expires\nBBCL12,encargo por robo,Carabineros,2026-11-01,\nXYZW99,encargo por robo,PDI,2026-10-01,2026-10-02\n',
    );
    const cfg = writeDeviceConfig(
      broker.url,
      {
        device: { id: 'gantry-01', site: 'test-site', profile: 'gantry' },
        anpr: {
          enabled: true,
          workers: 1,
          cameras: [{ id: 'lane-1', kind: 'directory', dir: upload }],
          tracking: { max_gap: '800ms', dedup_window: '0s' },
          hotlist: { file: hotlist, public_key: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
          privacy: { reads: 'hashed', hash_key: HASH_KEY },
        },
      },
      dir,
    );

    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start();
    commander = new CommandClient(broker.url, 'test-site', 'gantry-01');
    await commander.connect();
    await sub.waitFor(() => events('hotlist.updated').length > 0, 30_000, 'hotlist loaded');
  }, 60_000);

  afterAll(async () => {
    commander?.close();
    await daemon?.kill('SIGTERM');
    await sub?.close();
    await broker?.stop();
  });

  it('raises plate.hit at alarm priority with the hotlist entry and JPEG evidence when a listed plate passes', async () => {
    drop(await scene(chileanPlate(['BB', 'CL', '12'], { x: 480, y: 430, w: 320, h: 106 })));
    await sub.waitFor(() => events('plate.hit').length > 0, 60_000, 'plate.hit');
    const received = sub.events.find((e) => e.event.type === 'plate.hit')!;
    expect(received.topic).toBe(`${base}/events/alarm/plate.hit`);
    const hit = received.event as VigiaEvent<Record<string, any>>;
    expect(hit.priority).toBe('alarm');
    expect(hit.payload).toMatchObject({
      camera: 'lane-1',
      plate: 'BBCL12',
      display: 'BB·CL·12',
      trigger: 'frame',
      match: { kind: 'exact', distance: 0 },
      entry: { plate: 'BBCL12', reason: 'encargo por robo', source: 'Carabineros', added: '2026-11-01', expires: null },
    });
    expect(hit.payload.confidence).toBeGreaterThan(0.6);
    const [x, y, w, h] = hit.payload.box as number[];
    expect(x! + w! / 2).toBeGreaterThan(480);
    expect(x! + w! / 2).toBeLessThan(800);
    expect(y! + h! / 2).toBeGreaterThan(430);
    expect(y! + h! / 2).toBeLessThan(536);

    const crop = await sharp(Buffer.from(hit.payload.evidence.crop.data, 'base64')).metadata();
    const frame = await sharp(Buffer.from(hit.payload.evidence.frame.data, 'base64')).metadata();
    expect(crop.format).toBe('jpeg');
    expect(crop.width).toBeGreaterThan(200);
    expect(frame).toMatchObject({ format: 'jpeg', width: 640, height: 360 });
    const files = hit.payload.evidence.files as { crop: string; frame: string };
    expect(existsSync(join(dataDir, 'evidence', files.crop))).toBe(true);
    expect(existsSync(join(dataDir, 'evidence', files.frame))).toBe(true);

    // The voted read of a wanted car is sent in full, whatever the privacy setting.
    await sub.waitFor(() => events('plate.read').some((e) => e.payload.plate === 'BBCL12'), 15_000, 'voted read of the hit');
    expect(events('plate.read').find((e) => e.payload.plate === 'BBCL12')!.payload).toMatchObject({ hit: true, camera: 'lane-1', frames: 1 });
    expect(events('plate.hit')).toHaveLength(1);
  }, 90_000);

  it('sends other plates only as a keyed hash, and never an expired entry as a hit', async () => {
    drop(await scene(chileanPlate(['FK', 'ZT', '41'], { x: 460, y: 420, w: 330, h: 110 })));
    drop(await scene(chileanPlate(['XY', 'ZW', '99'], { x: 200, y: 400, w: 330, h: 110 })));
    const wanted = plateHash(HASH_KEY, 'FKZT41');
    await sub.waitFor(() => events('plate.read').some((e) => e.payload.plate_hash === wanted), 60_000, 'hashed read');
    const read = events('plate.read').find((e) => e.payload.plate_hash === wanted)!;
    expect(read.priority).toBe('read');
    expect(read.payload).toMatchObject({ camera: 'lane-1', hash: 'hmac-sha256', hit: false });
    expect(read.payload).not.toHaveProperty('plate');
    expect(JSON.stringify(read)).not.toContain('FKZT41');
    await sub.waitFor(() => events('plate.read').some((e) => e.payload.plate_hash === plateHash(HASH_KEY, 'XYZW99')), 30_000, 'expired entry read');
    expect(events('plate.hit').map((e) => e.payload.plate)).toEqual(['BBCL12']);
  }, 90_000);

  it('rejects and counts a corrupt picture without stopping', async () => {
    const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(5000, 0x5a), Buffer.from([0xff, 0xd9])]);
    const before = await status();
    drop(garbage);
    const deadline = Date.now() + 20_000;
    let now = await status();
    while (Object.values(now.rejected_frames).reduce((a, b) => a + b, 0) === Object.values(before.rejected_frames).reduce((a, b) => a + b, 0)) {
      if (Date.now() > deadline) throw new Error('corrupt frame not counted');
      await new Promise((r) => setTimeout(r, 100));
      now = await status();
    }
    expect(now.state).toBe('running');
  }, 30_000);

  it('takes a signed hotlist delta as a command, refuses a forged one, and hits on the new entry', async () => {
    const before = await status();
    const delta = JSON.stringify({
      base_version: before.hotlist.version,
      add: [{ plate: 'FKZT41', reason: 'encargo por robo', source: 'Carabineros', added: '2026-11-30' }],
      serial: 1,
      issued: new Date().toISOString(),
      scope: ['test-site'],
    });
    const forged = await commander.call('hotlist.delta', {
      delta,
      signature: sign(null, Buffer.from(delta), generateKeyPairSync('ed25519').privateKey).toString('base64'),
    });
    expect(forged).toMatchObject({ ok: false, error: { code: 'hotlist_signature' } });
    await sub.waitFor(() => events('hotlist.rejected').some((e) => e.payload.reason === 'signature'), 10_000, 'hotlist.rejected');

    const ok = await commander.call('hotlist.delta', { delta, signature: sign(null, Buffer.from(delta), hotlistKey).toString('base64') });
    expect(ok).toMatchObject({ ok: true, result: { size: 3 } });
    expect((await status()).hotlist.version).toBe(ok.result!.version);

    drop(await scene(chileanPlate(['FK', 'ZT', '41'], { x: 470, y: 425, w: 330, h: 110 })));
    await sub.waitFor(() => events('plate.hit').some((e) => e.payload.entry.plate === 'FKZT41'), 60_000, 'hit on the delta entry');
    expect(readdirSync(join(dataDir, 'evidence')).filter((f) => f.includes('FKZT41'))).toHaveLength(2);
  }, 90_000);
});
