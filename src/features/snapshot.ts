import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../core/private-files.js';
import { createFrameSource, type CameraConfig } from '../drivers/camera/index.js';
import { grabFrame } from '../drivers/camera/grab.js';
import type { FrameSource, FrameSourceDeps } from '../drivers/camera/source.js';

/** Width of the picture sent in an event: enough to see a person, small enough for a cellular link. */
const SNAPSHOT_WIDTH = 960;

export interface SnapshotDeps {
  config: Pick<Config, 'anpr'>;
  clock: Clock;
  logger: Logger;
  dataDir: string;
  createSource?: (cam: CameraConfig, deps: FrameSourceDeps) => FrameSource;
  timeoutMs?: number;
}

export interface Snapshot {
  ref: string;
  takenAt: string;
  /** The downscaled JPEG for an event, base64. */
  image: { content_type: 'image/jpeg'; width: number; height: number; data: string };
}

/** Where snapshots and hit evidence are kept, by reference. */
export const evidenceDir = (config: Pick<Config, 'anpr'>, dataDir: string): string => resolve(config.anpr.evidence.dir ?? join(dataDir, 'evidence'));

/**
 * One picture from a camera: the full frame stored under `ref` in the evidence directory (written
 * aside and renamed, so a reader never sees half a file), a downscaled copy returned for the event.
 */
export async function takeSnapshot(camera: CameraConfig, ref: string, deps: SnapshotDeps): Promise<Snapshot> {
  const source = (deps.createSource ?? createFrameSource)(camera, { clock: deps.clock, logger: deps.logger.child({ mod: 'camera', camera: camera.id }) });
  const frame = await grabFrame(source, deps.timeoutMs ?? 10_000);
  const { default: sharp } = await import('sharp');
  const small = await sharp(frame.jpeg).resize({ width: SNAPSHOT_WIDTH, withoutEnlargement: true }).jpeg({ quality: 75 }).toBuffer({ resolveWithObject: true });
  const dir = evidenceDir(deps.config, deps.dataDir);
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await writeFile(join(dir, `${ref}.tmp`), frame.jpeg, { mode: PRIVATE_FILE_MODE });
  await rename(join(dir, `${ref}.tmp`), join(dir, ref));
  return {
    ref,
    takenAt: new Date(frame.wallMs).toISOString(),
    image: { content_type: 'image/jpeg', width: small.info.width, height: small.info.height, data: small.data.toString('base64') },
  };
}
