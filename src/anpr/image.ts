import sharp from 'sharp';

/**
 * Images as the plate reader sees them: decoded once with sharp into packed 8-bit RGB, then cropped,
 * warped and turned into float tensors in plain TypeScript. Camera input is untrusted: anything
 * that is not a whole, reasonably sized image is rejected with an {@link ImageRejected} and a
 * reason, never a crash.
 */

/** Packed RGB, 3 bytes per pixel, rows top to bottom, no padding. */
export interface DecodedImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export type Point = [number, number];
/** Axis-aligned box in pixels: left, top, width, height. */
export type Box = [number, number, number, number];
/** Four corners, clockwise from the top-left of the text (top-left, top-right, bottom-right, bottom-left). */
export type Quad = [Point, Point, Point, Point];

export type RejectReason = 'empty' | 'corrupt' | 'not_image' | 'too_large';

export class ImageRejected extends Error {
  override readonly name = 'ImageRejected';
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
  }
}

/** 40 megapixels: far above any camera we use, far below what would exhaust a Pi's memory. */
export const MAX_INPUT_PIXELS = 40_000_000;

export interface DecodeOptions {
  maxPixels?: number;
  /** Downscale on decode so the longer side is at most this (keeps big stills cheap). */
  maxSide?: number;
}

/** Formats sharp decodes, recognised by their first bytes; anything else is `not_image`. */
function sniffFormat(b: Uint8Array): string | null {
  const at = (i: number) => b[i] ?? -1;
  const ascii = (from: number, s: string) => [...s].every((c, i) => at(from + i) === c.charCodeAt(0));
  if (at(0) === 0xff && at(1) === 0xd8) return 'jpeg';
  if (ascii(0, '\x89PNG')) return 'png';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (ascii(0, 'GIF8')) return 'gif';
  if (ascii(0, 'II*\0') || ascii(0, 'MM\0*')) return 'tiff';
  if (ascii(4, 'ftyp')) return 'heif';
  return null;
}

function classify(err: unknown, maxPixels: number): ImageRejected {
  const message = err instanceof Error ? err.message : String(err);
  if (/pixel limit|too large|exceeds/i.test(message)) return new ImageRejected('too_large', `image has more than ${maxPixels} pixels (${message})`);
  if (/unsupported image format/i.test(message)) return new ImageRejected('not_image', message);
  return new ImageRejected('corrupt', message);
}

/**
 * Decode a still (JPEG normally; PNG, WebP, GIF, TIFF and HEIF also work) into RGB. Orientation
 * from EXIF is applied; alpha is dropped. Truncated or damaged data is `corrupt` (libvips is told to
 * fail on errors rather than return a half-grey picture). One libvips pass: the pixel limit is
 * checked against the header before any pixel is decoded.
 */
export async function decodeImage(input: Uint8Array, opts: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = opts.maxPixels ?? MAX_INPUT_PIXELS;
  if (!input || input.byteLength === 0) throw new ImageRejected('empty', 'no image data');
  if (sniffFormat(input) === null) throw new ImageRejected('not_image', 'data is not a supported image format');
  try {
    let pipeline = sharp(input, { failOn: 'error', limitInputPixels: maxPixels, autoOrient: true }).removeAlpha().toColourspace('srgb');
    if (opts.maxSide !== undefined) {
      pipeline = pipeline.resize({ width: opts.maxSide, height: opts.maxSide, fit: 'inside', withoutEnlargement: true });
    }
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (!(info.width > 0 && info.height > 0)) throw new ImageRejected('corrupt', 'image has no size');
    if (info.channels !== 3) return toRgb(data, info.width, info.height, info.channels);
    return { width: info.width, height: info.height, data };
  } catch (err) {
    throw err instanceof ImageRejected ? err : classify(err, maxPixels);
  }
}

function toRgb(data: Uint8Array, width: number, height: number, channels: number): DecodedImage {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    const r = data[j] ?? 0;
    out[i * 3] = r;
    out[i * 3 + 1] = channels >= 3 ? (data[j + 1] ?? 0) : r;
    out[i * 3 + 2] = channels >= 3 ? (data[j + 2] ?? 0) : r;
  }
  return { width, height, data: out };
}

