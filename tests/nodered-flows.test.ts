import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { TokenBucket } from '../src/core/rate-limit.js';
import { checkFlows, coreNodeTypes, type FlowNode, withFreshIds } from '../src/nodered/flows.js';
import { FLOW_EVENT_TYPE, matchesFilter } from '../src/nodered/protocol.js';
import { flowDevice } from '../src/nodered/tool.js';
import { CLI } from './helpers/daemon.js';
import { REPO_ROOT } from './helpers/repo.js';

const tab = { id: 't1', type: 'tab', label: 'x' };
const demo = loadConfig(join(REPO_ROOT, 'config', 'demo.yaml'));

describe('flows files are checked before they reach the runtime', () => {
  it('knows the core node types from the installed Node-RED', () => {
    const core = coreNodeTypes();
    for (const t of ['inject', 'function', 'debug', 'change', 'switch', 'catch', 'mqtt in', 'http request']) expect(core.has(t)).toBe(true);
    expect(core.has('unknown')).toBe(false);
  });

  it('accepts each example flow of config/flows on the demo device', () => {
    for (const name of ['pole', 'gantry', 'community']) {
      const doc = JSON.parse(readFileSync(join(REPO_ROOT, 'config', 'flows', `${name}.json`), 'utf8'));
      expect(checkFlows(doc, flowDevice(demo)), name).toEqual([]);
    }
  });

  it('names each node that is wrong and why', () => {
    const flows: FlowNode[] = [
      tab,
      { id: 'a', type: 'vigia in', z: 't1', types: 'motion.*, Bad-Type', priorities: 'alarm,urgent', wires: [['b', 'gone'], ['c']] },
      { id: 'b', type: 'vigia event', z: 't1', name: 'ev', eventType: 'alarm.panic', priority: 'alarm', wires: [] },
      { id: 'c', type: 'vigia output', z: 't2', output: 'horn', wires: [['a']] },
      { id: 'd', type: 'contrib-thing', z: 't1', wires: [['a']] },
      { id: 'e', type: 'subflow:sf9', z: 't1' },
      { id: 'b', type: 'debug', z: 't1' },
    ];
    expect(checkFlows(flows)).toEqual(['debug "b": id used twice']);
    const problems = checkFlows(flows.slice(0, -1), { outputs: ['strobe'], allowAlarm: false });
    expect(problems).toEqual([
      'vigia in "a": has 2 outputs wired, the node has 1',
      'vigia in "a": wired to "gone", which is not in the file',
      'vigia in "a": wired to vigia output "c" on another flow (use link nodes)',
      'vigia in "a": event type filter "Bad-Type" is not a type or prefix.*',
      'vigia in "a": unknown priority "urgent"',
      'vigia event "b" (ev): event type "alarm.panic" must be flow.<name> (lowercase, digits, underscores, dots)',
      'vigia event "b" (ev): alarm priority is not allowed for flows on this device (nodered.allow_alarm)',
      'vigia output "c": is on flow "t2", which is not in the file',
      'vigia output "c": wired to vigia in "a" on another flow (use link nodes)',
      'vigia output "c": output "horn" is not configured (known: strobe)',
      'contrib-thing "d": unknown node type "contrib-thing" (not a core node nor a Vigía node; palette installs are off)',
      'contrib-thing "d": wired to vigia in "a", which has no input',
      'subflow:sf9 "e": uses subflow sf9, which is not in the file',
    ]);
  });

  it('refuses what is not a flows document', () => {
    expect(checkFlows({ nodes: [] })).toEqual(['a flows file is a JSON array of nodes (as exported from Node-RED)']);
    expect(checkFlows([{ id: 1, type: 'tab' }])).toEqual(['entry 0: a node needs a string id and type']);
    expect(checkFlows({ rev: 'x', flows: [tab] })).toEqual([]);
  });

  it('gives imported nodes fresh ids and keeps their wiring and flow', () => {
    const incoming: FlowNode[] = [
      tab,
      { id: 'n1', type: 'inject', z: 't1', wires: [['n2']] },
      { id: 'n2', type: 'mqtt out', z: 't1', broker: 'b1', wires: [] },
    ];
    incoming.push({ id: 'b1', type: 'mqtt-broker', broker: 'localhost' });
    const fresh = withFreshIds(incoming, new Set(['t1', 'n2', 'b1']));
    const [t, inject, out, broker] = fresh as [FlowNode, FlowNode, FlowNode, FlowNode];
    expect(inject.id).toBe('n1');
    expect(t.id).not.toBe('t1');
    expect(out.id).not.toBe('n2');
    expect(inject.z).toBe(t.id);
    expect(inject.wires).toEqual([[out.id]]);
    expect(out.broker).toBe(broker.id);
    expect(broker.broker).toBe('localhost');
    expect(checkFlows(fresh)).toEqual([]);
  });
});

