import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENROLLED_TAGS_FILE } from '../../features/personal-tags.js';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, pass, warn } from './check.js';

/**
 * Personal alarm tags: with the daemon running, whether its Bluetooth scan is on and what it
 * heard; with it stopped, bluetoothd is asked about the adapter. No registered tag is warned about.
 */
export const bluetoothCheck: Check = async (ctx) => {
  const personal = ctx.config.personal;
  if (!personal.enabled) return [];
  const checks = [ctx.status ? fromDaemon(ctx) : await probeHere(ctx)];
  if (registeredTags(ctx) === 0) {
    checks.push(
      warn(
        'tags',
        'no tag is registered: presses are counted as unregistered and raise nothing',
        'press each tag near the device while vigia tags learn runs, then add it under tags: in vigia.yaml (or the call center sends tags.enroll)',
      ),
    );
  }
  return checks;
};

/** The daemon's count (configuration and tags.enroll), else the configuration's and the enrolment file's. */
function registeredTags(ctx: DoctorContext): number {
  const running = ctx.status?.['field-io']?.tags?.registered;
  if (typeof running === 'number') return running;
  let enrolled = 0;
  try {
    enrolled = Object.keys(JSON.parse(readFileSync(join(ctx.config.paths.data_dir, ENROLLED_TAGS_FILE), 'utf8')) as object).length;
  } catch {
    // none enrolled, or not readable here: the configuration's count stands
  }
  return Object.keys(ctx.config.tags).length + enrolled;
}

const BLUEZ_FIX = 'sudo apt install bluez; systemctl status bluetooth; bluetoothctl list should show the adapter (rfkill unblock bluetooth if it is blocked)';

function fromDaemon(ctx: DoctorContext): DoctorCheck {
  const tags = ctx.status!['field-io']?.tags;
  if (!tags) return fail('bluetooth', 'the daemon runs no Bluetooth scan', 'restart the daemon and read vigia logs --mod ble');
  const { scanner } = tags;
  const heard = `${scanner.adverts} adverts, ${tags.ours} of tags, ${tags.presses} presses (${tags.unknown_presses} of unregistered tags), ${tags.registered} tags registered`;
  if (!scanner.scanning) return fail('bluetooth', `${scanner.id} is not scanning${scanner.last_error ? `: ${scanner.last_error}` : ''}`, BLUEZ_FIX);
  return pass('bluetooth', `${scanner.id} scanning: ${heard}`);
}

async function probeHere(ctx: DoctorContext): Promise<DoctorCheck> {
  const adapter = ctx.config.personal.adapter;
  if (adapter === 'sim') return pass('bluetooth', 'a simulated adapter (personal.adapter: sim): nothing to check');
  try {
    const { probeBluez } = await import('../../drivers/ble/bluez.js');
    const info = await probeBluez({ adapter, timeoutMs: ctx.timeoutMs, ...(ctx.dbusAddress ? { busAddress: ctx.dbusAddress } : {}) });
    if (!info.powered)
      return warn('bluetooth', `${adapter} (${info.address}) is off; the daemon powers it on when it starts`, 'rfkill list; rfkill unblock bluetooth');
    return pass('bluetooth', `${adapter} (${info.address}) is on`);
  } catch (err) {
    return fail('bluetooth', errorText(err), BLUEZ_FIX);
  }
}
