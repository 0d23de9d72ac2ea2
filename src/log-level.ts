import type { Logger } from './core/logger.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The log level changed at run time (`log.level`): child loggers follow the root's level, so one
 * assignment changes the whole daemon. An override for a while goes back to the level it replaced
 * by itself: debug for ten minutes must not become debug forever on a pole nobody looks at.
 */
export class LogLevelOverride {
  #timer: NodeJS.Timeout | undefined;
  #until: number | null = null;
  #base: string;

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    this.#base = logger.level;
  }

  /** Sets `level`; with `forMs`, the level before comes back after that long. */
  set(level: LogLevel, forMs?: number): { level: LogLevel; previous: string; until: string | null } {
    const previous = this.logger.level;
    clearTimeout(this.#timer);
    if (forMs === undefined) {
      this.#base = level;
      this.#until = null;
    } else {
      // Several overrides in a row go back to the level set last without a duration.
      this.#until = this.now() + forMs;
      this.#timer = setTimeout(() => this.#revert(), forMs);
      this.#timer.unref();
    }
    this.logger.level = level;
    this.logger.warn({ level, previous, for_ms: forMs ?? null }, 'log level changed by command');
    return { level, previous, until: this.#until === null ? null : new Date(this.#until).toISOString() };
  }

  status(): { level: string; until: string | null; reverts_to: string | null } {
    return {
      level: this.logger.level,
      until: this.#until === null ? null : new Date(this.#until).toISOString(),
      reverts_to: this.#until === null ? null : this.#base,
    };
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  #revert(): void {
    this.#until = null;
    this.logger.level = this.#base;
    this.logger.warn({ level: this.#base }, 'log level override ended');
  }
}
