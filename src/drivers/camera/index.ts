import type { Config } from '../../config/schema.js';
import { DirectorySource } from './directory.js';
import { detectInputKind, FfmpegSource } from './ffmpeg.js';
import { HttpSnapshotSource } from './http-snapshot.js';
import type { FrameSource, FrameSourceDeps } from './source.js';

export type CameraConfig = Config['anpr']['cameras'][number];

/**
 * The URL a stream camera is read from, with `username`/`password` filled in (percent-encoded).
 * Secrets are revealed here, where they are used, and nowhere else.
 */
export function streamUrl(cam: CameraConfig): string {
  const url = typeof cam.url === 'string' ? cam.url : cam.url!.reveal();
  if (cam.username === undefined) return url;
  const withUser = new URL(url);
  withUser.username = cam.username;
  withUser.password = cam.password?.reveal() ?? '';
  return withUser.href;
}

/** The frame source a camera's configuration describes. Constructing it starts nothing. */
export function createFrameSource(cam: CameraConfig, deps: FrameSourceDeps = {}): FrameSource {
  switch (cam.kind) {
    case 'stream': {
      const url = streamUrl(cam);
      // A file stands in for a camera: read it at its own pace, not as fast as it decodes.
      return new FfmpegSource(
        {
          cameraId: cam.id,
          url,
          fps: cam.fps,
          maxWidth: cam.max_width,
          loop: cam.loop,
          realtime: detectInputKind(url) === 'file',
          ...(detectInputKind(url) === 'rtsp' ? { inputOptions: { rtsp_transport: cam.rtsp_transport } } : {}),
        },
        deps,
      );
    }
    case 'snapshot':
      return new HttpSnapshotSource(
        {
          cameraId: cam.id,
          url: typeof cam.url === 'string' ? cam.url : cam.url!.reveal(),
          privateUrl: typeof cam.url !== 'string',
          intervalMs: cam.interval,
          auth: cam.auth,
          ...(cam.username !== undefined ? { username: cam.username } : {}),
          ...(cam.password !== undefined ? { password: cam.password.reveal() } : {}),
          ...(cam.insecure_tls ? { tls: { rejectUnauthorized: false } } : {}),
        },
        deps,
      );
    case 'directory':
      return new DirectorySource({ cameraId: cam.id, dir: cam.dir!, after: cam.after_read }, deps);
  }
}

/**
 * Whether a camera's frames go through the motion gate. Upload-directory cameras send a picture
 * when their own trigger fires, so every picture is worth reading; streams and snapshots are gated.
 */
export function motionGated(cam: CameraConfig, defaultEnabled: boolean): boolean {
  return cam.motion ?? (cam.kind === 'directory' ? false : defaultEnabled);
}
