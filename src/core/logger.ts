import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import type { PrettyOptions } from 'pino-pretty';

/** Loaded only for a person reading: a daemon under systemd never pays for it. */
export const loadPinoPretty = (): typeof import('pino-pretty') => createRequire(import.meta.url)('pino-pretty');

/**
 * How pino lines read for a person: local time, level, `[mod]` or `[ext]` before the message, the
 * other fields indented below it. The daemon at a terminal and `vigia logs` share it.
 */
export const PRETTY_OPTIONS: PrettyOptions = {
  translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
  ignore: 'pid,hostname,svc,mod,ext',
  messageFormat: '{if mod}[{mod}] {end}{if ext}[{ext}] {end}{msg}',
};

/**
 * pino JSON on stdout: journald collects it. When stdout is a terminal (the demo, a daemon started
 * by hand) the same lines are printed readably instead. Secrets are redacted at the source (config Secret).
 */
export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  const toTerminal = typeof destination === 'number' && (destination === 1 ? process.stdout.isTTY : destination === 2 && process.stderr.isTTY);
  return pino(
    {
      level,
      base: { svc: 'vigia' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', 'key', '*.key', 'sig'], censor: '[redacted]' },
    },
    toTerminal
      ? loadPinoPretty()({ ...PRETTY_OPTIONS, colorize: true, sync: true, destination })
      : typeof destination === 'number'
        ? pino.destination({ fd: destination, sync: false })
        : destination,
  );
}

export type { Logger };
