import { readFileSync, writeFileSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { AdminClient } from './admin-client.js';
import { checkFlows, FlowError, type FlowDevice, type FlowNode, flowNodes, withFreshIds } from './flows.js';

/**
 * `vigia flows ...`: what a technician does with flows over SSH, through the admin API of the
 * running Node-RED (the same checks and login as the editor), never by editing its files.
 */

export interface AdminTarget {
  url: string;
  username: string;
  password: string;
}

export function flowDevice(config: Config): FlowDevice {
  return { outputs: Object.keys(config.hardware.outputs), allowAlarm: config.nodered.allow_alarm };
}

/** Where the editor of a configuration listens, as seen from the device itself. */
export function adminUrl(config: Config): string | null {
  const { bind, port } = config.nodered;
  if (port === 0) return null;
  const host = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind.includes(':') ? `[${bind}]` : bind;
  return `http://${host}:${port}/`;
}

/** Reads and checks a flows file; the error lists every problem. */
export function readFlowsFile(file: string, device?: FlowDevice): FlowNode[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new FlowError([`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not JSON (${(err as Error).message})`}`]);
  }
  const problems = checkFlows(doc, device);
  if (problems.length) throw new FlowError(problems.map((p) => `${file}: ${p}`));
  return flowNodes(doc);
}

async function withClient<T>(target: AdminTarget, fn: (client: AdminClient) => Promise<T>, scope: '*' | 'read' = '*'): Promise<T> {
  const client = new AdminClient(target.url);
  await client.login(target.username, target.password, scope);
  try {
    return await fn(client);
  } finally {
    await client.revokeToken();
  }
}

/** Writes the running flows to a file (credentials stay on the device: the API never returns them). */
export async function exportFlows(target: AdminTarget, file: string): Promise<{ nodes: number; rev: string }> {
  return withClient(
    target,
    async (client) => {
      const { flows, rev } = await client.getFlows();
      writeFileSync(file, `${JSON.stringify(flows, null, 2)}\n`);
      return { nodes: flows.length, rev };
    },
    'read',
  );
}

/** Replaces every flow with the file's (checked first). */
export async function deployFlows(target: AdminTarget, file: string, device?: FlowDevice): Promise<{ nodes: number; rev: string }> {
  const flows = readFlowsFile(file, device);
  return withClient(target, async (client) => {
    const { rev } = await client.getFlows();
    const result = await client.setFlows(flows, rev);
    return { nodes: flows.length, rev: result.rev };
  });
}

/** Adds the file's flows to the running ones (ids already in use are renewed), as the editor's import does. */
export async function importFlows(target: AdminTarget, file: string, device?: FlowDevice): Promise<{ added: number; renamed: number; rev: string }> {
  const incoming = readFlowsFile(file, device);
  return withClient(target, async (client) => {
    const current = await client.getFlows();
    const taken = new Set(current.flows.map((n) => n.id));
    const fresh = withFreshIds(incoming, taken);
    const merged = [...current.flows, ...fresh];
    const problems = checkFlows(merged, device);
    if (problems.length) throw new FlowError(problems.map((p) => `after import: ${p}`));
    const result = await client.setFlows(merged, current.rev);
    return { added: fresh.length, renamed: fresh.filter((n, i) => n.id !== incoming[i]!.id).length, rev: result.rev };
  });
}
