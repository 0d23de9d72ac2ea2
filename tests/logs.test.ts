import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { journalctlArgs } from '../src/technician/logs.js';
import { CLI, runCli, writeDeviceConfig } from './helpers/daemon.js';
import { waitUntil } from './helpers/fake-gpio.js';

const tmp = mkdtempSync(join(tmpdir(), 'vigia-logs-'));
const utc = { ...process.env, TZ: 'UTC' };

/** What `journalctl -u vigia -o json` gives: each pino line in MESSAGE, and a stack trace line that is not JSON. */
const pino = (fields: Record<string, unknown>) => JSON.stringify({ svc: 'vigia', ...fields });
const journal = [
  pino({ level: 30, time: '2026-05-28T14:02:03.456Z', mod: 'uplink', link: 'online', protocol: 5, msg: 'uplink online' }),
  pino({ level: 40, time: '2026-05-28T14:02:04.000Z', mod: 'outbox', priority: 'read', reason: 'quota', count: 12, msg: 'outbox evicted events' }),
  pino({ level: 50, time: '2026-05-28T14:02:05.000Z', ext: 'field-io', input: 'panic', err: 'gpiomon exited', msg: 'GPIO input error' }),
  '    at Object.<anonymous> (/opt/vigia/dist/cli.js:12:3)',
]
  .map((MESSAGE, i) => JSON.stringify({ __REALTIME_TIMESTAMP: String(1_780_000_000_000_000 + i), _SYSTEMD_UNIT: 'vigia.service', MESSAGE }))
  .join('\n');
const recorded = join(tmp, 'journal.json');
writeFileSync(recorded, `${journal}\n`);

describe('vigia logs', () => {
  it('prints recorded journal entries readably: time, level, [part], message, the other fields below', async () => {
    const r = await runCli(['logs', '--file', recorded], { env: utc });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        '[2026-05-28 14:02:03.456] INFO: [uplink] uplink online',
        '    link: "online"',
        '    protocol: 5',
        '[2026-05-28 14:02:04.000] WARN: [outbox] outbox evicted events',
        '    priority: "read"',
        '    reason: "quota"',
        '    count: 12',
        '[2026-05-28 14:02:05.000] ERROR: [field-io] GPIO input error',
        '    input: "panic"',
        '    err: "gpiomon exited"',
        '    at Object.<anonymous> (/opt/vigia/dist/cli.js:12:3)',
        '',
      ].join('\n'),
    );
  });

  it('filters by level and by part, and reads pino lines from stdin as they are', async () => {
    const warn = await runCli(['logs', '--file', recorded, '--level', 'error'], { env: utc });
    expect(warn.stdout.split('\n').filter((l) => l.startsWith('['))).toEqual(['[2026-05-28 14:02:05.000] ERROR: [field-io] GPIO input error']);
    expect(warn.stdout).toContain('at Object.<anonymous>'); // not pino: always shown, it may explain a restart

    const cat = journal
      .split('\n')
      .map((l) => (JSON.parse(l) as { MESSAGE: string }).MESSAGE)
      .join('\n');
    const uplink = await runCli(['logs', '--file', '-', '--mod', 'uplink', '--json'], { env: utc, input: cat });
    expect(uplink.stdout).toBe(`${cat.split('\n')[0]}\n`);
    expect((await runCli(['logs', '--file', recorded, '--level', 'loud'])).code).toBe(2);
  });

  it('asks journalctl for the unit, as -o cat, with the window asked for', async () => {
    expect(journalctlArgs({ unit: 'vigia', follow: true, lines: 50, since: '1 hour ago' })).toEqual([
      '-u',
      'vigia',
      '-o',
      'cat',
      '--no-pager',
      '--since',
      '1 hour ago',
      '-n',
      '50',
      '-f',
    ]);
    // The real journalctl takes that command line (this machine's journal has no such unit: nothing printed).
    const r = await runCli(['logs', '-u', 'vigia-test-no-such-unit', '-n', '5', '--since', '1 hour ago']);
    expect(r).toMatchObject({ code: 0, stdout: '' });
  });

  it('the daemon prints readable lines on a terminal and pino JSON otherwise', async () => {
    const cfg = writeDeviceConfig('mqtt://127.0.0.1:1', { log: { level: 'info' } });
    // script(1) gives the daemon a pseudo-terminal as its stdout, as a technician's SSH session would.
    const child = spawn('script', ['-qefc', `exec ${process.execPath} ${CLI} run -c ${cfg.file}`, '/dev/null'], {
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    try {
      await waitUntil(() => / INFO: .*started/.test(stripVTControlCharacters(out)), 'the pretty start line', 20_000);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
    const text = stripVTControlCharacters(out);
    expect(text).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: starting\r?\n {4}device: "pole-0001"/m);
    expect(text).not.toContain('{"level"');

    const piped = spawn(process.execPath, [CLI, 'run', '-c', cfg.file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let json = '';
    piped.stdout!.on('data', (b: Buffer) => (json += b.toString()));
    try {
      await waitUntil(() => json.includes('"msg":"started"'), 'the JSON start line', 20_000);
    } finally {
      piped.kill('SIGTERM');
    }
    expect(JSON.parse(json.split('\n')[0]!)).toMatchObject({ level: 30, svc: 'vigia', msg: 'starting', device: 'pole-0001' });
  });
});
