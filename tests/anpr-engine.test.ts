import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbPostprocess, plateCandidates } from '../src/anpr/detector.js';
import { AnprEngine, isPlateLike, rankReadings } from '../src/anpr/engine.js';
import { cropImage, decodeImage, type DecodedImage, ImageRejected, minAreaRect, type Point, rectCorners, warpQuad, writeChw } from '../src/anpr/image.js';
import { ModelMissingError, OnnxModel, paddleModelPaths, tesseractLangPath } from '../src/anpr/models.js';
import { ALPHABET, alphabetIndex, ctcDecode, dropNonCharacters, splitLines } from '../src/anpr/recogniser.js';
import { TesseractRecogniser } from '../src/anpr/tesseract.js';
import { AnprBusyError, AnprWorkerPool } from '../src/anpr/worker.js';
import { chileanPlate, oneLinePlate, scene, twoLinePlate } from './helpers/plates.js';
import { decodeEnd2End, decodeYoloOutput, decodeYolov8, letterboxParams, nms, unletterbox, YoloPlateDetector } from '../src/anpr/yolo.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const FLAT = { x: 500, y: 420, w: 280, h: 70 };

// ---------------------------------------------------------------------------------------------
// A minimal ONNX model writer (protobuf by hand): one float input, one Constant output. Enough to
// run the YOLO detector's session wiring without a real plate model.

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const field = (num: number, wire: number) => varint((num << 3) | wire);
const fVarint = (num: number, v: number) => [...field(num, 0), ...varint(v)];
const fBytes = (num: number, bytes: number[] | Uint8Array) => [...field(num, 2), ...varint(bytes.length), ...bytes];
const fString = (num: number, s: string) => fBytes(num, [...Buffer.from(s, 'utf8')]);

function tensorProto(name: string, dims: number[], values: number[]): number[] {
  const raw = new Uint8Array(new Float32Array(values).buffer);
  return [...dims.flatMap((d) => fVarint(1, d)), ...fVarint(2, 1), ...fString(8, name), ...fBytes(9, raw)];
}

function valueInfo(name: string, dims: number[]): number[] {
  const shape = dims.flatMap((d) => fBytes(1, fVarint(1, d)));
  const tensorType = [...fVarint(1, 1), ...fBytes(2, shape)];
  return [...fString(1, name), ...fBytes(2, fBytes(1, tensorType))];
}

/** ONNX model: input `images` of `inputDims` (unused), output `output` = constant `values` of `outDims`. */
function constantModel(inputDims: number[], outDims: number[], values: number[]): Uint8Array {
  const attr = [...fString(1, 'value'), ...fBytes(5, tensorProto('value', outDims, values)), ...fVarint(20, 4)];
  const node = [...fString(2, 'output'), ...fString(3, 'const'), ...fString(4, 'Constant'), ...fBytes(5, attr)];
  const graph = [...fBytes(1, node), ...fString(2, 'g'), ...fBytes(11, valueInfo('images', inputDims)), ...fBytes(12, valueInfo('output', outDims))];
  const opset = [...fString(1, ''), ...fVarint(2, 17)];
  return Uint8Array.from([...fVarint(1, 8), ...fString(2, 'vigia-test'), ...fBytes(7, graph), ...fBytes(8, opset)]);
}

// ---------------------------------------------------------------------------------------------

