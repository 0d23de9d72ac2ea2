import { mkdir, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../core/private-files.js';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Clock } from '../core/clock.js';

/**
 * Evidence of a hit: a JPEG crop of the plate and a downscaled frame with the plate outlined, sent
 * inside the plate.hit event and kept on the device for `retentionMs` (Chile's law 21.719: no
 * longer than needed), within `maxBytes`.
 *
 * Files are written through a temporary name and renamed, without fsync: the copy that must
 * survive a power cut is the one inside the event, which the outbox stores durably.
 */

export interface EvidenceOptions {
  dir: string;
  retentionMs: number;
  maxBytes: number;
  /** Width of the downscaled frame (never upscaled). */
  frameWidth: number;
  jpegQuality: number;
  clock: Clock;
  /** Age-based deletion needs a trustworthy wall clock: before sync, file times may be years off. */
  clockSynced: () => boolean;
  logger?: { warn(obj: object, msg: string): void };
  /** Sweep period (default 1 h). */
  sweepIntervalMs?: number;
}

export interface EvidenceImage {
  content_type: 'image/jpeg';
  width: number;
  height: number;
  /** Base64 of the JPEG. */
  data: string;
}

export interface Evidence {
  crop: EvidenceImage;
  frame: EvidenceImage;
  /** File names under the evidence directory; null when they could not be written. */
  files: { crop: string; frame: string } | null;
}

/** Margin around the plate box in the crop, as a fraction of the box's size per side. */
const CROP_MARGIN = 0.15;
/** Crops wider than this are downscaled: a plate needs no more to be read by a person. */
const MAX_CROP_WIDTH = 480;
/** Files written before 2020 have a wall time from before the clock was set; their age is unknown. */
const PLAUSIBLE_SINCE_MS = Date.UTC(2020, 0, 1);

export class EvidenceStore {
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;
  #written = 0;
  #deleted = 0;
  #errors = 0;

  constructor(private readonly opts: EvidenceOptions) {}

  async start(): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    this.#timer = setInterval(() => void this.sweep(), this.opts.sweepIntervalMs ?? 3_600_000);
    this.#timer.unref();
    void this.sweep();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  stats() {
    return { written: this.#written, deleted: this.#deleted, errors: this.#errors };
  }

  /**
   * Crop and downscaled frame of one plate in an encoded frame; `box` is x, y, w, h in the frame's
   * pixels. `name` becomes part of the file names.
   */
  async capture(jpeg: Buffer, box: readonly [number, number, number, number], name: { camera: string; plate: string }): Promise<Evidence> {
    const meta = await sharp(jpeg).metadata();
    const W = meta.width ?? 0;
    const H = meta.height ?? 0;
    if (W === 0 || H === 0) throw new Error('evidence frame has no size');
    const [x, y, w, h] = box;
    const mx = w * CROP_MARGIN;
    const my = h * CROP_MARGIN;
    const left = clampInt(x - mx, 0, W - 1);
    const top = clampInt(y - my, 0, H - 1);
    const width = clampInt(x + w + mx, left + 1, W) - left;
    const height = clampInt(y + h + my, top + 1, H) - top;
    const q = this.opts.jpegQuality;

    const cropOut = await sharp(jpeg)
      .extract({ left, top, width, height })
      .resize({ width: MAX_CROP_WIDTH, withoutEnlargement: true })
      .jpeg({ quality: q })
      .toBuffer({ resolveWithObject: true });

    const scale = Math.min(1, this.opts.frameWidth / W);
    const fw = Math.round(W * scale);
    const fh = Math.round(H * scale);
    const stroke = Math.max(2, Math.round(fw / 320));
    const outline = Buffer.from(
      `<svg width="${fw}" height="${fh}" xmlns="http://www.w3.org/2000/svg"><rect x="${Math.round(x * scale)}" y="${Math.round(y * scale)}" ` +
        `width="${Math.max(1, Math.round(w * scale))}" height="${Math.max(1, Math.round(h * scale))}" fill="none" stroke="#ff2020" stroke-width="${stroke}"/></svg>`,
    );
    const frameOut = await sharp(jpeg)
      .resize({ width: fw, height: fh })
      .composite([{ input: outline, top: 0, left: 0 }])
      .jpeg({ quality: q })
      .toBuffer({ resolveWithObject: true });

    const crop = image(cropOut);
    const frame = image(frameOut);
    let files: Evidence['files'] = null;
    try {
      const stem = `${this.opts.clock.wallNow()}-${safe(name.camera)}-${safe(name.plate)}`;
      files = { crop: `${stem}-crop.jpg`, frame: `${stem}-frame.jpg` };
      await this.#write(files.crop, cropOut.data);
      await this.#write(files.frame, frameOut.data);
      this.#written += 2;
    } catch (err) {
      files = null;
      this.#errors++;
      this.opts.logger?.warn({ err: (err as Error).message, dir: this.opts.dir }, 'cannot store evidence on disk');
    }
    return { crop, frame, files };
  }

  /** Deletes evidence past its retention (when the clock can be trusted) and the oldest beyond maxBytes. */
  sweep(): Promise<{ deleted: number; bytes: number }> {
    const run = this.#sweep().catch((err: unknown) => {
      this.#errors++;
      this.opts.logger?.warn({ err: (err as Error).message, dir: this.opts.dir }, 'evidence sweep failed');
      return { deleted: 0, bytes: 0 };
    });
    this.#sweeping = run;
    return run;
  }

  async #sweep(): Promise<{ deleted: number; bytes: number }> {
    const files: Array<{ path: string; mtime: number; size: number }> = [];
    for (const entry of await readdir(this.opts.dir, { withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.jpg')) continue;
      const path = join(this.opts.dir, entry.name);
      try {
        const st = await stat(path);
        files.push({ path, mtime: st.mtimeMs, size: st.size });
      } catch {
        // deleted meanwhile
      }
    }
    files.sort((a, b) => a.mtime - b.mtime);
    const now = this.opts.clock.wallNow();
    const trustAge = this.opts.clockSynced();
    let total = files.reduce((s, f) => s + f.size, 0);
    let deleted = 0;
    for (const f of files) {
      const expired = trustAge && f.mtime >= PLAUSIBLE_SINCE_MS && now - f.mtime > this.opts.retentionMs;
      if (!expired && total <= this.opts.maxBytes) continue;
      try {
        await unlink(f.path);
        deleted++;
        total -= f.size;
      } catch {
        // already gone
      }
    }
    this.#deleted += deleted;
    return { deleted, bytes: total };
  }

  async #write(name: string, data: Buffer): Promise<void> {
    const path = join(this.opts.dir, name);
    await writeFile(`${path}.tmp`, data, { mode: PRIVATE_FILE_MODE });
    await rename(`${path}.tmp`, path);
  }
}

function image(out: { data: Buffer; info: { width: number; height: number } }): EvidenceImage {
  return { content_type: 'image/jpeg', width: out.info.width, height: out.info.height, data: out.data.toString('base64') };
}

const clampInt = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, Math.round(v)));
const safe = (s: string): string => s.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);
