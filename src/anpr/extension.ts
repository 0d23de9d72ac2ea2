import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { wallIsoAt } from '../core/clock.js';
import type { EventPayload } from '../core/events.js';
import { CommandError, type Extension, type ExtensionContext, NO_ARGS } from '../core/extension.js';
import { decodeCanonicalBase64 } from '../core/keys.js';
import { nextFrame } from '../drivers/camera/grab.js';
import { createFrameSource, motionGated, type CameraConfig } from '../drivers/camera/index.js';
import { type Frame, type FrameSource, type FrameSourceDeps, LatestFrameSlot } from '../drivers/camera/source.js';
import type { ReadOptions, ReadResult } from './engine.js';
import { EvidenceStore } from './evidence.js';
import { displayPlate, grammarFor, matchesForRead } from './grammar.js';
import type { PlateGrammar } from './grammars/types.js';
import type { HotlistMatch } from './hotlist/list.js';
import { HotlistFreshness } from './hotlist/freshness.js';
import { normalisePlate } from './hotlist/plate-code.js';
import { HotlistStore, type HotlistUpdate } from './hotlist/source.js';
import { ImageRejected } from './image.js';
import { FrameDecodeError, MotionGate, pointInPolygon } from './motion.js';
import { rankWithGrammar, type RankedPlate } from './pipeline.js';
import { plateHash } from './privacy.js';
import { PlateTracker, type VotedRead } from './vote.js';
import { AnprBusyError, AnprWorkerPool } from './worker.js';

/**
 * Cameras to events: frame sources → motion gate → worker pool (detect, recognise) → grammar →
 * hotlist match (plate.hit at once, from a single confident frame) → voting over frames
 * (plate.read per passage, and a hit if only the vote matches). The main thread only moves
 * frames and small results; decoding and inference run in the workers.
 */

export type AnprContext = Pick<ExtensionContext<Config>, 'config' | 'logger' | 'clock' | 'clockTrust' | 'paths' | 'emit' | 'commands' | 'control' | 'health'>;

const DELTA_ARGS = z
  .object({
    delta: z.string({ error: '"delta" must be the delta document as a string (the exact bytes that were signed)' }),
    signature: z.string({ error: '"signature" must be the base64 Ed25519 signature of "delta"' }),
  })
  .strict();

const LOOKUP_ARGS = z
  .object({
    plate: z.string({ error: '"plate" must be the plate text' }).max(32),
    fuzzy: z.boolean().default(false),
  })
  .strict();

/** What the extension needs besides the context; tests swap the camera factory or the pool. */
export interface AnprDeps {
  createSource?: (cam: CameraConfig, deps: FrameSourceDeps) => FrameSource;
  createPool?: () => Pick<AnprWorkerPool, 'read' | 'ready' | 'stats' | 'close'>;
}

type Pool = ReturnType<NonNullable<AnprDeps['createPool']>>;

interface CameraRuntime {
  config: CameraConfig;
  source: FrameSource;
  slot: LatestFrameSlot;
  gate: MotionGate | null;
  grammar: PlateGrammar;
  /** Recent frames that had plates, by monotonic time: the evidence for a hit raised by a vote. */
  recent: Map<number, Frame>;
  online: boolean | null;
  /** The last frame received, for `vigia camera snapshot` when no new one comes (an upload camera between cars). */
  latest: Frame | null;
  loop: Promise<void> | undefined;
  counters: { frames: number; idle: number; read: number; busy: number; plates: number; reused: number; detectedShare: number };
  /** The last frame's readings, for reusing unchanged plates (anpr.saving.reuse_unchanged). */
  previous: ReadResult['plates'];
}

/** Frames kept per camera for evidence of a voted hit. */
const RECENT_FRAMES = 12;
const FLUSH_INTERVAL_MS = 250;
/** How often the hotlist's age is checked against anpr.hotlist.max_age. */
const FRESHNESS_INTERVAL_MS = 60_000;