describe('ANPR engine (PP-OCRv4 detection + recognition)', () => {
  let engine: AnprEngine;

  beforeAll(async () => {
    engine = await AnprEngine.create({ threads: 2 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('finds the models in the installed npm packages', async () => {
    const p = paddleModelPaths();
    for (const f of [p.det, p.rec, p.keys]) expect(existsSync(f)).toBe(true);
    expect(existsSync(join(tesseractLangPath(), 'eng.traineddata.gz'))).toBe(true);
    await expect(OnnxModel.load('/nonexistent/plates.onnx')).rejects.toBeInstanceOf(ModelMissingError);
  });

  it('reads a Chilean-style plate exactly, with box, alternatives and timings', async () => {
    const r = await engine.read(await scene(oneLinePlate('BB·CL·12', FLAT)));
    const best = r.plates[0]!;
    expect(best.text).toBe('BBCL12');
    expect(best.confidence).toBeGreaterThan(0.9);
    expect(best.chars.map((c) => c.best).join('')).toBe('BBCL12');
    for (const c of best.chars) {
      expect(c.alternatives.length).toBe(3);
      expect(c.alternatives[0]!.char).toBe(c.best);
      expect(c.alternatives.every((a) => ALPHABET.includes(a.char))).toBe(true);
    }
    const [x, y, w, h] = best.box;
    expect(x).toBeGreaterThan(FLAT.x - 30);
    expect(x + w).toBeLessThan(FLAT.x + FLAT.w + 30);
    expect(y).toBeGreaterThan(FLAT.y - 30);
    expect(y + h).toBeLessThan(FLAT.y + FLAT.h + 30);
    expect(r.width).toBe(1280);
    const t = r.timings;
    expect(t.total).toBeGreaterThanOrEqual(t.detect);
    expect(t.sessionRun).toBeGreaterThan(0);
    expect(t.sessionRun).toBeLessThanOrEqual(t.detect + t.recognise + 1);
  });

  it('reads Chilean plates: shield and dot separators, CHILE caption, white and taxi orange', async () => {
    const spec = { x: 500, y: 420, w: 300, h: 100 };
    const white = await engine.read(await scene(chileanPlate(['BB', 'CL', '12'], spec)));
    expect(white.plates[0]!.text).toBe('BBCL12');
    expect(white.plates.map((p) => p.text)).toContain('CHILE'); // other text is reported, ranked after
    const taxi = await engine.read(await scene(chileanPlate(['HJ', 'RS', '37'], spec, '#f0a020')));
    expect(taxi.plates[0]!.text).toBe('HJRS37');
  });

  it('reads a two-line crop without a hint (as a YOLO box would give it)', async () => {
    const jpeg = await scene(twoLinePlate('JKR', '56', { x: 580, y: 420, w: 120, h: 100 }));
    const crop = cropImage(await decodeImage(jpeg), [576, 416, 128, 108]);
    expect((await engine.recogniser.recognise(crop)).text).toBe('JKR56');
  });

  it('reads a tilted plate through a rotated box', async () => {
    const r = await engine.read(await scene(oneLinePlate('KX·TR·45', { ...FLAT, angle: 9 })));
    expect(r.plates[0]!.text).toBe('KXTR45');
    const poly = r.plates[0]!.polygon!;
    const slope = (poly[1][1] - poly[0][1]) / (poly[1][0] - poly[0][0]);
    expect(Math.atan(slope) * (180 / Math.PI)).toBeGreaterThan(5);
  });

  it('reads a small plate and a two-line plate', async () => {
    const small = await engine.read(await scene(oneLinePlate('HJ·RS·37', { x: 600, y: 500, w: 130, h: 32 })));
    expect(small.plates[0]!.text).toBe('HJRS37');
    const two = await engine.read(await scene(twoLinePlate('BCD', '472', { x: 560, y: 400, w: 170, h: 130 })));
    expect(two.plates[0]!.text).toBe('BCD472');
  });

  it('reports no plate-like reading for an empty street', async () => {
    const r = await engine.read(await scene(''));
    expect(r.plates.filter((p) => isPlateLike(p.text))).toEqual([]);
  });

  describe('rejects bad input with ImageRejected and keeps working', () => {
    const cases: Array<[string, () => Promise<Uint8Array>, string]> = [
      ['empty', async () => new Uint8Array(0), 'empty'],
      [
        'truncated JPEG',
        async () => {
          const jpeg = await scene(oneLinePlate('BB·CL·12', FLAT));
          return jpeg.subarray(0, jpeg.length >> 1);
        },
        'corrupt',
      ],
      ['PNG signature, no image', async () => Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from('not really a png at all')]), 'corrupt'],
      ['text', async () => Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'not_image'],
      ['random bytes', async () => Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251), 'not_image'],
      [
        '50 megapixels',
        async () =>
          sharp({ create: { width: 8000, height: 6250, channels: 3, background: '#777' } })
            .jpeg({ quality: 30 })
            .toBuffer(),
        'too_large',
      ],
    ];
    for (const [name, make, reason] of cases) {
      it(name, async () => {
        const data = await make();
        const err = await engine.read(data).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ImageRejected);
        expect((err as ImageRejected).reason).toBe(reason);
      });
    }

    it('still reads after rejections', async () => {
      const r = await engine.read(await scene(oneLinePlate('BB·CL·12', FLAT)));
      expect(r.plates[0]!.text).toBe('BBCL12');
    });
  });
});

