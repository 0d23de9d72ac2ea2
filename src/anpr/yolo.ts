import type { Detection, PlateDetector } from './detector.js';
import { type Box, type DecodedImage, resizeImage } from './image.js';
import { OnnxModel, ort } from './models.js';

/**
 * A dedicated plate detector: any YOLO-family ONNX model with one of the common output layouts.
 *
 * - "end2end" (NMS inside the model): `[batch, N, 7]` or `[N, 7]` rows
 *   `[batch_id, x1, y1, x2, y2, class, score]`; also `[1, N, 6]` rows `[x1, y1, x2, y2, score, class]`
 *   (NMS-free exports).
 * - plain YOLOv8/v11: `[1, 4 + classes, anchors]` with centre x, centre y, width, height and one
 *   score per class (no objectness); NMS is done here. The transposed `[1, anchors, 4 + classes]`
 *   is accepted too.
 *
 * Input: letterboxed RGB, 0..1, NCHW, at the size the model declares (640 when it is dynamic).
 */

export interface Letterbox {
  /** Model input size. */
  width: number;
  height: number;
  /** Source pixels to input pixels. */
  scale: number;
  /** Left and top padding in input pixels. */
  padX: number;
  padY: number;
}

/** Scale to fit, keep the aspect ratio, centre with grey padding (as Ultralytics does). */
export function letterboxParams(srcWidth: number, srcHeight: number, width: number, height: number): Letterbox {
  const scale = Math.min(width / srcWidth, height / srcHeight);
  const w = Math.round(srcWidth * scale);
  const h = Math.round(srcHeight * scale);
  return { width, height, scale, padX: Math.floor((width - w) / 2), padY: Math.floor((height - h) / 2) };
}

/** Letterboxed NCHW RGB float tensor data (0..1, padding 114/255). */
export async function letterbox(img: DecodedImage, width: number, height: number): Promise<{ data: Float32Array; box: Letterbox }> {
  const box = letterboxParams(img.width, img.height, width, height);
  const resized = await resizeImage(img, Math.round(img.width * box.scale), Math.round(img.height * box.scale));
  const plane = width * height;
  const data = new Float32Array(3 * plane).fill(114 / 255);
  const d = resized.data;
  for (let y = 0; y < resized.height; y++) {
    const row = (y + box.padY) * width + box.padX;
    for (let x = 0; x < resized.width; x++) {
      const i = (y * resized.width + x) * 3;
      const o = row + x;
      data[o] = d[i]! / 255;
      data[plane + o] = d[i + 1]! / 255;
      data[2 * plane + o] = d[i + 2]! / 255;
    }
  }
  return { data, box };
}

/** A box in model input pixels (corners). */
export interface RawBox {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
  cls: number;
}

export interface DecodeOptions {
  scoreThreshold?: number;
  iouThreshold?: number;
  /** Keep only these class ids (all when absent). */
  classes?: number[];
  /** NMS across classes (default true: a plate is one object whatever its class). */
  agnostic?: boolean;
  maxDetections?: number;
}

const DEFAULTS = { scoreThreshold: 0.25, iouThreshold: 0.45, agnostic: true, maxDetections: 100 };

/** Decode any supported output layout (see the module comment). */
export function decodeYoloOutput(data: ArrayLike<number>, dims: readonly number[], opts: DecodeOptions = {}): RawBox[] {
  const last = dims[dims.length - 1];
  if ((dims.length === 2 || dims.length === 3) && (last === 7 || (last === 6 && dims.length === 3))) return decodeEnd2End(data, dims, opts);
  if (dims.length === 3) return decodeYolov8(data, dims, opts);
  throw new Error(`unsupported YOLO output shape [${dims.join(', ')}]`);
}

/** Rows with NMS already applied: `[N, 7]`/`[B, N, 7]` (batch 0 kept) or `[1, N, 6]`. */
export function decodeEnd2End(data: ArrayLike<number>, dims: readonly number[], opts: DecodeOptions = {}): RawBox[] {
  const o = { ...DEFAULTS, ...opts };
  const cols = dims[dims.length - 1]!;
  const rows = dims.length === 3 ? dims[0]! * dims[1]! : dims[0]!;
  const out: RawBox[] = [];
  for (let r = 0; r < rows; r++) {
    const at = (c: number) => data[r * cols + c] as number;
    let box: RawBox;
    if (cols === 7) {
      if (Math.round(at(0)) !== 0) continue; // other images of a batch (and padding rows)
      box = { x1: at(1), y1: at(2), x2: at(3), y2: at(4), cls: Math.round(at(5)), score: at(6) };
    } else {
      box = { x1: at(0), y1: at(1), x2: at(2), y2: at(3), score: at(4), cls: Math.round(at(5)) };
    }
    if (!(box.score >= o.scoreThreshold) || !(box.x2 > box.x1 && box.y2 > box.y1)) continue;
    if (o.classes && !o.classes.includes(box.cls)) continue;
    out.push(box);
  }
  return out.sort((a, b) => b.score - a.score).slice(0, o.maxDetections);
}

