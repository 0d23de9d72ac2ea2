import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort } from 'node:worker_threads';
import RED from 'node-red';
import type { VigiaEvent } from '../core/event.js';
import { TokenBucket } from '../core/rate-limit.js';
import {
  type CallOp,
  type FromRuntime,
  FLOW_EVENT_TYPE,
  matchesFilter,
  type NodeRef,
  type NodeTally,
  type RuntimeOptions,
  type ToRuntime,
} from './protocol.js';

/**
 * The Node-RED process: started by the daemon's supervisor (`fork`), never by hand. It embeds
 * Node-RED through its documented API (`RED.init`, `RED.start`), serves the editor and the admin
 * API on the configured address, and gives the Vigía nodes a bridge (`RED.settings.vigia`) whose
 * every call goes back to the daemon over the IPC channel. It answers the supervisor's heartbeat;
 * a flow that blocks the event loop stops the answers and gets this process killed and restarted.
 */

/**
 * The channel to the daemon: the IPC channel of a forked process (what the daemon uses), or a
 * worker thread's port (what the isolation benchmark compares it with).
 */
const send = (msg: FromRuntime): void => {
  if (parentPort) parentPort.postMessage(msg);
  else if (process.connected) process.send!(msg);
};

/** How long a call to the daemon may take before the node is told it is unavailable. */
const CALL_TIMEOUT_MS = 10_000;
/** Log lines forwarded to the daemon's log, at most (a node that logs in a loop must not flood it). */
const LOG_RATE = { per_second: 50, burst: 200 };
/** Output changes a node may ask for (a flow toggling a relay in a loop wears it out). */
const OUTPUT_RATE = { per_second: 10, burst: 20 };
/** Hotlist and status questions a node may ask: each costs the daemon a little work. */
const QUERY_RATE = { per_second: 20, burst: 40 };

class CallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface Subscription {
  node: NodeRef;
  filter: { types: string[]; priorities: string[] };
  listener: (event: VigiaEvent) => void;
}

type LogLevel = Extract<FromRuntime, { t: 'log' }>['level'];

/** Node-RED's numeric levels; 98 (audit) and 99 (metric) are not forwarded. */
const LEVELS: Record<number, LogLevel> = {
  10: 'fatal',
  20: 'error',
  30: 'warn',
  40: 'info',
  50: 'debug',
  60: 'trace',
};

class Runtime {
  #options!: RuntimeOptions;
  #server: Server | undefined;
  #nextCall = 1;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #subs = new Set<Subscription>();
  #interestQueued = false;
  #received = 0;
  #tallies = new Map<string, NodeTally>();
  #errorsTotal = 0;
  #logBucket = new TokenBucket(LOG_RATE.per_second, LOG_RATE.burst);
  #logDropped = 0;
  #emitBuckets = new Map<string, TokenBucket>();
  #outputBuckets = new Map<string, TokenBucket>();
  #queryBuckets = new Map<string, TokenBucket>();
  #flows = { rev: null as string | null, tabs: 0, nodes: 0, vigia_nodes: 0 };