describe('image and geometry helpers', () => {
  it('decodes to RGB and applies limits', async () => {
    const png = await sharp({ create: { width: 40, height: 20, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } } })
      .png()
      .toBuffer();
    const img = await decodeImage(png);
    expect([img.width, img.height, img.data.length]).toEqual([40, 20, 40 * 20 * 3]);
    expect([...img.data.subarray(0, 3)]).toEqual([255, 0, 0]);
    await expect(decodeImage(png, { maxPixels: 100 })).rejects.toMatchObject({ reason: 'too_large' });
  });

  it('fits a minimum-area rectangle to rotated points and warps it upright', () => {
    const angle = (20 * Math.PI) / 180;
    const pts: Point[] = [];
    for (let u = -50; u <= 50; u += 5)
      for (let v = -10; v <= 10; v += 5) pts.push([200 + u * Math.cos(angle) - v * Math.sin(angle), 100 + u * Math.sin(angle) + v * Math.cos(angle)]);
    const r = minAreaRect(pts);
    expect(r.width).toBeCloseTo(100, 3);
    expect(r.height).toBeCloseTo(20, 3);
    expect(r.angle).toBeCloseTo(angle, 3);
    expect(r.cx).toBeCloseTo(200, 3);
    const img: DecodedImage = { width: 400, height: 200, data: new Uint8Array(400 * 200 * 3).fill(200) };
    const out = warpQuad(img, rectCorners(r), 100, 20);
    expect([out.width, out.height]).toEqual([100, 20]);
    expect(out.data[0]).toBe(200);
  });

  it('DB post-processing turns a probability map into unclipped text lines', () => {
    const W = 64;
    const H = 32;
    const prob = new Float32Array(W * H);
    for (let y = 12; y < 18; y++) for (let x = 10; x < 50; x++) prob[y * W + x] = 0.9;
    prob[2 * W + 2] = 0.95; // a speck: too small
    const lines = dbPostprocess(prob, W, H);
    expect(lines).toHaveLength(1);
    const { rect, score } = lines[0]!;
    expect(score).toBeCloseTo(0.9, 5);
    expect(rect.cx).toBeCloseTo(30, 5);
    expect(rect.cy).toBeCloseTo(15, 5);
    // 40x6 kernel, offset 40*6*1.5/92 on every side
    expect(rect.width).toBeCloseTo(40 + 2 * (360 / 92), 3);
    expect(rect.height).toBeCloseTo(6 + 2 * (360 / 92), 3);
  });

  it('DB post-processing joins diagonal neighbours but not pixels at opposite edges of adjacent rows', () => {
    const W = 64;
    const H = 32;
    const prob = new Float32Array(W * H);
    const block = (x0: number, y0: number, w: number, h: number) => {
      for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) prob[y * W + x] = 0.9;
    };
    block(W - 6, 4, 6, 3); // ends at the right edge on row 6 ...
    block(0, 7, 6, 3); // ... and this starts at the left edge on row 7: not neighbours
    block(20, 20, 6, 3);
    block(26, 23, 6, 3); // touches the block above at one corner only: 8-connected
    const lines = dbPostprocess(prob, W, H);
    expect(lines).toHaveLength(3);
    expect(lines.filter((l) => l.rect.width > 10)).toHaveLength(1);
  });

  it("writes an image into a planar tensor row by row, channels in the layout's order, padding untouched", () => {
    const img: DecodedImage = { width: 2, height: 1, data: Uint8Array.from([255, 0, 51, 0, 255, 102]) };
    const out = new Float32Array(3 * 3 * 2).fill(-9);
    writeChw(img, { mean: [0, 0, 0], std: [1, 1, 1], order: 'bgr' }, out, 0, 3, 2);
    const plane = (c: number) => [...out.subarray(c * 6, c * 6 + 6)].map((v) => Math.round(v * 100) / 100);
    expect(plane(0)).toEqual([0.2, 0.4, -9, -9, -9, -9]);
    expect(plane(1)).toEqual([0, 1, -9, -9, -9, -9]);
    expect(plane(2)).toEqual([1, 0, -9, -9, -9, -9]);
  });

  it('joins the parts of a split plate line and two stacked lines', () => {
    const img: DecodedImage = { width: 400, height: 300, data: Uint8Array.from({ length: 400 * 300 * 3 }, (_, i) => ((i / 3) % 7) * 30) };
    const line = (cx: number, cy: number, width: number, height: number) => ({ score: 0.9, rect: { cx, cy, width, height, angle: 0 } });
    const joined = plateCandidates(img, [line(100, 100, 60, 24), line(170, 100, 60, 24)]);
    expect(joined.some((d) => d.lines === 1 && d.box[2] > 120)).toBe(true);
    const stacked = plateCandidates(img, [line(200, 200, 80, 30), line(200, 236, 80, 30)]);
    expect(stacked.some((d) => d.lines === 2)).toBe(true);
  });
});

