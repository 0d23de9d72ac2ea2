import { existsSync } from 'node:fs';
import { type Check, fail, pass, warn } from './check.js';

/**
 * Whether the wall clock can be trusted, as the daemon decides it (clock.sync_source). Until it is,
 * events are marked unsynced, hotlist staleness cannot be judged and certificates may look invalid.
 */
export const clockCheck: Check = async (ctx) => {
  const name = 'clock';
  const time = new Date(ctx.now()).toISOString();
  const fix =
    'an unsynchronised Pi has no battery clock: check NTP (timedatectl timesync-status, UDP 123 allowed to the NTP server) or the GPS fix; set clock.sync_source to match how this device gets its time';
  if (ctx.status) {
    const { synced, source } = ctx.status.clock;
    return [synced ? pass(name, `synchronised (${source}), ${time}`) : fail(name, `the daemon has not seen the clock synchronised yet (${time})`, fix)];
  }
  const { sync_source: source, sync_file: file } = ctx.config.clock;
  if (source === 'assume-synced') return [pass(name, `assumed right (clock.sync_source: assume-synced), ${time}`)];
  if (source === 'never') return [warn(name, `only GPS or a command sets it (clock.sync_source: never), ${time}`, fix)];
  if (existsSync(file)) return [pass(name, `synchronised (${file} exists), ${time}`)];
  if (source === 'auto' && (await ctx.timedatectlSynced())) return [pass(name, `synchronised (timedatectl), ${time}`)];
  return [fail(name, `not synchronised (no ${file}${source === 'auto' ? ', timedatectl says no' : ''}), ${time}`, fix)];
};
