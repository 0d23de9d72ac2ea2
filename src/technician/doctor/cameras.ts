import type { CameraConfig } from '../../drivers/camera/index.js';
import { redactUrl } from '../../core/redact.js';
import { cameraFrame } from '../camera-frame.js';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, formatAge, formatBytes, pass, warn } from './check.js';

/** Each configured camera gives a picture: from the daemon's own source while it runs, else opened here. */
export const cameraChecks: Check = async (ctx) => Promise.all(ctx.config.anpr.cameras.map((cam) => cameraCheck(ctx, cam)));

const FIXES: Record<CameraConfig['kind'], string> = {
  stream:
    'check the camera has power and network (ping it), then the URL, user and password: ffmpeg -rtsp_transport tcp -i URL -frames:v 1 /tmp/frame.jpg shows what the camera answers',
  snapshot:
    "check the camera has power and network, then the snapshot URL, user and password: curl --digest -u USER URL -o /tmp/frame.jpg shows the camera's answer",
  directory: "create the directory, give the vigia user access to it, and set the camera's FTP upload to it",
};

async function cameraCheck(ctx: DoctorContext, cam: CameraConfig): Promise<DoctorCheck> {
  const name = `camera ${cam.id}`;
  try {
    const frame = await cameraFrame(cam, ctx.daemon, ctx.timeoutMs);
    const { default: sharp } = await import('sharp');
    const { width, height } = await sharp(frame.jpeg).metadata();
    const from = frame.from === 'daemon' ? "from the daemon's source" : frame.from === 'upload' ? `uploaded ${formatAge(frame.ageMs)} ago` : 'opened here';
    return pass(name, `${width}x${height} JPEG, ${formatBytes(frame.jpeg.length)}, ${from}`);
  } catch (err) {
    const message = redactUrl(errorText(err));
    if (cam.kind === 'directory' && /no picture uploaded/.test(message))
      return warn(name, message, 'trigger the camera once (or wait for a car) and run the doctor again');
    return fail(name, message, FIXES[cam.kind]);
  }
}
