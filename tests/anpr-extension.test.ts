import { createHash, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReadOptions, ReadResult } from '../src/anpr/engine.js';
import { AnprExtension } from '../src/anpr/extension.js';
import { charsFromText } from '../src/anpr/grammar.js';
import { ImageRejected } from '../src/anpr/image.js';
import { plateHash } from '../src/anpr/privacy.js';
import { AnprBusyError, type PoolStats } from '../src/anpr/worker.js';
import { loadConfig } from '../src/config/index.js';
import { Controller } from '../src/controller.js';
import { EXTENSIONS } from '../src/extensions.js';
import type { VigiaEvent } from '../src/core/event.js';
import { createLogger } from '../src/core/logger.js';
import { BaseFrameSource } from '../src/drivers/camera/source.js';
import { stringify } from 'yaml';
import { makeTlsFiles } from './helpers/tls.js';

// The extension's own logic (gating, ROI, thresholds, voting, hits, privacy, camera health) with the
// hardware boundary replaced: a camera whose frames the test pushes, and a plate reader whose
// answers the test scripts. Models and the real sources are covered by their own tests and by
// anpr-daemon.test.ts.

class TestCamera extends BaseFrameSource {
  #gen = -1;
  constructor(id: string) {
    super(id);
  }
  protected open(gen: number): void {
    this.#gen = gen;
    this.markRunning(gen);
  }
  protected async close(): Promise<void> {}
  push(jpeg: Buffer): void {
    this.emitFrame(this.#gen, jpeg);
  }
  breakDown(): void {
    this.fail(this.#gen, new Error('connection refused'));
  }
}

type Reading = { text: string; p: number; box?: [number, number, number, number] };

class ScriptedReader {
  answers: Array<Reading[] | Error> = [];
  calls = 0;
  /** What the extension asked for with each frame (motion region, previous readings). */
  options: ReadOptions[] = [];
  async read(_image: Uint8Array, opts: ReadOptions = {}): Promise<ReadResult> {
    this.calls++;
    this.options.push(opts);
    const next = this.answers.shift() ?? [];
    if (next instanceof Error) throw next;
    return {
      width: 1280,
      height: 720,
      timings: { decode: 1, detect: 1, recognise: 1, total: 3, sessionRun: 2, reused: 0, detectedShare: 1 },
      plates: next.map((r) => ({ text: r.text, confidence: r.p, box: r.box ?? [500, 400, 300, 100], detectorScore: 0.9, chars: charsFromText(r.text, r.p) })),
    };
  }
  async ready(): Promise<void> {}
  stats(): PoolStats {
    return { workers: 1, ready: 1, busy: 0, queued: 0, maxQueue: 1, completed: this.calls, failed: 0, rejectedBusy: 0, restarts: 0, meanLatencyMs: 0 };
  }
  async close(): Promise<void> {}
}

/** Log lines of warning level and up from the daemons these tests start. */
const logLines: string[] = [];
const frame = (shade: number, rect = false) =>
  sharp({ create: { width: 320, height: 180, channels: 3, background: { r: shade, g: shade, b: shade } } })
    .composite(rect ? [{ input: { create: { width: 120, height: 90, channels: 3, background: '#ffffff' } }, left: 100, top: 60 }] : [])
    .jpeg()
    .toBuffer();

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

async function start(anpr: Record<string, unknown>, cameras: Array<Record<string, unknown>>) {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-anpr-ext-'));
  const hotlist = join(dir, 'hotlist.csv');
  writeFileSync(hotlist, 'plate,reason,source,added,expires\nBBCL12,encargo por robo,Carabineros,2026-11-01,\n');
  const file = join(dir, 'vigia.yaml');
  writeFileSync(
    file,
    stringify({
      device: { id: 'gantry-9', site: 'test', profile: 'gantry' },
      paths: { data_dir: join(dir, 'data'), runtime_dir: join(dir, 'run') },
      clock: { sync_source: 'assume-synced' },
      mqtt: { url: 'mqtt://127.0.0.1:1', reconnect: { min_delay: '10s', max_delay: '10s' } },
      // Reads in full unless a test says otherwise: most tests look at what was read.
      anpr: { cameras, hotlist: { file: hotlist }, tracking: { max_gap: '200ms' }, privacy: { reads: 'full' }, ...anpr },
    }),
  );
  const config = loadConfig(file);
  const reader = new ScriptedReader();
  const cams = new Map<string, TestCamera>();
  const controller = new Controller(config, {
    // Warnings and up are kept: a test checks what a hit writes to the journal.
    logger: createLogger('warn', { write: (line: string) => void logLines.push(line) }),
    // The listed ANPR extension replaced by one reading through the script and the test cameras.
    extensions: EXTENSIONS.filter((e) => e.name !== 'anpr'),
    extra: [
      {
        name: 'anpr',
        create: (ctx) =>
          new AnprExtension(ctx, {
            createPool: () => reader,
            createSource: (cam) => {
              const c = new TestCamera(cam.id);
              cams.set(cam.id, c);
              return c;
            },
          }),
      },
    ],
  });
  const events: VigiaEvent<Record<string, any>>[] = [];
  controller.bus.on('event.accepted', (e) => void events.push(e as VigiaEvent<Record<string, any>>), 'test');
  await controller.start();
  stops.push(() => controller.stop());
  const anprStatus = () => (controller.status() as unknown as { anpr: ReturnType<AnprExtension['status']> }).anpr;
  return { controller, reader, cams, events, anprStatus, of: (type: string) => events.filter((e) => e.type === type) };
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const directoryCam = { id: 'lane-1', kind: 'directory', dir: '/nonexistent' };

describe('ANPR extension', () => {
  it('raises a hit from one confident frame at once, with evidence, and reports the voted read after the car has passed', async () => {
    const t = await start({}, [directoryCam]);
    t.reader.answers.push([{ text: 'BBCL12', p: 0.95 }]);
    t.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => t.of('plate.hit').length === 1, 'hit');
    const hit = t.of('plate.hit')[0]!;
    expect(hit.priority).toBe('alarm');
    expect(hit.payload).toMatchObject({ trigger: 'frame', plate: 'BBCL12', frames: 1, match: { kind: 'exact' }, entry: { plate: 'BBCL12' } });
    expect(hit.payload.evidence.crop.content_type).toBe('image/jpeg');
    await until(() => t.of('plate.read').length === 1, 'voted read');
    expect(t.of('plate.read')[0]!.payload).toMatchObject({ plate: 'BBCL12', hit: true, frames: 1 });
    expect(t.of('plate.hit')).toHaveLength(1); // the vote matched too, but within the de-duplication window
  });

  it('reports every plate of a frame: two cars in two lanes are two reads, the stolen one a hit; a plate read with its frame is one', async () => {
    // generic: no format to throw the plate-with-its-frame reading out; the ranking has to.
    const t = await start({ grammar: 'generic' }, [directoryCam]);
    t.reader.answers.push([
      { text: 'HJRS37', p: 0.95, box: [900, 420, 220, 60] },
      { text: 'BBCL12', p: 0.93, box: [200, 430, 220, 60] },
      // The left plate again, with its frame's dealer name: the same place, not a third car.
      { text: 'AUTOBBCL12', p: 0.99, box: [190, 380, 240, 110] },
    ]);
    t.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => t.of('plate.read').length === 2, 'two voted reads');
    expect(
      t
        .of('plate.read')
        .map((e) => e.payload.plate)
        .sort(),
    ).toEqual(['BBCL12', 'HJRS37']);
    expect(t.of('plate.hit').map((e) => e.payload.plate)).toEqual(['BBCL12']);
    expect(t.anprStatus().cameras['lane-1']).toMatchObject({ plates: 2 });
  });

  it('raises a hit from the vote when no single frame was confident enough, and de-duplicates the next passage', async () => {
    const t = await start({ hits: { min_confidence: 0.6 }, tracking: { max_gap: '200ms', dedup_window: '0s' } }, [directoryCam]);
    const cam = t.cams.get('lane-1')!;
    for (let i = 0; i < 3; i++) {
      t.reader.answers.push([{ text: 'BBCL12', p: 0.74 }]); // ~0.55 after the grammar: a read, not a hit
      cam.push(await frame(90 + i, true));
      await until(() => t.reader.calls === i + 1, 'frame read');
    }
    await until(() => t.of('plate.hit').length === 1, 'voted hit');
    expect(t.of('plate.hit')[0]!.payload).toMatchObject({ trigger: 'vote', frames: 3, plate: 'BBCL12' });
    expect(t.of('plate.hit')[0]!.payload.evidence.frame.width).toBe(320);

    t.reader.answers.push([{ text: 'BBCL12', p: 0.95 }]);
    cam.push(await frame(120, true));
    await until(() => t.of('plate.read').length === 2, 'second passage');
    expect(t.of('plate.hit')).toHaveLength(1);
  });

  it('matches a read differing by a confusable character, and says so', async () => {
    const t = await start({ grammar: 'generic' }, [directoryCam]);
    logLines.length = 0;
    t.reader.answers.push([{ text: 'B8CL12', p: 0.97 }]);
    t.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => t.of('plate.hit').length === 1, 'hit');
    expect(t.of('plate.hit')[0]!.payload).toMatchObject({ plate: 'B8CL12', match: { kind: 'confusable', distance: 1 }, entry: { plate: 'BBCL12' } });
    // The journal names the listed plate, never the read: a confusable read may be an innocent car's plate.
    const hitLine = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'hotlist hit');
    expect(hitLine).toMatchObject({ listed: 'BBCL12', kind: 'confusable', distance: 1 });
    expect(logLines.join('\n')).not.toContain('B8CL12');
  });

