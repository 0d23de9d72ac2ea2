import { execFile } from 'node:child_process';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, pass, warn } from './check.js';

/**
 * The 433 MHz receiver of a community kit: with the daemon running, what its receiver has heard
 * and whether it keeps failing; with it stopped, rtl_433 is run for a moment on the dongle. A kit
 * with no registered remote is warned about: its presses raise nothing.
 */
export const radioCheck: Check = async (ctx) => {
  const radio = ctx.config.radio;
  if (radio.receiver === 'none') return [];
  const checks = [ctx.status ? fromDaemon(ctx) : await openHere(ctx)];
  if (Object.keys(ctx.config.remotes).length === 0 && !ctx.status?.['field-io']?.remotes?.registered) {
    checks.push(
      warn(
        'remotes',
        'no remote is registered: presses are counted as unknown and raise nothing',
        'press each remote while vigia remotes learn runs, then add it under remotes: in vigia.yaml (or the call center sends remotes.enroll)',
      ),
    );
  }
  return checks;
};

const DONGLE_FIX =
  'lsusb should list the RTL2832U dongle; the vigia user must be in plugdev, and the kernel DVB driver must not hold it (apt install rtl-sdr blacklists dvb_usb_rtl28xxu; unplug and replug)';

function fromDaemon(ctx: DoctorContext): DoctorCheck {
  const remotes = ctx.status!['field-io']?.remotes;
  if (!remotes) return fail('radio', 'the daemon runs no radio receiver', 'restart the daemon and read vigia logs --mod radio');
  const [id, receiver] = Object.entries(remotes.receivers)[0] ?? [];
  if (!id || !receiver) return fail('radio', 'the daemon has no radio receiver', 'restart the daemon and read vigia logs --mod radio');
  const heard = `${receiver.frames} frames, ${remotes.presses} presses (${remotes.unknown_presses} of unknown remotes), ${remotes.registered} remotes registered`;
  if (receiver.restarts > 0 && receiver.frames === 0) {
    return fail('radio', `${id} keeps stopping (${receiver.restarts} restarts)${receiver.last_error ? `: ${receiver.last_error}` : ''}`, DONGLE_FIX);
  }
  return pass('radio', `${id}: ${heard}`);
}

async function openHere(ctx: DoctorContext): Promise<DoctorCheck> {
  const radio = ctx.config.radio;
  if (radio.receiver === 'gpio') {
    return warn('radio', 'a receiver module is checked through the daemon: start it, then vigia remotes learn shows each press', 'systemctl start vigia');
  }
  const r = radio.rtl_433;
  const args = ['-c', '/dev/null', '-d', r.device, '-f', r.frequency, '-R', '30', '-T', '2'];
  // Exit status: 0 once it listened for the 2 s, 2 when it found no dongle; null when it could not run at all.
  const result = await new Promise<{ code: number | null; stderr: string; error: Error | null }>((resolve) => {
    execFile(r.command, args, { timeout: Math.max(ctx.timeoutMs, 5_000), encoding: 'utf8' }, (error, _stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stderr, error });
    });
  });
  if (result.code === null && (result.error as NodeJS.ErrnoException | null)?.code === 'ENOENT')
    return fail('radio', `${r.command} is not installed`, 'sudo apt install rtl-433');
  const tuner = /Found (.+? tuner)|Tuner: ([\w ]+)\)/.exec(result.stderr);
  if (result.code === 0) return pass('radio', `rtl_433 opened the dongle ${r.device}${tuner ? ` (${tuner[1] ?? `${tuner[2]} tuner`})` : ''} and listened 2 s`);
  const said = result.stderr.trim().split('\n').slice(-2).join(' ') || errorText(result.error);
  return fail('radio', `rtl_433 could not use the dongle ${r.device}: ${said}`, DONGLE_FIX);
}
