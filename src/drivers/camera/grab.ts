import type { Frame, FrameSource } from './source.js';

/** The next frame a running source emits; rejects after `timeoutMs` with the source's last error. */
export async function nextFrame(source: FrameSource, timeoutMs: number): Promise<Frame> {
  let onFrame!: (f: Frame) => void;
  let timer: NodeJS.Timeout | undefined;
  const frame = new Promise<Frame>((resolve, reject) => {
    onFrame = resolve;
    timer = setTimeout(
      () =>
        reject(new Error(`no frame from camera ${source.cameraId} within ${timeoutMs} ms${source.stats().lastError ? `: ${source.stats().lastError}` : ''}`)),
      timeoutMs,
    );
  });
  source.on('frame', onFrame);
  try {
    return await frame;
  } finally {
    clearTimeout(timer);
    source.off('frame', onFrame);
  }
}

/**
 * One picture from a camera, for an alarm: starts the source, takes its first frame and stops it.
 * Any source works (snapshot URL, stream, upload directory); rejects after `timeoutMs`.
 */
export async function grabFrame(source: FrameSource, timeoutMs: number): Promise<Frame> {
  const frame = nextFrame(source, timeoutMs);
  source.start();
  try {
    return await frame;
  } finally {
    await source.stop();
  }
}
