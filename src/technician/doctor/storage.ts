import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { rm, statfs, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, formatBytes, pass, warn } from './check.js';

/**
 * Where the outbox lives, and the SD card under it: free space, whether it can be written (a card
 * with errors is remounted read-only by the kernel, and then every commit fails), what the file
 * system is, and how much is written to it (SD cards wear out by writes).
 */

/** One line of /proc/self/mountinfo. */
export interface Mount {
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount and per-superblock options together (`ro` in either makes it read-only). */
  options: string[];
  /** `major:minor` of the device. */
  device: string;
}

/** `\040` and friends: mountinfo escapes spaces, tabs, newlines and backslashes in octal. */
const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

export function parseMountinfo(text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 6 || right.length < 3) continue;
    mounts.push({
      mountPoint: unescapeOctal(left[4]!),
      device: left[2]!,
      options: [...left[5]!.split(','), ...right[2]!.split(',')],
      fsType: right[0]!,
      source: unescapeOctal(right[1]!),
    });
  }
  return mounts;
}

/** The mount holding `path`: the last one listed with the longest matching mount point (later mounts hide earlier ones). */
export function mountOf(path: string, mounts: readonly Mount[]): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const inside = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(`${m.mountPoint}/`);
    if (inside && (!best || m.mountPoint.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/** Sectors written to a block device (by `major:minor`) since boot, from /proc/diskstats. */
export function sectorsWritten(diskstats: string, device: string): { name: string; sectors: number } | undefined {
  const [major, minor] = device.split(':');
  for (const line of diskstats.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === major && f[1] === minor && f.length >= 10) return { name: f[2]!, sectors: Number(f[9]) };
  }
  return undefined;
}

/** The data directory, or the nearest existing directory above it (the daemon creates the rest). */
function existingAncestor(dir: string): string {
  let d = resolve(dir);
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return realpathSync(d);
}

const VOLATILE_FS = new Set(['tmpfs', 'ramfs', 'overlay', 'zram']);
/** Writes per day past which an SD card's endurance is worth a look (a quiet pole writes a few hundred MiB). */
const SD_WRITES_PER_DAY_WARN = 4 * 1024 ** 3;
/** Below this the outbox cannot even hold its disk reserve and a day of panic presses. */
const MIN_FREE_BYTES = 16 * 1024 ** 2;

export const storageChecks: Check = async (ctx) => {
  const dataDir = resolve(ctx.config.paths.data_dir);
  const checks: DoctorCheck[] = [await writable(dataDir), await space(ctx, dataDir)];
  let mounts: Mount[];
  try {
    mounts = parseMountinfo(readFileSync(join(ctx.procRoot, 'self/mountinfo'), 'utf8'));
  } catch (err) {
    return [...checks, warn('filesystem', `cannot read the mount table: ${errorText(err)}`, 'run the doctor on the device itself (it reads /proc)')];
  }
  const mount = mountOf(existingAncestor(dataDir), mounts);
  if (!mount) return [...checks, warn('filesystem', `${dataDir} is on no mount listed in /proc/self/mountinfo`, 'check that /proc is mounted')];
  checks.push(filesystem(dataDir, mount));
  checks.push(sdWrites(ctx, mount));
  return checks;
};

async function writable(dataDir: string): Promise<DoctorCheck> {
  if (!existsSync(dataDir))
    return warn('data dir', `${dataDir} does not exist yet`, 'the daemon creates it at start; check paths.data_dir if this is not the place');
  const probe = join(dataDir, `.doctor-${process.pid}`);
  try {
    await writeFile(probe, 'probe\n');
    await rm(probe, { force: true });
    return pass('data dir', `${dataDir} is writable`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return fail('data dir', `${dataDir} is on a read-only file system`, 'see the filesystem check: the card was remounted read-only');
    if (code === 'ENOSPC') return fail('data dir', `${dataDir}: no space left`, 'free space on the card (see the disk space check)');
    return fail(
      'data dir',
      `${dataDir} cannot be written: ${errorText(err)}`,
      `run the doctor as the vigia user or root; the daemon's user must own it: chown -R vigia:vigia ${dataDir}`,
    );
  }
}

async function space(ctx: DoctorContext, dataDir: string): Promise<DoctorCheck> {
  const { outbox } = ctx.config;
  let free: number;
  try {
    const s = await statfs(existingAncestor(dataDir));
    free = s.bavail * s.bsize;
  } catch (err) {
    return fail('disk space', `cannot read the free space of ${dataDir}: ${errorText(err)}`, 'check that the data directory is mounted');
  }
  const cleanup = 'free space: old logs (journalctl --vacuum-size=100M), files in /var/tmp, or a larger card';
  if (ctx.status?.disk.full) return fail('disk space', `the daemon found the disk full: only alarms are stored (${formatBytes(free)} free)`, cleanup);
  if (free < Math.max(MIN_FREE_BYTES, outbox.disk_reserve_bytes))
    return fail('disk space', `${formatBytes(free)} free on the data directory's file system`, cleanup);
  if (free < outbox.max_bytes)
    return warn(
      'disk space',
      `${formatBytes(free)} free, less than outbox.max_bytes (${formatBytes(outbox.max_bytes)}): a long outage fills the disk before the outbox`,
      `${cleanup}, or lower outbox.max_bytes`,
    );
  return pass('disk space', `${formatBytes(free)} free (outbox.max_bytes ${formatBytes(outbox.max_bytes)})`);
}

function filesystem(dataDir: string, m: Mount): DoctorCheck {
  const what = `${m.fsType} on ${m.source}, mounted at ${m.mountPoint} (${m.options.filter((o, i, all) => all.indexOf(o) === i).join(',')})`;
  if (m.options.includes('ro'))
    return fail(
      'filesystem',
      `read-only: ${what}`,
      'the kernel remounts a card read-only after write errors: look at dmesg | grep -iE "ext4|mmc", back up the data directory, fsck the partition from another computer (fsck.ext4 -f), and replace the card if it happens again',
    );
  if (VOLATILE_FS.has(m.fsType))
    return warn(
      'filesystem',
      `${dataDir} is in memory: ${what}`,
      'the outbox is lost at every reboot: put paths.data_dir on the card (outside an overlay root)',
    );
  return pass('filesystem', what);
}

function sdWrites(ctx: DoctorContext, m: Mount): DoctorCheck {
  let written: ReturnType<typeof sectorsWritten>;
  let uptimeS: number;
  try {
    written = sectorsWritten(readFileSync(join(ctx.procRoot, 'diskstats'), 'utf8'), m.device);
    uptimeS = Number(readFileSync(join(ctx.procRoot, 'uptime'), 'utf8').split(' ')[0]);
  } catch (err) {
    return warn('card writes', `cannot read the disk statistics: ${errorText(err)}`, 'run the doctor on the device itself (it reads /proc)');
  }
  if (!written) return pass('card writes', `no block device under ${m.mountPoint} (${m.source})`);
  const bytes = written.sectors * 512; // diskstats counts 512-byte sectors whatever the device's own size
  const perDay = uptimeS > 0 ? (bytes / uptimeS) * 86_400 : 0;
  const sd = written.name.startsWith('mmcblk');
  const detail = `${sd ? 'SD card' : 'not an SD card:'} ${written.name}: ${formatBytes(bytes)} written since boot, about ${formatBytes(perDay)} a day`;
  if (sd && perDay > SD_WRITES_PER_DAY_WARN)
    return warn(
      'card writes',
      detail,
      'an SD card wears out by writes: keep log.level at info, make journald volatile (Storage=volatile in journald.conf) and look for a flow or program writing often',
    );
  return pass('card writes', detail);
}
