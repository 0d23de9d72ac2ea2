import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cameraSchema } from '../src/config/schema.js';
import { DirectorySource, readCandidate } from '../src/drivers/camera/directory.js';
import { createFrameSource } from '../src/drivers/camera/index.js';
import { detectInputKind, displayUrl, FfmpegSource, ffmpegArgs, ffmpegInputList, keepsUrlPrivate } from '../src/drivers/camera/ffmpeg.js';
import { DigestSession, chooseChallenge, parseWwwAuthenticate } from '../src/drivers/camera/http-auth.js';
import { HttpSnapshotSource } from '../src/drivers/camera/http-snapshot.js';
import { isJpeg, JpegSplitter } from '../src/drivers/camera/jpeg.js';
import { backoffDelay } from '../src/core/backoff.js';
import { type Frame, type FrameSource, type FrameSourceState, LatestFrameSlot } from '../src/drivers/camera/source.js';
import { digestCamera, type DigestCameraLog } from './helpers/digest-camera.js';
import { mulberry32 as rng } from './helpers/random.js';

const tmp = mkdtempSync(join(tmpdir(), 'vigia-camera-'));
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Starts a source and collects what it reports; stopped after the test. */
function watch<S extends FrameSource>(source: S) {
  const frames: Frame[] = [];
  const states: FrameSourceState[] = [];
  const errors: string[] = [];
  source.on('frame', (f) => frames.push(f));
  source.on('state', (s) => states.push(s));
  source.on('error', (e) => errors.push(e.message));
  cleanups.push(() => source.stop());
  source.start();
  return { source, frames, states, errors };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function jpeg(width: number, height: number, seed = 1): Promise<Buffer> {
  const px = Buffer.alloc(width * height * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 31 + seed * 97) % 251;
  return sharp(px, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

// ---------------------------------------------------------------------------------------------

describe('JpegSplitter', () => {
  it('recovers every frame whatever the chunk boundaries, despite markers inside segments', async () => {
    const a = await jpeg(64, 48, 1);
    const b = await jpeg(200, 120, 2);
    // An APP1 segment (like an EXIF thumbnail) holding FF D8 and FF D9: a naive splitter cuts here.
    const payload = Buffer.concat([Buffer.from('Exif\0\0'), Buffer.from([0xff, 0xd8, 0xff, 0xd9, 0x00, 0xff, 0xd9]), randomBytes(50)]);
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1, (payload.length + 2) >> 8, (payload.length + 2) & 0xff]), payload]);
    const c = Buffer.concat([a.subarray(0, 2), app1, a.subarray(2)]);
    expect(c.indexOf(Buffer.from([0xff, 0xd9]))).toBeLessThan(c.length - 2);
    const expected = [a, b, c, a];
    const stream = Buffer.concat([Buffer.from('garbage before'), a, b, Buffer.from([0, 0, 0xff, 0x00]), c, a, Buffer.from('tail')]);
    const rand = rng(7);
    for (let round = 0; round < 150; round++) {
      const splitter = new JpegSplitter();
      const out: Buffer[] = [];
      let at = 0;
      while (at < stream.length) {
        const size = round % 3 === 0 ? 1 + Math.floor(rand() * 3) : 1 + Math.floor(rand() * 5000);
        out.push(...splitter.push(stream.subarray(at, at + size)));
        at += size;
      }
      expect(out.length).toBe(expected.length);
      for (const [i, f] of out.entries()) expect(f.equals(expected[i]!)).toBe(true);
      expect(splitter.buffered).toBe(0);
    }
  });

  it('drops frames over the size cap and truncated frames, and keeps going', async () => {
    const small = await jpeg(32, 32, 3);
    const big = await jpeg(400, 300, 4);
    const splitter = new JpegSplitter({ maxFrameBytes: small.length * 2 });
    expect(big.length).toBeGreaterThan(small.length * 2);
    const truncated = small.subarray(0, small.length - 40);
    const stream = Buffer.concat([small, big, truncated, small]);
    const out: Buffer[] = [];
    for (let at = 0; at < stream.length; at += 1000) {
      out.push(...splitter.push(stream.subarray(at, at + 1000)));
      expect(splitter.buffered).toBeLessThanOrEqual(small.length * 2 + 1000);
    }
    expect(out.map((f) => f.equals(small))).toEqual([true, true]);
    expect(splitter.stats()).toMatchObject({ frames: 2, oversize: 1, corrupt: 1 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('LatestFrameSlot', () => {
  it('keeps only the newest frame for a consumer that is not waiting', () => {
    const slot = new LatestFrameSlot<number>();
    for (let i = 1; i <= 100; i++) slot.put(i);
    expect(slot.size).toBe(1);
    expect(slot.take()).toBe(100);
    expect(slot.take()).toBeUndefined();
    expect(slot.stats()).toMatchObject({ offered: 100, delivered: 1, dropped: 99, pending: 0 });
  });

  it('gives a slow consumer only newer frames, counts the dropped ones, and lets them be freed', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const slot = new LatestFrameSlot<{ seq: number; data: Buffer }>();
    const refs: Array<WeakRef<object>> = [];
    const got: number[] = [];
    const consumer = (async () => {
      for await (const frame of slot) {
        got.push(frame.seq);
        await sleep(25); // inference is slower than the camera
      }
    })();
    let maxHeld = 0;
    for (let seq = 1; seq <= 60; seq++) {
      const frame = { seq, data: Buffer.alloc(256 * 1024, seq) };
      refs.push(new WeakRef(frame));
      slot.put(frame);
      maxHeld = Math.max(maxHeld, slot.size);
      await sleep(3);
    }
    await sleep(40);
    slot.close();
    await consumer;
    const { offered, delivered, dropped } = slot.stats();
    expect(offered).toBe(60);
    expect(delivered).toBe(got.length);
    expect(delivered + dropped).toBe(60);
    expect(got.length).toBeLessThan(20);
    expect(dropped).toBeGreaterThan(40);
    expect(got).toEqual([...got].sort((x, y) => x - y));
    expect(got.at(-1)).toBe(60); // the newest always reaches the consumer
    expect(maxHeld).toBeLessThanOrEqual(1);
    // Nothing keeps dropped frames alive: the slot's memory does not grow with the backlog.
    await sleep(0);
    gc();
    const retained = refs.filter((r) => r.deref() !== undefined).length;
    expect(retained).toBeLessThanOrEqual(2);
  });

  it('serves concurrent waiters in order and ends iteration on close', async () => {
    const slot = new LatestFrameSlot<string>();
    const first = slot.next();
    const second = slot.next();
    slot.put('a');
    slot.put('b');
    expect(await first).toBe('a');
    expect(await second).toBe('b');
    const third = slot.next();
    slot.close();
    expect(await third).toBeUndefined();
    expect(await slot.next()).toBeUndefined();
    slot.put('c');
    expect(slot.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('FfmpegSource', () => {
  const video = join(tmp, 'plate.mp4');
  let pattern = '';

  beforeAll(() => {
    const filters = execFileSync('ffmpeg', ['-hide_banner', '-filters'], { encoding: 'utf8' });
    const text = "drawtext=text='ABC 1234':fontsize=40:fontcolor=black:box=1:boxcolor=white:x=20+t*60:y=100";
    const sources = [...(/\bdrawtext\b/.test(filters) ? [`color=c=gray:size=320x240:rate=10,${text}`] : []), 'testsrc=size=320x240:rate=10'];
    for (const src of sources) {
      try {
        execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', src, '-t', '2', '-c:v', 'mpeg4', '-q:v', '4', video], {
          stdio: 'pipe',
        });
        pattern = src;
        break;
      } catch {
        /* drawtext without a usable font: fall back to the test pattern */
      }
    }
    expect(pattern).not.toBe('');
  });

  it('builds the command line for each kind of input', () => {
    expect(detectInputKind('rtsp://user:pw@10.0.0.5:554/stream1')).toBe('rtsp');
    expect(detectInputKind('http://cam/mjpg/video.mjpg')).toBe('http');
    expect(detectInputKind('/dev/video0')).toBe('v4l2');
    expect(detectInputKind('/srv/clips/a.mp4')).toBe('file');
    expect(detectInputKind('udp://239.0.0.1:1234')).toBe('other');
    const rtsp = ffmpegArgs({ cameraId: 'c', url: 'rtsp://h/s', fps: 4, maxWidth: 1280, quality: 3 });
    expect(rtsp.join(' ')).toContain('-rtsp_transport tcp -i rtsp://h/s');
    expect(rtsp.join(' ')).toContain("-vf fps=4,scale='min(iw,1280)':-2 -f image2pipe -c:v mjpeg -q:v 3 pipe:1");
    // A camera configured for UDP (relays and cameras without interleaving) gets it; other inputs never get the option.
    const udp = createFrameSource(cameraSchema.parse({ id: 'kit', kind: 'stream', url: 'rtsp://h/s', rtsp_transport: 'udp' })) as FfmpegSource;
    expect(udp.args.join(' ')).toContain('-rtsp_transport udp -i rtsp://h/s');
    const mjpeg = createFrameSource(cameraSchema.parse({ id: 'm', kind: 'stream', url: 'http://cam/video.mjpg', rtsp_transport: 'udp' })) as FfmpegSource;
    expect(mjpeg.args.join(' ')).not.toContain('rtsp_transport');
    const v4l2 = ffmpegArgs({ cameraId: 'c', url: '/dev/video0', fps: 2, v4l2: { inputFormat: 'mjpeg', videoSize: '1920x1080' } });
    expect(v4l2.join(' ')).toContain('-f v4l2 -input_format mjpeg -video_size 1920x1080 -i /dev/video0');
    const file = ffmpegArgs({ cameraId: 'c', url: '/x.mp4', fps: 1, realtime: true, loop: true });
    expect(file.join(' ')).toContain('-re -stream_loop -1 -i /x.mp4');
    expect(() => ffmpegArgs({ cameraId: 'c', url: '/x.mp4', fps: 0 })).toThrow(RangeError);
  });

  it('emits valid JPEG frames at about the configured rate, even past a listener that throws', async () => {
    const source = new FfmpegSource({ cameraId: 'gantry-1', url: video, fps: 5, maxWidth: 160, realtime: true });
    source.on('frame', () => {
      throw new Error('a broken consumer');
    });
    const w = watch(source);
    await until(() => w.frames.length >= 8, 20000, '8 frames');
    const pid = source.pid!;
    expect(pid).toBeGreaterThan(0);
    expect(w.states.slice(0, 2)).toEqual(['starting', 'running']);
    const intervals = w.frames.slice(1).map((f, i) => f.monoMs - w.frames[i]!.monoMs);
    expect(median(intervals)).toBeGreaterThan(120); // 5 fps = 200 ms; 10 fps would be 100
    expect(median(intervals)).toBeLessThan(320);
    expect(w.frames.map((f) => f.seq)).toEqual(w.frames.map((_, i) => i + 1));
    for (const f of w.frames.slice(0, 3)) {
      expect(f.cameraId).toBe('gantry-1');
      expect(isJpeg(f.jpeg)).toBe(true);
      const meta = await sharp(f.jpeg).metadata();
      expect(meta.format).toBe('jpeg');
      expect(meta.width).toBe(160);
      expect(meta.height).toBe(120);
    }
    expect(source.stats()).toMatchObject({ state: 'running', errors: 0, dropped: 0 });
    await source.stop();
    expect(source.stats().state).toBe('stopped');
    expect(source.pid).toBeUndefined();
    expect(alive(pid)).toBe(false);
  }, 8000);

  it('backs off and retries when the input does not exist, with ffmpeg’s reason', async () => {
    const w = watch(new FfmpegSource({ cameraId: 'c', url: join(tmp, 'missing.mp4'), fps: 5, backoff: { minDelayMs: 40, maxDelayMs: 80, jitter: 0 } }));
    await until(() => w.source.stats().reconnects >= 3, 20000, 'three reconnects');
    const stats = w.source.stats();
    expect(stats.frames).toBe(0);
    expect(stats.errors).toBeGreaterThanOrEqual(3);
    expect(stats.lastError).toMatch(/exited with code \d+ .*No such file or directory/);
    expect(w.states).toContain('backoff');
    expect(w.states.filter((s) => s === 'starting').length).toBeGreaterThanOrEqual(3);
    expect(w.errors.length).toBe(stats.errors);
    await w.source.stop();
    expect(w.states.at(-1)).toBe('stopped');
    const errors = w.source.stats().errors;
    await sleep(150);
    expect(w.source.stats().errors).toBe(errors); // no retry after stop
  });

  it('reports a missing ffmpeg binary as an error, not a crash', async () => {
    const w = watch(
      new FfmpegSource({ cameraId: 'c', url: video, fps: 5, ffmpegPath: join(tmp, 'no-such-ffmpeg'), backoff: { minDelayMs: 30, maxDelayMs: 30 } }),
    );
    await until(() => w.source.stats().errors >= 2, 10000, 'two errors');
    expect(w.source.stats().lastError).toMatch(/cannot run .*no-such-ffmpeg: .*ENOENT/);
  });

  it('restarts a looping file, and stop() kills ffmpeg', async () => {
    const w = watch(new FfmpegSource({ cameraId: 'c', url: video, fps: 10, realtime: true, loop: true }));
    await until(() => w.frames.length >= 2, 20000, 'frames');
    const pid = w.source.pid!;
    expect(alive(pid)).toBe(true);
    const t0 = Date.now();
    await w.source.stop();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(alive(pid)).toBe(false);
    const n = w.frames.length;
    await sleep(100);
    expect(w.frames.length).toBe(n);
  });

  it('escalates to SIGKILL when the process ignores SIGTERM', async () => {
    const fake = join(tmp, 'stubborn-ffmpeg');
    writeFileSync(fake, "#!/bin/sh\ntrap '' TERM\nexec sleep 30\n");
    chmodSync(fake, 0o755);
    const w = watch(new FfmpegSource({ cameraId: 'c', url: video, fps: 5, ffmpegPath: fake, killTimeoutMs: 300 }));
    await sleep(200); // let the shell install the trap and exec
    const pid = w.source.pid!;
    expect(alive(pid)).toBe(true);
    const t0 = Date.now();
    await w.source.stop();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(2000);
    expect(alive(pid)).toBe(false);
  });

  it('kills and restarts a process that produces no frames (stall watchdog)', async () => {
    const fake = join(tmp, 'silent-ffmpeg');
    writeFileSync(fake, '#!/bin/sh\nexec sleep 30\n');
    chmodSync(fake, 0o755);
    const w = watch(
      new FfmpegSource({ cameraId: 'c', url: video, fps: 5, ffmpegPath: fake, stallTimeoutMs: 150, backoff: { minDelayMs: 20, maxDelayMs: 20 } }),
    );
    await until(() => w.source.stats().reconnects >= 1, 10000, 'a restart');
    expect(w.source.stats().lastError).toMatch(/no frame for 150 ms; ffmpeg was killed by SIGTERM/);
  });
});

describe('camera credentials and ffmpeg', () => {
  const video = join(tmp, 'creds.mp4');
  beforeAll(() => {
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=320x240:rate=10',
      '-t',
      '2',
      '-c:v',
      'mpeg4',
      video,
    ]);
  });

  /** What every local user can read about a process: its command line. */
  const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  /**
   * The command line of the source's ffmpeg as it runs now. Read until there is one: under load the
   * process read may just have exited (a zombie's cmdline is empty, a reaped one's is gone) and
   * the source be about to start the next.
   */
  const liveCmdline = async (source: { pid: number | undefined }) => {
    let seen = '';
    await until(
      () => {
        try {
          seen = source.pid === undefined ? '' : cmdline(source.pid);
        } catch {
          seen = '';
        }
        return seen !== '';
      },
      20000,
      "ffmpeg's command line",
    );
    return seen;
  };

  it('reads an MJPEG stream behind HTTP Basic with the password off ffmpeg’s command line (/proc/<pid>/cmdline)', async () => {
    const user = 'vigia';
    const password = "p@ss:w/rd 'mjpeg-s3cr3t'";
    const frame = await jpeg(160, 120);
    const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const cam = await cameraServer((req, res, log) => {
      const status = req.headers.authorization === expected ? 200 : 401;
      log.push({ auth: req.headers.authorization, status });
      if (status === 401) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="cam"' });
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'multipart/x-mixed-replace; boundary=frame' });
      const send = () =>
        res.write(Buffer.concat([Buffer.from(`--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${frame.length}\r\n\r\n`), frame, Buffer.from('\r\n')]));
      send();
      const timer = setInterval(send, 100);
      res.on('close', () => clearInterval(timer));
    });
    const url = cam.url.replace('http://', `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@`);
    const w = watch(new FfmpegSource({ cameraId: 'mjpeg', url, fps: 5 }));
    await until(() => w.frames.length >= 2, 20000, 'frames from the authenticated stream');
    expect(cam.log.some((r) => r.status === 200)).toBe(true);
    const seen = await liveCmdline(w.source);
    expect(seen).toMatch(/ffmpeg/);
    for (const leak of ['mjpeg-s3cr3t', encodeURIComponent(password), `${user}:`]) expect(seen).not.toContain(leak);
    expect(w.source.args.join(' ')).not.toContain('s3cr3t');
  });

  it('reads a live RTSP stream with the URL and its password off the command line, and restarts when it ends', async () => {
    // ffmpeg's RTSP server mode (listen) cannot check credentials, so the camera side here is
    // a publishing ffmpeg; what is checked is that the RTSP URL with its password reaches the
    // reader by the input list and never by its command line.
    const port = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const url = `rtsp://vigia:rtsp-s3cr3t@127.0.0.1:${port}/live`;
    const w = watch(new FfmpegSource({ cameraId: 'rtsp', url, fps: 5, inputOptions: { rtsp_flags: 'listen' }, backoff: { minDelayMs: 20, maxDelayMs: 20 } }));
    let publishing = true;
    const publish = () => {
      const args = [
        '-hide_banner',
        '-loglevel',
        'quiet',
        '-re',
        '-i',
        video,
        '-c:v',
        'mpeg4',
        '-f',
        'rtsp',
        '-rtsp_transport',
        'tcp',
        `rtsp://127.0.0.1:${port}/live`,
      ];
      const child = spawn('ffmpeg', args, { stdio: 'ignore' });
      // Until the reader listens the publisher fails at once: try again. Each run is one 2 s clip.
      child.on('exit', () => publishing && setTimeout(publish, 50));
      cleanups.push(() => child.kill('SIGKILL'));
    };
    cleanups.push(() => {
      publishing = false;
    });
    publish();
    await until(() => w.frames.length >= 3, 20000, 'frames over RTSP');
    const seen = await liveCmdline(w.source);
    expect(seen).toMatch(/ffmpeg/);
    expect(seen).not.toContain('rtsp-s3cr3t');
    expect(seen).not.toContain('rtsp://');
    // The clip ends, ffmpeg exits, the source restarts and reads the next one.
    await until(() => w.source.stats().reconnects >= 1, 20000, 'a restart');
    const frames = w.frames.length;
    await until(() => w.frames.length > frames, 20000, 'frames after the restart');
    for (const message of [w.source.stats().lastError ?? '', ...w.errors]) expect(message).not.toContain('rtsp-s3cr3t');
  });

  it('passes a private URL by an input list, quoted, and names it in messages by scheme and host only', () => {
    const opts = { cameraId: 'c', url: "rtsp://10.0.0.5:554/live?token=tok-s3cr3t&x='y'", privateUrl: true, fps: 4 };
    expect(keepsUrlPrivate(opts)).toBe(true);
    expect(keepsUrlPrivate({ url: 'rtsp://10.0.0.5/live' })).toBe(false);
    expect(keepsUrlPrivate({ url: 'rtsp://u:p@10.0.0.5/live' })).toBe(true);
    expect(keepsUrlPrivate({ url: '/dev/video0', privateUrl: true })).toBe(false);
    const args = ffmpegArgs(opts).join(' ');
    expect(args).toContain('-f concat -safe 0 -protocol_whitelist pipe,rtsp,tcp,udp,tls,rtp,srtp,http,https,httpproxy,crypto -i pipe:3 -an');
    expect(args).not.toContain('s3cr3t');
    expect(ffmpegInputList(opts)).toBe(`ffconcat version 1.0\nfile 'rtsp://10.0.0.5:554/live?token=tok-s3cr3t&x='\\''y'\\'''\noption rtsp_transport 'tcp'\n`);
    expect(displayUrl(opts)).toBe('rtsp://10.0.0.5:554/…');
    expect(displayUrl({ url: 'rtsp://u:pw@10.0.0.5/live' })).toBe('rtsp://u:***@10.0.0.5/live');
    expect(ffmpegArgs({ cameraId: 'c', url: 'rtsp://h/s', fps: 4 }).join(' ')).toContain('-rtsp_transport tcp -i rtsp://h/s');
  });
});

// ---------------------------------------------------------------------------------------------

interface CameraServer {
  url: string;
  log: DigestCameraLog;
  server: Server;
}

async function cameraServer(handler: (req: IncomingMessage, res: ServerResponse, log: CameraServer['log']) => void): Promise<CameraServer> {
  const log: CameraServer['log'] = [];
  const server = createServer((req, res) => handler(req, res, log));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  cleanups.push(() => server.closeAllConnections());
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/onvif/snapshot?channel=1`, log, server };
}

describe('HTTP digest helpers', () => {
  it('parses several challenges and prefers the strongest Digest', () => {
    const challenges = parseWwwAuthenticate([
      'Digest realm="a, b", qop="auth,auth-int", algorithm=MD5, nonce="n1", Basic realm="x"',
      'Digest realm="a", algorithm=SHA-256, nonce="n2", stale=true',
    ]);
    expect(challenges.map((c) => c.scheme)).toEqual(['digest', 'basic', 'digest']);
    expect(challenges[0]!.params).toMatchObject({ realm: 'a, b', qop: 'auth,auth-int', algorithm: 'MD5', nonce: 'n1' });
    expect(chooseChallenge(challenges)?.params.nonce).toBe('n2');
  });

  it('matches the RFC 7616 section 3.9.1 example (SHA-256 and MD5)', () => {
    const challenge = (algorithm: string) => ({
      scheme: 'digest',
      params: {
        realm: 'http-auth@example.org',
        qop: 'auth, auth-int',
        algorithm,
        nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
        opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
      },
    });
    const cnonce = () => 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ';
    const sha = new DigestSession(challenge('SHA-256'), 'Mufasa', 'Circle of Life', cnonce).authorization('GET', '/dir/index.html');
    expect(sha).toContain('response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"');
    expect(sha).toContain('nc=00000001');
    const md5 = new DigestSession(challenge('MD5'), 'Mufasa', 'Circle of Life', cnonce);
    expect(md5.authorization('GET', '/dir/index.html')).toContain('response="8ca523f5e9506fed4657c9700eebdbec"');
    expect(md5.authorization('GET', '/dir/index.html')).toContain('nc=00000002');
  });
});

describe('HttpSnapshotSource', () => {
  let image: Buffer;
  beforeAll(async () => {
    image = await jpeg(320, 240, 9);
  });

  it('answers a SHA-256 Digest challenge (preferred over MD5 and Basic) and reuses the nonce', async () => {
    const cam = await cameraServer(digestCamera({ user: 'admin', pass: 's3cret:"x"', algorithms: ['MD5', 'SHA-256'], qop: 'auth', alsoBasic: true, image }));
    const w = watch(new HttpSnapshotSource({ cameraId: 'cam-1', url: cam.url, intervalMs: 50, username: 'admin', password: 's3cret:"x"' }));
    await until(() => w.frames.length >= 4, 15000, '4 snapshots');
    expect(w.frames[0]!.jpeg.equals(image)).toBe(true);
    expect(w.source.stats()).toMatchObject({ state: 'running', errors: 0 });
    expect(cam.log.filter((l) => l.status === 401).length).toBe(1); // one challenge, then nc=2, 3, ...
    expect(cam.log.filter((l) => l.auth?.startsWith('Basic')).length).toBe(0);
    expect(cam.log.filter((l) => l.status === 200).every((l) => /algorithm=SHA-256/.test(l.auth!))).toBe(true);
  });

  it('answers an MD5 Digest challenge from the URL credentials, and fails clearly on a wrong password', async () => {
    const cam = await cameraServer(digestCamera({ user: 'admin', pass: 'pw', algorithms: ['MD5'], qop: 'auth,auth-int', image }));
    const ok = watch(new HttpSnapshotSource({ cameraId: 'cam-2', url: cam.url.replace('http://', 'http://admin:pw@'), intervalMs: 50, auth: 'digest' }));
    await until(() => ok.frames.length >= 2, 15000, 'snapshots');
    await ok.source.stop();

    const bad = watch(
      new HttpSnapshotSource({
        cameraId: 'cam-2',
        url: cam.url,
        intervalMs: 50,
        username: 'admin',
        password: 'wrong',
        backoff: { minDelayMs: 50, maxDelayMs: 50 },
      }),
    );
    await until(() => bad.source.stats().errors >= 2, 15000, 'auth errors');
    expect(bad.frames.length).toBe(0);
    expect(bad.source.stats().lastError).toMatch(/authentication failed \(HTTP 401\)/);
    expect(bad.source.stats().lastError).not.toContain('wrong');
    expect(bad.states).toContain('backoff');
  });

  it('sends Basic over plain http only when told to (auth: basic), never because a server asks', async () => {
    const expected = `Basic ${Buffer.from('viewer:pa ss').toString('base64')}`;
    const cam = await cameraServer((req, res, log) => {
      const status = req.headers.authorization === expected ? 200 : 401;
      log.push({ auth: req.headers.authorization, status });
      if (status === 200) res.writeHead(200, { 'Content-Type': 'image/jpeg; charset=binary' }).end(image);
      else res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="cam"' }).end();
    });
    // auth: auto (the default) over http: a Basic challenge is refused and the password never leaves.
    const auto = watch(
      new HttpSnapshotSource({ cameraId: 'cam-3', url: cam.url, intervalMs: 40, username: 'viewer', password: 'pa ss', backoff: { minDelayMs: 1000 } }),
    );
    await until(() => auto.source.stats().errors >= 1, 10000, 'an error');
    expect(auto.source.stats().lastError).toMatch(/asks for Basic authentication over plain http/);
    expect(cam.log.some((l) => l.auth !== undefined)).toBe(false);
    await auto.source.stop();

    const w = watch(new HttpSnapshotSource({ cameraId: 'cam-3', url: cam.url, intervalMs: 40, username: 'viewer', password: 'pa ss', auth: 'basic' }));
    await until(() => w.frames.length >= 3, 15000, 'snapshots');
    expect(cam.log.filter((l) => l.auth === expected).length).toBeGreaterThanOrEqual(3);
    await w.source.stop();

    const strict = watch(
      new HttpSnapshotSource({ cameraId: 'cam-3', url: cam.url, username: 'viewer', password: 'pa ss', auth: 'digest', backoff: { minDelayMs: 1000 } }),
    );
    await until(() => strict.source.stats().errors >= 1, 10000, 'an error');
    expect(strict.source.stats().lastError).toMatch(/offers only Basic/);
  });

  it('rejects and counts bodies that are not JPEG', async () => {
    let mode: 'html' | 'png' | 'big' = 'html';
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: 'red' } })
      .png()
      .toBuffer();
    const cam = await cameraServer((_req, res) => {
      if (mode === 'html') res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>login</html>');
      else if (mode === 'png') res.writeHead(200, { 'Content-Type': 'image/jpeg' }).end(png);
      else res.writeHead(200, { 'Content-Type': 'image/jpeg' }).end(Buffer.concat([image, Buffer.alloc(image.length)]));
    });
    const w = watch(
      new HttpSnapshotSource({ cameraId: 'cam-4', url: cam.url, intervalMs: 20, maxBytes: image.length + 1000, backoff: { minDelayMs: 20, maxDelayMs: 20 } }),
    );
    await until(() => w.source.stats().errors >= 2, 10000, 'errors');
    expect(w.source.stats().lastError).toMatch(/not a JPEG \(Content-Type "text\/html"\)/);
    mode = 'png';
    await until(() => /body is not a JPEG \(starts with 89504e47\)/.test(w.source.stats().lastError ?? ''), 10000, 'the PNG error');
    mode = 'big';
    await until(() => /over the \d+-byte cap/.test(w.source.stats().lastError ?? ''), 10000, 'the size error');
    expect(w.frames.length).toBe(0);
    expect(w.source.stats().state).not.toBe('running');
  });

  it('times out a camera that never answers', async () => {
    const cam = await cameraServer(() => {
      /* accepts the connection, never replies */
    });
    const w = watch(new HttpSnapshotSource({ cameraId: 'cam-5', url: cam.url, timeoutMs: 150, backoff: { minDelayMs: 1000 } }));
    await until(() => w.source.stats().errors >= 1, 10000, 'a timeout');
    expect(w.source.stats().lastError).toMatch(/no complete answer within 150 ms/);
    expect(w.source.stats().state).toBe('backoff');
  });
});

// ---------------------------------------------------------------------------------------------

describe('DirectorySource', () => {
  it('waits for a missing directory, then takes files renamed into place in name order', async () => {
    const dir = join(tmp, 'ftp-a');
    const w = watch(new DirectorySource({ cameraId: 'ftp', dir, pollIntervalMs: 30, backoff: { minDelayMs: 30, maxDelayMs: 60, jitter: 0 } }));
    await until(() => w.source.stats().errors >= 2, 10000, 'the missing-directory error');
    expect(w.source.stats()).toMatchObject({ state: 'backoff', frames: 0 });
    expect(w.source.stats().lastError).toMatch(/does not exist \(waiting for it\)/);

    // The FTP server finishes files elsewhere and renames them into place (here: the whole directory).
    const staging = join(tmp, 'ftp-a-staging');
    mkdirSync(staging);
    const files = {
      'cam_20260101_000010.jpg': await jpeg(64, 48, 10),
      'cam_20260101_000009.jpg': await jpeg(64, 48, 9),
      'upload.jpg.part': await jpeg(8, 8, 1),
    };
    const past = new Date(Date.now() - 60_000);
    for (const [name, data] of Object.entries(files)) {
      writeFileSync(join(staging, name), data);
      utimesSync(join(staging, name), past, past);
    }
    renameSync(staging, dir);
    await until(() => w.frames.length >= 2, 10000, 'two frames');
    expect(w.frames[0]!.jpeg.equals(files['cam_20260101_000009.jpg'])).toBe(true);
    expect(w.frames[1]!.jpeg.equals(files['cam_20260101_000010.jpg'])).toBe(true);
    expect(w.states).toContain('running');
    expect(readdirSync(join(dir, 'processed')).sort()).toEqual(['cam_20260101_000009.jpg', 'cam_20260101_000010.jpg']);
    expect(readdirSync(dir).sort()).toEqual(['processed', 'upload.jpg.part']);
  });

  it('emits files written slowly in chunks only once complete, exactly once, then moves them', async () => {
    const dir = join(tmp, 'ftp-b');
    mkdirSync(dir);
    const w = watch(new DirectorySource({ cameraId: 'ftp', dir, pollIntervalMs: 25, stableMs: 200 }));
    await until(() => w.source.stats().state === 'running', 5000, 'running');
    const a = await jpeg(320, 240, 21);
    const b = await jpeg(160, 120, 22);
    // a: four chunks 80 ms apart; b: its last chunk ends exactly at a marker boundary but comes later.
    const pa = join(dir, 'a.jpg');
    const pb = join(dir, 'b.JPG');
    const quarter = Math.ceil(a.length / 4);
    const cutB = b.length - 2; // everything but EOI
    writeFileSync(pb, b.subarray(0, cutB));
    for (let i = 0; i < 4; i++) {
      appendFileSync(pa, a.subarray(i * quarter, (i + 1) * quarter));
      await sleep(80);
      if (i < 3) expect(w.frames.length).toBe(0);
    }
    await until(() => w.frames.length >= 1, 7500, 'a.jpg');
    expect(w.frames[0]!.jpeg.equals(a)).toBe(true);
    await sleep(300); // b has been stable for longer than stableMs but is not a whole JPEG yet
    expect(w.frames.length).toBe(1);
    appendFileSync(pb, b.subarray(cutB));
    await until(() => w.frames.length >= 2, 7500, 'b.JPG');
    expect(w.frames[1]!.jpeg.equals(b)).toBe(true);
    await sleep(200);
    expect(w.frames.length).toBe(2); // never emitted twice
    expect(readdirSync(join(dir, 'processed')).sort()).toEqual(['a.jpg', 'b.JPG']);
    expect(existsSync(pa) || existsSync(pb)).toBe(false);

    // A new upload with a name already in processed/ is still taken, and nothing is overwritten.
    writeFileSync(pa, b);
    await until(() => w.frames.length >= 3, 7500, 'the second a.jpg');
    expect(readdirSync(join(dir, 'processed')).sort()).toEqual(['a.1.jpg', 'a.jpg', 'b.JPG']);
    expect(w.source.stats()).toMatchObject({ frames: 3, dropped: 0, errors: 0 });
  });

  it('does not take a file that still grows, even when it already looks like a whole JPEG', async () => {
    const dir = join(tmp, 'ftp-d');
    mkdirSync(dir);
    const w = watch(new DirectorySource({ cameraId: 'ftp', dir, pollIntervalMs: 20, stableMs: 200 }));
    const path = join(dir, 'c.jpg');
    writeFileSync(path, await jpeg(64, 48, 3));
    for (let i = 0; i < 8; i++) {
      await sleep(40);
      appendFileSync(path, Buffer.alloc(16)); // zero padding after EOI: still "whole", but changing
      expect(w.frames.length).toBe(0);
    }
    await until(() => w.frames.length === 1, 7500, 'c.jpg');
    expect(w.frames[0]!.jpeg.length % 16).toBe((await jpeg(64, 48, 3)).length % 16);
  });

  it('rejects files that never become a whole JPEG, and can delete instead of moving', async () => {
    const dir = join(tmp, 'ftp-c');
    mkdirSync(dir);
    const w = watch(new DirectorySource({ cameraId: 'ftp', dir, pollIntervalMs: 25, stableMs: 50, abandonMs: 200, after: 'delete' }));
    writeFileSync(join(dir, 'junk.jpg'), 'this is not a picture');
    writeFileSync(join(dir, 'good.jpeg'), await jpeg(32, 32, 5));
    await until(() => w.source.stats().dropped >= 1 && w.frames.length >= 1, 10000, 'the rejection');
    expect(readdirSync(dir)).toEqual([]);
    expect(w.frames.length).toBe(1);
    expect(w.source.stats()).toMatchObject({ frames: 1, dropped: 1 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('DirectorySource: files swapped for links or FIFOs', () => {
  it('reads a candidate through one descriptor and refuses a symlink or a FIFO put in its place', async () => {
    const dir = mkdtempSync(join(tmp, 'swap-'));
    const image = await jpeg(32, 24, 3);
    const real = join(dir, 'real.jpg');
    writeFileSync(real, image);
    const got = await readCandidate(real, { ino: statSync(real).ino, size: image.length });
    expect(got.kind).toBe('frame');
    expect(got.kind === 'frame' && got.data.equals(image)).toBe(true);

    // The uploader swaps the checked file for a link to a JPEG elsewhere: never followed.
    const secret = join(tmp, 'outside-the-upload-dir.jpg');
    writeFileSync(secret, image);
    const link = join(dir, 'link.jpg');
    symlinkSync(secret, link);
    expect(await readCandidate(link, { ino: statSync(secret).ino, size: image.length })).toMatchObject({ kind: 'refused' });

    // A FIFO with no writer would block a plain open for good: opened non-blocking and refused.
    const fifo = join(dir, 'fifo.jpg');
    execFileSync('mkfifo', [fifo]);
    expect(await readCandidate(fifo, { ino: statSync(fifo).ino, size: image.length })).toMatchObject({ kind: 'refused' });

    // Another regular file renamed over the checked one (another inode) is not taken either.
    const other = join(dir, 'other.jpg');
    writeFileSync(other, image);
    expect((await readCandidate(other, { ino: statSync(real).ino, size: image.length })).kind).not.toBe('frame');
  });

  it('never emits a symlink in the upload directory, and a FIFO there does not stop the scan', async () => {
    const dir = mkdtempSync(join(tmp, 'ftp-links-'));
    const outside = join(tmp, 'ftp-links-target.jpg');
    writeFileSync(outside, await jpeg(16, 16, 7));
    symlinkSync(outside, join(dir, 'a-link.jpg'));
    execFileSync('mkfifo', [join(dir, 'b-fifo.jpg')]);
    const image = await jpeg(64, 48, 5);
    writeFileSync(join(dir, 'c-real.jpg'), image);
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'c-real.jpg'), past, past);
    const w = watch(new DirectorySource({ cameraId: 'ftp', dir, pollIntervalMs: 20, stableMs: 50 }));
    await until(() => w.frames.length >= 1 && w.source.stats().frames >= 1, 10000, 'the regular file');
    // Taken in name order: the scan passed the link and the FIFO before the regular file, and went on.
    expect(w.frames).toHaveLength(1);
    expect(w.frames[0]!.jpeg.equals(image)).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(['a-link.jpg', 'b-fifo.jpg', 'processed']);
  });
});

describe('backoffDelay', () => {
  it('doubles from the minimum up to the maximum, with bounded jitter', () => {
    const opts = { minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 };
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, opts, () => 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(0, opts, () => 0)).toBe(80);
    expect(backoffDelay(0, opts, () => 1)).toBe(120);
  });
});
