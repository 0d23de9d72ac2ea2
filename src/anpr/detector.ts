import {
  angleDiff,
  clamp,
  type Box,
  cropImage,
  type DecodedImage,
  minAreaRect,
  type Point,
  type Quad,
  quadBounds,
  rectCorners,
  resizeImage,
  scaleRect,
  type RotatedRect,
  toRectFrame,
  unclip,
  unionRect,
  writeChw,
} from './image.js';
import { OnnxModel, ort, paddleModelPaths } from './models.js';

/**
 * Stage 1 of the plate reader: where in the frame is there something worth reading. The default
 * detector is a general text detector (PP-OCRv4, differentiable binarisation) followed by a plate
 * filter on the geometry of its text lines; `yolo.ts` plugs in a dedicated plate model instead.
 */

export interface Detection {
  /** Axis-aligned bounds in original pixels: x, y, w, h. */
  box: Box;
  score: number;
  /** The (possibly rotated) region to read, clockwise from the text's top-left corner. */
  polygon?: Quad;
  /** 2 when the region holds two stacked lines of text (square plates, motorcycles). */
  lines?: 1 | 2;
}

export interface PlateDetector {
  /**
   * Plates in the image; with `region` (original pixels), only those inside it, found for less
   * work where the detector supports it (the motion region of a camera's frame).
   */
  detect(img: DecodedImage, region?: Box): Promise<Detection[]>;
  close?(): Promise<void>;
}

/** A text line found by DB post-processing. */
export interface TextLine {
  rect: RotatedRect;
  score: number;
}

export interface DbOptions {
  /** Probability above which a pixel is text. */
  threshold: number;
  /** Mean probability a component needs to be kept. */
  boxThreshold: number;
  unclipRatio: number;
  /** Shorter side (after unclip, in map pixels) below which a line is dropped. */
  minSize: number;
}

export const DEFAULT_DB: DbOptions = { threshold: 0.3, boxThreshold: 0.6, unclipRatio: 1.5, minSize: 5 };

/**
 * DB post-processing on a probability map: binarise, label 8-connected components, score each by
 * its mean probability, fit a minimum-area rectangle around it and unclip it. Coordinates are in
 * map pixels (a pixel covers [x, x+1)).
 */
export function dbPostprocess(prob: ArrayLike<number>, width: number, height: number, opts: Partial<DbOptions> = {}): TextLine[] {
  const o = { ...DEFAULT_DB, ...opts };
  const n = width * height;
  // 1 for a text pixel not yet part of a component; cleared as the flood fill takes it.
  const open = new Uint8Array(n);
  for (let i = 0; i < n; i++) if ((prob[i] as number) > o.threshold) open[i] = 1;
  const stack = new Int32Array(n);
  // Leftmost and rightmost pixel of every row of the current component (reset after each).
  const rowMin = new Int32Array(height).fill(width);
  const rowMax = new Int32Array(height).fill(-1);
  const lines: TextLine[] = [];
  for (let start = 0; start < n; start++) {
    if (!open[start]) continue;
    // Flood fill, 8-connected.
    let sp = 0;
    let count = 0;
    let sum = 0;
    stack[sp++] = start;
    open[start] = 0;
    let y0 = height;
    let y1 = -1;
    while (sp > 0) {
      const j = stack[--sp]!;
      count++;
      sum += prob[j] as number;
      const y = (j / width) | 0;
      const x = j - y * width;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
      if (x < rowMin[y]!) rowMin[y] = x;
      if (x > rowMax[y]!) rowMax[y] = x;
      const left = x > 0 ? -1 : 0;
      const right = x < width - 1 ? 1 : 0;
      for (let dy = y > 0 ? -1 : 0, dyEnd = y < height - 1 ? 1 : 0; dy <= dyEnd; dy++) {
        const row = j + dy * width;
        for (let k = row + left; k <= row + right; k++) {
          if (open[k]) {
            open[k] = 0;
            stack[sp++] = k;
          }
        }
      }
    }
    // Outline of the component: leftmost and rightmost pixel of every row, as pixel squares.
    const outline: Point[] = [];
    for (let y = y0; y <= y1; y++) {
      if (rowMax[y]! >= 0) outline.push([rowMin[y]!, y], [rowMin[y]!, y + 1], [rowMax[y]! + 1, y], [rowMax[y]! + 1, y + 1]);
      rowMin[y] = width;
      rowMax[y] = -1;
    }
    if (count < 4) continue;
    const score = sum / count;
    if (score < o.boxThreshold) continue;
    const rect = minAreaRect(outline);
    if (Math.min(rect.width, rect.height) < 2) continue;
    const grown = unclip(rect, o.unclipRatio);
    if (Math.min(grown.width, grown.height) < o.minSize) continue;
    lines.push({ rect: grown, score });
  }
  return lines;
}

