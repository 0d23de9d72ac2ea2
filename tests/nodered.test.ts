import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VigiaEvent } from '../src/core/event.js';
import { AdminClient } from '../src/nodered/admin-client.js';
import { CLI } from './helpers/daemon.js';
import { nid, NR_PASSWORD, NR_READER, NR_READER_PASSWORD, NR_USER, type NodeRedRig, nodeRedStatus, nodeRedUrl, startNodeRedRig } from './helpers/nodered.js';

type Outputs = Record<string, { value: boolean; pattern: { mode: string; period_ms?: number; ms?: number } }>;
type Flow = Array<Record<string, unknown>>;

const tab = (id: string, label: string) => ({ id, type: 'tab', label, disabled: false, info: '' });

/** `vigia flows ...` against a running daemon; the password comes from the environment, as in a technician's script. */
function flowsCli(args: string[], password = NR_PASSWORD) {
  const r = spawnSync(process.execPath, [CLI, 'flows', ...args], {
    encoding: 'utf8',
    env: { ...process.env, VIGIA_NODERED_PASSWORD: password },
    timeout: 30_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function deploy(rig: NodeRedRig, flow: Flow): Promise<void> {
  // From the status each time: a restarted runtime on port 0 has a new port.
  const client = new AdminClient(await nodeRedUrl(rig.daemon));
  await client.login(NR_USER, NR_PASSWORD);
  const { rev } = await client.getFlows();
  await client.setFlows(flow as never, rev);
}

/** Whether anything on this machine listens on `port` at an address other than loopback (from /proc/net/tcp). */
function listeners(port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state === '0A' && local?.endsWith(`:${hex}`)) out.push(local.split(':')[0]!);
    }
  }
  return out;
}

