import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/core/logger.js';
import { Supervisor, type SupervisorOptions } from '../src/nodered/supervisor.js';

// The Node-RED supervisor with a stand-in runtime that takes a set time to start: the process
// model (fork, IPC, kill, restart) is the real one, only Node-RED's start is replaced.

const dir = mkdtempSync(join(tmpdir(), 'vigia-supervisor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Answers init with ready after START_MS, and pings with pongs, as src/nodered/runtime.ts does. */
const SLOW_RUNTIME = `
const startMs = Number(process.env.START_MS);
process.on('message', (msg) => {
  if (msg.t === 'init') setTimeout(() => process.send({ t: 'ready', url: 'http://127.0.0.1:1880/', port: 1880 }), startMs);
  if (msg.t === 'ping') process.send({ t: 'pong', seq: msg.seq, stats: null });
  if (msg.t === 'stop') process.exit(0);
});
`;

describe('Node-RED supervisor', () => {
  it('gives a start that ran out of time twice as long the next time, until it starts', async () => {
    const entry = join(dir, 'slow-runtime.cjs');
    writeFileSync(entry, SLOW_RUNTIME);
    process.env.START_MS = '1500';
    const failures: Array<{ reason: string; detail: string }> = [];
    let restarted = 0;
    const supervisor = new Supervisor({
      entry,
      runtime: {} as SupervisorOptions['runtime'],
      memoryBytes: 64 * 2 ** 20,
      heartbeatMs: 50,
      hangTimeoutMs: 5000,
      startTimeoutMs: 600,
      restart: { minDelayMs: 10, maxDelayMs: 20 },
      nice: 0,
      logger: createLogger('silent'),
      onCall: async () => null,
      onFailed: (f) => failures.push(f),
      onRestarted: () => restarted++,
    });
    try {
      supervisor.start();
      await supervisor.ready();
      // 0.6 s and 1.2 s run out for a runtime that needs 1.5 s; 2.4 s is enough (more on a busy machine).
      expect(failures.length).toBeGreaterThanOrEqual(2);
      expect(new Set(failures.map((f) => f.reason))).toEqual(new Set(['start_failed']));
      const next = failures.map((f) => Number(/^not serving after \d+ ms \(the next start may take (\d+) s\)$/.exec(f.detail)?.[1]));
      expect(next).toEqual(failures.map((_, i) => Math.round(0.6 * 2 ** (i + 1))));
      expect(supervisor.state).toBe('running');
      expect(restarted).toBe(1);
    } finally {
      await supervisor.stop();
      delete process.env.START_MS;
    }
  });
});