/** Resize with sharp (Lanczos when shrinking, good for OCR). */
export async function resizeImage(img: DecodedImage, width: number, height: number): Promise<DecodedImage> {
  width = Math.max(1, Math.round(width));
  height = Math.max(1, Math.round(height));
  if (width === img.width && height === img.height) return img;
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer();
  return { width, height, data };
}

/** Integer crop, clamped to the image. */
/** Intersection of two x, y, w, h boxes over the smaller one's area (1 when one holds the other). */
export function overlapOfSmaller(a: readonly number[], b: readonly number[]): number {
  const w = Math.min(a[0]! + a[2]!, b[0]! + b[2]!) - Math.max(a[0]!, b[0]!);
  const h = Math.min(a[1]! + a[3]!, b[1]! + b[3]!) - Math.max(a[1]!, b[1]!);
  if (w <= 0 || h <= 0) return 0;
  return (w * h) / Math.max(1e-9, Math.min(a[2]! * a[3]!, b[2]! * b[3]!));
}

export function cropImage(img: DecodedImage, box: Box): DecodedImage {
  const x0 = clamp(Math.floor(box[0]), 0, img.width - 1);
  const y0 = clamp(Math.floor(box[1]), 0, img.height - 1);
  const x1 = clamp(Math.ceil(box[0] + box[2]), x0 + 1, img.width);
  const y1 = clamp(Math.ceil(box[1] + box[3]), y0 + 1, img.height);
  const w = x1 - x0;
  const h = y1 - y0;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const from = ((y0 + y) * img.width + x0) * 3;
    out.set(img.data.subarray(from, from + w * 3), y * w * 3);
  }
  return { width: w, height: h, data: out };
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : Math.min(v, hi);
}

const dist = (a: Point, b: Point) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** Natural size of a quad: mean of its opposite sides. */
export function quadSize(q: Quad): { width: number; height: number } {
  return { width: (dist(q[0], q[1]) + dist(q[3], q[2])) / 2, height: (dist(q[0], q[3]) + dist(q[1], q[2])) / 2 };
}

export function quadBounds(q: Quad): Box {
  const xs = q.map((p) => p[0]);
  const ys = q.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const y0 = Math.min(...ys);
  return [x0, y0, Math.max(...xs) - x0, Math.max(...ys) - y0];
}

/**
 * Perspective warp of a quad onto an upright `width` x `height` image, bilinear sampling (pixels
 * outside the source repeat the edge). Used for tilted plates: the text ends up horizontal.
 */
export function warpQuad(img: DecodedImage, quad: Quad, width: number, height: number): DecodedImage {
  width = Math.max(1, Math.round(width));
  height = Math.max(1, Math.round(height));
  const [h0, h1, h2, h3, h4, h5, h6, h7] = homography(
    [
      [0, 0],
      [width, 0],
      [width, height],
      [0, height],
    ],
    quad,
  );
  const out = new Uint8Array(width * height * 3);
  const { width: W, height: H, data } = img;
  for (let y = 0; y < height; y++) {
    const v = y + 0.5;
    for (let x = 0; x < width; x++) {
      const u = x + 0.5;
      const d = h6 * u + h7 * v + 1;
      const sx = clamp((h0 * u + h1 * v + h2) / d - 0.5, 0, W - 1);
      const sy = clamp((h3 * u + h4 * v + h5) / d - 0.5, 0, H - 1);
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const x1 = Math.min(x0 + 1, W - 1);
      const y1 = Math.min(y0 + 1, H - 1);
      const fx = sx - x0;
      const fy = sy - y0;
      const a = (y0 * W + x0) * 3;
      const b = (y0 * W + x1) * 3;
      const c = (y1 * W + x0) * 3;
      const e = (y1 * W + x1) * 3;
      const o = (y * width + x) * 3;
      for (let k = 0; k < 3; k++) {
        const top = data[a + k]! + (data[b + k]! - data[a + k]!) * fx;
        const bottom = data[c + k]! + (data[e + k]! - data[c + k]!) * fx;
        out[o + k] = top + (bottom - top) * fy + 0.5;
      }
    }
  }
  return { width, height, data: out };
}

