import type { Logger } from 'pino';

type AnyListener = (...args: unknown[]) => void;

/**
 * Typed listeners that are called safely: one that throws is logged and the others still run,
 * so a consumer's bug never breaks a driver's read loop. Unlike EventEmitter, an 'error' event
 * without a listener does not throw.
 */
export class SafeListeners<Events extends { [E in keyof Events]: unknown[] }> {
  readonly #listeners = new Map<keyof Events, Set<AnyListener>>();

  constructor(
    private readonly logger: Logger | undefined,
    private readonly owner: Record<string, unknown>,
  ) {}

  on<E extends keyof Events>(event: E, cb: (...args: Events[E]) => void): void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(cb as unknown as AnyListener);
  }

  off<E extends keyof Events>(event: E, cb: (...args: Events[E]) => void): void {
    this.#listeners.get(event)?.delete(cb as unknown as AnyListener);
  }

  emit<E extends keyof Events>(event: E, ...args: Events[E]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const cb of [...set]) {
      try {
        cb(...args);
      } catch (err) {
        this.logger?.error({ err, ...this.owner, event: String(event) }, 'listener threw');
      }
    }
  }
}
