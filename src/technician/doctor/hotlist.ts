import { resolve } from 'node:path';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, formatAge, type HotlistView, pass, warn } from './check.js';

/**
 * The stolen-vehicle list plates are matched against: there is one, it is signed when it comes
 * from a URL, and it is not older than anpr.hotlist.max_age. Read from the daemon while it runs,
 * else from the cache it loads at start.
 */
export const hotlistCheck: Check = async (ctx) => {
  if (!ctx.config.anpr.enabled) return [];
  if (ctx.status) {
    const anpr = ctx.status.anpr;
    if (!anpr?.hotlist) return [fail('hotlist', `plate reading is ${anpr?.state ?? 'not running'} in the daemon`, 'read vigia logs --mod anpr --level warn')];
    return [judge(ctx, anpr.hotlist)];
  }
  const { HotlistStore } = await import('../../anpr/hotlist/source.js');
  const { hotlist } = ctx.config.anpr;
  let store: InstanceType<typeof HotlistStore> | undefined;
  try {
    store = new HotlistStore({
      dataDir: resolve(ctx.config.paths.data_dir),
      site: ctx.config.device.site,
      ...(hotlist.public_key ? { publicKey: hotlist.public_key.reveal() } : {}),
      build: 'inline',
    });
    const opened = await store.open();
    if (!opened.ok)
      return [
        fail(
          'hotlist',
          `the cached list cannot be used: ${opened.detail}`,
          'the daemon fetches or loads it again at start; vigia hotlist import FILE -c CONFIG loads one now',
        ),
      ];
    return [judge(ctx, { ...store.stats(), source: store.stats().source ?? hotlist.file ?? null })];
  } catch (err) {
    return [fail('hotlist', errorText(err), 'check anpr.hotlist (public_key, file) and the data directory')];
  } finally {
    await store?.close();
  }
};

function judge(ctx: DoctorContext, list: HotlistView): DoctorCheck {
  const { url, max_age: maxAge, file } = ctx.config.anpr.hotlist;
  const lastError = list.last_error ? ` (last error: ${list.last_error})` : '';
  if (list.size === 0)
    return fail(
      'hotlist',
      `no list installed: no car can be recognised as stolen${lastError}`,
      url ? 'check that the device reaches anpr.hotlist.url' : 'set anpr.hotlist.file or url, or vigia hotlist import FILE -c CONFIG',
    );
  if (url && list.serial === 0)
    return fail(
      'hotlist',
      `${list.size} entries, but no signed list from ${url} installed yet${lastError}`,
      'the list must come with <url>.header and <url>.sig signed by anpr.hotlist.public_key (see the README)',
    );
  if (list.issued === null)
    return pass('hotlist', `${list.size} entries from ${list.source ?? file ?? 'a local file'} (a local list: not signed, never stale)`);
  const ageMs = ctx.now() - Date.parse(list.issued);
  const signed = `${list.size} entries, serial ${list.serial}, signed, issued ${formatAge(ageMs)} ago`;
  if (ageMs > maxAge)
    return fail(
      'hotlist',
      `${signed}: older than anpr.hotlist.max_age (${formatAge(maxAge)})${lastError}`,
      'the publisher must issue a new serial at least every max_age; check that the device reaches the URL (and the clock check)',
    );
  if (list.last_error) return warn('hotlist', `${signed}${lastError}`, 'the last update was refused: vigia logs --mod hotlist says why');
  return pass('hotlist', signed);
}
