import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { EvidenceStore } from '../src/anpr/evidence.js';
import { systemClock } from '../src/core/clock.js';
import { Outbox } from '../src/gateway/outbox.js';
import { DaemonProcess, writeDeviceConfig } from './helpers/daemon.js';
import { testOutboxOptions } from './helpers/outbox.js';

// Plate reads, evidence pictures and the outbox are personal data: no other local user may read
// them, whatever the umask the daemon was started with (the test process runs with 022).
const mode = (path: string) => statSync(path).mode & 0o777;

describe('private data is private on disk', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-modes-'));
  let daemon: DaemonProcess | undefined;
  afterAll(async () => {
    await daemon?.kill('SIGTERM');
  });

  it('the outbox database and its directory', async () => {
    const file = join(dir, 'outbox', 'events.db');
    const outbox = new Outbox(testOutboxOptions(file, { maxBytes: 1 << 20, alarmReserveBytes: 1 << 16, clock: systemClock }));
    outbox.open();
    await outbox.accept({ type: 'plate.read', priority: 'read', payload: { plate: 'FKZT41' } });
    expect(mode(file)).toBe(0o640);
    expect(mode(`${file}-wal`)).toBe(0o640);
    expect(mode(join(dir, 'outbox'))).toBe(0o750);
    await outbox.close();
  });

  it('evidence pictures and their directory', async () => {
    const evidenceDir = join(dir, 'evidence');
    const store = new EvidenceStore({
      dir: evidenceDir,
      retentionMs: 86_400_000,
      maxBytes: 1 << 24,
      frameWidth: 320,
      jpegQuality: 80,
      clock: systemClock,
      clockSynced: () => true,
    });
    await store.start();
    const jpeg = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#777' } })
      .jpeg()
      .toBuffer();
    const evidence = await store.capture(jpeg, [200, 200, 160, 50], { camera: 'lane-1', plate: 'BBCL12' });
    await store.stop();
    expect(mode(evidenceDir)).toBe(0o750);
    expect(evidence.files).not.toBeNull();
    for (const f of [evidence.files!.crop, evidence.files!.frame]) expect(mode(join(evidenceDir, f)), f).toBe(0o640);
  });

  it('the daemon makes everything it creates private (umask 027)', async () => {
    const cfg = writeDeviceConfig('mqtt://127.0.0.1:1', { nodered: { enabled: false } }, join(dir, 'daemon'));
    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start();
    expect(mode(join(dir, 'daemon', 'data', 'outbox.db'))).toBe(0o640);
    expect(mode(join(dir, 'daemon', 'data'))).toBe(0o750);
    expect(mode(join(dir, 'daemon', 'run'))).toBe(0o750);
  });
});
