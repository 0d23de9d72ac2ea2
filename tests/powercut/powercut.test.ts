import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CampaignResult, runCampaign } from './campaign.js';

// Power cuts, proven on a real kernel: the daemon runs in the hardware rig's VM with its data on a
// virtio disk image (ext4), and QEMU is killed (SIGKILL) under load: the guest's page cache and
// whatever it had not written to the disk are gone, as in a power cut (the image itself lives in
// the host's page cache, so the SD card's own write cache is not modelled). After each cut the VM
// boots again; the last boot drains the outbox. See tests/powercut/campaign.ts.
//
// VIGIA_POWERCUT_CUTS (30) and VIGIA_POWERCUT_NORMAL_CUTS (10) set the number of cuts of each run.

const CUTS = Number(process.env.VIGIA_POWERCUT_CUTS ?? 30);
const NORMAL_CUTS = Number(process.env.VIGIA_POWERCUT_NORMAL_CUTS ?? 10);
/** The bound on boot to ready (QEMU started to the daemon's "started") under TCG emulation on two shared cores. */
const BOOT_TO_READY_BOUND_MS = 90_000;
const OUT = join(tmpdir(), 'vigia-powercut-last-run');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : null;
};

function summary(r: CampaignResult) {
  return {
    synchronous: r.synchronous,
    cuts: r.cuts,
    cuts_in_checkpoint: r.cutsInCheckpoint,
    acked: r.acked,
    acked_total: Object.values(r.acked).reduce((a, b) => a + b, 0),
    acked_presses: r.ackedPresses,
    lost: r.lost,
    lost_presses: r.lostPresses,
    telemetry_missing: r.telemetryMissing,
    telemetry_evicted_reported: r.telemetryEvictedReported,
    duplicates: r.duplicates,
    seq_reused: r.seqReused,
    integrity_failures: r.integrityFailures,
    boot_to_ready_ms_p50: median(r.bootToReadyMs),
    boot_to_ready_ms_max: Math.max(...r.bootToReadyMs),
    daemon_start_ms_p50: median(r.daemonStartMs),
    checkpoints: r.checkpointMs.length,
    checkpoint_ms_p50: median(r.checkpointMs),
    checkpoint_ms_max: r.checkpointMs.length ? Math.max(...r.checkpointMs) : null,
  };
}

async function campaign(synchronous: 'full' | 'normal', cuts: number) {
  const dir = join(OUT, synchronous);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const result = await runCampaign({ synchronous, cuts, dir, log: (m) => process.stderr.write(`powercut ${synchronous}: ${m}\n`) });
  writeFileSync(join(dir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stderr.write(`powercut ${synchronous}: ${JSON.stringify(summary(result))}\n`);
  return result;
}

describe('power cuts', () => {
  it(`with synchronous=full, ${CUTS} cuts lose no acknowledged event, reuse no sequence number and leave an intact outbox`, async () => {
    const r = await campaign('full', CUTS);
    expect(r.cuts).toBe(CUTS);
    // Some of the cuts landed inside a WAL checkpoint.
    expect(r.cutsInCheckpoint).toBeGreaterThan(0);
    for (const b of r.boots) {
      expect(b.integrity, `boot ${b.boot}`).toEqual(['ok']);
      expect(b.corruptLeftovers, `boot ${b.boot}`).toEqual([]);
      expect(
        b.errors.filter((e) => e.startsWith('agent:')),
        `boot ${b.boot}`,
      ).toEqual([]);
      expect(b.bootToReadyMs, `boot ${b.boot}`).toBeLessThan(BOOT_TO_READY_BOUND_MS);
    }
    expect(r.acked.alarm + r.acked.hit + r.acked.read).toBeGreaterThan(0);
    expect(r.ackedPresses).toBeGreaterThan(0);
    expect(r.lostSamples).toEqual([]);
    expect(r.lost).toBe(0);
    expect(r.lostPresses).toBe(0);
    // Telemetry over its quota is evicted by design; every missing one is covered by a report.
    expect(r.telemetryMissing).toBeLessThanOrEqual(r.telemetryEvictedReported);
    expect(r.telemetryEvictedReported).toBeGreaterThan(0);
    expect(r.seqReused).toBe(0);
    expect(r.logErrors.filter((l) => /"level":60/.test(l))).toEqual([]);
  });

  it(`with synchronous=normal, ${NORMAL_CUTS} cuts: what full buys (reported, not asserted beyond integrity)`, async () => {
    const r = await campaign('normal', NORMAL_CUTS);
    expect(r.cuts).toBe(NORMAL_CUTS);
    // WAL with synchronous=NORMAL stays consistent: it may lose the last commits, never the file.
    for (const b of r.boots) expect(b.integrity, `boot ${b.boot}`).toEqual(['ok']);
  });
});
