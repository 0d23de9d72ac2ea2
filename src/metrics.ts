import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AnprExtension } from './anpr/extension.js';
import type { EventBus } from './core/bus.js';
import { PRIORITIES, type Priority } from './core/event.js';
import type { FieldIo } from './features/field-io.js';
import type { Uplink } from './gateway/uplink.js';
import type { DaemonStatus } from './status.js';

/**
 * The Prometheus metrics. Cheap on the hot path: what the daemon already counts is read from its
 * status once per scrape; the only per-event work is a histogram observation at each PUBACK and
 * per frame read (children bound in advance, so nothing is allocated) and a type comparison per
 * accepted event on the bus, after the event is on disk.
 */

export interface MetricsSources {
  status: () => DaemonStatus;
  uplink: Pick<Uplink, 'onDelivered'>;
  bus: Pick<EventBus, 'on'>;
  /** Plate reading, when it runs: its read latency is observed. */
  anpr: Pick<AnprExtension, 'observeReadLatency'> | undefined;
}

type AnprStatus = ReturnType<AnprExtension['status']>;
type FieldIoStatus = ReturnType<FieldIo['status']>;

/** Seconds from acceptance (on disk) to the broker's PUBACK: milliseconds when all is well, hours after an outage. */
const DELIVERY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21_600];
/** Seconds a frame spends in the worker pool (queue, detection, recognition) on a Pi. */
const ANPR_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];

export class Metrics {
  readonly registry = new Registry();
  #status: DaemonStatus | undefined;
  #offBus: (() => void) | undefined;

  constructor(private readonly sources: MetricsSources) {}

  start(): void {
    const { registry, sources } = this;
    collectDefaultMetrics({ register: registry });
    const status = () => {
      this.#status ??= sources.status();
      return this.#status;
    };
    const gauge = (name: string, help: string, labelNames: string[], read: (g: Gauge) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        collect: function (this: Gauge) {
          this.reset();
          read(this);
        },
      });
    // Counters the daemon keeps itself: the value read at scrape time is the counter's value.
    const counter = (name: string, help: string, labelNames: string[], read: (set: (labels: Record<string, string>, value: number) => void) => void) =>
      new Counter({
        name,
        help,
        labelNames,
        registers: [registry],
        collect: function (this: Counter) {
          this.reset();
          read((labels, value) => this.inc(labels, value));
        },
      });