describe('recogniser decoding', () => {
  const classes = ['', 'A', 'a', '8', 'B', '-', '中', 'Ｏ', '0', 'I', '1'];
  const map = Int8Array.from(classes, (k, i) => (i === 0 ? -1 : alphabetIndex(k)));
  const frame = (p: Record<string, number>) => classes.map((k, i) => (i === 0 ? (p.blank ?? 0) : (p[k] ?? 0)));

  it('collapses repeats, merges case and full-width forms, treats other symbols as separators', () => {
    const frames = [
      frame({ A: 0.5, a: 0.3, blank: 0.2 }),
      frame({ A: 0.6, blank: 0.4 }),
      frame({ blank: 1 }),
      frame({ A: 0.9, blank: 0.1 }),
      frame({ '-': 0.9, blank: 0.1 }),
      frame({ A: 0.95, blank: 0.05 }),
      frame({ 中: 0.7, 8: 0.3 }),
      frame({ Ｏ: 0.5, 0: 0.45, blank: 0.05 }),
    ].flat();
    const { chars } = ctcDecode(frames, 0, 8, classes.length, map);
    expect(chars.map((c) => c.best).join('')).toBe('AAAO');
    expect(chars[0]!.prob).toBeCloseTo(0.8, 5); // A + a at the peak frame
    expect(chars[0]!.start).toBe(0);
    expect(chars[0]!.end).toBe(1);
    expect(chars[3]!.alternatives.map((a) => a.char)).toEqual(['O', '0', 'A']);
    expect(chars[3]!.charness).toBeCloseTo(0.95, 5);
  });

  it('drops weak non-characters (emblems) but keeps the last character', () => {
    const c = (best: string, charness: number) => ({ best, charness });
    const text = (cs: Array<{ best: string }>) => cs.map((x) => x.best).join('');
    expect(text(dropNonCharacters([c('4', 1), c('B', 1), c('4', 1), c('8', 0.5), c('0', 1), c('2', 1), c('I', 0.4)]))).toBe('4B402I');
    expect(text(dropNonCharacters([c('P', 0.7), c('J', 0.6), c('I', 0.8), c('5', 1), c('9', 1), c('2', 1), c('1', 1)]))).toBe('PI5921');
    expect(text(dropNonCharacters([c('A', 0.3), c('B', 1), c('C', 1), c('1', 1)]))).toBe('ABC1');
  });

  it('splits two stacked lines at the quiet row', () => {
    const width = 40;
    const height = 40;
    const data = new Uint8Array(width * height * 3).fill(255);
    for (let y = 0; y < height; y++) {
      if (y >= 16 && y < 24) continue; // gap between the lines, a little below the middle... of the ink
      for (let x = 0; x < width; x += 4) data.fill(0, (y * width + x) * 3, (y * width + x) * 3 + 6);
    }
    const [top, bottom] = splitLines({ width, height, data });
    expect(top.height).toBeGreaterThanOrEqual(16);
    expect(top.height).toBeLessThanOrEqual(24);
    expect(top.height + bottom.height).toBe(height);
  });

  it('ranks plate-like readings first', () => {
    const ranked = rankReadings([
      { text: 'SALVADOR', confidence: 0.99 },
      { text: 'BBCL12', confidence: 0.9 },
      { text: 'BBCL12', confidence: 0.95 },
      { text: 'X', confidence: 1 },
    ]);
    expect(ranked.map((r) => `${r.text}:${r.confidence}`)).toEqual(['BBCL12:0.95', 'SALVADOR:0.99']);
  });
});

