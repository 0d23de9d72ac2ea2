import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { CommandVerifier, signCommand } from '../src/gateway/command-auth.js';
import { SqliteNonceStore } from '../src/gateway/nonce-store.js';
import { Outbox, type RecoveryReport } from '../src/gateway/outbox.js';
import { corruptOutboxTables } from './helpers/corrupt-outbox.js';
import { testOutboxOptions } from './helpers/outbox.js';

const KEY = 'test-hmac-key-0123456789abcdef-XYZ';
const WINDOW = 5 * 60_000;
const opened: Outbox[] = [];

afterEach(async () => {
  for (const o of opened.splice(0)) await o.close();
});

/** An outbox, the daemon's nonce store on it and a verifier, wired as CommandRouter wires them. */
function setup(dir = mkdtempSync(join(tmpdir(), 'vigia-nonces-'))) {
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 3, 15));
  const file = join(dir, 'outbox.db');
  const outbox = new Outbox(testOutboxOptions(file, { clock, synchronous: 'normal', site: 'la-serena', device: 'pole-0142' }));
  opened.push(outbox);
  const startRecovery = outbox.open();
  const nonces = new SqliteNonceStore(() => outbox.database(), WINDOW);
  if (startRecovery) nonces.carryOver(startRecovery.movedTo, clock.wallNow());
  const recoveries: Array<ReturnType<SqliteNonceStore['carryOver']>> = [];
  outbox.onReopened((report: RecoveryReport) => recoveries.push(nonces.carryOver(report.movedTo, clock.wallNow())));
  const verifier = new CommandVerifier({ auth: 'hmac-sha256', key: KEY, replayWindowMs: WINDOW, site: 'la-serena', device: 'pole-0142' }, nonces, {
    wallNow: () => clock.wallNow(),
    synced: () => true,
  });
  const sign = (ts = clock.wallNow()) => Buffer.from(signCommand({ auth: 'hmac-sha256', key: KEY, site: 'la-serena', device: 'pole-0142', cmd: 'ping', ts }));
  const verify = (payload: Buffer) => {
    const verdict = verifier.verify('ping', payload);
    return verdict.ok ? 'ok' : verdict.reason;
  };
  /** Corrupts the given tables under the open outbox; the next commit finds it and recovers. */
  const corruptWhileRunning = async (tables: string[]) => {
    corruptOutboxTables(file, tables);
    await outbox.accept({ type: 'sim.after', priority: 'alarm', payload: {} });
  };
  return { dir, clock, outbox, nonces, verify, sign, recoveries, corruptWhileRunning };
}

describe('SqliteNonceStore across an outbox recovery', () => {
  it('uses the fresh database and carries the unexpired nonces over when the old file still holds them', async () => {
    const { clock, verify, sign, recoveries, corruptWhileRunning, outbox } = setup();
    const early = sign();
    expect(verify(early)).toBe('ok');
    clock.advance(WINDOW + 1000);
    const recent = sign();
    expect(verify(recent)).toBe('ok');

    await corruptWhileRunning(['events']);
    expect(recoveries).toEqual([{ carried: 1 }]); // the expired one stays behind
    expect(outbox.depth()).toBe(1);
    expect(verify(recent)).toBe('replayed');
    expect(verify(sign())).toBe('ok');
  });

  it('refuses everything signed up to the recovery when the nonces cannot be read, also after a restart', async () => {
    const first = setup();
    const before = first.sign();
    expect(first.verify(before)).toBe('ok');
    first.clock.advance(1000);
    // Accepted with a timestamp ahead of this clock (the sender's clock runs fast).
    const ahead = first.sign(first.clock.wallNow() + 60_000);
    expect(first.verify(ahead)).toBe('ok');

    await first.corruptWhileRunning(['events', 'nonces']);
    expect(first.recoveries).toEqual([{ lostUntil: first.clock.wallNow() + 60_000, error: expect.any(String) }]);
    expect(first.verify(before)).toBe('stale');
    expect(first.verify(ahead)).toBe('stale');
    first.clock.advance(60_001);
    expect(first.verify(first.sign())).toBe('ok');

    await first.outbox.close();
    const again = setup(first.dir);
    expect(again.verify(ahead)).toBe('stale');
    expect(again.nonces.forgottenUntil()).toBe(first.nonces.forgottenUntil());
  });
});
