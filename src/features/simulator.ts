import type { Config } from '../config/schema.js';
import { isPriority } from '../core/event.js';
import type { Extension, ExtensionContext } from '../core/extension.js';

export type SimulatorContext = Pick<ExtensionContext<Config>, 'config' | 'control' | 'clockTrust' | 'emitDynamic'>;

const MAX_BURST = 1_000_000;
/** Above this, burst replies carry only counts and sequence numbers, not every id. */
const MAX_IDS_IN_REPLY = 10_000;

/**
 * Synthetic events and bursts, driven through the control socket by `vigia sim ...`, tests and
 * benchmarks. They take the same path into the outbox as the real inputs; a catalogued type must
 * carry its catalogued priority and payload. (Simulated GPIO lines are the field I/O's `sim.input`.)
 */
export class Simulator implements Extension {
  readonly name = 'sim';

  constructor(private readonly ctx: SimulatorContext) {}

  start(): void {
    this.ctx.control.handle('sim.event', (args) => this.#event(args));
    this.ctx.control.handle('sim.burst', (args) => this.#burst(args));
    this.ctx.control.handle('sim.clock_sync', () => {
      this.ctx.clockTrust.markSynced('sim');
      return { synced: true };
    });
  }

  stop(): void {}

  async #event(args: Record<string, unknown>) {
    const { type, priority } = this.#typeAndPriority(args);
    const payload = args.payload ?? {};
    if (typeof payload !== 'object' || Array.isArray(payload)) throw new Error('payload must be a JSON object');
    const event = await this.ctx.emitDynamic({ type, priority, payload: payload as Record<string, unknown> });
    return { id: event.id, seq: event.seq };
  }

  /** N synthetic events, as fast as the outbox accepts them; resolves when all are durable. */
  async #burst(args: Record<string, unknown>) {
    const { type, priority } = this.#typeAndPriority(args);
    const count = Number(args.count ?? 1);
    if (!Number.isInteger(count) || count < 1 || count > MAX_BURST) throw new Error(`count must be an integer from 1 to ${MAX_BURST}`);
    const started = performance.now();
    const ids: string[] = [];
    let first = 0;
    let last = 0;
    // In windows of one group commit: a million-event burst must not hold a million promises.
    const window = this.ctx.config.outbox.commit_max_events;
    for (let done = 0; done < count; done += window) {
      const pending = [];
      for (let i = done; i < Math.min(count, done + window); i++) pending.push(this.ctx.emitDynamic({ type, priority, payload: { n: i, of: count } }));
      for (const e of await Promise.all(pending)) {
        first ||= e.seq;
        last = e.seq;
        if (count <= MAX_IDS_IN_REPLY) ids.push(e.id);
      }
    }
    const ms = performance.now() - started;
    return {
      accepted: count,
      first_seq: first,
      last_seq: last,
      ids: count <= MAX_IDS_IN_REPLY ? ids : undefined,
      ms: Math.round(ms),
      per_s: Math.round(count / (ms / 1000)),
    };
  }

  #typeAndPriority(args: Record<string, unknown>) {
    const type = String(args.type ?? 'sim.test');
    const priority = args.priority ?? 'telemetry';
    if (!isPriority(priority)) throw new Error(`invalid priority ${JSON.stringify(priority)} (alarm, hit, read or telemetry)`);
    return { type, priority };
  }
}