describe('YOLO plate detector', () => {
  it('decodes end2end rows ([1,N,7] and [N,7]) and NMS-free [1,N,6]', () => {
    const rows = [0, 10, 20, 110, 50, 0, 0.9, 0, 5, 5, 6, 6, 0, 0.1, 1, 10, 20, 110, 50, 0, 0.95];
    for (const dims of [
      [1, 3, 7],
      [3, 7],
    ]) {
      const out = decodeEnd2End(rows, dims, { scoreThreshold: 0.25 });
      expect(out).toEqual([{ x1: 10, y1: 20, x2: 110, y2: 50, cls: 0, score: 0.9 }]);
    }
    const six = decodeYoloOutput([10, 20, 110, 50, 0.8, 0, 1, 1, 2, 2, 0.01, 0], [1, 2, 6]);
    expect(six).toEqual([{ x1: 10, y1: 20, x2: 110, y2: 50, score: 0.8, cls: 0 }]);
  });

  it('decodes a raw YOLOv8 head with its own NMS, in both layouts', () => {
    // 4 anchors, 2 classes: [cx, cy, w, h, s0, s1] per anchor.
    const anchors = [
      [100, 100, 80, 20, 0.9, 0.1],
      [102, 101, 80, 20, 0.8, 0.2], // duplicate of the first
      [300, 200, 60, 30, 0.05, 0.7],
      [50, 50, 10, 10, 0.1, 0.1], // below threshold
    ];
    // Real heads have thousands of anchors; the layout is told apart by anchors > channels.
    const many = [...anchors, ...Array.from({ length: 6 }, () => [0, 0, 0, 0, 0, 0])];
    const channelsFirst = Array.from({ length: 6 }, (_, c) => many.map((a) => a[c]!)).flat();
    const a = decodeYolov8(channelsFirst, [1, 6, 10]);
    expect(a).toHaveLength(2);
    expect(a[0]).toMatchObject({ x1: 60, y1: 90, x2: 140, y2: 110, cls: 0, score: 0.9 });
    expect(a[1]).toMatchObject({ x1: 270, y1: 185, x2: 330, y2: 215, cls: 1, score: 0.7 });
    // [1, anchors, 4+nc]
    const b = decodeYolov8(many.flat(), [1, 10, 6]);
    expect(b).toEqual(a);
    expect(nms([...a, { ...a[0]!, score: 0.5, cls: 1 }], 0.45, false)).toHaveLength(3);
  });

  it('maps letterboxed boxes back to the source image', () => {
    const lb = letterboxParams(1280, 720, 640, 640);
    expect(lb.scale).toBe(0.5);
    expect([lb.padX, lb.padY]).toEqual([0, 140]);
    const box = unletterbox({ x1: 250, y1: 350, x2: 390, y2: 385, score: 1, cls: 0 }, lb, 1280, 720);
    expect(box).toEqual([500, 420, 280, 70]);
    expect(unletterbox({ x1: -10, y1: 100, x2: 700, y2: 600, score: 1, cls: 0 }, lb, 1280, 720)).toEqual([0, 0, 1280, 720]);
  });

  it('runs an ONNX model end to end: input size from the model, letterbox, decode, crop and read', async () => {
    // The model always answers with the plate of the synthetic scene, in its 320x320 input frame.
    const lb = letterboxParams(1280, 720, 320, 320);
    const to = (x: number, y: number) => [x * lb.scale + lb.padX, y * lb.scale + lb.padY];
    const [x1, y1] = to(FLAT.x - 4, FLAT.y - 4);
    const [x2, y2] = to(FLAT.x + FLAT.w + 4, FLAT.y + FLAT.h + 4);
    const dir = mkdtempSync(join(tmpdir(), 'vigia-yolo-'));
    const file = join(dir, 'plate-end2end.onnx');
    writeFileSync(file, constantModel([1, 3, 320, 320], [1, 2, 7], [0, x1!, y1!, x2!, y2!, 0, 0.92, 0, 1, 1, 3, 3, 0, 0.05]));

    const det = await YoloPlateDetector.create(file, { threads: 1 });
    expect([det.width, det.height]).toEqual([320, 320]);
    const jpeg = await scene(oneLinePlate('BB·CL·12', FLAT));
    const found = await det.detect(await decodeImage(jpeg));
    expect(found).toHaveLength(1);
    expect(found[0]!.score).toBeCloseTo(0.92, 5);
    for (const [i, v] of found[0]!.box.entries()) expect(v).toBeCloseTo([FLAT.x - 4, FLAT.y - 4, FLAT.w + 8, FLAT.h + 8][i]!, 0);
    await det.close();

    const engine = await AnprEngine.create({ detector: { yolo: file }, threads: 2 });
    try {
      const r = await engine.read(jpeg);
      expect(r.plates[0]!.text).toBe('BBCL12');
    } finally {
      await engine.close();
    }
  });
});