  handle(msg: ToRuntime): void {
    switch (msg.t) {
      case 'init':
        void this.#start(msg.options);
        break;
      case 'ping':
        send({
          t: 'pong',
          seq: msg.seq,
          stats: {
            received: this.#received,
            flows: this.#flows,
            nodes: [...this.#tallies.values()],
            errors_total: this.#errorsTotal,
            log_dropped: this.#logDropped,
            heap_used_bytes: process.memoryUsage().heapUsed,
          },
        });
        break;
      case 'event':
        this.#received++;
        this.#deliver(msg.event);
        break;
      case 'reply': {
        const call = this.#pending.get(msg.id);
        if (!call) return;
        this.#pending.delete(msg.id);
        clearTimeout(call.timer);
        if (msg.ok) call.resolve(msg.result);
        else call.reject(new CallError(msg.code, msg.message));
        break;
      }
      case 'stop':
        void this.#stop();
        break;
    }
  }

  async #start(options: RuntimeOptions): Promise<void> {
    this.#options = options;
    try {
      const server = (this.#server = createServer((req, res) => {
        RED.httpAdmin(req, res, () =>
          RED.httpNode(req, res, () => {
            res.statusCode = 404;
            res.end();
          }),
        );
      }));
      RED.init(server, this.#settings(options));
      // Telemetry stays off even if someone ticks it in the editor: a pole must not call out.
      RED.runtime._.telemetry.enable = () => undefined;
      RED.events.on('flows:started', (e: { config?: { rev?: string; flows?: Array<{ type?: string }> } }) => this.#flowsStarted(e));
      await RED.start();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.bind, () => resolve());
      });
      const { port } = server.address() as AddressInfo;
      const host = options.bind.includes(':') ? `[${options.bind}]` : options.bind;
      send({ t: 'ready', url: `http://${host}:${port}/`, port });
    } catch (err) {
      send({ t: 'start_failed', message: (err as Error).message });
      // Let the message reach the daemon before leaving.
      setTimeout(() => process.exit(1), 50);
    }
  }

  async #stop(): Promise<void> {
    try {
      await RED.stop();
    } finally {
      this.#server?.close();
      process.exit(0);
    }
  }

  #settings(o: RuntimeOptions): Record<string, unknown> {
    const first = o.users[0]!;
    return {
      userDir: o.userDir,
      flowFile: 'flows.json',
      flowFilePretty: true,
      nodesDir: [o.nodesDir],
      httpAdminRoot: '/',
      httpNodeRoot: '/',
      // The daemon listens; these only tell the editor where it is.
      uiHost: o.bind,
      uiPort: o.port,
      credentialSecret: o.credentialSecret,
      adminAuth: { type: 'credentials', users: o.users, sessionExpiryTime: 8 * 3600 },
      // HTTP endpoints of flows (http in nodes) need the first user's password too.
      httpNodeAuth: { user: first.username, pass: first.password },
      logging: {
        console: { level: 'off' },
        vigia: { level: o.logLevel, metrics: false, audit: false, handler: () => (m: NodeRedLogMessage) => this.#log(m) },
      },
      telemetry: { enabled: false, updateNotification: false },
      diagnostics: { enabled: false, ui: false },
      runtimeState: { enabled: false },
      externalModules: {
        autoInstall: false,
        palette: { allowInstall: o.paletteInstalls, allowUpload: o.paletteInstalls },
        modules: { allowInstall: false },
      },
      // A function node may not require npm modules: nothing is installed behind the technician's back.
      functionExternalModules: false,
      exportGlobalContextKeys: false,
      // Context in memory: a flow writing context every second would wear the SD card out.
      contextStorage: { default: { module: 'memory' } },
      editorTheme: {
        page: { title: `Vigía · ${o.info.device.id}` },
        header: { title: `Vigía · ${o.info.device.id} (${o.info.device.site})` },
        projects: { enabled: false },
        tours: false,
        palette: { catalogues: [], categories: ['vigia', 'common', 'function', 'network', 'sequence', 'parser', 'storage'] },
        multiplayer: { enabled: false },
      },
      vigia: this.#bridge(),
    };
  }

  /** What the Vigía nodes call (`RED.settings.vigia`). */
  #bridge() {
    const rt = this;
    return {
      get info() {
        return rt.#options.info;
      },
      subscribe(node: NodeRef, filter: Subscription['filter'], listener: Subscription['listener']): () => void {
        const sub: Subscription = { node: refOf(node), filter: { types: [...filter.types], priorities: [...filter.priorities] }, listener };
        rt.#subs.add(sub);
        rt.#queueInterest();
        return () => {
          rt.#subs.delete(sub);
          rt.#queueInterest();
        };
      },
      emit(node: NodeRef, draft: { type: string; priority: string; payload: Record<string, unknown> }) {
        const ref = refOf(node);
        if (typeof draft?.type !== 'string' || !FLOW_EVENT_TYPE.test(draft.type)) {
          return rt.#refuse(
            ref,
            'bad_event',
            `event type must be flow.<name> (lowercase words and digits separated by dots), not ${JSON.stringify(draft?.type)}`,
          );
        }
        if (draft.priority === 'alarm' && !rt.#options.info.allowAlarm) {
          return rt.#refuse(ref, 'not_allowed', 'alarm priority is not allowed for flows on this device (nodered.allow_alarm)');
        }
        const { per_second, burst } = rt.#options.info.eventRate;
        if (!bucketFor(rt.#emitBuckets, ref.id, per_second, burst).take(performance.now())) {
          return rt.#refuse(ref, 'rate_limited', `more than ${per_second} events per second (burst ${burst}) from this node`);
        }
        return rt.#call(ref, 'emit', { type: draft.type, priority: draft.priority, payload: draft.payload });
      },
      output(node: NodeRef, output: string, pattern: unknown) {
        const ref = refOf(node);
        if (!bucketFor(rt.#outputBuckets, ref.id, OUTPUT_RATE.per_second, OUTPUT_RATE.burst).take(performance.now())) {
          return rt.#refuse(ref, 'rate_limited', `more than ${OUTPUT_RATE.per_second} output changes per second from this node`);
        }
        return rt.#call(ref, 'output', { output, pattern });
      },
      hotlist(node: NodeRef, plate: string, fuzzy: boolean) {
        return rt.#query(refOf(node), 'hotlist', { plate, fuzzy: fuzzy === true });
      },
      status(node: NodeRef) {
        return rt.#query(refOf(node), 'status', {});
      },
    };
  }

  #query(node: NodeRef, op: 'hotlist' | 'status', args: Record<string, unknown>): Promise<unknown> {
    if (!bucketFor(this.#queryBuckets, node.id, QUERY_RATE.per_second, QUERY_RATE.burst).take(performance.now())) {
      return this.#refuse(node, 'rate_limited', `more than ${QUERY_RATE.per_second} questions per second from this node`);
    }
    return this.#call(node, op, args);
  }

  #refuse(node: NodeRef, code: string, message: string): Promise<never> {
    this.#tally(node).refused++;
    return Promise.reject(new CallError(code, message));
  }

  #call(node: NodeRef, op: CallOp, args: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextCall++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new CallError('unavailable', 'the daemon did not answer in time'));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve,
        reject: (err) => {
          if (err instanceof CallError && err.code !== 'unavailable') this.#tally(node).refused++;
          reject(err);
        },
        timer,
      });
      send({ t: 'call', id, node, op, args });
    });
  }

  #deliver(event: VigiaEvent): void {
    for (const sub of this.#subs) {
      if (!matchesFilter(event, sub.filter)) continue;
      try {
        sub.listener(event);
      } catch (err) {
        this.#nodeError(sub.node, (err as Error).message);
      }
    }
  }

  /** Tells the daemon which events to forward, once per turn however many nodes (re)subscribed. */
  #queueInterest(): void {
    if (this.#interestQueued) return;
    this.#interestQueued = true;
    setImmediate(() => {
      this.#interestQueued = false;
      send({ t: 'interest', filters: [...this.#subs].map((s) => s.filter) });
    });
  }

  #flowsStarted(e: { config?: { rev?: string; flows?: Array<{ type?: string }> } }): void {
    const flows = e.config?.flows ?? [];
    this.#flows = {
      rev: e.config?.rev ?? null,
      tabs: flows.filter((n) => n.type === 'tab').length,
      nodes: flows.filter((n) => n.type !== 'tab' && n.type !== 'subflow' && n.type !== 'group').length,
      vigia_nodes: flows.filter((n) => typeof n.type === 'string' && n.type.startsWith('vigia ')).length,
    };
    // Counts are per deployment: a node fixed and redeployed starts clean.
    this.#tallies.clear();
  }

  #tally(node: NodeRef): NodeTally {
    let t = this.#tallies.get(node.id);
    if (!t) {
      t = { ...node, errors: 0, refused: 0, last_error: null };
      this.#tallies.set(node.id, t);
    }
    return t;
  }

  #nodeError(node: NodeRef, message: string): void {
    const t = this.#tally(node);
    t.errors++;
    t.last_error = message.slice(0, 200);
    this.#errorsTotal++;
  }

  #log(m: NodeRedLogMessage): void {
    const level = LEVELS[m.level];
    if (level === undefined) return; // audit and metric records
    const node = m.id ? { id: String(m.id), type: String(m.type ?? ''), name: String(m.name ?? '') } : undefined;
    // An Error made in a function node's sandbox is not an instance of this context's Error.
    const isError = typeof m.msg === 'object' && m.msg !== null && typeof (m.msg as Error).message === 'string';
    const text = typeof m.msg === 'string' ? m.msg : isError ? String(m.msg) : safeString(m.msg);
    if (node && m.level <= 20) this.#nodeError(node, text);
    if (!this.#logBucket.take(performance.now())) {
      this.#logDropped++;
      return;
    }
    send({ t: 'log', level, msg: text.slice(0, 2000), ...(node ? { node } : {}) });
  }
}

interface NodeRedLogMessage {
  level: number;
  msg: unknown;
  id?: string;
  type?: string;
  name?: string;
}

function refOf(node: NodeRef): NodeRef {
  return { id: String(node?.id ?? ''), type: String(node?.type ?? ''), name: String(node?.name ?? '') };
}

function bucketFor(map: Map<string, TokenBucket>, id: string, perSecond: number, burst: number): TokenBucket {
  let b = map.get(id);
  if (!b) map.set(id, (b = new TokenBucket(perSecond, burst)));
  return b;
}

function safeString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

if (!process.send && !parentPort) {
  process.stderr.write('vigia: the Node-RED runtime is started by the daemon (nodered.enabled), not by hand\n');
  process.exit(2);
}
const runtime = new Runtime();
if (parentPort) {
  parentPort.on('message', (msg: ToRuntime) => runtime.handle(msg));
} else {
  process.title = 'vigia-nodered';
  process.on('message', (msg: ToRuntime) => runtime.handle(msg));
  // The daemon is gone (crashed, killed): nobody supervises this process, so it leaves too.
  process.on('disconnect', () => process.exit(0));
}
