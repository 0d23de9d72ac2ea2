import { createConnection } from 'node:net';
import { systemClock } from '../core/clock.js';

/**
 * The privileged clock helper (`systemd/vigia-clock.socket`, `vigia-clock@.service`) listens here.
 * The daemon itself holds no capability at all: CAP_SYS_TIME lives only in the helper, a process of
 * its own started per request, so neither the daemon nor anything it starts (Node-RED, ffmpeg, the
 * GPIO tools) can ever set the clock.
 */
export const CLOCK_HELPER_SOCKET = '/run/vigia-clock.sock';

/** The helper refuses times before this (a receiver's week-number rollover) and after the next. */
export const HELPER_MIN_UTC_MS = Date.UTC(2025, 0, 1);
export const HELPER_MAX_UTC_MS = Date.UTC(2100, 0, 1);
/** A request describes a GPS time read at most this long ago (by the shared monotonic clock). */
export const HELPER_MAX_AGE_MS = 60_000;
const HELPER_TIMEOUT_MS = 10_000;

/**
 * One request, one line of JSON: the GPS time `utc_ms` and the monotonic time `mono_ms` at which it
 * was right. The helper adds the time since then, so the delay of starting it is not an error.
 */
export interface ClockRequest {
  utc_ms: number;
  mono_ms: number;
}

/** The wall time to set now for a request line, or an error that says what is wrong with it. */
export function clockTargetFor(line: string, monoNow: number): { ok: true; targetMs: number } | { ok: false; error: string } {
  let req: Partial<ClockRequest>;
  try {
    req = JSON.parse(line) as Partial<ClockRequest>;
  } catch {
    return { ok: false, error: 'request is not JSON' };
  }
  const { utc_ms: utc, mono_ms: mono } = req ?? {};
  if (typeof utc !== 'number' || !Number.isFinite(utc)) return { ok: false, error: 'utc_ms must be a number' };
  if (typeof mono !== 'number' || !Number.isFinite(mono)) return { ok: false, error: 'mono_ms must be a number' };
  const age = monoNow - mono;
  if (age < 0 || age > HELPER_MAX_AGE_MS) return { ok: false, error: `mono_ms is ${Math.round(age)} ms old, not between 0 and ${HELPER_MAX_AGE_MS}` };
  const target = utc + age;
  if (target < HELPER_MIN_UTC_MS || target > HELPER_MAX_UTC_MS) return { ok: false, error: `${new Date(target).toISOString()} is not a plausible time` };
  return { ok: true, targetMs: target };
}

/**
 * Sets the system clock through the helper: `epochMs` is the right time now. Rejects with the
 * helper's own error, or with how to install it when it is not there.
 */
export function setSystemTimeThroughHelper(socketPath = CLOCK_HELPER_SOCKET, monoNow: () => number = () => systemClock.monoNow()) {
  return (epochMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = createConnection(socketPath);
      let reply = '';
      const fail = (message: string) => {
        socket.destroy();
        reject(new Error(message));
      };
      const timer = setTimeout(() => fail(`the clock helper did not answer within ${HELPER_TIMEOUT_MS} ms`), HELPER_TIMEOUT_MS);
      socket.setEncoding('utf8');
      socket.once('connect', () => socket.write(`${JSON.stringify({ utc_ms: epochMs, mono_ms: monoNow() } satisfies ClockRequest)}\n`));
      const settle = () => {
        clearTimeout(timer);
        socket.destroy();
        let answer: { ok?: unknown; error?: unknown };
        try {
          answer = JSON.parse(reply.split('\n')[0] ?? '') as typeof answer;
        } catch {
          return reject(new Error(`the clock helper answered ${JSON.stringify(reply.slice(0, 200))}`));
        }
        if (answer.ok === true) resolve();
        else reject(new Error(`clock helper: ${String(answer.error)}`));
      };
      socket.on('data', (chunk: string) => {
        reply += chunk;
        if (reply.includes('\n')) settle();
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
          fail(`no clock helper at ${socketPath}: enable it with \`systemctl enable --now vigia-clock.socket\` (README: setting the clock from GPS)`);
        else fail(`clock helper: ${err.message}`);
      });
      socket.once('end', () => {
        if (!reply.includes('\n')) settle();
      });
    });
}