/** 3x3 homography (h33 = 1) taking the four `from` points to the four `to` points. */
export function homography(from: Point[], to: Point[]): [number, number, number, number, number, number, number, number] {
  const A: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = from[i]!;
    const [u, v] = to[i]!;
    A.push([x, y, 1, 0, 0, 0, -u * x, -u * y, u]);
    A.push([0, 0, 0, x, y, 1, -v * x, -v * y, v]);
  }
  // Gaussian elimination with partial pivoting on the 8x9 augmented matrix.
  for (let col = 0; col < 8; col++) {
    let pivot = col;
    for (let r = col + 1; r < 8; r++) if (Math.abs(A[r]![col]!) > Math.abs(A[pivot]![col]!)) pivot = r;
    [A[col], A[pivot]] = [A[pivot]!, A[col]!];
    const p = A[col]![col]!;
    if (Math.abs(p) < 1e-12) throw new Error('degenerate quad');
    for (let c = col; c < 9; c++) A[col]![c]! /= p;
    for (let r = 0; r < 8; r++) {
      if (r === col) continue;
      const f = A[r]![col]!;
      if (f === 0) continue;
      for (let c = col; c < 9; c++) A[r]![c]! -= f * A[col]![c]!;
    }
  }
  const h = A.map((row) => row[8]!);
  return [h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!, h[6]!, h[7]!];
}

export interface TensorLayout {
  /** Per-channel mean and std in the 0..1 range, in the tensor's channel order. */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** Channel order of the tensor. */
  order: 'rgb' | 'bgr';
}

/**
 * Write `img` as planar float (C, H, W) into `out` at `offset`, normalised as `(v/255 - mean)/std`.
 * `stride` is the row length of the tensor (>= img.width); columns beyond the image are left as
 * they are (the caller fills padding). One pass over the pixels, all three planes at once.
 */
export function writeChw(img: DecodedImage, layout: TensorLayout, out: Float32Array, offset = 0, stride = img.width, rows = img.height): void {
  const plane = stride * rows;
  const { data, width, height } = img;
  // Source channel of each tensor plane, and its normalisation v * scale - shift.
  const [c0, c1, c2] = layout.order === 'rgb' ? [0, 1, 2] : [2, 1, 0];
  const [scale0, scale1, scale2] = [0, 1, 2].map((c) => 1 / (255 * layout.std[c]!)) as [number, number, number];
  const [shift0, shift1, shift2] = [0, 1, 2].map((c) => layout.mean[c]! / layout.std[c]!) as [number, number, number];
  for (let y = 0; y < height; y++) {
    let i = y * width * 3;
    let o = offset + y * stride;
    for (let x = 0; x < width; x++, i += 3, o++) {
      out[o] = data[i + c0]! * scale0 - shift0;
      out[o + plane] = data[i + c1]! * scale1 - shift1;
      out[o + 2 * plane] = data[i + c2]! * scale2 - shift2;
    }
  }
}

/** Luma (BT.601) of every pixel, 0..255. */
export function toGrey(img: DecodedImage): Float32Array {
  const out = new Float32Array(img.width * img.height);
  const d = img.data;
  for (let i = 0, j = 0; i < out.length; i++, j += 3) out[i] = 0.299 * d[j]! + 0.587 * d[j + 1]! + 0.114 * d[j + 2]!;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rotated rectangles for text lines: convex hull, minimum-area rectangle, unclip, union.

export interface RotatedRect {
  cx: number;
  cy: number;
  /** Extent along the text direction. */
  width: number;
  /** Extent across it. */
  height: number;
  /** Radians, text direction measured from +x towards +y (image y points down), in (-π/4, π/4]. */
  angle: number;
}

const cross = (o: Point, a: Point, b: Point) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);

/** Convex hull (Andrew's monotone chain), counter-clockwise in a y-up frame, no repeated point. */
export function convexHull(points: Point[]): Point[] {
  const pts = points.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (pts.length < 3) return pts;
  const lower: Point[] = [];
  for (const p of pts) {
    while (lower.length >= 2 && cross(lower[lower.length - 2]!, lower[lower.length - 1]!, p) <= 0) lower.pop();
    lower.push(p);
  }
  const upper: Point[] = [];
  for (let i = pts.length - 1; i >= 0; i--) {
    const p = pts[i]!;
    while (upper.length >= 2 && cross(upper[upper.length - 2]!, upper[upper.length - 1]!, p) <= 0) upper.pop();
    upper.push(p);
  }
  lower.pop();
  upper.pop();
  return lower.concat(upper);
}

/**
 * Minimum-area enclosing rectangle (rotating calipers: one side of the optimum lies on a hull edge).
 * The result is oriented so that `angle` is within ±45°, i.e. `width` is the more horizontal side.
 */
