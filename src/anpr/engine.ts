import { type Detection, type PlateDetector, TextDetector } from './detector.js';
import { type Box, clamp, cropImage, type DecodedImage, decodeImage, overlapOfSmaller, type Quad, quadBounds, quadSize, warpQuad } from './image.js';
import { fingerprint, fingerprintDistance } from './fingerprint.js';
import { textLikeness } from './plate-likeness.js';
import { defaultThreads, type OnnxModel } from './models.js';
import { isPlateLike, PaddleRecogniser, type PlateRecogniser, type RecognisedChar, type Recognition } from './recogniser.js';
import { TesseractRecogniser } from './tesseract.js';
import { YoloPlateDetector } from './yolo.js';

export { isPlateLike };
export { ImageRejected, type RejectReason } from './image.js';

/**
 * The plate reader for one frame: decode → detect → crop → recognise → rank. Grammar re-ranking,
 * voting over frames and hot-list matching happen downstream; `text` here is the raw reading.
 */

export interface EngineOptions {
  /** Plate detector: PP-OCRv4 text detection (default) or a YOLO plate model file. */
  detector?: 'ppocr' | { yolo: string };
  recogniser?: 'ppocr' | 'tesseract';
  /** Inference threads per model (default: cores, at most 4). */
  threads?: number;
  /**
   * Longer side of the text detector's input (default 800, see `DEFAULT_MAX_SIDE`). Smaller is
   * faster but misses small plates; 960 or more for wide scenes with distant plates.
   */
  maxSide?: number;
}

export interface PlateReading {
  /** Upper-case letters and digits as read. */
  text: string;
  /** Mean per-character probability. */
  confidence: number;
  /** Where the plate is, original pixels: x, y, w, h. */
  box: [number, number, number, number];
  /** The region read (rotated for tilted plates). */
  polygon?: Quad;
  /** Detector score. */
  detectorScore: number;
  chars: RecognisedChar[];
  /** Fingerprint of the detection's crop (see `fingerprint.ts`), for the next frame's `previous`. */
  fingerprint?: Uint8Array;
  /** True for a second, wider reading of a detection (edge recovery). */
  widened?: boolean;
  /** Frames in a row this reading was carried over from a previous frame without being read again. */
  reused?: number;
}

export interface ReadOptions {
  /**
   * Where to look for plates, normalised x, y, w, h (a camera's motion region): the detector runs
   * on a window around it at the full frame's scale. The whole frame when absent.
   */
  region?: readonly [number, number, number, number];
  /**
   * The same camera's readings of its previous frame. A detection over one of them whose crop has
   * not changed (see {@link REUSE_MAX_DISTANCE}) takes its reading instead of being read again, at
   * most {@link REUSE_MAX_FRAMES} frames in a row.
   */
  previous?: readonly PlateReading[];
}

/** Fingerprints at most this far apart (see `fingerprintDistance`) are the same plate, unchanged: a box 2 px off on a 250 px plate is about 0.09 away, one character changed about 0.18. */
export const REUSE_MAX_DISTANCE = 0.12;
/** A reading is carried over at most this many frames in a row, then read again. */
export const REUSE_MAX_FRAMES = 4;
/** A detection is over a previous reading when their boxes share this much of the smaller one. */
const REUSE_MIN_OVERLAP = 0.3;

export interface ReadTimings {
  decode: number;
  detect: number;
  recognise: number;
  total: number;
  /** Time inside ONNX Runtime `session.run`, summed over the models. */
  sessionRun: number;
  /** Detections whose reading was carried over from `previous` rather than read. */
  reused: number;
  /** Share of the frame's pixels the detector looked at (1 for the whole frame). */
  detectedShare: number;
}

export interface ReadResult {
  /** Readings best first by {@link rankReadings}; plate-like ones before other text. */
  plates: PlateReading[];
  width: number;
  height: number;
  timings: ReadTimings;
}

/** Ranking score of a raw reading: its mean confidence times the text's plate-likeness. */
export function readingScore(r: { text: string; confidence: number }): number {
  return r.confidence * textLikeness(r.text);
}

/**
 * Standalone ranking of raw readings (the grammar's ranking in `pipeline.ts` is better): by
 * {@link readingScore}, so plate-shaped text before words, numbers and overlays; duplicates of a
 * text keep their best reading; readings under 2 characters go.
 */
export function rankReadings<T extends { text: string; confidence: number }>(readings: T[]): T[] {
  const best = new Map<string, T>();
  for (const r of readings) {
    if (r.text.length < 2) continue;
    const seen = best.get(r.text);
    if (!seen || r.confidence > seen.confidence) best.set(r.text, r);
  }
  return [...best.values()].sort((a, b) => readingScore(b) - readingScore(a));
}

