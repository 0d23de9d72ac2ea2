import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Config, DEFAULT_MAX_ON_MS } from '../config/schema.js';
import type { LinkState } from '../core/bus.js';
import { isPriority, PRIORITIES, type Priority, type VigiaEvent } from '../core/event.js';
import { EVENT_TYPES, type EventType } from '../core/events.js';
import { CommandError, type Extension, type ExtensionContext } from '../core/extension.js';
import { TokenBucket } from '../core/rate-limit.js';
import { type DeviceInfo, FLOW_EVENT_TYPE, type FromRuntime, type NodeRef, type RuntimeOptions } from './protocol.js';
import { Supervisor, type SupervisorOptions } from './supervisor.js';

/**
 * Embedded Node-RED, on the extension contract: the runtime (a supervised process) sees the
 * daemon only through the calls below, each checked here again, and they reach the rest of the
 * daemon only through the contract: accepted events from the bus, events into the outbox through
 * `emitDynamic`, outputs and the hotlist through registered commands.
 */

export type NodeRedContext = Pick<
  ExtensionContext<Config>,
  'config' | 'logger' | 'clock' | 'clockTrust' | 'paths' | 'bus' | 'emit' | 'emitDynamic' | 'commands' | 'control' | 'health'
>;

/** The Vigía node module, shipped next to dist/ (the package root's node-red-vigia/). */
export const NODES_DIR = fileURLToPath(new URL('../../node-red-vigia', import.meta.url));
const RUNTIME_ENTRY = fileURLToPath(new URL('./runtime.js', import.meta.url));

/**
 * Calls from the runtime the daemon answers per second, all nodes together: the runtime limits each
 * node already, this bounds what a misbehaving runtime can make the daemon do.
 */
const CALL_RATE = { per_second: 500, burst: 1000 };

/** A flow's event payload, serialised, at most (an event is a message to the call center, not a file). */
const MAX_FLOW_PAYLOAD_BYTES = 16 * 1024;

export function userDirOf(config: Config, dataDir: string): string {
  return resolve(dataDir, config.nodered.user_dir ?? 'nodered');
}

export function deviceInfo(config: Config): DeviceInfo {
  const nr = config.nodered;
  return {
    device: { id: config.device.id, site: config.device.site, profile: config.device.profile },
    eventTypes: (Object.keys(EVENT_TYPES) as EventType[]).map((type) => ({ type, priority: EVENT_TYPES[type].priority })),
    priorities: [...PRIORITIES],
    outputs: Object.entries(config.hardware.outputs).map(([name, o]) => ({ name, kind: o.kind, max_on_ms: o.max_on ?? DEFAULT_MAX_ON_MS[o.kind] })),
    inputs: Object.entries(config.hardware.inputs).map(([name, i]) => ({ name, kind: i.kind })),
    allowAlarm: nr.allow_alarm,
    eventRate: { per_second: nr.event_rate.per_second, burst: nr.event_rate.burst },
    hotlist: config.anpr.enabled,
  };
}

export class NodeRedExtension implements Extension {
  readonly name = 'nodered';
  #supervisor: Supervisor | undefined;
  #link: LinkState = 'connecting';
  #lastAlarm: { id: string; type: string; time: string } | null = null;
  /** The pole's alarm in progress: its outputs belong to it until the call center clears it. */
  #activeAlarm: string | null = null;
  #emitBuckets = new Map<string, TokenBucket>();
  #calls = new TokenBucket(CALL_RATE.per_second, CALL_RATE.burst);
  #counts = { emitted: 0, refused: 0, outputs: 0 };
  #removeHealth: (() => void) | undefined;

  constructor(
    private readonly ctx: NodeRedContext,
    private readonly overrides: Partial<Pick<SupervisorOptions, 'entry' | 'nice' | 'startTimeoutMs'>> = {},
  ) {}

  /** The runtime's supervisor (tests and the benchmark wait for it to serve). */
  get supervisor(): Supervisor | undefined {
    return this.#supervisor;
  }

