import { type Detection, type PlateDetector, TextDetector } from './detector.js';
import { type Box, cropImage, type DecodedImage, decodeImage, type Quad, quadSize, warpQuad } from './image.js';
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
}

export interface ReadTimings {
  decode: number;
  detect: number;
  recognise: number;
  total: number;
  /** Time inside ONNX Runtime `session.run`, summed over the models. */
  sessionRun: number;
}

export interface ReadResult {
  /** Readings best first by {@link rankReadings}; plate-like ones before other text. */
  plates: PlateReading[];
  width: number;
  height: number;
  timings: ReadTimings;
}

/**
 * Weight of a plate-like reading's length: most plates have 6 to 8 characters, 5 is common
 * (motorcycles, older series), 4 and 10 are rare, while 4-character badges (320D, XC60) are not.
 */
const LENGTH_WEIGHT: Readonly<Record<number, number>> = { 4: 0.9, 5: 0.97, 6: 1, 7: 1, 8: 1, 9: 0.97, 10: 0.9 };

/** Ranking score of a raw reading: mean confidence, times a length weight for plate-like ones. */
export function readingScore(r: { text: string; confidence: number }): number {
  return isPlateLike(r.text) ? r.confidence * (LENGTH_WEIGHT[r.text.length] ?? 0.9) : r.confidence;
}

/**
 * Simple standalone ranking (grammars rank better): plate-like readings first, then by
 * {@link readingScore}; duplicates of a text keep their best reading; readings under 2
 * characters go.
 */
export function rankReadings<T extends { text: string; confidence: number }>(readings: T[]): T[] {
  const best = new Map<string, T>();
  for (const r of readings) {
    if (r.text.length < 2) continue;
    const seen = best.get(r.text);
    if (!seen || r.confidence > seen.confidence) best.set(r.text, r);
  }
  return [...best.values()].sort((a, b) => Number(isPlateLike(b.text)) - Number(isPlateLike(a.text)) || readingScore(b) - readingScore(a));
}

/** Margin added around a detection before reading it, as a fraction of its height (per side). */
const CROP_MARGIN = { along: 0.2, across: 0.04 };
/** Crops are cut at most this tall before the recogniser's own resize (keeps warps cheap). */
const MAX_CROP_HEIGHT = 144;

/** Upright crop of a detection: warped from its polygon when there is one. */
export function cropDetection(img: DecodedImage, det: Detection): DecodedImage {
  const q = det.polygon;
  if (!q) {
    const [x, y, w, h] = det.box;
    const m = h * CROP_MARGIN.across;
    return cropImage(img, [x - m, y - m, w + 2 * m, h + 2 * m]);
  }
  const grown = growQuad(q, CROP_MARGIN.along, CROP_MARGIN.across);
  const size = quadSize(grown);
  const s = Math.min(1, MAX_CROP_HEIGHT / Math.max(1, size.height));
  return warpQuad(img, grown, Math.max(4, size.width * s), Math.max(4, size.height * s));
}

function growQuad(q: Quad, along: number, across: number): Quad {
  const [tl, tr, br, bl] = q;
  const h = quadSize(q).height;
  const ux = (tr[0] - tl[0] + br[0] - bl[0]) / 2;
  const uy = (tr[1] - tl[1] + br[1] - bl[1]) / 2;
  const ul = Math.hypot(ux, uy) || 1;
  const vx = (bl[0] - tl[0] + br[0] - tr[0]) / 2;
  const vy = (bl[1] - tl[1] + br[1] - tr[1]) / 2;
  const vl = Math.hypot(vx, vy) || 1;
  const a = along * h;
  const c = across * h;
  const move = (p: [number, number], su: number, sv: number): [number, number] => [
    p[0] + (su * a * ux) / ul + (sv * c * vx) / vl,
    p[1] + (su * a * uy) / ul + (sv * c * vy) / vl,
  ];
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
  read(image: Uint8Array): Promise<ReadResult> {
    const run = this.#queue.then(() => this.#read(image));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #read(image: Uint8Array): Promise<ReadResult> {
    if (this.#closed) throw new Error('ANPR engine is closed');
    const t0 = performance.now();
    const run0 = this.#sessionRunMs();
    const img = await decodeImage(image);
    const t1 = performance.now();
    const detections = await this.detector.detect(img);
    const t2 = performance.now();
    const readings = await this.recogniseDetections(img, detections);
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
      },
    };
  }

  /** Crop and read every detection (one batched call when the recogniser supports it). */
  async recogniseDetections(img: DecodedImage, detections: Detection[]): Promise<PlateReading[]> {
    const crops = detections.map((d) => cropDetection(img, d));
    const hints = detections.map((d) => (d.lines ? { lines: d.lines } : {}));
    const results: Recognition[] = this.recogniser.recogniseMany
      ? await this.recogniser.recogniseMany(crops, hints)
      : await sequential(crops.map((c, i) => () => this.recogniser.recognise(c, hints[i])));
    return results.map((r, i) => {
      const d = detections[i]!;
      return {
        text: r.text,
        confidence: r.confidence,
        box: d.box.map((v) => Math.round(v)) as Box,
        ...(d.polygon ? { polygon: d.polygon.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]) as Quad } : {}),
        detectorScore: Math.round(d.score * 1e4) / 1e4,
        chars: r.chars,
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

async function sequential<T>(tasks: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = [];
  for (const t of tasks) out.push(await t());
  return out;
}