describe('worker pool', () => {
  /** Worker threads run compiled code: dist/ must be at least as new as the sources (npm test builds first). */
  function assertFreshBuild(): void {
    const src = join(ROOT, 'src/anpr');
    const built = join(ROOT, 'dist/anpr/worker.js');
    const newest = Math.max(...readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs));
    if (!existsSync(built) || statSync(built).mtimeMs < newest) throw new Error('dist/ is older than src/anpr: run `npm run build` (npm test does)');
  }

  let pool: AnprWorkerPool;
  afterAll(async () => {
    await pool?.close();
  });

  it('reads in a worker, transfers the frame, drops frames when saturated', async () => {
    assertFreshBuild();
    pool = new AnprWorkerPool({ workers: 1, threadsPerWorker: 2, maxQueue: 1 });
    await pool.ready();
    const jpeg = await scene(oneLinePlate('BB·CL·12', FLAT));

    const own = new Uint8Array(jpeg); // owns its whole ArrayBuffer: transferred
    const first = pool.read(own);
    expect(own.byteLength).toBe(0);
    const second = pool.read(new Uint8Array(jpeg)); // queued
    const third = pool.read(new Uint8Array(jpeg)); // queue full
    await expect(third).rejects.toBeInstanceOf(AnprBusyError);
    await expect(third).rejects.toMatchObject({ reason: 'busy' });
    const [a, b] = await Promise.all([first, second]);
    expect(a.plates[0]!.text).toBe('BBCL12');
    expect(b.plates[0]!.text).toBe('BBCL12');

    const bad = await pool.read(Buffer.from('definitely not a jpeg')).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ImageRejected);
    expect((bad as ImageRejected).reason).toBe('not_image');

    const s = pool.stats();
    expect(s).toMatchObject({ workers: 1, ready: 1, busy: 0, queued: 0, completed: 2, failed: 1, rejectedBusy: 1, restarts: 0 });
  });
});

describe('Tesseract recogniser', () => {
  it('reads a clean plate crop from local traineddata with the network blocked', async () => {
    // tesseract.js loads its data inside its own worker thread: wrap that worker's script so any
    // network access there throws (and fails initialisation).
    const dir = mkdtempSync(join(tmpdir(), 'vigia-tess-'));
    const realWorker = createRequire(import.meta.url).resolve('tesseract.js/src/worker-script/node/index.js');
    const guard = join(dir, 'guarded-worker.cjs');
    writeFileSync(
      guard,
      `const blocked = (what) => function () { throw new Error('network access in test: ' + what); };
globalThis.fetch = blocked('fetch');
for (const m of ['net', 'tls', 'http', 'https', 'http2']) {
  const mod = require(m);
  for (const k of ['connect', 'createConnection', 'request', 'get']) if (typeof mod[k] === 'function') mod[k] = blocked(m + '.' + k);
}
require('dns').lookup = blocked('dns.lookup');
require(${JSON.stringify(realWorker)});
`,
    );
    const cachePath = join(dir, 'cache');
    const rec = await TesseractRecogniser.create({ cachePath, workerPath: guard });
    try {
      expect(existsSync(join(cachePath, 'eng.traineddata'))).toBe(true); // unpacked from the npm package
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="300" height="80"><rect width="300" height="80" fill="#f4f4f0"/>
        <text x="150" y="60" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-weight="bold" font-size="54" text-anchor="middle" fill="#111">BB·CL·12</text></svg>`;
      const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const r = await rec.recognise({ width: info.width, height: info.height, data });
      expect(r.text).toBe('BBCL12');
      expect(r.chars).toHaveLength(6);
      expect(r.confidence).toBeGreaterThan(0.5);
    } finally {
      await rec.close();
    }
  });
});