    gauge('vigia_info', 'The device and the version it runs (always 1)', ['version', 'device', 'site', 'profile'], (g) => {
      const s = status();
      g.set({ version: s.version, device: s.device, site: s.site, profile: s.profile }, 1);
    });
    gauge('vigia_outbox_depth', 'Events waiting in the outbox', ['priority'], (g) => {
      for (const p of PRIORITIES) g.set({ priority: p }, status().outbox.by_priority[p].depth);
    });
    gauge('vigia_outbox_bytes', 'Bytes of the events waiting in the outbox', ['priority'], (g) => {
      for (const p of PRIORITIES) g.set({ priority: p }, status().outbox.by_priority[p].bytes);
    });
    gauge('vigia_outbox_oldest_unsent_seconds', 'Age of the oldest event waiting', ['priority'], (g) => {
      for (const p of PRIORITIES) g.set({ priority: p }, (status().outbox.by_priority[p].oldestAgeMs ?? 0) / 1000);
    });
    gauge('vigia_disk_full', '1 while the disk is full and only alarms are stored', [], (g) => g.set(status().disk.full ? 1 : 0));
    counter('vigia_outbox_evicted_total', 'Events evicted before delivery (and reported)', ['priority', 'reason'], (set) => {
      for (const [priority, reasons] of Object.entries(status().outbox.evicted)) {
        for (const [reason, n] of Object.entries(reasons)) set({ priority, reason }, n);
      }
    });
    gauge('vigia_uplink_up', '1 while the link to the broker is up', [], (g) => g.set(status().link.state === 'online' ? 1 : 0));
    gauge('vigia_uplink_subscribed', '1 while the link is up and the broker has granted the command subscription', [], (g) =>
      g.set(status().link.subscribed ? 1 : 0),
    );
    counter('vigia_uplink_connects_total', 'Connections made to the broker', [], (set) => set({}, status().link.connects));
    counter('vigia_uplink_reconnects_total', 'Connections made after the first one', [], (set) => set({}, Math.max(0, status().link.connects - 1)));
    counter('vigia_uplink_published_total', 'Events published (resends included)', [], (set) => set({}, status().link.published));
    counter('vigia_uplink_acked_total', 'Events the broker acknowledged', [], (set) => set({}, status().link.acked));
    counter('vigia_uplink_refused_total', 'Publishes the broker refused (MQTT 5 reason code 0x80 or above)', [], (set) => set({}, status().link.refused.total));
    counter('vigia_commands_executed_total', 'Signed commands executed', [], (set) => set({}, status().commands.executed));
    counter('vigia_commands_refused_total', 'Commands refused, by reason', ['reason'], (set) => {
      for (const [reason, n] of Object.entries(status().commands.rejected)) set({ reason }, n ?? 0);
    });
    counter('vigia_camera_frames_total', 'Camera frames by what became of them', ['camera', 'result'], (set) => {
      const anpr = (status() as { anpr?: AnprStatus }).anpr;
      for (const [camera, c] of Object.entries(anpr?.cameras ?? {})) {
        set({ camera, result: 'received' }, c.frames);
        set({ camera, result: 'invalid' }, c.dropped);
        set({ camera, result: 'dropped' }, c.dropped_latest);
        set({ camera, result: 'idle' }, c.idle);
        set({ camera, result: 'busy' }, c.busy);
        set({ camera, result: 'read' }, c.read);
      }
    });
    gauge('vigia_camera_up', '1 while a camera delivers frames', ['camera'], (g) => {
      const anpr = (status() as { anpr?: AnprStatus }).anpr;
      for (const [camera, c] of Object.entries(anpr?.cameras ?? {})) g.set({ camera }, c.state === 'running' ? 1 : 0);
    });
    counter('vigia_gpio_edges_total', 'Raw edges seen on each GPIO input, bounces included', ['input'], (set) => {
      const io = (status() as { 'field-io'?: FieldIoStatus })['field-io'];
      for (const [input, i] of Object.entries(io?.inputs ?? {})) set({ input }, i.edges);
    });

    const hits = new Counter({ name: 'vigia_plate_hits_total', help: 'plate.hit events accepted (hotlist matches)', registers: [registry] });
    this.#offBus = sources.bus.on(
      'event.accepted',
      (event) => {
        if (event.type === 'plate.hit') hits.inc();
      },
      'metrics',
    );

    const delivery = new Histogram({
      name: 'vigia_delivery_latency_seconds',
      help: 'Time from an event accepted (on disk) to the broker acknowledging it',
      labelNames: ['priority'],
      buckets: DELIVERY_BUCKETS,
      registers: [registry],
    });
    const byPriority = Object.fromEntries(PRIORITIES.map((p) => [p, delivery.labels({ priority: p })])) as Record<Priority, ReturnType<Histogram['labels']>>;
    sources.uplink.onDelivered((priority, ms) => byPriority[priority].observe(ms / 1000));

    const anprLatency = new Histogram({
      name: 'vigia_anpr_latency_seconds',
      help: 'Time a camera frame spent in plate reading (queue, detection, recognition)',
      buckets: ANPR_BUCKETS,
      registers: [registry],
    });
    sources.anpr?.observeReadLatency((ms) => anprLatency.observe(ms / 1000));
  }

  /** The text exposition of every metric; the daemon's status is read once for all of them. */
  async scrape(): Promise<string> {
    this.#status = undefined;
    try {
      return await this.registry.metrics();
    } finally {
      this.#status = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  stop(): void {
    this.#offBus?.();
    this.sources.uplink.onDelivered(undefined);
    this.sources.anpr?.observeReadLatency(undefined);
    this.registry.clear();
  }
}
