import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/core/clock.js';
import { clockTargetFor, HELPER_MAX_AGE_MS, setSystemTimeThroughHelper } from '../src/features/clock-helper-client.js';
import { REPO_ROOT } from './helpers/repo.js';
import { findSocat } from './helpers/socat.js';

const NOW = Date.UTC(2026, 5, 1, 12);

describe('clock helper requests', () => {
  it('adds the time since the GPS reading and refuses what is not a plausible, recent time', () => {
    expect(clockTargetFor(JSON.stringify({ utc_ms: NOW, mono_ms: 1000 }), 1250)).toEqual({ ok: true, targetMs: NOW + 250 });
    expect(clockTargetFor('date -s 1999', 0)).toEqual({ ok: false, error: 'request is not JSON' });
    expect(clockTargetFor('{"utc_ms":"1"}', 0)).toEqual({ ok: false, error: 'utc_ms must be a number' });
    expect(clockTargetFor(JSON.stringify({ utc_ms: NOW }), 0)).toEqual({ ok: false, error: 'mono_ms must be a number' });
    expect(clockTargetFor(JSON.stringify({ utc_ms: NOW, mono_ms: 0 }), HELPER_MAX_AGE_MS + 1)).toMatchObject({ ok: false, error: /old/ });
    expect(clockTargetFor(JSON.stringify({ utc_ms: NOW, mono_ms: 10 }), 0)).toMatchObject({ ok: false, error: /old/ });
    expect(clockTargetFor(JSON.stringify({ utc_ms: Date.UTC(2006, 0, 1), mono_ms: 0 }), 0)).toMatchObject({ ok: false, error: /2006-01-01.*plausible/ });
    expect(clockTargetFor('null', 0)).toEqual({ ok: false, error: 'utc_ms must be a number' });
  });
});

/**
 * The helper program for real, behind a socket that starts one helper per connection as systemd's
 * `Accept=yes` does (socat fork + exec). It runs without CAP_SYS_TIME (dropped from the bounding
 * set when this runs as root), so its date(1) is refused: the test sees the kernel's refusal travel
 * back, and this machine's clock is never touched (the time asked for is now, in any case).
 */
describe('the clock helper behind its socket', () => {
  let dir: string;
  let socketPath: string;
  let socat: ChildProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vigia-clock-'));
    socketPath = join(dir, 'clock.sock');
    const helper = `${process.execPath} ${join(REPO_ROOT, 'dist', 'clock-helper.js')}`;
    const root = process.getuid?.() === 0;
    const command = root ? `setpriv --bounding-set=-sys_time --inh-caps=-sys_time ${helper}` : helper;
    // -d -d: socat says "listening on" once listen(2) is done (the file exists slightly before).
    socat = spawn(findSocat(), ['-d', '-d', `UNIX-LISTEN:${socketPath},fork`, `EXEC:${command}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    socat.stderr!.on('data', (b: Buffer) => (log += b.toString()));
    for (let i = 0; i < 400 && !/listening on/.test(log); i++) await sleep(25);
    if (!/listening on/.test(log)) throw new Error(`socat did not listen: ${log}`);
  });
  afterAll(() => {
    socat.kill('SIGKILL');
  });

  it('passes the refusal of date(1) back to the daemon', async () => {
    await expect(setSystemTimeThroughHelper(socketPath)(Date.now())).rejects.toThrow(/^clock helper: date: cannot set date: Operation not permitted/);
  });

  it('refuses a stale request before running anything', async () => {
    const stale = setSystemTimeThroughHelper(socketPath, () => systemClock.monoNow() - 2 * HELPER_MAX_AGE_MS);
    await expect(stale(Date.now())).rejects.toThrow(/^clock helper: mono_ms is \d+ ms old/);
  });

  it('answers garbage with an error', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      let text = '';
      const s = createConnection(socketPath, () => s.write('rm -rf /\n'));
      s.on('data', (b) => (text += b.toString()));
      s.on('close', () => resolve(text));
      s.on('error', reject);
    });
    expect(JSON.parse(reply)).toEqual({ ok: false, error: 'request is not JSON' });
  });

  it('says how to install the helper when its socket is missing', async () => {
    await expect(setSystemTimeThroughHelper(join(dir, 'none.sock'))(Date.now())).rejects.toThrow(
      /no clock helper at .*none\.sock: enable it with `systemctl enable --now vigia-clock\.socket`/,
    );
  });
});
