import type { Priority, VigiaEvent } from '../core/event.js';

/**
 * The messages between the daemon and the Node-RED process (Node's IPC channel, structured clone).
 * The daemon trusts nothing the runtime sends: every call is checked again on the daemon's side.
 */

/** What the editor and the nodes know of the device (dropdowns, validation). */
export interface DeviceInfo {
  device: { id: string; site: string; profile: string };
  eventTypes: Array<{ type: string; priority: Priority }>;
  priorities: Priority[];
  outputs: Array<{ name: string; kind: string; max_on_ms: number }>;
  inputs: Array<{ name: string; kind: string }>;
  allowAlarm: boolean;
  eventRate: { per_second: number; burst: number };
  hotlist: boolean;
}

/** Everything the runtime needs to start; built by the daemon from the `nodered:` config. */
export interface RuntimeOptions {
  bind: string;
  port: number;
  userDir: string;
  nodesDir: string;
  users: Array<{ username: string; password: string; permissions: '*' | 'read' }>;
  credentialSecret: string | false;
  paletteInstalls: boolean;
  logLevel: string;
  info: DeviceInfo;
}

/** A node's identity, for counting and reporting per node. */
export interface NodeRef {
  id: string;
  type: string;
  name: string;
}

export type CallOp = 'emit' | 'output' | 'hotlist' | 'status';

/** Per-node tallies the runtime keeps (errors logged by the node, refused calls). */
export interface NodeTally extends NodeRef {
  errors: number;
  refused: number;
  last_error: string | null;
}

export interface RuntimeStats {
  /** Events received from the daemon so far (the daemon compares with what it sent: backpressure). */
  received: number;
  flows: { rev: string | null; tabs: number; nodes: number; vigia_nodes: number };
  nodes: NodeTally[];
  errors_total: number;
  log_dropped: number;
  heap_used_bytes: number;
}

export type ToRuntime =
  | { t: 'init'; options: RuntimeOptions }
  | { t: 'ping'; seq: number }
  | { t: 'event'; event: VigiaEvent }
  | { t: 'reply'; id: number; ok: true; result: unknown }
  | { t: 'reply'; id: number; ok: false; code: string; message: string }
  | { t: 'stop' };

export type FromRuntime =
  | { t: 'ready'; url: string; port: number }
  | { t: 'start_failed'; message: string }
  | { t: 'pong'; seq: number; stats: RuntimeStats }
  /** The event filters of the deployed `vigia in` nodes: the daemon forwards only what they want. */
  | { t: 'interest'; filters: Array<{ types: string[]; priorities: string[] }> }
  | { t: 'call'; id: number; node: NodeRef; op: CallOp; args: Record<string, unknown> }
  | { t: 'log'; level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'; msg: string; node?: NodeRef };

/** Whether an event passes a `vigia in` filter: exact types or `prefix.*`; empty lists pass everything. */
export function matchesFilter(event: { type: string; priority: string }, filter: { types: string[]; priorities: string[] }): boolean {
  if (filter.priorities.length > 0 && !filter.priorities.includes(event.priority)) return false;
  if (filter.types.length === 0) return true;
  return filter.types.some((t) => (t.endsWith('.*') ? event.type.startsWith(t.slice(0, -1)) : t === event.type));
}

/** The event types a flow may emit: its own namespace, so the call center can tell a flow's event from the hardware's. */
export const FLOW_EVENT_TYPE = /^flow\.[a-z0-9_]+(\.[a-z0-9_]+)*$/;
