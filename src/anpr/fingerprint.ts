import type { DecodedImage } from './image.js';

/**
 * A plate crop's fingerprint: its luma averaged down to 64 x 16 cells and stretched to the full
 * 0..255 range. The engine compares a crop's fingerprint with the previous frame's to skip reading
 * a plate that has not changed, so the comparison has to forgive what changes from frame to frame
 * for the same plate (the box a few pixels off, the light) and catch what does not happen to it:
 * one character different. {@link fingerprintDistance} therefore aligns the two first (a shift of
 * up to a few cells) and then takes the worst of eight vertical bands, each about a character
 * wide, rather than the mean over the whole crop, in which one changed character would drown.
 */

export const FINGERPRINT_WIDTH = 64;
export const FINGERPRINT_HEIGHT = 16;
/** Alignment searched, in cells: up to 3 across (about 5% of the crop's width), 2 down. */
const SHIFT_X = 3;
const SHIFT_Y = 2;
/** Vertical bands compared apart: plates hold 5 to 8 characters. */
const BANDS = 8;

export function fingerprint(crop: DecodedImage): Uint8Array {
  const W = FINGERPRINT_WIDTH;
  const H = FINGERPRINT_HEIGHT;
  const sum = new Float64Array(W * H);
  const count = new Uint32Array(W * H);
  const { width, height, data } = crop;
  for (let y = 0; y < height; y++) {
    const cy = Math.min(H - 1, Math.floor((y * H) / height));
    for (let x = 0; x < width; x++) {
      const cx = Math.min(W - 1, Math.floor((x * W) / width));
      const i = (y * width + x) * 3;
      sum[cy * W + cx]! += 0.299 * data[i]! + 0.587 * data[i + 1]! + 0.114 * data[i + 2]!;
      count[cy * W + cx]!++;
    }
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k < sum.length; k++) {
    // A crop narrower or lower than the grid leaves cells empty: they take their left neighbour's value.
    sum[k] = count[k]! > 0 ? sum[k]! / count[k]! : k > 0 ? sum[k - 1]! : 0;
    lo = Math.min(lo, sum[k]!);
    hi = Math.max(hi, sum[k]!);
  }
  const out = new Uint8Array(W * H);
  const span = hi - lo;
  for (let k = 0; k < out.length; k++) out[k] = span < 1 ? 128 : Math.round((255 * (sum[k]! - lo)) / span);
  return out;
}

/**
 * How different two fingerprints are, 0 (same) to 1: at the best alignment, the mean absolute
 * difference of the most different band. 1 for fingerprints of another size.
 */
export function fingerprintDistance(a: Uint8Array, b: Uint8Array): number {
  const W = FINGERPRINT_WIDTH;
  const H = FINGERPRINT_HEIGHT;
  if (a.length !== W * H || b.length !== W * H) return 1;
  const bandDiff = new Float64Array(BANDS);
  const bandCount = new Uint32Array(BANDS);
  let best = 1;
  for (let dy = -SHIFT_Y; dy <= SHIFT_Y; dy++) {
    for (let dx = -SHIFT_X; dx <= SHIFT_X; dx++) {
      bandDiff.fill(0);
      bandCount.fill(0);
      for (let y = Math.max(0, -dy); y < Math.min(H, H - dy); y++) {
        for (let x = Math.max(0, -dx); x < Math.min(W, W - dx); x++) {
          const band = Math.min(BANDS - 1, Math.floor((x * BANDS) / W));
          bandDiff[band]! += Math.abs(a[y * W + x]! - b[(y + dy) * W + x + dx]!);
          bandCount[band]!++;
        }
      }
      let worst = 0;
      for (let k = 0; k < BANDS; k++) if (bandCount[k]! > 0) worst = Math.max(worst, bandDiff[k]! / (255 * bandCount[k]!));
      if (worst < best) best = worst;
    }
  }
  return best;
}