export interface PlateFilterOptions {
  /** Minimum height of a single text line, original pixels. */
  minHeight: number;
  /** Width/height range of a single line that may be (part of) a plate. */
  lineAspect: [number, number];
  /** Width/height range of a two-line block. */
  blockAspect: [number, number];
  /** Most candidates handed to the recogniser (highest score x area first). */
  maxCandidates: number;
  /** Minimum spread of luma (5th to 95th percentile) inside the region. */
  minContrast: number;
}

export const DEFAULT_PLATE_FILTER: PlateFilterOptions = {
  minHeight: 8,
  lineAspect: [1.2, 14],
  blockAspect: [0.7, 3.2],
  maxCandidates: 16,
  minContrast: 16,
};

interface Candidate {
  rect: RotatedRect;
  score: number;
  lines: 1 | 2;
}

/**
 * Plate candidates from text lines: lines of a plate that the detector split (an emblem or a wide
 * gap between character groups) are joined; two lines of similar height stacked on each other are
 * joined as a two-line block; then geometry, contrast and a cap on the count. Joined regions are
 * offered in addition to their parts, the recogniser and ranker decide which reads best.
 */
export function plateCandidates(img: DecodedImage, lines: TextLine[], opts: Partial<PlateFilterOptions> = {}): Detection[] {
  const o = { ...DEFAULT_PLATE_FILTER, ...opts };
  const out: Candidate[] = lines.map((l) => ({ rect: l.rect, score: l.score, lines: 1 }));
  const sorted = lines.slice().sort((a, b) => a.rect.cx - b.rect.cx);

  // Same line, split by a gap: grow chains left to right.
  for (let i = 0; i < sorted.length; i++) {
    let chain = [sorted[i]!];
    for (let j = i + 1; j < sorted.length; j++) {
      const last = chain[chain.length - 1]!;
      if (sameLine(last.rect, sorted[j]!.rect)) {
        chain = chain.concat(sorted[j]!);
        const rect = unionRect(chain.map((c) => c.rect));
        out.push({ rect, score: mean(chain.map((c) => c.score)), lines: 1 });
      }
    }
  }

  // Two stacked lines.
  const singles = out.filter((c) => c.lines === 1);
  for (const top of singles) {
    for (const bottom of singles) {
      if (top === bottom || !stacked(top.rect, bottom.rect)) continue;
      out.push({ rect: unionRect([top.rect, bottom.rect]), score: (top.score + bottom.score) / 2, lines: 2 });
    }
  }

  const kept: Array<Candidate & { rank: number }> = [];
  for (const c of out) {
    const { width, height } = c.rect;
    const aspect = width / Math.max(1e-6, height);
    const lineHeight = c.lines === 2 ? height / 2 : height;
    if (lineHeight < o.minHeight) continue;
    const [lo, hi] = c.lines === 2 ? o.blockAspect : o.lineAspect;
    if (aspect < lo || aspect > hi) continue;
    if (contrast(img, c.rect) < o.minContrast) continue;
    kept.push({ ...c, rank: c.score * Math.sqrt(width * height) });
  }
  kept.sort((a, b) => b.rank - a.rank);
  const seen = new Set<string>();
  const result: Detection[] = [];
  for (const c of kept) {
    const quad = rectCorners(c.rect);
    const b = quadBounds(quad);
    const box: Box = [clamp(b[0], 0, img.width), clamp(b[1], 0, img.height), 0, 0];
    box[2] = clamp(b[0] + b[2], 0, img.width) - box[0];
    box[3] = clamp(b[1] + b[3], 0, img.height) - box[1];
    const key = `${Math.round(c.rect.cx)},${Math.round(c.rect.cy)},${Math.round(c.rect.width)},${Math.round(c.rect.height)}`;
    if (seen.has(key) || box[2] < 1 || box[3] < 1) continue;
    seen.add(key);
    result.push({ box, score: c.score, polygon: quad, lines: c.lines });
    if (result.length >= o.maxCandidates) break;
  }
  return result;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** b continues the line of a to the right: same direction, similar height, aligned, a modest gap. */
function sameLine(a: RotatedRect, b: RotatedRect): boolean {
  if (angleDiff(a.angle, b.angle) > 0.2) return false;
  const h = (a.height + b.height) / 2;
  // Loose on height: a short group's box can come out much lower than its neighbour's.
  if (Math.max(a.height, b.height) / Math.min(a.height, b.height) > 2) return false;
  const [along, across] = toRectFrame(a, [b.cx, b.cy]);
  if (Math.abs(across) > 0.3 * Math.max(a.height, b.height)) return false;
  const gap = along - a.width / 2 - b.width / 2;
  return gap > -0.3 * h && gap < 1.2 * h;
}

/** b sits right under a: overlapping horizontally, similar heights, a small vertical gap. */
function stacked(a: RotatedRect, b: RotatedRect): boolean {
  if (angleDiff(a.angle, b.angle) > 0.2) return false;
  if (Math.max(a.height, b.height) / Math.min(a.height, b.height) > 1.7) return false;
  const [along, across] = toRectFrame(a, [b.cx, b.cy]);
  if (across <= 0) return false;
  const gap = across - a.height / 2 - b.height / 2;
  if (gap < -0.3 * Math.min(a.height, b.height) || gap > 0.6 * Math.max(a.height, b.height)) return false;
  const overlap = Math.min(a.width / 2, along + b.width / 2) - Math.max(-a.width / 2, along - b.width / 2);
  if (overlap < 0.5 * Math.min(a.width, b.width)) return false;
  const w = Math.max(a.width, b.width) / Math.min(a.width, b.width);
  return w < 3;
}

/** 5th-to-95th percentile spread of luma over the rectangle's axis bounds (sampled). */
function contrast(img: DecodedImage, r: RotatedRect): number {
  const b = quadBounds(rectCorners(r));
  const x0 = clamp(Math.floor(b[0]), 0, img.width - 1);
  const y0 = clamp(Math.floor(b[1]), 0, img.height - 1);
  const x1 = clamp(Math.ceil(b[0] + b[2]), x0 + 1, img.width);
  const y1 = clamp(Math.ceil(b[1] + b[3]), y0 + 1, img.height);
  const step = Math.max(1, Math.floor(Math.sqrt(((x1 - x0) * (y1 - y0)) / 4000)));
  const hist = new Uint32Array(256);
  let total = 0;
  const d = img.data;
  for (let y = y0; y < y1; y += step) {
    for (let x = x0; x < x1; x += step) {
      const i = (y * img.width + x) * 3;
      hist[Math.round(0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!)]!++;
      total++;
    }
  }
  const pct = (p: number) => {
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += hist[v]!;
      if (acc >= p * total) return v;
    }
    return 255;
  };
  return pct(0.95) - pct(0.05);
}