  it('reads foreign plates beside Chilean ones, tags them with their country, and matches them exactly only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-anpr-foreign-'));
    const list = join(dir, 'hotlist.csv');
    writeFileSync(list, 'plate,reason,source,added,expires\nAB1234,robo,Carabineros,2026-11-01,\nAB123CD,robo,PDI,2026-11-01,\nDB1234,robo,PDI,2026-11-01,\n');
    const t = await start({ secondary_grammars: ['ar', 'bo', 'pe', 'br'], hotlist: { file: list } }, [directoryCam]);
    const cam = t.cams.get('lane-1')!;
    // Read as the Peruvian A81-234: only a confusable of the listed Chilean AB·1234, so no hit.
    t.reader.answers.push([{ text: 'A81234', p: 0.97 }]);
    cam.push(await frame(90, true));
    await until(() => t.of('plate.read').length === 1, 'foreign read');
    expect(t.of('plate.read')[0]!.payload).toMatchObject({ plate: 'A81234', display: 'A81-234', country: 'pe', format: 'current', hit: false });
    expect(t.of('plate.hit')).toHaveLength(0);
    // An Argentine plate listed as such is an exact match: a hit, tagged ar.
    t.reader.answers.push([{ text: 'AB123CD', p: 0.97 }]);
    cam.push(await frame(120, true));
    await until(() => t.of('plate.read').length === 2, 'Argentine read');
    expect(t.of('plate.hit')).toHaveLength(1);
    expect(t.of('plate.hit')[0]!.payload).toMatchObject({
      plate: 'AB123CD',
      display: 'AB 123 CD',
      country: 'ar',
      format: 'mercosur',
      match: { kind: 'exact' },
    });
    expect(t.of('plate.read')[1]!.payload).toMatchObject({ plate: 'AB123CD', country: 'ar', hit: true });
    // A Chilean read keeps its confusable match (O/D).
    t.reader.answers.push([{ text: 'OB1234', p: 0.97 }]);
    cam.push(await frame(150, true));
    await until(() => t.of('plate.hit').length === 2, 'Chilean confusable hit');
    expect(t.of('plate.hit')[1]!.payload).toMatchObject({
      plate: 'OB1234',
      display: 'OB·1234',
      country: 'cl',
      match: { kind: 'confusable' },
      entry: { plate: 'DB1234' },
    });
  });

  it('ignores plates outside the camera region and readings below the confidence floor', async () => {
    const roi = [
      [0, 0],
      [0.5, 0],
      [0.5, 1],
      [0, 1],
    ];
    const t = await start({}, [{ ...directoryCam, roi }]);
    const cam = t.cams.get('lane-1')!;
    t.reader.answers.push([{ text: 'BBCL12', p: 0.95, box: [900, 400, 200, 60] }]); // right half
    cam.push(await frame(90, true));
    t.reader.answers.push([{ text: 'FKZT41', p: 0.6 }]); // 0.36 after the grammar
    await until(() => t.reader.calls === 1, 'first read');
    cam.push(await frame(91, true));
    await until(() => t.reader.calls === 2, 'second read');
    await new Promise((r) => setTimeout(r, 400));
    expect(t.of('plate.hit')).toEqual([]);
    expect(t.of('plate.read')).toEqual([]);
    expect(t.anprStatus().cameras['lane-1']).toMatchObject({ read: 2, plates: 0 });
  });

  it('reads only frames with motion on a gated camera', async () => {
    const t = await start({ motion: { cooldown: '0s' } }, [{ id: 'street', kind: 'stream', url: 'rtsp://camera/stream' }]);
    const cam = t.cams.get('street')!;
    const still = await frame(80);
    for (let i = 0; i < 5; i++) {
      cam.push(still);
      await until(() => t.anprStatus().cameras.street?.idle === i + 1, `idle frame ${i}`);
    }
    expect(t.reader.calls).toBe(0);
    cam.push(await frame(80, true));
    await until(() => t.reader.calls === 1, 'the moving frame read');
  });

  it("hands the reader the motion region and the camera's previous readings (anpr.saving), and neither when told not to", async () => {
    const t = await start({ motion: { cooldown: '0s' } }, [{ id: 'street', kind: 'stream', url: 'rtsp://camera/stream' }]);
    const cam = t.cams.get('street')!;
    cam.push(await frame(80));
    await until(() => t.anprStatus().cameras.street?.idle === 1, 'the background learnt');
    t.reader.answers.push([{ text: 'BBCL12', p: 0.95 }], [{ text: 'BBCL12', p: 0.95 }]);
    cam.push(await frame(80, true));
    await until(() => t.reader.calls === 1, 'the moving frame read');
    // The white rectangle (100..220 x 60..150 of 320 x 180), with the margin.
    const [x, y, w, h] = t.reader.options[0]!.region!;
    expect(x).toBeCloseTo(100 / 320 - 0.05, 1);
    expect(y).toBeCloseTo(60 / 180 - 0.05, 1);
    expect(x + w).toBeCloseTo(220 / 320 + 0.05, 1);
    expect(y + h).toBeCloseTo(150 / 180 + 0.05, 1);
    expect(t.reader.options[0]!.previous).toBeUndefined();
    cam.push(await frame(200, true));
    await until(() => t.reader.calls === 2, 'the next frame read');
    expect(t.reader.options[1]!.previous!.map((p) => p.text)).toEqual(['BBCL12']);
    expect(t.anprStatus().cameras.street).toMatchObject({ read: 2, reused: 0, detected_share: 1 });

    const off = await start({ motion: { cooldown: '0s' }, saving: { motion_region: false, reuse_unchanged: false } }, [
      { id: 'street', kind: 'stream', url: 'rtsp://camera/stream' },
    ]);
    const cam2 = off.cams.get('street')!;
    cam2.push(await frame(80));
    await until(() => off.anprStatus().cameras.street?.idle === 1, 'the background learnt');
    off.reader.answers.push([{ text: 'BBCL12', p: 0.95 }]);
    cam2.push(await frame(80, true));
    cam2.push(await frame(200, true));
    await until(() => off.reader.calls === 2, 'both frames read');
    expect(off.reader.options).toEqual([{}, {}]);
  });

  it('by default sends nothing about plates that are not on the list (data protection by default, law 21.719)', async () => {
    const t = await start({ privacy: {} }, [directoryCam]);
    t.reader.answers.push([{ text: 'FKZT41', p: 0.95 }]);
    t.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => t.anprStatus().reads_not_sent === 1, 'suppressed read');
    expect(t.of('plate.read')).toHaveLength(0);
  });

  it('sends reads of plates not on the list only as a keyed hash, or not at all', async () => {
    const key = 'hash-key-for-the-extension-test';
    const hashed = await start({ privacy: { reads: 'hashed', hash_key: key } }, [directoryCam]);
    hashed.reader.answers.push([{ text: 'FKZT41', p: 0.95 }]);
    hashed.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => hashed.of('plate.read').length === 1, 'hashed read');
    expect(hashed.of('plate.read')[0]!.payload).toMatchObject({ plate_hash: plateHash(key, 'FKZT41'), hash: 'hmac-sha256' });
    expect(JSON.stringify(hashed.of('plate.read'))).not.toContain('FKZT41');

    const off = await start({ privacy: { reads: 'off' } }, [directoryCam]);
    off.reader.answers.push([{ text: 'FKZT41', p: 0.95 }], [{ text: 'BBCL12', p: 0.95, box: [100, 100, 300, 100] }]);
    off.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => off.anprStatus().reads_not_sent === 1, 'suppressed read');
    off.cams.get('lane-1')!.push(await frame(91, true));
    await until(() => off.of('plate.read').length === 1, 'the hit read, sent anyway');
    expect(off.of('plate.read')[0]!.payload).toMatchObject({ plate: 'BBCL12', hit: true });
  });

  it('counts rejected and dropped frames, and reports a camera that goes away and comes back', async () => {
    const t = await start({}, [directoryCam]);
    const cam = t.cams.get('lane-1')!;
    t.reader.answers.push(new ImageRejected('corrupt', 'bad JPEG'), new AnprBusyError());
    cam.push(await frame(90));
    await until(() => t.reader.calls === 1, 'first');
    cam.push(await frame(91));
    await until(() => t.anprStatus().cameras['lane-1']?.busy === 1, 'busy');
    expect(t.anprStatus().rejected_frames).toEqual({ corrupt: 1 });

    cam.breakDown();
    await until(() => t.of('camera.offline').length === 1, 'offline');
    expect(t.of('camera.offline')[0]!.payload).toMatchObject({ camera: 'lane-1', error: 'connection refused' });
    expect(t.of('camera.offline')[0]!.priority).toBe('hit');
    await until(() => t.of('camera.online').length === 1, 'back online', 5000);
  });

  it('fetches the signed hotlist from its URL, refreshes it, and keeps the last good list when a download is altered', async () => {
    const tls = makeTlsFiles();
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    let body = Buffer.from('plate,reason,source,added,expires\nHJRS37,encargo por robo,PDI,2026-11-20,\n');
    let header = signedHeader(body, 1);
    const url = await serveSignedList(tls, () => ({ body, header }), privateKey);
    const t = await start({ hotlist: { url, ca: tls.caFile, refresh: '200ms', public_key: publicKey.export({ type: 'spki', format: 'pem' }).toString() } }, [
      directoryCam,
    ]);
    await until(() => t.of('hotlist.updated').some((e) => e.payload.source === url), 'list from the URL');
    const good = t.anprStatus().hotlist!.version;
    expect(t.anprStatus().hotlist).toMatchObject({ size: 1, source: url, serial: 1, stale: false });

    body = Buffer.from(body.toString().replace('HJRS37', 'HJRS38')); // altered in transit: digest no longer matches
    await until(() => t.of('hotlist.rejected').length === 1, 'altered list refused');
    expect(t.of('hotlist.rejected')[0]!.payload).toMatchObject({ source: url, reason: 'digest', kept_version: good });
    await new Promise((r) => setTimeout(r, 600)); // more refreshes of the same bad list: not news again
    expect(t.of('hotlist.rejected')).toHaveLength(1);
    expect(t.anprStatus().hotlist!.version).toBe(good);

    header = signedHeader(body, 2); // the publisher signs the new list
    await until(() => t.anprStatus().hotlist!.version !== good, 'new list installed');
    t.reader.answers.push([{ text: 'HJRS38', p: 0.95 }]);
    t.cams.get('lane-1')!.push(await frame(90, true));
    await until(() => t.of('plate.hit').length === 1, 'hit on the refreshed list');
    expect(t.of('plate.hit')[0]!.payload.entry).toMatchObject({ plate: 'HJRS38', source: 'PDI' });
  });

  /** An HTTPS hotlist server: the list, its signed header and the signature, as `current()` has them now. */
  async function serveSignedList(
    tls: ReturnType<typeof makeTlsFiles>,
    current: () => { body: Buffer; header: Buffer },
    privateKey: KeyObject,
    onList?: () => void,
  ) {
    const server = createServer({ cert: readFileSync(tls.serverCert), key: readFileSync(tls.serverKey) }, (req, res) => {
      if (req.url === '/list.csv') {
        onList?.();
        return res.end(current().body);
      }
      const { header } = current();
      if (req.url === '/list.csv.header') return res.end(header);
      if (req.url === '/list.csv.sig') return res.end(sign(null, header, privateKey).toString('base64'));
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise((r) => server.close(() => r())));
    return `https://localhost:${(server.address() as { port: number }).port}/list.csv`;
  }

  it('raises hotlist.stale once for a list older than max_age, however often it is fetched again', async () => {
    const tls = makeTlsFiles();
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const body = Buffer.from('plate,reason,source,added,expires\nHJRS37,encargo por robo,PDI,2026-11-20,\n');
    const header = signedHeader(body, 1, new Date(Date.now() - 48 * 3600_000));
    let listRequests = 0;
    const url = await serveSignedList(
      tls,
      () => ({ body, header }),
      privateKey,
      () => listRequests++,
    );
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const t = await start({ hotlist: { url, ca: tls.caFile, refresh: '100ms', max_age: '24h', public_key: publicPem } }, [directoryCam]);
    await until(() => t.of('hotlist.stale').length === 1, 'stale list reported');
    const stale = t.of('hotlist.stale')[0]!;
    expect(stale.priority).toBe('hit');
    expect(stale.payload).toMatchObject({ version: t.anprStatus().hotlist!.version, serial: 1 });
    expect(stale.payload.age_s).toBeGreaterThanOrEqual(48 * 3600);
    expect(t.anprStatus().hotlist).toMatchObject({ stale: true, serial: 1 });
    const seen = listRequests;
    await until(() => listRequests >= seen + 3, 'more refreshes');
    expect(t.of('hotlist.stale')).toHaveLength(1);
  });
});

/** A list's signed header for site `test` (the sites of these tests), issued now unless told. */
function signedHeader(list: Buffer, serial: number, issued = new Date()): Buffer {
  return Buffer.from(JSON.stringify({ serial, issued: issued.toISOString(), scope: ['test'], sha256: createHash('sha256').update(list).digest('hex') }));
}
