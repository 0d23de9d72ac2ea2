import { readFileSync, renameSync } from 'node:fs';
import type { z } from 'zod';
import { writeFileDurably } from '../core/durable-file.js';
import { CommandError } from '../core/extension.js';
import type { Logger } from '../core/logger.js';

/**
 * Reads a JSON file the daemon keeps in its data directory (remotes and tags enrolled by command,
 * hopping-code words used). Missing is `empty`; unreadable is logged and `empty`; damaged (not
 * JSON, or not what `schema` says) is logged, set aside as `<file>.damaged-<ms>` for a technician
 * rather than overwritten by the next write, and `empty`. Written with writeFileDurably.
 */
export function readDataFile<T>(path: string, schema: z.ZodType<T>, empty: T, logger: Logger): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.error({ file: path, err: (err as Error).message }, 'cannot read a data file');
    return empty;
  }
  try {
    return schema.parse(JSON.parse(text));
  } catch (err) {
    const aside = `${path}.damaged-${Date.now()}`;
    try {
      renameSync(path, aside);
    } catch {
      // left in place; the next write replaces it
    }
    logger.error({ file: path, moved_to: aside, err: (err as Error).message }, 'a data file is damaged; set aside, starting without it');
    return empty;
  }
}

/**
 * Entries the call center enrolled by signed command (remotes, tags), kept in a data file beside
 * the ones the configuration names. The configuration's are fixed: enrolling or removing a name it
 * has is refused (`in_config`), so the file can never contradict what the technician wrote.
 */
export class Enrolments<T> {
  #entries: Record<string, T> = {};

  constructor(
    private readonly path: string,
    private readonly schema: z.ZodType<Record<string, T>>,
    /** What an entry is, for errors: `remote`, `tag`. */
    private readonly noun: string,
    /** The configuration's entries, which win. */
    private readonly configured: () => Readonly<Record<string, unknown>>,
    private readonly logger: Logger,
  ) {}

  load(): void {
    this.#entries = readDataFile(this.path, this.schema, {}, this.logger);
  }

  get entries(): Readonly<Record<string, T>> {
    return this.#entries;
  }

  /** Enrols (or replaces) `name`, durably; refuses a configured name. */
  put(name: string, entry: T): void {
    this.#refuseConfigured(name);
    this.#write({ ...this.#entries, [name]: entry });
  }

  /** Removes an enrolled `name`, durably; refuses a configured or unknown one. */
  remove(name: string): void {
    this.#refuseConfigured(name);
    if (!Object.hasOwn(this.#entries, name)) throw new CommandError(`unknown_${this.noun}`, `no ${this.noun} named ${name} was enrolled`);
    const next = { ...this.#entries };
    delete next[name];
    this.#write(next);
  }

  #refuseConfigured(name: string): void {
    if (Object.hasOwn(this.configured(), name)) throw new CommandError('in_config', `${this.noun} ${name} is set in the configuration file; change it there`);
  }

  #write(next: Record<string, T>): void {
    try {
      writeFileDurably(this.path, `${JSON.stringify(next, null, 2)}\n`);
    } catch (err) {
      throw new CommandError('storage', `cannot store the ${this.noun}s: ${(err as Error).message}`);
    }
    this.#entries = next;
  }
}