export interface TextDetectorOptions {
  /** Longer side of the detector's input (multiple of 32). Larger finds smaller plates, slower. */
  maxSide?: number;
  /** Upscale images smaller than this on the longer side (small plates in small stills). */
  minSide?: number;
  threads?: number;
  db?: Partial<DbOptions>;
  filter?: Partial<PlateFilterOptions>;
  /** Path to a DB text detection model in ONNX; PP-OCRv4 from the npm package when absent. */
  modelPath?: string;
}

/**
 * Default longer side of the detector input. 800 keeps a 1280x720 frame near 150 ms on two cores
 * while still finding plates about 80 px wide; 960 (PaddleOCR's default) finds smaller ones.
 */
export const DEFAULT_MAX_SIDE = 800;

/** A region whose detector input would be this share of the full frame's or more is read whole. */
const WHOLE_FRAME_SHARE = 0.8;

const DET_LAYOUT = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: 'bgr' } as const;

/** PP-OCRv4 text detection + DB post-processing + plate filter. */
export class TextDetector implements PlateDetector {
  #input: Float32Array | null = null;

  private constructor(
    readonly model: OnnxModel,
    private readonly opts: TextDetectorOptions,
  ) {}

  static async create(opts: TextDetectorOptions = {}): Promise<TextDetector> {
    const model = await OnnxModel.load(opts.modelPath ?? paddleModelPaths().det, opts.threads);
    return new TextDetector(model, opts);
  }