/** Margin added around a detection before reading it, as a fraction of its height (per side). */
const CROP_MARGIN = { along: 0.2, across: 0.04 };
/** Crops are cut at most this tall before the recogniser's own resize (keeps warps cheap). */
const MAX_CROP_HEIGHT = 144;

/** Extra margin along the text, in line heights, on a side where a reading's ink reaches the crop's edge. */
export const EDGE_WIDEN = 0.8;
/** Ink this close to a crop's edge (line heights; the crop's own margin is 0.2) may go on beyond it. */
export const EDGE_NEAR = 0.34;
/** An edge character this unsure may be part of a cut-off one. */
export const EDGE_UNSURE = 0.6;

/** Upright crop of a detection: warped from its polygon when there is one; `widen` adds margin along the text per side. */
export function cropDetection(img: DecodedImage, det: Detection, widen: { left?: number; right?: number } = {}): DecodedImage {
  if (!det.polygon && !widen.left && !widen.right) {
    // An axis-aligned box (a plate model's) is cut, not warped: no resampling before the recogniser's.
    const [x, y, w, h] = det.box;
    const m = h * CROP_MARGIN.across;
    return cropImage(img, [x - m, y - m, w + 2 * m, h + 2 * m]);
  }
  return warpRegion(img, detectionQuad(det, widen));
}

/** The region {@link cropDetection} reads, in original pixels, clockwise from the text's top-left corner. */
export function detectionQuad(det: Detection, widen: { left?: number; right?: number } = {}): Quad {
  const q: Quad = det.polygon ?? [
    [det.box[0], det.box[1]],
    [det.box[0] + det.box[2], det.box[1]],
    [det.box[0] + det.box[2], det.box[1] + det.box[3]],
    [det.box[0], det.box[1] + det.box[3]],
  ];
  if (!det.polygon && !widen.left && !widen.right) return growQuad(q, CROP_MARGIN.across, CROP_MARGIN.across, CROP_MARGIN.across);
  return growQuad(q, CROP_MARGIN.along + (widen.left ?? 0), CROP_MARGIN.along + (widen.right ?? 0), CROP_MARGIN.across);
}

function warpRegion(img: DecodedImage, quad: Quad): DecodedImage {
  const size = quadSize(quad);
  const s = Math.min(1, MAX_CROP_HEIGHT / Math.max(1, size.height));
  return warpQuad(img, quad, Math.max(4, size.width * s), Math.max(4, size.height * s));
}

/**
 * The sides on which a reading may have lost a character to a tight box: its ink reaches the
 * crop's edge, or its character there is unsure. Only for plate-sized one-line readings.
 */
export function openEdges(r: Recognition, lines: 1 | 2 | undefined): { left: boolean; right: boolean } | null {
  if (lines === 2 || !r.edges || r.chars.length < 3 || r.chars.length > 9 || textLikeness(r.text) < 0.3) return null;
  const left = r.edges.left <= EDGE_NEAR || r.chars[0]!.prob < EDGE_UNSURE;
  const right = r.edges.right <= EDGE_NEAR || r.chars[r.chars.length - 1]!.prob < EDGE_UNSURE;
  return left || right ? { left, right } : null;
}

/** A recovered edge character must be this sure for the wider reading to replace the first one outright. */
export const EDGE_RECOVERED_MIN_PROB = 0.7;

/**
 * Whether `wide` is `narrow` with one or two characters more at its ends, each read with at least
 * `minProb` (a bolt or a frame edge read as `I` is unsure).
 */
export function extendsReading(narrow: Recognition, wide: Recognition, minProb: number): boolean {
  const extra = wide.text.length - narrow.text.length;
  if (narrow.text.length === 0 || extra < 1 || extra > 2) return false;
  for (let before = 0; before <= extra; before++) {
    if (wide.text.slice(before, before + narrow.text.length) !== narrow.text) continue;
    const added = [...wide.chars.slice(0, before), ...wide.chars.slice(before + narrow.text.length)];
    if (added.every((c) => c.prob >= minProb)) return true;
  }
  return false;
}

function growQuad(q: Quad, alongLeft: number, alongRight: number, across: number): Quad {
  const [tl, tr, br, bl] = q;
  const h = quadSize(q).height;
  const ux = (tr[0] - tl[0] + br[0] - bl[0]) / 2;
  const uy = (tr[1] - tl[1] + br[1] - bl[1]) / 2;
  const ul = Math.hypot(ux, uy) || 1;
  const vx = (bl[0] - tl[0] + br[0] - tr[0]) / 2;
  const vy = (bl[1] - tl[1] + br[1] - tr[1]) / 2;
  const vl = Math.hypot(vx, vy) || 1;
  const c = across * h;
  const move = (p: [number, number], su: number, sv: number): [number, number] => {
    const a = (su < 0 ? alongLeft : alongRight) * h;
    return [p[0] + (su * a * ux) / ul + (sv * c * vx) / vl, p[1] + (su * a * uy) / ul + (sv * c * vy) / vl];
  };
  return [move(tl, -1, -1), move(tr, 1, -1), move(br, 1, 1), move(bl, -1, 1)];
}

