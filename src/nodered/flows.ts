import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isPriority, PRIORITIES } from '../core/event.js';
import { FLOW_EVENT_TYPE } from './protocol.js';

/**
 * Checks a flows file before it reaches the runtime: Node-RED itself loads a flow with an unknown
 * node type as a disabled placeholder and silently drops wires to nowhere, so a typo in a flow
 * copied from a laptop would leave a pole without its rule and nobody would know. Here both are
 * refused with the node that is wrong, and the Vigía nodes' settings are checked against the
 * device's configuration.
 */

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  wires?: unknown;
  [key: string]: unknown;
}

/** What the device has, when known: the Vigía nodes' settings are checked against it. */
export interface FlowDevice {
  outputs: string[];
  allowAlarm: boolean;
}

/** Node types that are not nodes: containers and drawing aids. */
const STRUCTURAL = new Set(['tab', 'subflow', 'group', 'junction']);
/** The Vigía nodes and how many outputs each has. */
export const VIGIA_NODE_OUTPUTS: Readonly<Record<string, number>> = {
  'vigia in': 1,
  'vigia event': 1,
  'vigia output': 1,
  'vigia hotlist': 2,
  'vigia status': 1,
};

let coreTypes: Set<string> | undefined;

/** The node types Node-RED's core nodes register (read from their editor files, so an upgrade is picked up). */
export function coreNodeTypes(): Set<string> {
  if (coreTypes) return coreTypes;
  const require = createRequire(import.meta.url);
  const root = join(dirname(require.resolve('@node-red/nodes/package.json')), 'core');
  const types = new Set<string>();
  for (const group of readdirSync(root)) {
    for (const file of readdirSync(join(root, group))) {
      if (!file.endsWith('.html')) continue;
      for (const m of readFileSync(join(root, group, file), 'utf8').matchAll(/registerType\(\s*['"]([^'"]+)['"]/g)) types.add(m[1]!);
    }
  }
  types.delete('unknown');
  coreTypes = types;
  return types;
}

export function knownNodeTypes(): Set<string> {
  return new Set([...coreNodeTypes(), ...Object.keys(VIGIA_NODE_OUTPUTS)]);
}

/** The node list of a flows document: Node-RED's plain array, or the admin API's `{rev, flows}`. */
export function flowNodes(doc: unknown): FlowNode[] {
  const list = Array.isArray(doc)
    ? doc
    : typeof doc === 'object' && doc !== null && Array.isArray((doc as { flows?: unknown }).flows)
      ? (doc as { flows: unknown[] }).flows
      : null;
  if (!list) throw new FlowError(['a flows file is a JSON array of nodes (as exported from Node-RED)']);
  return list as FlowNode[];
}

export class FlowError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`);
  }
}

const describe = (n: FlowNode): string => `${n.type} ${JSON.stringify(n.id)}${typeof n.name === 'string' && n.name ? ` (${n.name})` : ''}`;

/** Every problem with a flows document; an empty list means Node-RED can run it as written. */
export function checkFlows(doc: unknown, device?: FlowDevice): string[] {
  let nodes: FlowNode[];
  try {
    nodes = flowNodes(doc);
  } catch (err) {
    return (err as FlowError).problems;
  }
  const problems: string[] = [];
  const byId = new Map<string, FlowNode>();
  nodes.forEach((n, i) => {
    if (typeof n !== 'object' || n === null || typeof n.id !== 'string' || !n.id || typeof n.type !== 'string' || !n.type) {
      problems.push(`entry ${i}: a node needs a string id and type`);
      return;
    }
    if (byId.has(n.id)) problems.push(`${describe(n)}: id used twice`);
    byId.set(n.id, n);
  });
  if (problems.length) return problems;

  const known = knownNodeTypes();
  const containers = new Set(nodes.filter((n) => n.type === 'tab' || n.type === 'subflow').map((n) => n.id));
  for (const n of nodes) {
    const subflow = n.type.startsWith('subflow:') ? n.type.slice('subflow:'.length) : null;
    if (subflow !== null) {
      if (byId.get(subflow)?.type !== 'subflow') problems.push(`${describe(n)}: uses subflow ${subflow}, which is not in the file`);
    } else if (!STRUCTURAL.has(n.type) && !known.has(n.type)) {
      problems.push(`${describe(n)}: unknown node type ${JSON.stringify(n.type)} (not a core node nor a Vigía node; palette installs are off)`);
    }
    if (n.z !== undefined && n.z !== '' && !containers.has(n.z as string))
      problems.push(`${describe(n)}: is on flow ${JSON.stringify(n.z)}, which is not in the file`);
    problems.push(...checkWires(n, byId));
    if (n.type in VIGIA_NODE_OUTPUTS) problems.push(...checkVigiaNode(n, device));
  }
  return problems;
}

function checkWires(n: FlowNode, byId: Map<string, FlowNode>): string[] {
  if (n.wires === undefined) return [];
  if (!Array.isArray(n.wires) || !n.wires.every((port) => Array.isArray(port) && port.every((t) => typeof t === 'string'))) {
    return [`${describe(n)}: wires must be a list of lists of node ids`];
  }
  const problems: string[] = [];
  const outputs = VIGIA_NODE_OUTPUTS[n.type];
  if (outputs !== undefined && n.wires.length > outputs) problems.push(`${describe(n)}: has ${n.wires.length} outputs wired, the node has ${outputs}`);
  for (const port of n.wires as string[][]) {
    for (const target of port) {
      const t = byId.get(target);
      if (!t) problems.push(`${describe(n)}: wired to ${JSON.stringify(target)}, which is not in the file`);
      else if (STRUCTURAL.has(t.type)) problems.push(`${describe(n)}: wired to ${describe(t)}, which is not a node`);
      else if ((t.z ?? '') !== (n.z ?? '')) problems.push(`${describe(n)}: wired to ${describe(t)} on another flow (use link nodes)`);
      else if (t.type === 'vigia in') problems.push(`${describe(n)}: wired to ${describe(t)}, which has no input`);
    }
  }
  return problems;
}

/** 'motion.*, alarm.panic' or ['motion.*', 'alarm.panic']: the editor writes the first, hand-written flows either. */
const listOf = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(/[\s,]+/) : []).filter(Boolean);

function checkVigiaNode(n: FlowNode, device: FlowDevice | undefined): string[] {
  const problems: string[] = [];
  const bad = (message: string) => problems.push(`${describe(n)}: ${message}`);
  switch (n.type) {
    case 'vigia in': {
      for (const t of listOf(n.types))
        if (!/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$/.test(t)) bad(`event type filter ${JSON.stringify(t)} is not a type or prefix.*`);
      for (const p of listOf(n.priorities)) if (!isPriority(p)) bad(`unknown priority ${JSON.stringify(p)}`);
      break;
    }
    case 'vigia event': {
      if (typeof n.eventType === 'string' && n.eventType !== '' && !FLOW_EVENT_TYPE.test(n.eventType)) {
        bad(`event type ${JSON.stringify(n.eventType)} must be flow.<name> (lowercase, digits, underscores, dots)`);
      }
      if (!isPriority(n.priority)) bad(`priority must be one of ${PRIORITIES.join(', ')}`);
      else if (n.priority === 'alarm' && device && !device.allowAlarm) bad('alarm priority is not allowed for flows on this device (nodered.allow_alarm)');
      break;
    }
    case 'vigia output':
      if (typeof n.output !== 'string' || !n.output) bad('no output chosen');
      else if (device && !device.outputs.includes(n.output))
        bad(`output ${JSON.stringify(n.output)} is not configured (known: ${device.outputs.join(', ') || 'none'})`);
      break;
  }
  return problems;
}

/**
 * The nodes of `incoming` with fresh ids (wires, flows, groups and config-node references
 * remapped), so a file can be imported next to flows that already use its ids.
 */
export function withFreshIds(incoming: FlowNode[], taken: ReadonlySet<string>): FlowNode[] {
  const map = new Map<string, string>();
  for (const n of incoming) {
    if (!taken.has(n.id)) continue;
    let id: string;
    do id = randomBytes(8).toString('hex');
    while (taken.has(id) || map.has(id));
    map.set(n.id, id);
  }
  if (map.size === 0) return incoming;
  const remap = (v: unknown): unknown => {
    if (typeof v === 'string') return map.get(v) ?? v;
    if (Array.isArray(v)) return v.map(remap);
    return v;
  };
  return incoming.map((n) => {
    const out: FlowNode = { ...n };
    // Every string property naming an imported node: wires, z, g, links, scope, a config node (broker, tls...).
    for (const [k, v] of Object.entries(n)) if (k !== 'type' && k !== 'name' && k !== 'info') out[k] = remap(v);
    return out;
  });
}
