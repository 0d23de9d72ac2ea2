import sharp, { type OutputInfo } from 'sharp';

/** Normalised point: x and y from 0 (left/top) to 1 (right/bottom) of the frame. */
export type Point = [x: number, y: number];

export interface MotionGateOptions {
  /** Analysis width in pixels (e.g. 160); height follows the frame's aspect ratio. */
  width: number;
  /** Grey-level difference (0..255) from the background for a pixel to count as changed. */
  threshold: number;
  /** Fraction (0..1) of the ROI's pixels that must change for motion. */
  minChangedFraction: number;
  /** Region of interest, a polygon in normalised coordinates; the whole frame when absent. */
  roi?: Point[];
  /** Keep reporting motion this long after the last changed frame (a car stopping at the gantry). */
  cooldownMs: number;
  /** Background learning rate, 0..1 (default 0.05): the weight of each new frame in the average. */
  learningRate?: number;
}

export interface MotionResult {
  motion: boolean;
  /** Fraction (0..1) of the ROI's pixels that differ from the background in this frame. */
  changed: number;
  /**
   * Where the frame changed, normalised x, y, w, h: the bounds of the changed pixels (the outer
   * half percent on each side ignored as noise), grown by {@link REGION_MARGIN}. During the
   * cooldown, the last region that moved (a car stopped at the gantry is where it stopped).
   * Absent without motion, and on the first frame.
   */
  region?: NormBox;
}

/** A box in normalised coordinates: x, y, w, h from 0 to 1 of the frame. */
export type NormBox = [x: number, y: number, w: number, h: number];

/** Margin added around the changed pixels' bounds, as a fraction of the frame's width and height. */
export const REGION_MARGIN = 0.05;
/** Share of the changed pixels ignored on each side when bounding them (isolated noise, a leaf). */
const REGION_TRIM = 0.005;

/** A frame that could not be decoded: not a JPEG, truncated or corrupt. */
export class FrameDecodeError extends Error {
  override name = 'FrameDecodeError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Even-odd ray casting: is (x, y) inside the polygon? Points exactly on an edge may go either way. */
export function pointInPolygon(x: number, y: number, polygon: ReadonlyArray<readonly [number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i]!;
    const [xj, yj] = polygon[j]!;
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * A width×height mask, 1 for pixels whose centre lies inside the normalised polygon (all 1 without
 * one). Computed once per frame size.
 */
export function buildRoiMask(width: number, height: number, roi?: ReadonlyArray<readonly [number, number]>): Uint8Array {
  const mask = new Uint8Array(width * height);
  if (!roi) return mask.fill(1);
  for (let y = 0; y < height; y++) {
    const ny = (y + 0.5) / height;
    for (let x = 0; x < width; x++) {
      if (pointInPolygon((x + 0.5) / width, ny, roi)) mask[y * width + x] = 1;
    }
  }
  return mask;
}

export function validateRoi(roi: ReadonlyArray<readonly [number, number]>): void {
  if (roi.length < 3) throw new RangeError(`roi needs at least 3 points, got ${roi.length}`);
  for (const [x, y] of roi) {
    if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) throw new RangeError(`roi points must be normalised to 0..1, got [${x}, ${y}]`);
  }
}

/**
 * Cheap motion gate in front of plate inference. Each JPEG is decoded straight to a small greyscale
 * image (libjpeg shrink-on-load does most of the downscaling during decode), compared with a
 * running-average background, and the changed pixels inside the ROI are counted. Motion stays on
 * for `cooldownMs` after the last changed frame, because a vehicle that stops soon blends into the
 * background but still needs reading. Frames are expected in time order from one camera; the
 * background is reset if the frame size changes.
 */
export class MotionGate {
  readonly #opts: Required<Omit<MotionGateOptions, 'roi'>> & { roi?: Point[] };
  #background: Float32Array | undefined;
  #width = 0;
  #height = 0;
  #mask: Uint8Array = new Uint8Array(0);
  #maskCount = 0;
  #lastMotionMs: number | undefined;
  #lastRegion: NormBox | undefined;
  #cols = new Uint32Array(0);
  #rows = new Uint32Array(0);

  constructor(opts: MotionGateOptions) {
    if (!(Number.isInteger(opts.width) && opts.width >= 8 && opts.width <= 4096))
      throw new RangeError(`width must be an integer from 8 to 4096, got ${opts.width}`);
    if (!(opts.threshold >= 0 && opts.threshold <= 255)) throw new RangeError(`threshold must be 0..255, got ${opts.threshold}`);
    if (!(opts.minChangedFraction >= 0 && opts.minChangedFraction <= 1))
      throw new RangeError(`minChangedFraction must be 0..1, got ${opts.minChangedFraction}`);
    if (!(opts.cooldownMs >= 0)) throw new RangeError(`cooldownMs must be >= 0, got ${opts.cooldownMs}`);
    const learningRate = opts.learningRate ?? 0.05;
    if (!(learningRate > 0 && learningRate <= 1)) throw new RangeError(`learningRate must be in (0, 1], got ${learningRate}`);
    if (opts.roi) validateRoi(opts.roi);
    this.#opts = { ...opts, learningRate, roi: opts.roi?.map(([x, y]): Point => [x, y]) };
  }