export class AnprExtension implements Extension {
  readonly name = 'anpr';
  #cameras: CameraRuntime[] = [];
  #pool: Pool | undefined;
  #tracker: PlateTracker | undefined;
  #hotlist: HotlistStore | undefined;
  #evidence: EvidenceStore | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #freshnessTimer: NodeJS.Timeout | undefined;
  #freshness: HotlistFreshness | undefined;
  /** Last hit per camera and hotlist plate (monotonic ms), for the hit de-duplication window. */
  #lastHit = new Map<string, number>();
  #state: 'stopped' | 'starting' | 'running' | 'failed' = 'stopped';
  #failure: string | null = null;
  #removeHealth: (() => void) | null = null;
  #lastHotlistProblem: string | null = null;
  #onReadLatency: ((ms: number) => void) | undefined;
  #counters = { rejected: {} as Record<string, number>, reads: 0, readsSuppressed: 0, hits: 0, errors: 0 };

  constructor(
    private readonly ctx: AnprContext,
    private readonly deps: AnprDeps = {},
  ) {}

  async start(): Promise<void> {
    const { ctx } = this;
    const cfg = ctx.config.anpr;
    const log = ctx.logger.child({ mod: 'anpr' });
    this.#state = 'starting';

    this.#hotlist = new HotlistStore({
      dataDir: ctx.paths.dataDir,
      site: ctx.config.device.site,
      ...(cfg.hotlist.public_key ? { publicKey: cfg.hotlist.public_key.reveal() } : {}),
      now: () => ctx.clock.wallNow(),
      logger: ctx.logger.child({ mod: 'hotlist' }),
    });
    this.#freshness = new HotlistFreshness({
      maxAgeMs: cfg.hotlist.max_age,
      now: () => ctx.clock.wallNow(),
      clockSynced: () => ctx.clockTrust.synced(),
    });
    await this.#hotlistUpdated(await this.#hotlist.open(), 'cache');
    if (cfg.hotlist.file) await this.#hotlistUpdated(await this.#hotlist.load(resolve(cfg.hotlist.file)), cfg.hotlist.file);
    this.#registerCommands();
    ctx.control.handle('camera.snapshot', (args) => this.#snapshot(args));
    this.#removeHealth = ctx.health.provide('anpr', () => this.#health());

    this.#evidence = new EvidenceStore({
      dir: resolve(cfg.evidence.dir ?? resolve(ctx.paths.dataDir, 'evidence')),
      retentionMs: cfg.evidence.retention,
      maxBytes: cfg.evidence.max_bytes,
      frameWidth: cfg.evidence.frame_width,
      jpegQuality: cfg.evidence.jpeg_quality,
      clock: ctx.clock,
      clockSynced: () => ctx.clockTrust.synced(),
      logger: log,
    });
    await this.#evidence.start();

    this.#tracker = new PlateTracker({
      dedupWindowMs: cfg.tracking.dedup_window,
      maxGapMs: cfg.tracking.max_gap,
      maxTrackMs: cfg.tracking.max_track,
      minFrames: cfg.tracking.min_frames,
      clock: ctx.clock,
    });

    this.#pool =
      this.deps.createPool?.() ??
      new AnprWorkerPool({
        workers: cfg.workers,
        ...(cfg.threads_per_worker ? { threadsPerWorker: cfg.threads_per_worker } : {}),
        engine: { detector: cfg.detector, recogniser: cfg.recogniser, maxSide: cfg.detector_max_side },
      });
    try {
      await this.#pool.ready();
    } catch (err) {
      // Plate reading is down, alarms are not: report it and keep the daemon running.
      this.#state = 'failed';
      this.#failure = (err as Error).message;
      log.error({ err: this.#failure }, 'ANPR models could not be loaded; plate reading is off');
      await ctx.emit('anpr.failed', { error: this.#failure });
      return;
    }

    const createSource = this.deps.createSource ?? createFrameSource;
    for (const cam of cfg.cameras) {
      const runtime: CameraRuntime = {
        config: cam,
        source: createSource(cam, { clock: ctx.clock, logger: ctx.logger.child({ mod: 'camera', camera: cam.id }) }),
        slot: new LatestFrameSlot(),
        gate: motionGated(cam, cfg.motion.enabled)
          ? new MotionGate({
              width: cfg.motion.width,
              threshold: cfg.motion.threshold,
              minChangedFraction: cfg.motion.min_changed,
              cooldownMs: cfg.motion.cooldown,
              ...(cam.roi ? { roi: cam.roi } : {}),
            })
          : null,
        grammar: grammarFor(cam.grammar ?? cfg.grammar, cam.secondary_grammars ?? cfg.secondary_grammars),
        recent: new Map(),
        online: null,
        latest: null,
        loop: undefined,
        counters: { frames: 0, idle: 0, read: 0, busy: 0, plates: 0, reused: 0, detectedShare: 0 },
        previous: [],
      };
      runtime.source.on('frame', (frame) => {
        runtime.counters.frames++;
        runtime.latest = frame;
        runtime.slot.put(frame);
      });
      runtime.source.on('state', (state, lastError) => void this.#cameraState(runtime, state, lastError));
      this.#cameras.push(runtime);
    }
    for (const cam of this.#cameras) {
      cam.loop = this.#consume(cam);
      cam.source.start();
    }

    this.#flushTimer = setInterval(() => void this.#flush(), FLUSH_INTERVAL_MS);
    this.#flushTimer.unref();
    if (cfg.hotlist.url) {
      void this.#refresh();
      this.#refreshTimer = setInterval(() => void this.#refresh(), cfg.hotlist.refresh);
      this.#refreshTimer.unref();
    }
    // On its own timer: a list that stops changing (304 forever, no network) must still be reported.
    this.#freshnessTimer = setInterval(() => void this.#checkFreshness(), Math.min(FRESHNESS_INTERVAL_MS, cfg.hotlist.refresh));
    this.#freshnessTimer.unref();
    await this.#checkFreshness();
    this.#state = 'running';
    log.info({ cameras: cfg.cameras.map((c) => c.id), workers: cfg.workers, hotlist: this.#hotlist.stats().size }, 'plate reading started');
  }

  async stop(): Promise<void> {
    this.#removeHealth?.();
    this.#removeHealth = null;
    clearInterval(this.#flushTimer);
    clearInterval(this.#refreshTimer);
    clearInterval(this.#freshnessTimer);
    for (const cam of this.#cameras) cam.slot.close();
    await Promise.all(this.#cameras.map((cam) => cam.source.stop()));
    await Promise.all(this.#cameras.map((cam) => cam.loop));
    // Passages still open are reported now rather than lost with the process.
    if (this.#tracker) await this.#emitVoted(this.#tracker.drain());
    await this.#pool?.close();
    await this.#evidence?.stop();
    await this.#hotlist?.close();
    this.#cameras = [];
    this.#state = 'stopped';
  }

  /** Called with the time (ms) each frame took from the worker pool's queue to its readings (metrics). */
  observeReadLatency(listener: ((ms: number) => void) | undefined): void {
    this.#onReadLatency = listener;
  }

  /**
   * The health report's section: what the call center shows per device (each camera's state, the
   * list's version so it can tell which devices have a new list), not the counters of `status`.
   */
  #health() {
    const h = this.#hotlist?.stats();
    return {
      state: this.#state,
      cameras: Object.fromEntries(this.#cameras.map((c) => [c.config.id, c.source.stats().state])),
      hotlist: h ? { version: h.version, serial: h.serial, size: h.size, stale: this.#freshness?.status(h)?.stale ?? false } : null,
    };
  }

  status() {
    return {
      state: this.#state,
      error: this.#failure,
      cameras: Object.fromEntries(
        this.#cameras.map((c) => {
          const { detectedShare, ...counters } = c.counters;
          // Mean share of the frame the detector looked at (1: whole frames; less with motion regions).
          const detected_share = c.counters.read > 0 ? Math.round((detectedShare / c.counters.read) * 1000) / 1000 : null;
          return [c.config.id, { ...c.source.stats(), ...counters, detected_share, dropped_latest: c.slot.stats().dropped }];
        }),
      ),
      workers: this.#pool?.stats() ?? null,
      tracker: this.#tracker?.stats() ?? null,
      reads: this.#counters.reads,
      reads_not_sent: this.#counters.readsSuppressed,
      hits: this.#counters.hits,
      rejected_frames: { ...this.#counters.rejected },
      errors: this.#counters.errors,
      hotlist: this.#hotlistStatus(),
      evidence: this.#evidence?.stats() ?? null,
    };
  }

  // ----------------------------------------------------------------------------------------------
  // Frames

  async #consume(cam: CameraRuntime): Promise<void> {
    for await (const frame of cam.slot) {
      try {
        await this.#process(cam, frame);
      } catch (err) {
        this.#counters.errors++;
        this.ctx.logger.error({ mod: 'anpr', camera: cam.config.id, err }, 'frame processing failed');
      }
    }
  }

  async #process(cam: CameraRuntime, frame: Frame): Promise<void> {
    const saving = this.ctx.config.anpr.saving;
    const opts: ReadOptions = {};
    if (cam.gate) {
      try {
        const { motion, region } = await cam.gate.check(frame.jpeg, frame.monoMs);
        if (!motion) {
          cam.counters.idle++;
          cam.previous = [];
          return;
        }
        if (region && saving.motion_region) opts.region = region;
      } catch (err) {
        if (err instanceof FrameDecodeError) return this.#reject('corrupt');
        throw err;
      }
    }
    if (saving.reuse_unchanged && cam.previous.length > 0) opts.previous = cam.previous;
    let result: ReadResult;
    try {
      const started = this.ctx.clock.monoNow();
      // The pool takes the bytes it is given; the frame keeps its own for the evidence.
      result = await this.#pool!.read(new Uint8Array(frame.jpeg), opts);
      this.#onReadLatency?.(this.ctx.clock.monoNow() - started);
    } catch (err) {
      cam.previous = [];
      if (err instanceof AnprBusyError) {
        cam.counters.busy++;
        return;
      }
      if (err instanceof ImageRejected) return this.#reject(err.reason);
      throw err;
    }
    cam.previous = result.plates;
    cam.counters.reused += result.timings.reused;
    cam.counters.detectedShare += result.timings.detectedShare;
    cam.counters.read++;
    const cfg = this.ctx.config.anpr;
    const plates = rankWithGrammar(result.plates, cam.grammar).filter(
      (p) => p.confidence >= cfg.min_confidence && insideRoi(cam.config.roi, p.box, result.width, result.height),
    );
    if (plates.length === 0) return;
    cam.counters.plates += plates.length;
    cam.recent.set(frame.monoMs, frame);
    while (cam.recent.size > RECENT_FRAMES) cam.recent.delete(cam.recent.keys().next().value!);

    for (const plate of plates) {
      this.#tracker!.add(cam.config.id, {
        text: plate.text,
        chars: plate.chars,
        confidence: plate.confidence,
        box: plate.box,
        frameMono: frame.monoMs,
        ...(plate.format ? { format: plate.format } : {}),
        ...(plate.country ? { country: plate.country } : {}),
      });
      if (plate.confidence >= cfg.hits.min_confidence) await this.#matchFrame(cam, frame, plate, result);
    }
  }

  #reject(reason: string): void {
    this.#counters.rejected[reason] = (this.#counters.rejected[reason] ?? 0) + 1;
  }

  // ----------------------------------------------------------------------------------------------
  // Hits

  /** The hotlist matches for a read; a foreign read (secondary grammar) matches exactly or not at all. */
  #lookup(cam: CameraRuntime, text: string, country: string | null | undefined): HotlistMatch[] {
    const matches = this.#hotlist!.current().lookup(text, { fuzzy: this.ctx.config.anpr.hits.fuzzy, now: this.ctx.clock.wallNow() });
    return matchesForRead(matches, country, cam.grammar.country);
  }

  /** The matches not already reported for this camera within the de-duplication window; marks them reported. */
  #fresh(cameraId: string, matches: HotlistMatch[], monoMs: number): HotlistMatch[] {
    const window = this.ctx.config.anpr.hits.dedup_window;
    const out: HotlistMatch[] = [];
    for (const m of matches) {
      const key = `${cameraId}\u0000${m.entry.plate}`;
      const last = this.#lastHit.get(key);
      if (last !== undefined && monoMs - last < window) continue;
      this.#lastHit.set(key, monoMs);
      out.push(m);
    }
    if (this.#lastHit.size > 10_000) {
      for (const [k, t] of this.#lastHit) if (monoMs - t >= window) this.#lastHit.delete(k);
    }
    return out;
  }

  async #matchFrame(cam: CameraRuntime, frame: Frame, plate: RankedPlate, result: ReadResult): Promise<void> {
    const matches = this.#fresh(cam.config.id, this.#lookup(cam, plate.text, plate.country), frame.monoMs);
    for (const match of matches) {
      await this.#emitHit(cam, frame, match, {
        trigger: 'frame',
        text: plate.text,
        confidence: plate.confidence,
        format: plate.format,
        country: plate.country ?? null,
        box: plate.box,
        frame_size: [result.width, result.height],
        frames: 1,
      });
    }
  }

  async #emitHit(
    cam: CameraRuntime,
    frame: Frame | undefined,
    match: HotlistMatch,
    read: {
      trigger: 'frame' | 'vote';
      text: string;
      confidence: number;
      format: string | null;
      country: string | null;
      box: readonly number[];
      frame_size?: [number, number];
      frames: number;
    },
  ): Promise<void> {
    const { ctx } = this;
    let evidence: EventPayload<'plate.hit'>['evidence'] = null;
    if (frame) {
      try {
        evidence = {
          ...(await this.#evidence!.capture(frame.jpeg, read.box as [number, number, number, number], { camera: cam.config.id, plate: read.text })),
        };
      } catch (err) {
        ctx.logger.warn({ mod: 'anpr', camera: cam.config.id, err: (err as Error).message }, 'hit evidence could not be made');
      }
    }
    this.#counters.hits++;
    await ctx.emit('plate.hit', {
      camera: cam.config.id,
      plate: read.text,
      display: displayPlate(cam.grammar, read.text, read.country),
      confidence: round3(read.confidence),
      format: read.format,
      ...(read.country ? { country: read.country } : {}),
      trigger: read.trigger,
      frames: read.frames,
      box: read.box.map(Math.round),
      ...(read.frame_size ? { frame_size: read.frame_size } : {}),
      seen_at: new Date(frame?.wallMs ?? ctx.clock.wallNow()).toISOString(),
      match: { kind: match.kind, distance: match.distance },
      entry: match.entry,
      hotlist_version: this.#hotlist!.current().version,
      evidence,
    });
    // The listed plate only: a confusable read may be the plate of an innocent car, which never goes in the journal.
    ctx.logger.warn(
      { mod: 'anpr', camera: cam.config.id, listed: match.entry.plate, kind: match.kind, distance: match.distance, trigger: read.trigger },
      'hotlist hit',
    );
  }

  // ----------------------------------------------------------------------------------------------
  // Voted reads

  async #flush(): Promise<void> {
    try {
      await this.#emitVoted(this.#tracker!.flush());
    } catch (err) {
      this.#counters.errors++;
      this.ctx.logger.error({ mod: 'anpr', err }, 'could not report plate reads');
    }
  }

  async #emitVoted(voted: VotedRead[]): Promise<void> {
    const { ctx } = this;
    const privacy = ctx.config.anpr.privacy;
    for (const v of voted) {
      const cam = this.#cameras.find((c) => c.config.id === v.cameraId);
      if (!cam) continue;
      const matches = this.#lookup(cam, v.text, v.country);
      const fresh = this.#fresh(v.cameraId, matches, v.lastSeenMono);
      for (const match of fresh) {
        const frame = cam.recent.get(v.bestFrameMono);
        await this.#emitHit(cam, frame, match, {
          trigger: 'vote',
          text: v.text,
          confidence: v.confidence,
          format: v.format,
          country: v.country,
          box: v.box,
          frames: v.frames,
        });
      }
      this.#counters.reads++;
      const hit = matches.length > 0;
      // A wanted vehicle's read is always sent in full; the privacy setting covers everyone else.
      const mode = hit ? 'full' : privacy.reads;
      if (mode === 'off') {
        this.#counters.readsSuppressed++;
        continue;
      }
      const identity =
        mode === 'full'
          ? { plate: v.text, display: displayPlate(cam.grammar, v.text, v.country), per_char_confidence: v.perCharConfidence.map(round3) }
          : { plate_hash: plateHash(privacy.hash_key!.reveal(), v.text), hash: 'hmac-sha256' as const };
      await ctx.emit('plate.read', {
        camera: v.cameraId,
        ...identity,
        confidence: round3(v.confidence),
        format: v.format,
        ...(v.country ? { country: v.country } : {}),
        frames: v.frames,
        first_seen: this.#wallIso(v.firstSeenMono),
        last_seen: this.#wallIso(v.lastSeenMono),
        box: v.box.map(Math.round),
        hit,
      });
    }
  }

  #wallIso(mono: number): string {
    return wallIsoAt(this.ctx.clock, mono);
  }

  // ----------------------------------------------------------------------------------------------
  // Cameras and hotlist

  async #cameraState(cam: CameraRuntime, state: string, lastError: string | null): Promise<void> {
    const online = state === 'running' ? true : state === 'backoff' ? false : null;
    if (online === null || online === cam.online) return;
    const wasKnown = cam.online !== null;
    cam.online = online;
    // The first successful start is not news; a camera that never came up, or went away, is.
    if (online && !wasKnown) return;
    try {
      if (online) await this.ctx.emit('camera.online', { camera: cam.config.id });
      else await this.ctx.emit('camera.offline', { camera: cam.config.id, error: lastError });
    } catch (err) {
      this.ctx.logger.error({ mod: 'anpr', err }, 'could not report camera state');
    }
  }

  async #refresh(): Promise<void> {
    const { url, ca } = this.ctx.config.anpr.hotlist;
    if (!url || !this.#hotlist) return;
    let caPem: string | undefined;
    try {
      caPem = ca ? readFileSync(ca, 'utf8') : undefined;
    } catch (err) {
      this.ctx.logger.error({ mod: 'hotlist', ca, err: (err as Error).message }, 'cannot read the hotlist CA file');
      return;
    }
    await this.#hotlistUpdated(await this.#hotlist.fetch(url, caPem ? { ca: caPem } : {}), url);
  }

  /**
   * `vigia camera snapshot` and `vigia doctor` with the daemon running: the camera's next frame
   * (the daemon holds the camera), or the last one it had if none comes in time.
   */
  async #snapshot(args: Record<string, unknown>) {
    const id = String(args.camera ?? '');
    const cam = this.#cameras.find((c) => c.config.id === id);
    if (!cam) {
      const running = this.#cameras.map((c) => c.config.id).join(', ') || 'none';
      throw new CommandError('no_camera', `camera ${JSON.stringify(id)} is not running in the daemon (running: ${running})`);
    }
    const timeoutMs = typeof args.timeout_ms === 'number' && args.timeout_ms > 0 ? Math.min(args.timeout_ms, 60_000) : 10_000;
    let frame: Frame;
    try {
      frame = await nextFrame(cam.source, timeoutMs);
    } catch (err) {
      if (!cam.latest) throw err;
      frame = cam.latest;
    }
    return { camera: id, seq: frame.seq, age_ms: Math.round(this.ctx.clock.monoNow() - frame.monoMs), jpeg: frame.jpeg.toString('base64') };
  }

  #hotlistStatus() {
    if (!this.#hotlist) return null;
    const stats = this.#hotlist.stats();
    // age_s null: no issue time (a local file) or the clock is not synced yet.
    const freshness = this.#freshness?.status(stats) ?? null;
    return { ...stats, stale: freshness?.stale ?? false, age_s: freshness?.age_s ?? null };
  }

  async #checkFreshness(): Promise<void> {
    if (!this.#hotlist || !this.#freshness) return;
    const stale = this.#freshness.check(this.#hotlist.stats());
    if (!stale) return;
    this.ctx.logger.warn({ mod: 'hotlist', ...stale, max_age_ms: this.ctx.config.anpr.hotlist.max_age }, 'hotlist is stale: matching against an old list');
    try {
      await this.ctx.emit('hotlist.stale', stale);
    } catch (err) {
      this.ctx.logger.error({ mod: 'hotlist', err }, 'could not report a stale hotlist');
    }
  }

  async #hotlistUpdated(update: HotlistUpdate, source: string): Promise<void> {
    if (update.ok) {
      this.#lastHotlistProblem = null;
      if (update.status === 'replaced') {
        await this.ctx.emit('hotlist.updated', { source, version: update.version, size: update.size });
      }
      if (this.#state !== 'starting') await this.#checkFreshness();
      return;
    }
    // A refused list is news once (the device goes on matching against the previous one), not at every refresh.
    const problem = `${update.reason}: ${update.detail}`;
    if (problem === this.#lastHotlistProblem) return;
    this.#lastHotlistProblem = problem;
    await this.ctx.emit('hotlist.rejected', {
      source,
      reason: update.reason,
      detail: update.detail,
      errors: update.errors?.slice(0, 20) ?? [],
      kept_version: this.#hotlist!.current().version,
    });
  }

  #registerCommands(): void {
    const { commands } = this.ctx;
    const store = this.#hotlist!;
    commands.register('hotlist.delta', DELTA_ARGS, async ({ delta, signature }) => {
      const sig = decodeCanonicalBase64(signature);
      if (!sig) throw new CommandError('bad_args', '"signature" is not canonical base64');
      const update = await store.applySignedDelta(Buffer.from(delta, 'utf8'), sig);
      await this.#hotlistUpdated(update, 'delta');
      if (!update.ok) throw new CommandError(`hotlist_${update.reason}`, update.detail);
      return { version: update.version, size: update.size };
    });
    commands.register('hotlist.stats', NO_ARGS, () => store.stats());
    // A flow (or the call center) asks about one plate; the answer names only listed plates.
    commands.register('hotlist.lookup', LOOKUP_ARGS, ({ plate, fuzzy }) => {
      const now = this.ctx.clock.wallNow();
      const matches = store.current().lookup(plate, { fuzzy, now });
      const normalised = normalisePlate(plate);
      if (normalised === null) throw new CommandError('bad_plate', '"plate" is not plate text (letters and digits, at most 10)');
      return { plate: normalised, matches: matches.map((m) => ({ kind: m.kind, distance: m.distance, entry: m.entry })) };
    });
    commands.register('hotlist.refresh', NO_ARGS, async () => {
      if (!this.ctx.config.anpr.hotlist.url) throw new CommandError('no_url', 'anpr.hotlist.url is not configured');
      await this.#refresh();
      return store.stats();
    });
    commands.register('anpr.stats', NO_ARGS, () => this.status());
  }
}

function insideRoi(roi: CameraConfig['roi'], box: readonly number[], width: number, height: number): boolean {
  if (!roi || width === 0 || height === 0) return true;
  const [x, y, w, h] = box as [number, number, number, number];
  return pointInPolygon((x + w / 2) / width, (y + h / 2) / height, roi);
}

const round3 = (v: number): number => Math.round(v * 1000) / 1000;
