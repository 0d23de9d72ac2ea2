import type { Logger } from 'pino';
import { z } from 'zod';
import type { BusEvents, BusListener } from './bus.js';
import type { Clock } from './clock.js';
import type { EventDraft, GeoStamp, VigiaEvent } from './event.js';
import type { EventPayload, EventType } from './events.js';

/**
 * The contract between the controller and every part of the daemon (the pole, field I/O, GPS,
 * plate reading, telemetry, and whatever comes next). An extension gets a context with the services
 * below and nothing else; it declares the ones it uses (`Pick<ExtensionContext<Config>, ...>`) so a
 * reader sees its reach and a test builds only those. The controller owns the wiring: nothing
 * imports the controller, and a new part cannot reach into the outbox or the uplink.
 */

/** A part of the daemon with an explicit lifecycle. Constructors do nothing; start() does the work. */
export interface Extension {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
  /** What `vigia status` shows under the extension's name, if it has anything to say. */
  status?(): unknown;
}

/** A command handler's refusal: `code` goes in the reply (`{ok: false, error: {code, message}}`). */
export class CommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The schema of a command that takes no arguments: a stray field is refused rather than silently ignored. */
export const NO_ARGS = z.object({}).strict();

/** Signed commands from the call center. Arguments are checked against `args` before the handler runs. */
export interface CommandRegistry {
  register<S extends z.ZodType>(name: string, args: S, handler: (args: z.output<S>) => unknown): void;
  /**
   * Runs a registered command for a caller on the device itself (a flow): the same argument check
   * and handler as a signed command, without the signature. Rejects with a CommandError
   * (`unknown_command`, `bad_args`, or the handler's own code).
   */
  invoke(name: string, args: unknown): Promise<unknown>;
}

/** Extra sections of the periodic health report, each under its own name (`nodered`...). */
export interface HealthRegistry {
  /** Adds a section; the returned function removes it. */
  provide(section: string, source: () => Record<string, unknown>): () => void;
  /** Every section, as the health report carries them. */
  collect(): Record<string, Record<string, unknown>>;
}

/** The local control socket (`vigia status`, `vigia sim`, `vigia gpio watch`): trusted callers on the device itself. */
export interface ControlRegistry {
  handle(op: string, handler: (args: Record<string, unknown>) => unknown): void;
  /**
   * An operation that keeps its connection open: `send` writes one item to the caller; the
   * function the handler returns is called when the caller goes away. A handler that throws refuses it.
   */
  handleStream(op: string, handler: (args: Record<string, unknown>, send: (item: unknown) => void) => (() => void) | Promise<() => void>): void;
}

/** Where the device is. One provider at a time (the GPS); every event is stamped from it. */
export interface LocationRegistry {
  /** Installs a provider; the returned function removes it. */
  provide(source: () => GeoStamp | null): () => void;
  current(): GeoStamp | null;
}

/** Whether the wall clock can be trusted, and the one way to say it now can. */
export interface ClockTrust {
  synced(): boolean;
  /** What synced it (`ntp`, `gps`...), or '' while unsynced. */
  source(): string;
  markSynced(source: string): void;
  /** The last wall time this device trusted, from an earlier run too (null if it never synced): the real time is not earlier. */
  notBefore(): number | null;
}

export interface DevicePaths {
  dataDir: string;
  runtimeDir: string;
}

export interface EventSink {
  /**
   * Stores an event durably; resolves once it is on disk (the moment it is accepted). The priority
   * and payload shape come from the catalogue (`core/events.ts`).
   */
  emit<T extends EventType>(type: T, payload: EventPayload<T>): Promise<VigiaEvent<EventPayload<T>>>;
  /**
   * An event whose type is known only at run time (the simulator, a flow). Catalogued types are
   * checked against their schema and priority; a refusal rejects with the reason.
   */
  emitDynamic(draft: EventDraft): Promise<VigiaEvent>;
}

export interface BusSubscriber {
  /** Listeners run after the emitter's turn and are isolated from it; they are removed when the extension stops. */
  on<K extends keyof BusEvents>(event: K, listener: BusListener<K>): () => void;
}

/** Everything an extension may be given. `C` is the configuration type (core does not know it). */
export interface ExtensionContext<C> extends EventSink {
  readonly config: C;
  /** A child logger named after the extension. */
  readonly logger: Logger;
  readonly clock: Clock;
  readonly clockTrust: ClockTrust;
  readonly paths: DevicePaths;
  readonly bus: BusSubscriber;
  readonly commands: CommandRegistry;
  readonly control: ControlRegistry;
  readonly location: LocationRegistry;
  readonly health: HealthRegistry;
}