export class AnprEngine {
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    readonly detector: PlateDetector,
    readonly recogniser: PlateRecogniser,
    private readonly models: OnnxModel[],
  ) {}

  static async create(opts: EngineOptions = {}): Promise<AnprEngine> {
    const threads = opts.threads ?? defaultThreads();
    const detector =
      opts.detector === undefined || opts.detector === 'ppocr'
        ? await TextDetector.create({ threads, ...(opts.maxSide ? { maxSide: opts.maxSide } : {}) })
        : await YoloPlateDetector.create(opts.detector.yolo, { threads });
    let recogniser: PlateRecogniser;
    try {
      recogniser = opts.recogniser === 'tesseract' ? await TesseractRecogniser.create() : await PaddleRecogniser.create({ threads });
    } catch (err) {
      await detector.close();
      throw err;
    }
    const models = [detector, recogniser].flatMap((m) => ('model' in m && m.model ? [m.model as OnnxModel] : []));
    return new AnprEngine(detector, recogniser, models);
  }

  /**
   * Read the plates in one encoded image. Rejects with `ImageRejected` for data that is not a
   * whole, reasonably sized image. Calls are served one at a time (the models already use all
   * the threads they were given); use `AnprWorkerPool` for parallel frames.
   */
  read(image: Uint8Array, opts: ReadOptions = {}): Promise<ReadResult> {
    const run = this.#queue.then(() => this.#read(image, opts));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #read(image: Uint8Array, opts: ReadOptions): Promise<ReadResult> {
    if (this.#closed) throw new Error('ANPR engine is closed');
    const t0 = performance.now();
    const run0 = this.#sessionRunMs();
    const img = await decodeImage(image);
    const t1 = performance.now();
    const region = opts.region ? regionBox(opts.region, img.width, img.height) : undefined;
    const detections = await this.detector.detect(img, region);
    const t2 = performance.now();
    const { readings, reused } = await this.#readDetections(img, detections, opts.previous ?? []);
    const t3 = performance.now();
    return {
      plates: rankReadings(readings),
      width: img.width,
      height: img.height,
      timings: {
        decode: ms(t1 - t0),
        detect: ms(t2 - t1),
        recognise: ms(t3 - t2),
        total: ms(t3 - t0),
        sessionRun: ms(this.#sessionRunMs() - run0),
        reused,
        detectedShare: region && this.detector instanceof TextDetector ? detectedShare(this.detector, img, region) : 1,
      },
    };
  }

  /** Readings carried over from `previous` for the detections whose crop has not changed; the others read. */
  async #readDetections(img: DecodedImage, detections: Detection[], previous: readonly PlateReading[]): Promise<{ readings: PlateReading[]; reused: number }> {
    if (previous.length === 0) return { readings: await this.recogniseDetections(img, detections), reused: 0 };
    const carried: PlateReading[] = [];
    const toRead: Detection[] = [];
    const prints = new Map<Detection, Uint8Array>();
    for (const det of detections) {
      const print = fingerprint(cropDetection(img, det));
      prints.set(det, print);
      const same = previous.find(
        (p) =>
          !p.widened &&
          p.fingerprint !== undefined &&
          (p.reused ?? 0) < REUSE_MAX_FRAMES &&
          overlapOfSmaller(p.box, det.box) >= REUSE_MIN_OVERLAP &&
          fingerprintDistance(p.fingerprint, print) <= REUSE_MAX_DISTANCE,
      );
      if (!same) {
        toRead.push(det);
        continue;
      }
      // The reading and its wider re-read, if any, moved with the plate.
      const dx = det.box[0] - same.box[0];
      const dy = det.box[1] - same.box[1];
      for (const p of previous) {
        // A wider re-read of the same detection carries the same crop fingerprint.
        if (p !== same && !(p.widened && p.fingerprint && Buffer.compare(p.fingerprint, same.fingerprint!) === 0)) continue;
        carried.push({
          ...p,
          box: p === same ? (det.box.map((v) => Math.round(v)) as Box) : [p.box[0] + dx, p.box[1] + dy, p.box[2], p.box[3]],
          ...(p.polygon ? { polygon: p.polygon.map(([x, y]) => [x + dx, y + dy]) as Quad } : {}),
          fingerprint: print,
          reused: (p.reused ?? 0) + 1,
        });
      }
    }
    const read = toRead.length > 0 ? await this.recogniseDetections(img, toRead, prints) : [];
    return { readings: [...carried, ...read], reused: detections.length - toRead.length };
  }

  /**
   * Crop and read every detection (one batched call when the recogniser supports it); then read
   * again, wider, the ones that may have lost a character at an edge (see {@link openEdges}). The
   * wider reading is returned beside the first one, over the same place: the ranking keeps the
   * better of the two (a grammar's format, the text's plate-likeness, the confidences).
   */
  async recogniseDetections(img: DecodedImage, detections: Detection[], prints = new Map<Detection, Uint8Array>()): Promise<PlateReading[]> {
    const first = await this.#recognise(
      img,
      detections.map((d) => ({ det: d, quad: detectionQuad(d), widened: false })),
      prints,
    );
    const again: Region[] = [];
    first.forEach((r, i) => {
      const det = detections[i]!;
      const open = openEdges(r.recognition, det.lines);
      if (open) again.push({ det, quad: detectionQuad(det, { left: open.left ? EDGE_WIDEN : 0, right: open.right ? EDGE_WIDEN : 0 }), widened: true });
    });
    const second = again.length > 0 ? await this.#recognise(img, again, prints) : [];
    // A wider reading counts only when it is the first one with characters more at its ends (it
    // found what the box cut off): with sure ones it replaces the first outright, with unsure ones
    // both stay for the ranking to choose. Any other wider reading is a second opinion on the same
    // characters, no better than the first, and goes.
    const replaced = new Set<Detection>();
    const kept = second.filter((wide, k) => {
      const narrow = first[detections.indexOf(again[k]!.det)]!.recognition;
      if (extendsReading(narrow, wide.recognition, EDGE_RECOVERED_MIN_PROB)) replaced.add(again[k]!.det);
      return extendsReading(narrow, wide.recognition, 0);
    });
    return [...first.filter((_, i) => !replaced.has(detections[i]!)), ...kept].map((r) => r.reading);
  }

  async #recognise(
    img: DecodedImage,
    regions: Region[],
    prints: Map<Detection, Uint8Array>,
  ): Promise<Array<{ recognition: Recognition; reading: PlateReading }>> {
    const crops = regions.map((r) => (r.widened ? warpRegion(img, r.quad) : cropDetection(img, r.det)));
    regions.forEach((r, i) => {
      if (!prints.has(r.det)) prints.set(r.det, fingerprint(crops[i]!));
    });
    const hints = regions.map((r) => (r.det.lines ? { lines: r.det.lines } : {}));
    const results: Recognition[] = this.recogniser.recogniseMany
      ? await this.recogniser.recogniseMany(crops, hints)
      : await sequential(crops.map((c, i) => () => this.recogniser.recognise(c, hints[i])));
    return results.map((r, i) => {
      const { det: d, quad, widened } = regions[i]!;
      const box = widened ? clipBox(quadBounds(quad), img.width, img.height) : d.box;
      const polygon = widened ? quad : d.polygon;
      return {
        recognition: r,
        reading: {
          text: r.text,
          confidence: r.confidence,
          box: box.map((v) => Math.round(v)) as Box,
          ...(polygon ? { polygon: polygon.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]) as Quad } : {}),
          detectorScore: Math.round(d.score * 1e4) / 1e4,
          chars: r.chars,
          fingerprint: prints.get(d)!,
          ...(widened ? { widened: true } : {}),
        },
      };
    });
  }

  #sessionRunMs(): number {
    return this.models.reduce((s, m) => s + m.runMs, 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.detector.close?.();
    await this.recogniser.close?.();
  }
}

const ms = (v: number) => Math.round(v * 10) / 10;

/** A normalised region in pixels of a width x height frame. */
function regionBox(r: readonly [number, number, number, number], width: number, height: number): Box {
  return [r[0] * width, r[1] * height, r[2] * width, r[3] * height];
}

function detectedShare(detector: TextDetector, img: DecodedImage, region: Box): number {
  const win = detector.detectionWindow(img.width, img.height, region);
  return win ? Math.round(((win.window[2] * win.window[3]) / (img.width * img.height)) * 1000) / 1000 : 1;
}

/** A region to read: a detection, the quadrilateral cut from the frame for it, and whether it was widened. */
interface Region {
  det: Detection;
  quad: Quad;
  widened: boolean;
}

function clipBox(b: Box, width: number, height: number): Box {
  const x0 = clamp(b[0], 0, width);
  const y0 = clamp(b[1], 0, height);
  return [x0, y0, clamp(b[0] + b[2], 0, width) - x0, clamp(b[1] + b[3], 0, height) - y0];
}

async function sequential<T>(tasks: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = [];
  for (const t of tasks) out.push(await t());
  return out;
}