describe('embedded Node-RED: flows drive the pole through the extension contract', () => {
  let rig: NodeRedRig;
  const events = (type: string) => rig.sub.events.filter((e) => e.event.type === type).map((e) => e.event as VigiaEvent<Record<string, any>>);
  const input = (name: string, active: boolean) => rig.daemon.request('sim.input', { input: name, active });
  const outputs = () => rig.daemon.request<Outputs>('sim.outputs');

  beforeAll(async () => {
    rig = await startNodeRedRig();
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });

  it('refuses admin requests without a token and logins with a wrong password; a read-only user cannot deploy', async () => {
    const plain = await fetch(new URL('flows', rig.url));
    expect(plain.status).toBe(401);
    const forged = await fetch(new URL('flows', rig.url), { headers: { authorization: 'Bearer not-a-token' } });
    expect(forged.status).toBe(401);
    await expect(new AdminClient(rig.url).login(NR_USER, 'wrong password')).rejects.toThrow(/login refused/);
    await expect(new AdminClient(rig.url).login('nobody', NR_PASSWORD)).rejects.toThrow(/login refused/);

    const reader = new AdminClient(rig.url);
    await expect(reader.login(NR_READER, NR_READER_PASSWORD, '*')).rejects.toThrow(/login refused/);
    await reader.login(NR_READER, NR_READER_PASSWORD, 'read');
    const { rev } = await reader.getFlows();
    await expect(reader.setFlows([tab(nid('t'), 'x')] as never, rev)).rejects.toThrow(/deploying: refused \(401/);

    // Nothing calls out: telemetry stays off even when the editor asks to switch it on; no installs from npm.
    const login = await fetch(new URL('auth/token', rig.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: '*', username: NR_USER, password: NR_PASSWORD }),
    });
    const auth = { authorization: `Bearer ${((await login.json()) as { access_token: string }).access_token}` };
    const opt = await fetch(new URL('settings/user', rig.url), {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ telemetryEnabled: true }),
    });
    expect(opt.status).toBe(204);
    const settings = (await (await fetch(new URL('settings', rig.url), { headers: auth })).json()) as Record<string, any>;
    expect(settings.telemetryEnabled).not.toBe(true);
    expect(settings.externalModules?.palette?.allowInstall).toBe(false);

    const wrong = flowsCli(['export', join(rig.dir, 'x.json'), '--url', rig.url, '--user', NR_USER], 'wrong password');
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(/login refused/);
  });

  it('runs Node-RED in a process of its own that yields to the daemon (nice, first for the OOM killer)', async () => {
    const nr = await nodeRedStatus(rig.daemon);
    expect(nr.pid).not.toBe(rig.daemon.pid);
    expect(readFileSync(`/proc/${nr.pid}/oom_score_adj`, 'utf8').trim()).toBe('1000');
    // Field 19 of /proc/PID/stat is the nice value (the command name before it is in parentheses).
    const stat = readFileSync(`/proc/${nr.pid}/stat`, 'utf8');
    expect(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]).toBe('10');
  });

  it('listens on loopback only unless configured otherwise', async () => {
    const port = Number(new URL(rig.url).port);
    expect(listeners(port)).toEqual(['0100007F']);
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal);
    if (outside) await expect(fetch(`http://${outside.address}:${port}/`, { signal: AbortSignal.timeout(3000) })).rejects.toThrow();
  });

  it('listens on every address when bind says so', async () => {
    const open = await startNodeRedRig({}, { bind: '0.0.0.0' }, rig.broker);
    try {
      expect(listeners(Number(new URL(open.url).port))).toEqual(['00000000']);
    } finally {
      await open.stop();
    }
  });

  it('vigia in (motion) -> vigia output (strobe) and vigia event: a motion input blinks the strobe and the event reaches Mosquitto', async () => {
    const t = nid('t');
    const flowIn = nid('n');
    const strobe = nid('n');
    const event = nid('n');
    const flow: Flow = [
      tab(t, 'motion to strobe'),
      { id: flowIn, type: 'vigia in', z: t, name: 'pir', types: 'motion.detected', priorities: '', wires: [[strobe, event]] },
      {
        id: strobe,
        type: 'vigia output',
        z: t,
        name: 'strobe',
        output: 'strobe',
        pattern: 'blink',
        periodMs: 400,
        duty: 0.5,
        forSeconds: 30,
        pulseMs: 1000,
        wires: [[]],
      },
      { id: event, type: 'vigia event', z: t, name: 'motion seen', eventType: 'flow.motion_seen', priority: 'read', payloadFrom: 'payload', wires: [[]] },
    ];
    const file = join(rig.dir, 'motion-flow.json');
    writeFileSync(file, JSON.stringify(flow));
    const deployed = flowsCli(['deploy', file, '--url', rig.url, '-c', rig.configFile]);
    expect(deployed.err).toBe('');
    expect(deployed.out).toMatch(/deployed 4 nodes/);
    await expect.poll(async () => (await nodeRedStatus(rig.daemon)).flows?.vigia_nodes, { timeout: 10_000 }).toBe(3);
    // The flow subscribes once its nodes start; give the interest message a moment to reach the daemon.
    await new Promise((r) => setTimeout(r, 300));

    expect((await outputs()).strobe!.pattern.mode).toBe('off');
    await input('pir', true);
    await input('pir', false);
    await expect.poll(async () => (await outputs()).strobe!.pattern, { timeout: 10_000 }).toMatchObject({ mode: 'blink', period_ms: 400, for_ms: 30_000 });
    await rig.sub.waitFor(() => events('flow.motion_seen').length > 0, 10_000, 'flow.motion_seen');
    const e = events('flow.motion_seen')[0]!;
    expect(e.priority).toBe('read');
    expect(e.payload).toMatchObject({ input: 'pir', flow_node: 'motion seen' });

    // Exported as deployed; the same file imported again lands next to it under fresh ids.
    const exported = join(rig.dir, 'exported.json');
    const exp = flowsCli(['export', exported, '--url', rig.url, '--user', NR_USER]);
    expect(exp.code).toBe(0);
    const back = JSON.parse(readFileSync(exported, 'utf8')) as Flow;
    expect(back.map((n) => n.id).sort()).toEqual(flow.map((n) => n.id).sort());
    const imp = flowsCli(['import', file, '--url', rig.url, '-c', rig.configFile]);
    expect(imp.out).toMatch(/imported 4 nodes \(4 given new ids\)/);
    await expect.poll(async () => (await nodeRedStatus(rig.daemon)).flows?.vigia_nodes, { timeout: 10_000 }).toBe(6);
  });

  it('refuses a flows file with unknown node types, bad wiring or settings the device does not allow, naming the node', async () => {
    const t = nid('t');
    const bad: Flow = [
      tab(t, 'bad'),
      { id: 'a1', type: 'vigia in', z: t, name: 'in', types: 'motion.detected', wires: [['missing-node']] },
      { id: 'a2', type: 'node-red-contrib-unknown', z: t, wires: [] },
      { id: 'a3', type: 'vigia event', z: t, name: 'alarm!', eventType: 'flow.x', priority: 'alarm', wires: [] },
      { id: 'a4', type: 'vigia output', z: t, name: 'horn', output: 'horn', pattern: 'on', wires: [] },
    ];
    const file = join(rig.dir, 'bad-flow.json');
    writeFileSync(file, JSON.stringify(bad));
    const r = flowsCli(['deploy', file, '--url', rig.url, '-c', rig.configFile]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/vigia in "a1" \(in\): wired to "missing-node", which is not in the file/);
    expect(r.err).toMatch(/unknown node type "node-red-contrib-unknown"/);
    expect(r.err).toMatch(/alarm priority is not allowed/);
    expect(r.err).toMatch(/output "horn" is not configured \(known: strobe, siren, button_led, barrier\)/);
    // Nothing was deployed: the earlier flow still runs.
    expect((await nodeRedStatus(rig.daemon)).flows?.vigia_nodes).toBe(6);
  });

  it('vigia hotlist and vigia status answer through the contract; a flow cannot take the alarm outputs during an alarm', async () => {
    const t = nid('t');
    const ask = nid('n');
    const statusNode = nid('n');
    const hot = nid('n');
    const led = nid('n');
    const okEvent = nid('n');
    const catcher = nid('n');
    const errEvent = nid('n');
    const flow: Flow = [
      tab(t, 'contract'),
      { id: ask, type: 'vigia in', z: t, name: 'alarms', types: 'alarm.panic', wires: [[statusNode, hot, led]] },
      { id: statusNode, type: 'vigia status', z: t, name: 'status', interval: 0, wires: [[okEvent]] },
      { id: hot, type: 'vigia hotlist', z: t, name: 'hotlist', property: 'payload.input', fuzzy: true, wires: [[], []] },
      { id: led, type: 'vigia output', z: t, name: 'led', output: 'button_led', pattern: 'off', wires: [[]] },
      { id: okEvent, type: 'vigia event', z: t, name: 'status seen', eventType: 'flow.status_seen', priority: 'telemetry', wires: [[]] },
      { id: catcher, type: 'catch', z: t, name: '', scope: null, uncaught: false, wires: [[errEvent]] },
      {
        id: errEvent,
        type: 'function',
        z: t,
        name: 'to event',
        func: 'msg.payload = { source: msg.error.source.name, code: msg.error.code || null, message: msg.error.message }; return msg;',
        outputs: 1,
        wires: [[nid('n')]],
      },
    ];
    const report = flow.at(-1) as { wires: string[][] };
    flow.push({ id: report.wires[0]![0]!, type: 'vigia event', z: t, name: 'errors', eventType: 'flow.node_error', priority: 'telemetry', wires: [[]] });
    await deploy(rig, flow);
    await new Promise((r) => setTimeout(r, 300));

    await input('panic', true);
    await input('panic', false);
    await rig.sub.waitFor(() => events('flow.status_seen').length > 0, 10_000, 'flow.status_seen');
    const status = events('flow.status_seen')[0]!.payload;
    expect(status).toMatchObject({ device: { id: 'pole-0001' }, link: { state: 'online', connected: true }, clock_synced: true, alarm: 'raised' });
    expect(status.outbox.depth).toEqual(expect.any(Number));
    expect(status.inputs.panic.kind).toBe('panic');
    expect(status.last_alarm.type).toBe('alarm.panic');

    // Plate reading is off on this device: the hotlist node says so; the LED is the alarm's until it is cleared.
    await rig.sub.waitFor(() => events('flow.node_error').length >= 2, 10_000, 'two node errors');
    const errors = events('flow.node_error').map((e) => e.payload);
    expect(errors).toContainEqual(expect.objectContaining({ source: 'hotlist', code: 'unavailable' }));
    expect(errors).toContainEqual(expect.objectContaining({ source: 'led', code: 'alarm_active' }));
    expect((await outputs()).button_led!.pattern.mode).not.toBe('off');
  });
});

