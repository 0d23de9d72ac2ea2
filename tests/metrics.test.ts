import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { DaemonProcess, writeDeviceConfig } from './helpers/daemon.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { plateHitPayload } from './helpers/plate-hit.js';
import { freePort } from './helpers/ports.js';
import { type Family, parseExposition, sampleValue } from './helpers/prometheus.js';
import { Subscriber } from './helpers/subscriber.js';

// The Prometheus endpoint of the real daemon, scraped over HTTP and read strictly.

type Burst = { ids: string[] };

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('metrics endpoint (real daemon, real Mosquitto)', () => {
  it('serves the text exposition, parsed strictly, and its values move with events', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const sub = new Subscriber(broker.url);
    await sub.connect();
    cleanups.push(() => sub.close());
    const port = await freePort();
    const cfg = writeDeviceConfig(broker.url, {
      metrics: { enabled: true, listen: `127.0.0.1:${port}` },
      hardware: { backend: 'sim', inputs: { panic: { line: 'GPIO17', kind: 'panic' } } },
      outbox: { quota_bytes: { telemetry: '8KiB' } },
    });
    const daemon = new DaemonProcess(cfg.file, cfg.socket);
    cleanups.push(() => daemon.kill('SIGKILL'));
    await daemon.start();
    const url = `http://127.0.0.1:${port}`;
    const scrape = async (): Promise<Map<string, Family>> => {
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return parseExposition(await res.text());
    };
    const until = async (what: string, pred: (m: Map<string, Family>) => boolean) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        // The endpoint opens once the extensions have started, just after the control socket answers.
        const m = await scrape().catch((err: Error) => {
          if ((err.cause as { code?: string } | undefined)?.code !== 'ECONNREFUSED') throw err;
          return undefined;
        });
        if (m && pred(m)) return m;
        if (Date.now() > deadline) throw new Error(`metrics never showed ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    const first = await until('the link up', (m) => sampleValue(m, 'vigia_uplink_up') === 1);
    await until('the command subscription granted', (m) => sampleValue(m, 'vigia_uplink_subscribed') === 1);
    const types = Object.fromEntries([...first].map(([name, f]) => [name, f.type]));
    expect(types).toMatchObject({
      vigia_info: 'gauge',
      vigia_outbox_depth: 'gauge',
      vigia_outbox_evicted_total: 'counter',
      vigia_delivery_latency_seconds: 'histogram',
      vigia_uplink_reconnects_total: 'counter',
      vigia_camera_frames_total: 'counter',
      vigia_anpr_latency_seconds: 'histogram',
      vigia_plate_hits_total: 'counter',
      vigia_gpio_edges_total: 'counter',
      nodejs_eventloop_lag_seconds: 'gauge',
      process_cpu_user_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
    });
    for (const [name, f] of first) expect(f.help, name).toBeTruthy();
    expect(first.get('vigia_outbox_depth')!.samples.map((s) => s.labels.priority)).toEqual(['alarm', 'hit', 'read', 'telemetry']);
    expect(sampleValue(first, 'vigia_info', { device: 'pole-0001', site: 'test-site', profile: 'pole' })).toBe(1);
    expect(sampleValue(first, 'vigia_uplink_reconnects_total')).toBe(0);
    expect(sampleValue(first, 'vigia_plate_hits_total')).toBe(0);
    const delivered = (m: Map<string, Family>) =>
      sampleValue(m, 'vigia_delivery_latency_seconds', { priority: 'read' }, 'vigia_delivery_latency_seconds_count') ?? 0;
    const before = delivered(first);

    // Delivered events are timed from acceptance to PUBACK.
    const reads = await daemon.request<Burst>('sim.burst', { count: 50, type: 'sim.read', priority: 'read' });
    await sub.waitFor(() => sub.missing(reads.ids).length === 0, 20_000, 'the reads');
    await until('50 deliveries timed', (m) => delivered(m) >= before + 50);

    // Raw GPIO edges, and hits counted from the bus.
    await daemon.request('sim.input', { input: 'panic', active: true });
    await daemon.request('sim.input', { input: 'panic', active: false });
    await daemon.request('sim.event', { type: 'plate.hit', priority: 'alarm', payload: plateHitPayload(null) });
    await until(
      'the edges and the hit',
      (m) => sampleValue(m, 'vigia_gpio_edges_total', { input: 'panic' }) === 2 && sampleValue(m, 'vigia_plate_hits_total') === 1,
    );

    // An outage: the backlog shows per priority, the telemetry quota evicts, the reconnect is counted.
    await broker.kill('SIGKILL');
    await until('the link down', (m) => sampleValue(m, 'vigia_uplink_up') === 0);
    expect(sampleValue(await scrape(), 'vigia_uplink_subscribed')).toBe(0);
    await daemon.request<Burst>('sim.burst', { count: 100, type: 'sim.tele', priority: 'telemetry' });
    await daemon.request<Burst>('sim.burst', { count: 3, type: 'sim.alarm', priority: 'alarm' });
    const outage = await scrape();
    expect(sampleValue(outage, 'vigia_outbox_depth', { priority: 'alarm' })).toBe(3);
    expect(sampleValue(outage, 'vigia_outbox_depth', { priority: 'telemetry' })).toBeLessThan(100);
    expect(sampleValue(outage, 'vigia_outbox_evicted_total', { priority: 'telemetry', reason: 'quota' })).toBeGreaterThan(0);
    await broker.restart();
    await until(
      'the reconnect and the backlog sent',
      (m) => sampleValue(m, 'vigia_uplink_reconnects_total') === 1 && sampleValue(m, 'vigia_outbox_depth', { priority: 'alarm' }) === 0,
    );

    expect((await fetch(`${url}/`)).status).toBe(404);
  });

  it('refuses a listen address off the machine unless allowed', () => {
    const base = 'device: {id: pole-0001, site: test-site, profile: pole}\nmqtt: {url: "mqtt://127.0.0.1:1883"}\n';
    const load = (metrics: string) => parseConfig(`${base}metrics: ${metrics}\n`, 'vigia.yaml');
    expect(() => load('{enabled: true, listen: "0.0.0.0:9464"}')).toThrow(ConfigError);
    expect(() => load('{enabled: true, listen: "0.0.0.0:9464"}')).toThrow(/metrics\.listen: not a loopback address/);
    expect(() => load('{enabled: true, listen: "nine"}')).toThrow(/expected host:port/);
    expect(load('{enabled: true, listen: "0.0.0.0:9464", allow_remote: true}').metrics.allow_remote).toBe(true);
    expect(load('{enabled: true, listen: "[::1]:9464"}').metrics.listen).toBe('[::1]:9464');
    expect(load('{}').metrics).toEqual({ enabled: false, listen: '127.0.0.1:9464', allow_remote: false });
  });
});