export function minAreaRect(points: Point[]): RotatedRect {
  const hull = convexHull(points);
  if (hull.length === 0) return { cx: 0, cy: 0, width: 0, height: 0, angle: 0 };
  let best: { area: number; angle: number; u0: number; u1: number; v0: number; v1: number } | null = null;
  const angles =
    hull.length < 3
      ? [0]
      : hull.map((p, i) => {
          const q = hull[(i + 1) % hull.length]!;
          return Math.atan2(q[1] - p[1], q[0] - p[0]);
        });
  for (const a of angles) {
    const c = Math.cos(a);
    const s = Math.sin(a);
    let u0 = Infinity;
    let u1 = -Infinity;
    let v0 = Infinity;
    let v1 = -Infinity;
    for (const [x, y] of hull) {
      const u = x * c + y * s;
      const v = -x * s + y * c;
      if (u < u0) u0 = u;
      if (u > u1) u1 = u;
      if (v < v0) v0 = v;
      if (v > v1) v1 = v;
    }
    const area = (u1 - u0) * (v1 - v0);
    if (!best || area < best.area - 1e-9) best = { area, angle: a, u0, u1, v0, v1 };
  }
  const b = best!;
  const c = Math.cos(b.angle);
  const s = Math.sin(b.angle);
  const um = (b.u0 + b.u1) / 2;
  const vm = (b.v0 + b.v1) / 2;
  return normaliseRect({ cx: um * c - vm * s, cy: um * s + vm * c, width: b.u1 - b.u0, height: b.v1 - b.v0, angle: b.angle });
}

/** Same rectangle, described with its angle in (-45°, 45°]. */
export function normaliseRect(r: RotatedRect): RotatedRect {
  let { width, height, angle } = r;
  // Bring the angle into (-π/2, π/2] first (a rectangle is symmetric under a half turn).
  while (angle > Math.PI / 2) angle -= Math.PI;
  while (angle <= -Math.PI / 2) angle += Math.PI;
  if (angle > Math.PI / 4) {
    angle -= Math.PI / 2;
    [width, height] = [height, width];
  } else if (angle <= -Math.PI / 4) {
    angle += Math.PI / 2;
    [width, height] = [height, width];
  }
  return { cx: r.cx, cy: r.cy, width, height, angle };
}

/** Corners: top-left, top-right, bottom-right, bottom-left of the text. */
export function rectCorners(r: RotatedRect): Quad {
  const c = Math.cos(r.angle);
  const s = Math.sin(r.angle);
  const hw = r.width / 2;
  const hh = r.height / 2;
  const at = (u: number, v: number): Point => [r.cx + u * c - v * s, r.cy + u * s + v * c];
  return [at(-hw, -hh), at(hw, -hh), at(hw, hh), at(-hw, hh)];
}

/**
 * DB "unclip": grow the shrunk text kernel back to the text's extent. For a rectangle the offset
 * distance is area x ratio / perimeter on every side.
 */
export function unclip(r: RotatedRect, ratio: number): RotatedRect {
  const perimeter = 2 * (r.width + r.height);
  const d = perimeter > 0 ? (r.width * r.height * ratio) / perimeter : 0;
  return { ...r, width: r.width + 2 * d, height: r.height + 2 * d };
}

export function scaleRect(r: RotatedRect, sx: number, sy: number): RotatedRect {
  if (sx === sy) return { cx: r.cx * sx, cy: r.cy * sy, width: r.width * sx, height: r.height * sy, angle: r.angle };
  return minAreaRect(rectCorners(r).map(([x, y]): Point => [x * sx, y * sy]));
}

/** Position of point p in the frame of rectangle r: (along, across), relative to its centre. */
export function toRectFrame(r: RotatedRect, p: Point): Point {
  const c = Math.cos(r.angle);
  const s = Math.sin(r.angle);
  const dx = p[0] - r.cx;
  const dy = p[1] - r.cy;
  return [dx * c + dy * s, -dx * s + dy * c];
}

export function unionRect(rects: RotatedRect[]): RotatedRect {
  return minAreaRect(rects.flatMap((r) => rectCorners(r)));
}

/** Smallest angle between two text directions, radians. */
export function angleDiff(a: number, b: number): number {
  let d = Math.abs(a - b) % Math.PI;
  if (d > Math.PI / 2) d = Math.PI - d;
  return d;
}