  /** Forgets the background (after a camera moves, for instance); the next frame starts a new one. */
  reset(): void {
    this.#background = undefined;
    this.#lastMotionMs = undefined;
    this.#lastRegion = undefined;
  }

  async check(jpeg: Buffer, monoMs: number): Promise<MotionResult> {
    const { data, width, height } = await decodeGrey(jpeg, this.#opts.width);
    if (width !== this.#width || height !== this.#height || !this.#background) {
      if (width !== this.#width || height !== this.#height) {
        this.#width = width;
        this.#height = height;
        this.#mask = buildRoiMask(width, height, this.#opts.roi);
        this.#maskCount = this.#mask.reduce((n, v) => n + v, 0);
        this.#cols = new Uint32Array(width);
        this.#rows = new Uint32Array(height);
      }
      this.#background = Float32Array.from(data);
      this.#lastRegion = undefined;
      return this.#idle(monoMs, 0);
    }
    const bg = this.#background;
    const mask = this.#mask;
    const { threshold, learningRate } = this.#opts;
    const cols = this.#cols.fill(0);
    const rows = this.#rows.fill(0);
    let changedPixels = 0;
    for (let i = 0, y = 0; y < height; y++) {
      for (let x = 0; x < width; x++, i++) {
        const v = data[i]!;
        const b = bg[i]!;
        const d = v - b;
        if (mask[i] === 1 && (d > threshold || -d > threshold)) {
          changedPixels++;
          cols[x]!++;
          rows[y]!++;
        }
        bg[i] = b + learningRate * d;
      }
    }
    const changed = this.#maskCount === 0 ? 0 : changedPixels / this.#maskCount;
    if (changedPixels > 0 && changed >= this.#opts.minChangedFraction) {
      this.#lastMotionMs = Math.max(this.#lastMotionMs ?? -Infinity, monoMs);
      const [x0, x1] = trimmedBounds(cols, changedPixels);
      const [y0, y1] = trimmedBounds(rows, changedPixels);
      this.#lastRegion = grownBox(x0 / width, y0 / height, (x1 + 1) / width, (y1 + 1) / height);
      return { motion: true, changed, region: this.#lastRegion };
    }
    return this.#idle(monoMs, changed);
  }

  #idle(monoMs: number, changed: number): MotionResult {
    const cooling = this.#lastMotionMs !== undefined && monoMs - this.#lastMotionMs < this.#opts.cooldownMs;
    return cooling && this.#lastRegion ? { motion: true, changed, region: this.#lastRegion } : { motion: cooling, changed };
  }
}

/** First and last index holding the counts between the `REGION_TRIM` and `1 - REGION_TRIM` shares of `total`. */
function trimmedBounds(counts: Uint32Array, total: number): [number, number] {
  const skip = Math.floor(total * REGION_TRIM);
  let first = 0;
  for (let acc = 0; first < counts.length - 1; first++) {
    acc += counts[first]!;
    if (acc > skip) break;
  }
  let last = counts.length - 1;
  for (let acc = 0; last > first; last--) {
    acc += counts[last]!;
    if (acc > skip) break;
  }
  return [first, last];
}

function grownBox(x0: number, y0: number, x1: number, y1: number): NormBox {
  const gx0 = Math.max(0, x0 - REGION_MARGIN);
  const gy0 = Math.max(0, y0 - REGION_MARGIN);
  const gx1 = Math.min(1, x1 + REGION_MARGIN);
  const gy1 = Math.min(1, y1 + REGION_MARGIN);
  return [gx0, gy0, gx1 - gx0, gy1 - gy0];
}

/** JPEG → greyscale, `width` pixels wide (height by aspect ratio), one byte per pixel. */
export async function decodeGrey(jpeg: Buffer, width: number): Promise<{ data: Uint8Array; width: number; height: number }> {
  if (!(jpeg.length >= 3 && jpeg[0] === 0xff && jpeg[1] === 0xd8 && jpeg[2] === 0xff)) {
    throw new FrameDecodeError(jpeg.length === 0 ? 'empty frame' : `not a JPEG (starts with ${jpeg.subarray(0, 4).toString('hex')})`);
  }
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await sharp(jpeg, { failOn: 'error', limitInputPixels: 100_000_000 })
      .resize({ width, fastShrinkOnLoad: true, kernel: 'linear' })
      .greyscale()
      .raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new FrameDecodeError(`cannot decode JPEG: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const { info, data } = out;
  if (info.channels === 1) return { data, width: info.width, height: info.height };
  // Greyscale with an alpha channel or similar: keep the first channel.
  const grey = new Uint8Array(info.width * info.height);
  for (let i = 0; i < grey.length; i++) grey[i] = data[i * info.channels]!;
  return { data: grey, width: info.width, height: info.height };
}