/** Raw YOLOv8 head `[1, 4 + nc, anchors]` (or transposed): best class per anchor, threshold, NMS. */
export function decodeYolov8(data: ArrayLike<number>, dims: readonly number[], opts: DecodeOptions = {}): RawBox[] {
  const o = { ...DEFAULTS, ...opts };
  const [, a, b] = dims as [number, number, number];
  const transposed = a > b; // [1, anchors, 4 + nc]
  const channels = transposed ? b : a;
  const anchors = transposed ? a : b;
  if (channels < 5) throw new Error(`YOLO output has ${channels} channels, expected 4 + classes`);
  const at = transposed ? (c: number, i: number) => data[i * channels + c] as number : (c: number, i: number) => data[c * anchors + i] as number;
  const boxes: RawBox[] = [];
  for (let i = 0; i < anchors; i++) {
    let cls = -1;
    let score = -Infinity;
    for (let c = 4; c < channels; c++) {
      if (o.classes && !o.classes.includes(c - 4)) continue;
      const s = at(c, i);
      if (s > score) {
        score = s;
        cls = c - 4;
      }
    }
    if (!(score >= o.scoreThreshold)) continue;
    const cx = at(0, i);
    const cy = at(1, i);
    const w = at(2, i);
    const h = at(3, i);
    if (!(w > 0 && h > 0)) continue;
    boxes.push({ x1: cx - w / 2, y1: cy - h / 2, x2: cx + w / 2, y2: cy + h / 2, score, cls });
  }
  return nms(boxes, o.iouThreshold, o.agnostic).slice(0, o.maxDetections);
}

export function iou(a: RawBox, b: RawBox): number {
  const iw = Math.min(a.x2, b.x2) - Math.max(a.x1, b.x1);
  const ih = Math.min(a.y2, b.y2) - Math.max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
}

/** Greedy non-maximum suppression, highest score first. */
export function nms(boxes: RawBox[], threshold: number, agnostic = true): RawBox[] {
  const sorted = boxes.slice().sort((a, b) => b.score - a.score);
  const kept: RawBox[] = [];
  for (const b of sorted) {
    if (kept.every((k) => (!agnostic && k.cls !== b.cls) || iou(k, b) <= threshold)) kept.push(b);
  }
  return kept;
}

/** A box from model input pixels back to source pixels, clamped to the source image. */
export function unletterbox(b: RawBox, lb: Letterbox, srcWidth: number, srcHeight: number): Box {
  const x1 = Math.max(0, Math.min(srcWidth, (b.x1 - lb.padX) / lb.scale));
  const y1 = Math.max(0, Math.min(srcHeight, (b.y1 - lb.padY) / lb.scale));
  const x2 = Math.max(0, Math.min(srcWidth, (b.x2 - lb.padX) / lb.scale));
  const y2 = Math.max(0, Math.min(srcHeight, (b.y2 - lb.padY) / lb.scale));
  return [x1, y1, x2 - x1, y2 - y1];
}

export interface YoloOptions extends DecodeOptions {
  threads?: number;
  /** Input size when the model does not declare one (default 640). */
  inputSize?: number;
}

export class YoloPlateDetector implements PlateDetector {
  readonly width: number;
  readonly height: number;

  private constructor(
    readonly model: OnnxModel,
    private readonly opts: YoloOptions,
  ) {
    const shape = model.inputShape(0);
    const fallback = opts.inputSize ?? 640;
    this.height = shape?.[2] ?? fallback;
    this.width = shape?.[3] ?? fallback;
  }

  static async create(path: string, opts: YoloOptions = {}): Promise<YoloPlateDetector> {
    return new YoloPlateDetector(await OnnxModel.load(path, opts.threads), opts);
  }

  async detect(img: DecodedImage): Promise<Detection[]> {
    const { data, box } = await letterbox(img, this.width, this.height);
    const out = await this.model.run({ [this.model.inputNames[0]!]: new ort.Tensor('float32', data, [1, 3, this.height, this.width]) });
    const t = out[this.model.outputNames[0]!]!;
    const raw = decodeYoloOutput(t.data as Float32Array, t.dims, this.opts);
    return raw.map((b) => ({ box: unletterbox(b, box, img.width, img.height), score: b.score })).filter((d) => d.box[2] >= 2 && d.box[3] >= 2);
  }

  async close(): Promise<void> {
    await this.model.release();
  }
}