describe('embedded Node-RED: a faulty flow never delays a panic alarm', () => {
  let rig: NodeRedRig;
  const events = (type: string) => rig.sub.events.filter((e) => e.event.type === type).map((e) => e.event as VigiaEvent<Record<string, any>>);
  const press = async () => {
    await rig.daemon.request('sim.input', { input: 'panic', active: true });
    await rig.daemon.request('sim.input', { input: 'panic', active: false });
  };

  beforeAll(async () => {
    rig = await startNodeRedRig(
      { pole: { enabled: false }, telemetry: { interval: '1s' } },
      {
        heartbeat: '200ms',
        hang_timeout: '1500ms',
        restart: { min_delay: '200ms', max_delay: '2s' },
        event_rate: { per_second: 1, burst: 5 },
        memory: '96MiB',
      },
    );
  }, 60_000);
  afterAll(async () => {
    await rig?.stop();
  });

  it('a throwing node and a flood of vigia event are counted, not obeyed; panics still arrive', async () => {
    const t = nid('t');
    const thrower = nid('n');
    const flooder = nid('n');
    const sink = nid('n');
    const flow: Flow = [
      tab(t, 'faults'),
      {
        id: nid('n'),
        type: 'inject',
        z: t,
        name: '',
        once: true,
        onceDelay: 0.2,
        repeat: '',
        topic: '',
        payload: '',
        payloadType: 'date',
        wires: [[thrower, flooder]],
      },
      { id: thrower, type: 'function', z: t, name: 'thrower', func: 'throw new Error("bad rule")', outputs: 1, wires: [[]] },
      {
        id: flooder,
        type: 'function',
        z: t,
        name: 'flooder',
        func: 'for (let i = 0; i < 5000; i++) node.send({ payload: { i } }); return null;',
        outputs: 1,
        wires: [[sink]],
      },
      { id: sink, type: 'vigia event', z: t, name: 'flood', eventType: 'flow.flood', priority: 'hit', wires: [[]] },
    ];
    await deploy(rig, flow);
    await press();
    await rig.sub.waitFor(() => events('alarm.panic').length >= 1, 10_000, 'alarm.panic during the flood');
    await expect
      .poll(async () => (await nodeRedStatus(rig.daemon)).node_errors?.find((n: { name: string }) => n.name === 'flood')?.refused ?? 0, { timeout: 10_000 })
      .toBeGreaterThan(4900);
    const nr = await nodeRedStatus(rig.daemon);
    expect(nr.node_errors.find((n: { name: string }) => n.name === 'thrower')).toMatchObject({ errors: 1, last_error: expect.stringMatching(/bad rule/) });
    expect(nr.state).toBe('running');
    // The burst (5) and at most a few more at 1/s: the outbox was not flooded.
    const flood = events('flow.flood').length;
    expect(flood).toBeGreaterThanOrEqual(5);
    expect(flood).toBeLessThanOrEqual(5 + 10);
    const text = spawnSync(process.execPath, [CLI, 'status', '-s', rig.daemon.socket], { encoding: 'utf8' }).stdout;
    expect(text).toMatch(/nodered {4}running at http:\/\/127\.0\.0\.1:\d+\//);
    expect(text).toMatch(/node {5}thrower \(function\): 1 errors, 0 refused, last: Error: bad rule/);
    // The health telemetry carries the same, for the call center (a report taken after the flood was counted).
    type NodeHealth = { node: string; type: string; errors: number; refused: number };
    const floodIn = (e: { payload: Record<string, any> }) =>
      ((e.payload.extensions?.nodered?.node_errors ?? []) as NodeHealth[]).find((n) => n.node === 'flood' && n.refused > 4900);
    await rig.sub.waitFor(() => events('health').some(floodIn), 15_000, 'health with the flood counted');
    const health = events('health').find(floodIn)!.payload.extensions.nodered;
    expect(health).toMatchObject({ state: 'running', restarts: 0 });
    expect(health.node_errors).toContainEqual({ node: 'thrower', type: 'function', errors: 1, refused: 0 });
  });

  it('a flow that loops forever is killed and restarted; panics pressed meanwhile reach the broker', async () => {
    const t = nid('t');
    const flow: Flow = [
      tab(t, 'hang'),
      {
        id: nid('n'),
        type: 'inject',
        z: t,
        name: '',
        once: true,
        onceDelay: 0.5,
        repeat: '',
        topic: '',
        payload: '',
        payloadType: 'date',
        wires: [[nid('n')]],
      },
    ];
    const inject = flow[1] as { wires: string[][] };
    flow.push({ id: inject.wires[0]![0]!, type: 'function', z: t, name: 'forever', func: 'while (true) {}', outputs: 1, wires: [[]] });
    const before = events('alarm.panic').length;
    await deploy(rig, flow);
    await new Promise((r) => setTimeout(r, 700)); // the loop has started: the runtime no longer answers
    await press();
    await rig.sub.waitFor(() => events('alarm.panic').length > before, 5_000, 'alarm.panic while Node-RED hangs');
    await rig.sub.waitFor(() => events('nodered.failed').some((e) => e.payload.reason === 'hung'), 15_000, 'nodered.failed (hung)');
    await rig.sub.waitFor(() => events('nodered.restarted').length > 0, 15_000, 'nodered.restarted');
    const failed = events('nodered.failed').find((e) => e.payload.reason === 'hung')!;
    expect(failed.priority).toBe('hit');
    expect(failed.payload.detail).toMatch(/no heartbeat answer/);
    expect(rig.daemon.alive).toBe(true);
    const nr = await nodeRedStatus(rig.daemon);
    expect(nr.restarts).toBeGreaterThanOrEqual(1);
    expect(nr.last_failure.reason).toBe('hung');
  });

  it('a flow that allocates without bound hits the memory cap and is restarted', async () => {
    // Deployed while the runtime is up between hangs (the flows above keep hanging it until replaced).
    const t = nid('t');
    const grow = nid('n');
    const flow: Flow = [
      tab(t, 'leak'),
      { id: nid('n'), type: 'inject', z: t, name: '', once: true, onceDelay: 0.3, repeat: '', topic: '', payload: '', payloadType: 'date', wires: [[grow]] },
      {
        id: grow,
        type: 'function',
        z: t,
        name: 'leak',
        func: 'const keep = []; for (;;) keep.push(new Array(1e5).fill(Math.random()));',
        outputs: 1,
        wires: [[]],
      },
    ];
    const end = Date.now() + 20_000;
    for (;;) {
      try {
        await deploy(rig, flow);
        break;
      } catch (err) {
        if (Date.now() > end) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await rig.sub.waitFor(() => events('nodered.failed').some((e) => e.payload.reason === 'out_of_memory'), 30_000, 'nodered.failed (out_of_memory)');
    expect(rig.daemon.alive).toBe(true);
  });
});
