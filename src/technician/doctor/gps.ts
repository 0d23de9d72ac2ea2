import { statSync } from 'node:fs';
import type { GpsFix } from '../../drivers/serial/gps.js';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, formatAge, pass, warn } from './check.js';

/** The GPS receiver answers on its port and has a fix (without one, events carry no position). */
export const gpsCheck: Check = async (ctx) => {
  const cfg = ctx.config.hardware.gps;
  if (!cfg) return [];
  const receiver = ctx.status ? fromDaemon(ctx) : await openHere(ctx);
  return cfg.sync_clock ? [receiver, clockHelperCheck(ctx)] : [receiver];
};

/**
 * A wrong clock is set from GPS only through the clock helper, which is opt-in (it is the one
 * process that may hold CAP_SYS_TIME): a warning, since NTP may keep the clock right anyway.
 */
function clockHelperCheck(ctx: DoctorContext): DoctorCheck {
  let socket = false;
  try {
    socket = statSync(ctx.clockHelperSocket).isSocket();
  } catch {
    // absent: not enabled
  }
  if (socket) return pass('gps clock', `the clock helper listens on ${ctx.clockHelperSocket}: a wrong clock is set from GPS time`);
  return warn(
    'gps clock',
    `hardware.gps.sync_clock is on but no clock helper listens on ${ctx.clockHelperSocket}: a wrong clock is not corrected from GPS`,
    'sudo systemctl enable --now vigia-clock.socket (or set hardware.gps.sync_clock: false)',
  );
}

const NO_FIX_FIX = 'the antenna needs open sky: mount it outside the cabinet, away from metal; a cold receiver can take several minutes for its first fix';
const PORT_FIX =
  'check hardware.gps.port (ls -l /dev/serial* /dev/ttyACM* /dev/ttyUSB*), the cable, that the vigia user is in the dialout group, and hardware.gps.baud';

const describeFix = (f: Pick<GpsFix, 'fix' | 'satellites' | 'hdop'>) =>
  `${f.fix} fix${f.satellites !== null ? `, ${f.satellites} satellites` : ''}${f.hdop !== null ? `, HDOP ${f.hdop}` : ''}`;

function fromDaemon(ctx: DoctorContext): DoctorCheck {
  const gps = ctx.status!.gps;
  if (gps?.state !== 'running') return fail('gps', `not running in the daemon (${gps?.state ?? 'absent'})`, 'restart the daemon and read vigia logs --mod gps');
  if (gps.fix) return pass('gps', `${describeFix(gps.fix)}, ${formatAge(gps.fix.age_ms)} old, on ${gps.port?.path}`);
  if (!gps.port || gps.port.lines === 0)
    return fail(
      'gps',
      `nothing received on ${gps.port?.path ?? ctx.config.hardware.gps!.port}${gps.port?.lastError ? `: ${gps.port.lastError}` : ''}`,
      PORT_FIX,
    );
  return fail('gps', `the receiver talks (${gps.port.lines} sentences) but has no fix`, NO_FIX_FIX);
}

async function openHere(ctx: DoctorContext): Promise<DoctorCheck> {
  const cfg = ctx.config.hardware.gps!;
  const { GpsReceiver } = await import('../../drivers/serial/gps.js');
  const receiver = new GpsReceiver({ port: cfg.port, baud: cfg.baud, maxFixAgeMs: cfg.max_fix_age });
  try {
    const fix = await new Promise<GpsFix | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), ctx.timeoutMs);
      receiver.on('fix_acquired', (f) => {
        clearTimeout(timer);
        resolve(f);
      });
      receiver.start();
    });
    if (fix) return pass('gps', `${describeFix(fix)} on ${cfg.port}`);
    const port = receiver.port();
    if (port.lines === 0)
      return fail('gps', `nothing received on ${cfg.port} within ${ctx.timeoutMs} ms${port.lastError ? `: ${port.lastError}` : ''}`, PORT_FIX);
    return fail('gps', `the receiver talks (${port.lines} sentences in ${ctx.timeoutMs} ms) but has no fix`, NO_FIX_FIX);
  } catch (err) {
    return fail('gps', errorText(err), PORT_FIX);
  } finally {
    await receiver.stop();
  }
}
