#!/usr/bin/env node
import { execFile } from 'node:child_process';
import { createInterface } from 'node:readline';
import { systemClock } from './core/clock.js';
import { clockTargetFor } from './features/clock-helper-client.js';

/**
 * The privileged half of setting the clock from GPS: `vigia-clock@.service`, started by systemd
 * for one connection to `vigia-clock.socket` (stdin and stdout are the connection). It reads one
 * request, checks it, runs date(1) (which gets CAP_SYS_TIME from the unit's ambient set: this
 * process and date are the only ones that ever hold it) and answers one line of JSON.
 */
function setClock(targetMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('date', ['-u', '-s', `@${(targetMs / 1000).toFixed(3)}`], { timeout: 5_000 }, (err, _stdout, stderr) =>
      resolve(err ? String(stderr).trim() || err.message : null),
    );
  });
}

/** One answer, then the process ends: stdin is the caller's socket and would keep it alive. */
const answer = (reply: { ok: boolean; error?: string }) => process.stdout.write(`${JSON.stringify(reply)}\n`, () => process.exit(reply.ok ? 0 : 1));

const lines = createInterface({ input: process.stdin });
const timeout = setTimeout(() => {
  answer({ ok: false, error: 'no request within 5 s' });
}, 5_000);
let asked = false;
// The caller hung up without asking: nothing to do.
lines.once('close', () => {
  if (!asked) process.exit(1);
});
lines.once('line', async (line) => {
  asked = true;
  clearTimeout(timeout);
  lines.close();
  const target = clockTargetFor(line.slice(0, 1000), systemClock.monoNow());
  if (!target.ok) {
    process.stderr.write(`refused: ${target.error}\n`);
    answer({ ok: false, error: target.error });
    return;
  }
  const error = await setClock(target.targetMs);
  process.stderr.write(error ? `cannot set the clock: ${error}\n` : `clock set to ${new Date(target.targetMs).toISOString()}\n`);
  answer(error ? { ok: false, error } : { ok: true });
});
