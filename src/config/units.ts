import { z } from 'zod';

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** Parses "250ms", "30s", "5m", "2h", "7d" or a bare number of milliseconds. */
export function parseDurationMs(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(input);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_UNITS_MS[m[2]!.toLowerCase()]!);
}

/** Parses "64MiB", "500kB", "1GB" or a bare number of bytes. */
export function parseBytes(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)\s*$/i.exec(input);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * BYTE_UNITS[m[2]!.toLowerCase()]!);
}

/** A duration field: accepts "30s"-style strings or milliseconds, yields milliseconds. */
export const duration = () =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDurationMs(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(value)} (use e.g. 500ms, 30s, 5m, 2h, 7d)` });
      return z.NEVER;
    }
    return ms;
  });

/** A size field: accepts "64MiB"-style strings or bytes, yields bytes. */
export const bytes = () =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const n = parseBytes(value);
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid size ${JSON.stringify(value)} (use e.g. 512kB, 64MiB, 1GB)` });
      return z.NEVER;
    }
    return n;
  });
