import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import pino from 'pino';
import { loadPinoPretty, PRETTY_OPTIONS } from '../core/logger.js';

/**
 * `vigia logs`: the daemon's journal, pino JSON lines made readable and filtered by level and by
 * part (`mod` or `ext`). Lines that are not pino JSON (a crash's stack trace, systemd's own
 * messages) are always shown as they are: they are the ones that explain a restart.
 */

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export interface JournalQuery {
  unit: string;
  follow: boolean;
  /** The last N lines (journalctl -n). */
  lines?: number;
  /** Anything journalctl --since takes: "1 hour ago", "2026-05-01 10:00", "today". */
  since?: string;
}

/** `-o cat` prints the message alone: the pino line as the daemon wrote it. */
export function journalctlArgs(q: JournalQuery): string[] {
  return [
    '-u',
    q.unit,
    '-o',
    'cat',
    '--no-pager',
    ...(q.since ? ['--since', q.since] : []),
    ...(q.lines !== undefined ? ['-n', String(q.lines)] : []),
    ...(q.follow ? ['-f'] : []),
  ];
}

export interface LogFilter {
  /** The least severe level shown. */
  level?: LogLevel;
  /** Only lines from these parts (their `mod` or `ext` field). */
  mods?: readonly string[];
}

/**
 * Turns one line of the journal into what is printed: null to skip it. A line may be the pino JSON
 * itself (`journalctl -o cat`) or a journal entry (`journalctl -o json`) carrying it in MESSAGE.
 */
export function logPrinter(filter: LogFilter, out: { json: boolean; colorize: boolean }): (line: string) => string | null {
  const prettify = loadPinoPretty().prettyFactory({ ...PRETTY_OPTIONS, colorize: out.colorize });
  const minLevel = pino.levels.values[filter.level ?? 'trace']!;
  return (line) => {
    if (line.trim() === '') return null;
    let entry = parse(line);
    if (entry && typeof entry.MESSAGE === 'string' && !('level' in entry)) {
      line = entry.MESSAGE;
      entry = parse(line);
    }
    if (!entry || typeof entry.level !== 'number') return filter.mods?.length ? null : `${line}\n`;
    if (entry.level < minLevel) return null;
    if (filter.mods?.length && !filter.mods.includes(String(entry.mod ?? '')) && !filter.mods.includes(String(entry.ext ?? ''))) return null;
    return out.json ? `${line}\n` : prettify(entry);
  };
}

function parse(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Prints every line of `input` through `print`; resolves at its end. */
export async function printLines(input: Readable, print: (line: string) => string | null, write: (s: string) => void): Promise<void> {
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    const out = print(line);
    if (out !== null) write(out);
  }
}

/** Runs journalctl and prints what it gives; resolves with its exit code. */
export async function readJournal(
  q: JournalQuery,
  print: (line: string) => string | null,
  write: (s: string) => void,
  journalctl = 'journalctl',
): Promise<number> {
  const child = spawn(journalctl, journalctlArgs(q), { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`${journalctl} not found: without systemd, read the daemon's output where it goes, or give --file`) : err),
    );
    child.once('close', (code) => resolve(code ?? 1));
  });
  await printLines(child.stdout!, print, write);
  return exited;
}