describe('vigia flows check and vigia nodered hash-password', () => {
  const cli = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, timeout: 30_000 });

  it('checks a flows file offline against a device configuration', () => {
    const ok = cli(['flows', 'check', join(REPO_ROOT, 'config', 'flows', 'gantry.json'), '-c', join(REPO_ROOT, 'config', 'demo.yaml')]);
    expect(ok.stdout).toMatch(/gantry\.json: 3 nodes, ok/);
    expect(ok.status).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'vigia-flows-check-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([tab, { id: 'o1', type: 'vigia output', z: 't1', name: 'horn', output: 'horn', pattern: 'on', wires: [] }]));
    // Without a device the file is well formed; on the demo device it names an output it lacks.
    expect(cli(['flows', 'check', bad]).status).toBe(0);
    const refused = cli(['flows', 'check', bad, '-c', join(REPO_ROOT, 'config', 'demo.yaml')]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/bad\.json: vigia output "o1" \(horn\): output "horn" is not configured \(known: strobe, siren, button_led, barrier\)/);
    writeFileSync(bad, '[{"id": "x", "type": "tab"},');
    const notJson = cli(['flows', 'check', bad]);
    expect(notJson.status).toBe(1);
    expect(notJson.stderr).toMatch(/bad\.json: not JSON/);
  });

  it('hashes a password read from stdin with bcrypt, as Node-RED checks it', () => {
    const r = cli(['nodered', 'hash-password', '--cost', '4'], 'a long enough password\n');
    expect(r.status).toBe(0);
    const hash = r.stdout.trim();
    expect(hash).toMatch(/^\$2b\$04\$/);
    expect(bcrypt.compareSync('a long enough password', hash)).toBe(true);
    const short = cli(['nodered', 'hash-password'], 'short\n');
    expect(short.status).toBe(2);
    expect(short.stderr).toMatch(/at least 8 characters/);
  });
});

describe('flow events and filters', () => {
  it('a flow emits only in the flow. namespace', () => {
    expect(FLOW_EVENT_TYPE.test('flow.night_motion')).toBe(true);
    expect(FLOW_EVENT_TYPE.test('flow.a.b2')).toBe(true);
    for (const bad of ['alarm.panic', 'flow.', 'flow.Night', 'flow..x', 'sim.x']) expect(FLOW_EVENT_TYPE.test(bad), bad).toBe(false);
  });

  it('vigia in filters match exact types, prefixes and priorities', () => {
    const e = { type: 'motion.detected', priority: 'read' };
    expect(matchesFilter(e, { types: [], priorities: [] })).toBe(true);
    expect(matchesFilter(e, { types: ['motion.*'], priorities: [] })).toBe(true);
    expect(matchesFilter(e, { types: ['motion.ended'], priorities: [] })).toBe(false);
    expect(matchesFilter(e, { types: ['mot.*'], priorities: [] })).toBe(false);
    expect(matchesFilter(e, { types: [], priorities: ['alarm', 'hit'] })).toBe(false);
  });

  it('a token bucket allows the burst, then the sustained rate', () => {
    const b = new TokenBucket(2, 3);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect([b.take(499), b.take(500), b.take(501)]).toEqual([false, true, false]);
    expect([b.take(10_000), b.take(10_000), b.take(10_000), b.take(10_000)]).toEqual([true, true, true, false]);
    expect(() => new TokenBucket(0, 1)).toThrow(RangeError);
  });
});

describe('the nodered: settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-nr-config-'));
  const write = (profile: string, nodered: string) => {
    const file = join(dir, `${profile}-${Math.random().toString(16).slice(2)}.yaml`);
    writeFileSync(file, `device: {id: p1, site: s1, profile: ${profile}}\nmqtt: {url: 'mqtt://127.0.0.1'}\n${nodered}`);
    return file;
  };
  const hash = bcrypt.hashSync('a good password', 4);

  it('refuses to enable Node-RED without a user, or with a password that is not a bcrypt hash', () => {
    expect(() => loadConfig(write('pole', 'nodered: {enabled: true}\n'))).toThrow(
      /nodered\.users: Node-RED needs at least one user .*vigia nodered hash-password/,
    );
    const plain = write('pole', 'nodered:\n  enabled: true\n  users: [{username: tecnico, password: hunter22}]\n');
    expect(() => loadConfig(plain)).toThrow(/nodered\.users\.0\.password: must be a bcrypt hash/);
    const ok = loadConfig(write('pole', `nodered:\n  enabled: true\n  users: [{username: tecnico, password: '${hash}'}]\n`));
    expect(ok.nodered).toMatchObject({ enabled: true, bind: '127.0.0.1', port: 1880, allow_alarm: false, palette_installs: false });
    expect(ok.nodered.users[0]).toEqual({ username: 'tecnico', password: hash, permissions: '*' });
  });

  it('is off by default on every profile, and its credential secret never prints', () => {
    for (const profile of ['pole', 'gantry', 'patrol']) expect(loadConfig(write(profile, '')).nodered.enabled).toBe(false);
    const cfg = loadConfig(write('pole', 'nodered: {credential_secret: s3cr3t-value}\n'));
    expect(cfg.nodered.credential_secret?.reveal()).toBe('s3cr3t-value');
    expect(JSON.stringify(cfg)).not.toContain('s3cr3t-value');
  });
});
