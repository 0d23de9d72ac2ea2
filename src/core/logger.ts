import pino, { type Logger } from 'pino';

/** pino JSON on stdout: journald collects it. Secrets are redacted at the source (config Secret). */
export function createLogger(level: string, destination: pino.DestinationStream | number = 1): Logger {
  return pino(
    {
      level,
      base: { svc: 'vigia' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', '*.password', 'key', '*.key', 'sig'], censor: '[redacted]' },
    },
    typeof destination === 'number' ? pino.destination({ fd: destination, sync: false }) : destination,
  );
}

export type { Logger };
