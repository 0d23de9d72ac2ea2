import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { grabFrame } from '../drivers/camera/grab.js';
import { type CameraConfig, createFrameSource } from '../drivers/camera/index.js';
import { isJpeg } from '../drivers/camera/jpeg.js';
import { type DaemonRequest, isUnknownOperation } from './daemon-link.js';

/** A picture from a configured camera, and where it came from. */
export interface CameraFrame {
  jpeg: Buffer;
  /** `daemon`: the running daemon's source; `camera`: opened here; `upload`: the newest picture in an upload directory. */
  from: 'daemon' | 'camera' | 'upload';
  /** How old the picture is, ms (0 for one taken just now). */
  ageMs: number;
}

export function findCamera(config: Config, id: string): CameraConfig {
  const cam = config.anpr.cameras.find((c) => c.id === id);
  if (!cam) throw new Error(`no camera ${JSON.stringify(id)} in anpr.cameras (configured: ${config.anpr.cameras.map((c) => c.id).join(', ') || 'none'})`);
  return cam;
}

/**
 * A frame from the running daemon's source when it has the camera; otherwise the camera opened
 * here. An upload-directory camera is never read here: taking a picture from it would take it
 * from the plate reader (it deletes or moves what it reads), so its newest picture is copied.
 */
export async function cameraFrame(cam: CameraConfig, daemon: DaemonRequest | null, timeoutMs: number): Promise<CameraFrame> {
  if (daemon) {
    try {
      const r = (await daemon('camera.snapshot', { camera: cam.id, timeout_ms: timeoutMs })) as { jpeg: string; age_ms: number };
      return { jpeg: Buffer.from(r.jpeg, 'base64'), from: 'daemon', ageMs: r.age_ms };
    } catch (err) {
      // Plate reading is off (a pole's snapshot camera) or failed: the daemon does not hold the camera.
      if ((err as { code?: unknown }).code !== 'no_camera' && !isUnknownOperation(err)) throw err;
    }
  }
  if (cam.kind === 'directory') return newestUpload(cam.dir!);
  const frame = await grabFrame(createFrameSource(cam), timeoutMs);
  return { jpeg: frame.jpeg, from: 'camera', ageMs: 0 };
}

/** The newest whole JPEG in an upload directory or its processed/ folder. */
async function newestUpload(dir: string): Promise<CameraFrame> {
  let newest: { path: string; mtimeMs: number } | undefined;
  for (const d of [dir, join(dir, 'processed')]) {
    let names: string[];
    try {
      names = await readdir(d);
    } catch (err) {
      if (d === dir) throw new Error(`cannot read the upload directory ${dir}: ${(err as Error).message}`);
      continue;
    }
    for (const name of names) {
      if (!/\.jpe?g$/i.test(name)) continue;
      const s = await stat(join(d, name)).catch(() => undefined);
      if (s?.isFile() && (!newest || s.mtimeMs > newest.mtimeMs)) newest = { path: join(d, name), mtimeMs: s.mtimeMs };
    }
  }
  if (!newest) throw new Error(`no picture uploaded to ${dir} yet: trigger the camera (or drop a JPEG there) and look again`);
  const jpeg = await readFile(newest.path);
  if (!isJpeg(jpeg)) throw new Error(`${newest.path} is not a JPEG`);
  return { jpeg, from: 'upload', ageMs: Math.max(0, Date.now() - newest.mtimeMs) };
}