  /** Size of the detector's input for an image, both multiples of 32. */
  inputSize(width: number, height: number): { width: number; height: number } {
    const maxSide = this.opts.maxSide ?? DEFAULT_MAX_SIDE;
    const minSide = this.opts.minSide ?? 0;
    const long = Math.max(width, height);
    let s = Math.min(1, maxSide / long);
    if (long < minSide) s = minSide / long;
    const r32 = (v: number) => Math.max(32, Math.round(v / 32) * 32);
    return { width: r32(width * s), height: r32(height * s) };
  }

  /**
   * The part of the image the detector looks at for `region`: the region grown to whole input
   * cells at the full frame's scale (so that the text is seen at the same size as in a full-frame
   * pass), or null when that is (nearly) the whole frame anyway.
   */
  detectionWindow(width: number, height: number, region: Box): { window: Box; input: { width: number; height: number } } | null {
    const full = this.inputSize(width, height);
    const sx = full.width / width;
    const sy = full.height / height;
    const cellW = 32 / sx;
    const cellH = 32 / sy;
    const x0 = clamp(Math.floor(region[0] / cellW) * cellW, 0, width);
    const y0 = clamp(Math.floor(region[1] / cellH) * cellH, 0, height);
    const x1 = clamp(Math.ceil((region[0] + region[2]) / cellW) * cellW, 0, width);
    const y1 = clamp(Math.ceil((region[1] + region[3]) / cellH) * cellH, 0, height);
    const input = { width: Math.max(32, Math.round(((x1 - x0) * sx) / 32) * 32), height: Math.max(32, Math.round(((y1 - y0) * sy) / 32) * 32) };
    if (input.width * input.height >= WHOLE_FRAME_SHARE * full.width * full.height) return null;
    return { window: [x0, y0, x1 - x0, y1 - y0], input };
  }

  /** Text lines in original pixel coordinates; with `region`, only in (a window around) it. */
  async detectLines(img: DecodedImage, region?: Box): Promise<TextLine[]> {
    const win = region ? this.detectionWindow(img.width, img.height, region) : null;
    const source = win ? cropImage(img, win.window) : img;
    const size = win ? win.input : this.inputSize(img.width, img.height);
    // Resampled by libvips on purpose: the thresholds downstream were tuned on its output, and
    // readings move with another resampler, or with padding to the multiple of 32 instead.
    const resized = await resizeImage(source, size.width, size.height);
    const input = this.#takeInput(3 * size.width * size.height);
    try {
      writeChw(resized, DET_LAYOUT, input);
      const out = await this.model.run({ [this.model.inputNames[0]!]: new ort.Tensor('float32', input, [1, 3, size.height, size.width]) });
      const prob = out[this.model.outputNames[0]!]!;
      const [, , mh, mw] = prob.dims as number[];
      const lines = dbPostprocess(prob.data as Float32Array, mw!, mh!, this.opts.db);
      const sx = source.width / mw!;
      const sy = source.height / mh!;
      const [ox, oy] = win ? win.window : [0, 0];
      return lines.map((l) => {
        const r = scaleRect(l.rect, sx, sy);
        return { score: l.score, rect: { ...r, cx: r.cx + ox, cy: r.cy + oy } };
      });
    } finally {
      this.#input = input;
    }
  }

  /**
   * The input tensor's buffer, kept from frame to frame rather than leaving megabytes of garbage
   * per frame. A call made while another one runs gets a buffer of its own.
   */
  #takeInput(length: number): Float32Array {
    const kept = this.#input;
    this.#input = null;
    return kept && kept.length === length ? kept : new Float32Array(length);
  }

  async detect(img: DecodedImage, region?: Box): Promise<Detection[]> {
    return plateCandidates(img, await this.detectLines(img, region), this.opts.filter);
  }

  async close(): Promise<void> {
    await this.model.release();
  }
}