  async start(): Promise<void> {
    const { ctx } = this;
    const nr = ctx.config.nodered;
    const userDir = userDirOf(ctx.config, ctx.paths.dataDir);
    mkdirSync(userDir, { recursive: true, mode: 0o700 });
    const runtime: RuntimeOptions = {
      bind: nr.bind,
      port: nr.port,
      userDir,
      nodesDir: NODES_DIR,
      users: nr.users.map((u) => ({ username: u.username, password: u.password, permissions: u.permissions })),
      credentialSecret: nr.credential_secret?.reveal() ?? false,
      paletteInstalls: nr.palette_installs,
      logLevel: ctx.config.log.level === 'trace' || ctx.config.log.level === 'debug' ? 'debug' : 'info',
      info: deviceInfo(ctx.config),
    };
    if (!nr.credential_secret) ctx.logger.warn('nodered.credential_secret is not set: credentials in flows are stored unencrypted');
    ctx.bus.on('event.accepted', (event) => this.#accepted(event));
    ctx.bus.on('link.state', (state) => {
      this.#link = state;
    });
    const supervisor = (this.#supervisor = new Supervisor({
      entry: this.overrides.entry ?? RUNTIME_ENTRY,
      execPath: nr.node,
      runtime,
      memoryBytes: nr.memory,
      heartbeatMs: nr.heartbeat,
      hangTimeoutMs: nr.hang_timeout,
      startTimeoutMs: this.overrides.startTimeoutMs,
      nice: this.overrides.nice,
      restart: { minDelayMs: nr.restart.min_delay, maxDelayMs: nr.restart.max_delay },
      logger: ctx.logger,
      onCall: (msg) => this.#call(msg),
      onFailed: (f) =>
        void ctx
          .emit('nodered.failed', { reason: f.reason, detail: f.detail, failures: f.failures, restart_in_ms: f.restartInMs })
          .catch((err) => ctx.logger.error({ err }, 'could not record nodered.failed')),
      onRestarted: (r) =>
        void ctx
          .emit('nodered.restarted', { restarts: r.restarts, down_ms: r.downMs })
          .catch((err) => ctx.logger.error({ err }, 'could not record nodered.restarted')),
    }));
    ctx.control.handle('nodered.restart', () => {
      supervisor.restartNow();
      return { restarting: true };
    });
    this.#removeHealth = ctx.health.provide('nodered', () => this.#health());
    // Not awaited: the daemon does not wait for the editor to come up (a bad flow must not hold the alarm path).
    supervisor.start();
  }

  async stop(): Promise<void> {
    this.#removeHealth?.();
    await this.#supervisor?.stop();
  }

  status() {
    const s = this.#supervisor?.status();
    if (!s) return { state: 'stopped' };
    const { stats, ...rest } = s;
    const nodes = [...(stats?.nodes ?? [])].sort((a, b) => b.errors + b.refused - (a.errors + a.refused)).slice(0, 10);
    return {
      ...rest,
      flows: stats?.flows ?? null,
      errors_total: stats?.errors_total ?? 0,
      node_errors: nodes,
      log_dropped: stats?.log_dropped ?? 0,
      ...this.#counts,
    };
  }

  /** The health report's section: the state, restarts, and the nodes in trouble (the five worst). */
  #health() {
    const s = this.status();
    if (!('restarts' in s)) return { state: s.state };
    return {
      state: s.state,
      restarts: s.restarts,
      failures: s.failures,
      last_failure: s.last_failure?.reason ?? null,
      flow_nodes: s.flows?.nodes ?? 0,
      errors_total: s.errors_total,
      node_errors: s.node_errors
        .filter((n) => n.errors + n.refused > 0)
        .slice(0, 5)
        .map((n) => ({ node: n.name || n.id, type: n.type, errors: n.errors, refused: n.refused })),
      rss_bytes: s.rss_bytes,
      events_dropped: s.events_dropped,
    };
  }

  #accepted(event: VigiaEvent): void {
    if (event.type === 'alarm.panic' || event.type === 'alarm.remote' || event.type === 'alarm.personal')
      this.#activeAlarm = (event.payload as { alarm_id: string | null }).alarm_id ?? event.id;
    if (event.type === 'alarm.cleared') this.#activeAlarm = null;
    if (event.priority === 'alarm') this.#lastAlarm = { id: event.id, type: event.type, time: event.time };
    this.#supervisor?.forward(event);
  }

  async #call(msg: Extract<FromRuntime, { t: 'call' }>): Promise<unknown> {
    const args = (typeof msg.args === 'object' && msg.args !== null ? msg.args : {}) as Record<string, unknown>;
    const node = msg.node ?? { id: '?', type: '?', name: '' };
    try {
      if (!this.#calls.take(this.ctx.clock.monoNow())) throw new CommandError('rate_limited', 'the daemon is answering too many flow calls');
      switch (msg.op) {
        case 'emit':
          return await this.#emit(node, args);
        case 'output':
          return await this.#output(args);
        case 'hotlist':
          return await this.#invoke(
            'hotlist.lookup',
            { plate: args.plate, fuzzy: args.fuzzy === true },
            'plate reading (and its hotlist) is not enabled on this device',
          );
        case 'status':
          return await this.#daemonStatus();
        default:
          throw new CommandError('bad_call', `unknown operation ${JSON.stringify(msg.op)}`);
      }
    } catch (err) {
      this.#counts.refused++;
      throw err;
    }
  }

  async #emit(node: NodeRef, args: Record<string, unknown>) {
    const { config, clock } = this.ctx;
    const { type, priority, payload } = args;
    if (typeof type !== 'string' || !FLOW_EVENT_TYPE.test(type)) throw new CommandError('bad_event', 'event type must be flow.<name>');
    if (!isPriority(priority)) throw new CommandError('bad_event', `priority must be one of ${PRIORITIES.join(', ')}`);
    if (priority === 'alarm' && !config.nodered.allow_alarm)
      throw new CommandError('not_allowed', 'alarm priority is not allowed for flows (nodered.allow_alarm)');
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new CommandError('bad_event', 'payload must be an object');
    if (Buffer.byteLength(JSON.stringify(payload)) > MAX_FLOW_PAYLOAD_BYTES)
      throw new CommandError('bad_event', `payload over ${MAX_FLOW_PAYLOAD_BYTES} bytes`);
    // The same limit as the runtime's, kept here too: the runtime is user code's process and is not trusted.
    const { per_second, burst } = config.nodered.event_rate;
    let bucket = this.#emitBuckets.get(node.id);
    if (!bucket) this.#emitBuckets.set(node.id, (bucket = new TokenBucket(per_second, burst)));
    if (!bucket.take(clock.monoNow())) throw new CommandError('rate_limited', 'over the event rate of this node');
    const event = await this.ctx.emitDynamic({
      type,
      priority: priority as Priority,
      payload: { ...(payload as Record<string, unknown>), flow_node: node.name || node.id },
    });
    this.#counts.emitted++;
    return { id: event.id, type: event.type, priority: event.priority, time: event.time };
  }

  async #output(args: Record<string, unknown>) {
    const pole = this.ctx.config.pole;
    const alarmOutputs = pole.enabled ? [pole.led_output, pole.strobe_output, pole.siren_output] : [];
    if (this.#activeAlarm !== null && alarmOutputs.includes(args.output as string)) {
      throw new CommandError('alarm_active', `${String(args.output)} belongs to the panic alarm until the call center clears it`);
    }
    const result = await this.#invoke('output.set', { output: args.output, pattern: args.pattern }, 'this device has no outputs');
    this.#counts.outputs++;
    return result;
  }

  async #daemonStatus() {
    const { config, clockTrust } = this.ctx;
    const outbox = (await this.#invoke('outbox.stats', {}, '')) as { depth: number; bytes: number };
    const io = (await this.ctx.commands.invoke('io.status', {}).catch(() => null)) as {
      inputs: Record<string, unknown>;
      outputs: Record<string, { kind: string; value: boolean; pattern: string }>;
      alarm: string | null;
    } | null;
    return {
      device: { id: config.device.id, site: config.device.site, profile: config.device.profile },
      link: { state: this.#link, connected: this.#link === 'online' },
      outbox: { depth: outbox.depth, bytes: outbox.bytes },
      clock_synced: clockTrust.synced(),
      inputs: io?.inputs ?? {},
      outputs: Object.fromEntries(Object.entries(io?.outputs ?? {}).map(([name, o]) => [name, { kind: o.kind, value: o.value, pattern: o.pattern }])),
      alarm: io?.alarm ?? null,
      last_alarm: this.#lastAlarm,
    };
  }

  /** A registered command; "not registered" becomes `unavailable` with the reason the device lacks it. */
  async #invoke(command: string, args: unknown, unavailable: string): Promise<unknown> {
    try {
      return await this.ctx.commands.invoke(command, args);
    } catch (err) {
      if (err instanceof CommandError && err.code === 'unknown_command') throw new CommandError('unavailable', unavailable || err.message);
      throw err;
    }
  }
}
