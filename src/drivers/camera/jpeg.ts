/** JPEG byte-level helpers: magic checks and a streaming splitter for concatenated JPEGs (MJPEG). */

/** Starts with SOI followed by another marker (FF D8 FF): every real JPEG does. */
export function isJpeg(buf: Uint8Array): boolean {
  return buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff;
}

/** Ends with EOI (FF D9), ignoring trailing zero padding some cameras and encoders add. */
export function endsWithEoi(buf: Uint8Array): boolean {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0x00 && buf.length - end < 1024) end--;
  return end >= 4 && buf[end - 2] === 0xff && buf[end - 1] === 0xd9;
}

export const DEFAULT_MAX_FRAME_BYTES = 20 * 1024 * 1024;

enum S {
  /** Looking for FF of SOI. */
  Seek,
  /** Saw FF, expecting D8. */
  Soi,
  /** Inside a frame, expecting the FF of the next marker. */
  Marker0,
  /** Saw FF, expecting the marker code. */
  Marker1,
  Len0,
  Len1,
  /** Skipping a marker segment's payload. */
  Skip,
  /** Entropy-coded data after SOS, looking for FF. */
  Entropy,
  /** Saw FF in entropy-coded data. */
  EntropyFf,
}

export interface JpegSplitterStats {
  frames: number;
  /** Frames abandoned for exceeding the size cap. */
  oversize: number;
  /** Frames abandoned because their structure was broken (a new SOI inside, a bad marker...). */
  corrupt: number;
  /** Bytes outside any frame. */
  garbageBytes: number;
}

/**
 * Splits a byte stream of concatenated JPEGs into frames, whatever the chunk boundaries. Instead of
 * searching for the first FF D9 (which also appears inside EXIF thumbnails and other segments) it
 * follows the marker structure: segment lengths are skipped, and in the entropy-coded data only a
 * real marker (FF not followed by 00 or a restart code) can end the scan. Frames above the size cap
 * are discarded as they stream, so a broken stream cannot grow memory without bound. Chunks are
 * kept by reference and copied once, when a frame completes.
 */
export class JpegSplitter {
  readonly maxFrameBytes: number;
  #state = S.Seek;
  #chunks: Array<{ at: number; buf: Buffer }> = [];
  /** Absolute stream offset of the end of the data pushed so far. */
  #end = 0;
  /** Absolute offset of the current frame's SOI, or -1. */
  #start = -1;
  #marker = 0;
  #len = 0;
  #skip = 0;
  #stats: JpegSplitterStats = { frames: 0, oversize: 0, corrupt: 0, garbageBytes: 0 };

  constructor(opts: { maxFrameBytes?: number } = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  stats(): JpegSplitterStats {
    return { ...this.#stats };
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.#start < 0 ? 0 : this.#end - this.#start;
  }

  reset(): void {
    this.#state = S.Seek;
    this.#chunks = [];
    this.#start = -1;
  }

  /** Feeds a chunk; returns the frames it completed, in order. */
  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    if (chunk.length === 0) return frames;
    const base = this.#end;
    this.#chunks.push({ at: base, buf: chunk });
    this.#end += chunk.length;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case S.Seek: {
          const j = chunk.indexOf(0xff, i);
          if (j < 0) {
            this.#stats.garbageBytes += n - i;
            i = n;
          } else {
            this.#stats.garbageBytes += j - i;
            this.#start = base + j;
            this.#state = S.Soi;
            i = j + 1;
          }
          break;
        }
        case S.Soi: {
          const b = chunk[i++]!;
          if (b === 0xd8) this.#state = S.Marker0;
          else if (b === 0xff) {
            this.#stats.garbageBytes++;
            this.#start = base + i - 1;
          } else {
            this.#stats.garbageBytes += 2;
            this.#start = -1;
            this.#state = S.Seek;
          }
          break;
        }
        case S.Marker0: {
          if (chunk[i] === 0xff) {
            i++;
            this.#state = S.Marker1;
          } else this.#abandon('corrupt');
          break;
        }
        case S.Marker1:
        case S.EntropyFf: {
          const inScan = this.#state === S.EntropyFf;
          const b = chunk[i++]!;
          if (b === 0xff) break; // fill byte
          if (inScan && (b === 0x00 || (b >= 0xd0 && b <= 0xd7))) {
            this.#state = S.Entropy; // stuffed FF or restart marker: still scan data
          } else if (b === 0xd9) {
            frames.push(this.#take(base + i));
          } else if (b === 0xd8) {
            // A new image starts before the last one ended: the last one was truncated.
            this.#stats.corrupt++;
            this.#start = base + i - 2;
            this.#state = S.Marker0;
          } else if (b === 0x00 || b === 0x01 || (b >= 0xd0 && b <= 0xd7)) {
            this.#state = S.Marker0; // standalone markers outside a scan (TEM, RSTn) or padding
          } else {
            this.#marker = b;
            this.#state = S.Len0;
          }
          break;
        }
        case S.Len0:
          this.#len = chunk[i++]! << 8;
          this.#state = S.Len1;
          break;
        case S.Len1:
          this.#len |= chunk[i++]!;
          if (this.#len < 2) this.#abandon('corrupt');
          else {
            this.#skip = this.#len - 2;
            this.#state = this.#skip > 0 ? S.Skip : this.#afterSegment();
          }
          break;
        case S.Skip: {
          const take = Math.min(this.#skip, n - i);
          i += take;
          this.#skip -= take;
          if (this.#skip === 0) this.#state = this.#afterSegment();
          break;
        }
        case S.Entropy: {
          const j = chunk.indexOf(0xff, i);
          if (j < 0) i = n;
          else {
            i = j + 1;
            this.#state = S.EntropyFf;
          }
          break;
        }
      }
      if (this.#start >= 0 && base + i - this.#start > this.maxFrameBytes) this.#abandon('oversize');
    }
    this.#trim();
    return frames;
  }

  #afterSegment(): S {
    return this.#marker === 0xda ? S.Entropy : S.Marker0; // SOS: entropy-coded data follows
  }

  #abandon(reason: 'corrupt' | 'oversize'): void {
    this.#stats[reason]++;
    this.#start = -1;
    this.#state = S.Seek;
  }

  /** Copies out [start, end) and resets for the next frame. */
  #take(end: number): Buffer {
    const start = this.#start;
    const parts: Buffer[] = [];
    for (const { at, buf } of this.#chunks) {
      const from = Math.max(start, at);
      const to = Math.min(end, at + buf.length);
      if (to > from) parts.push(buf.subarray(from - at, to - at));
    }
    this.#stats.frames++;
    this.#start = -1;
    this.#state = S.Seek;
    return parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, end - start);
  }

  /** Drops chunks wholly before the current frame (or all of them between frames). */
  #trim(): void {
    const keepFrom = this.#start >= 0 ? this.#start : this.#end;
    let drop = 0;
    while (drop < this.#chunks.length) {
      const c = this.#chunks[drop]!;
      if (c.at + c.buf.length > keepFrom) break;
      drop++;
    }
    if (drop > 0) this.#chunks.splice(0, drop);
  }
}
