import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { AnprEngine, EngineOptions, ReadOptions, ReadResult } from './engine.js';
import { ImageRejected, type RejectReason } from './image.js';
import { defaultThreads, lowerThreadPriority } from './threads.js';

/**
 * Plate reading off the main thread. Each worker thread owns an {@link AnprEngine} (its own ONNX
 * sessions); frames go to the first idle worker, the JPEG's memory is transferred, not copied.
 * The queue is bounded: when every worker is busy and the queue is full, `read` rejects at once
 * with {@link AnprBusyError} so the caller drops the frame instead of piling up memory and
 * latency. This file is also the worker's entry point (`dist/anpr/worker.js`).
 */

/** Niceness of inference threads: below the daemon's main thread, so alarms always run first. */
export const INFERENCE_NICENESS = 10;

export interface WorkerPoolOptions {
  /** Worker threads (default 1). */
  workers?: number;
  /** Inference threads per worker (default: cores / workers, at least 1). */
  threadsPerWorker?: number;
  engine?: Omit<EngineOptions, 'threads'>;
  /** Frames waiting for a worker, beyond those being read (default: one per worker). */
  maxQueue?: number;
  /** Worker script; this module compiled to JavaScript by default. */
  entry?: string | URL;
  /** Scheduling niceness of the worker threads (default INFERENCE_NICENESS; 0 leaves it). */
  niceness?: number;
}

export interface PoolStats {
  workers: number;
  ready: number;
  busy: number;
  queued: number;
  maxQueue: number;
  completed: number;
  failed: number;
  /** Frames refused because the queue was full. */
  rejectedBusy: number;
  /** Workers replaced after exiting unexpectedly. */
  restarts: number;
  /** Mean time from `read` to result over completed frames, ms. */
  meanLatencyMs: number;
}

export class AnprBusyError extends Error {
  override readonly name = 'AnprBusyError';
  readonly reason = 'busy' as const;
  constructor() {
    super('ANPR workers busy and queue full: frame dropped');
  }
}

const WORKER_MARK = 'vigia-anpr-worker';

type ToWorker = { type: 'read'; id: number; buffer: ArrayBuffer; offset: number; length: number; opts: ReadOptions } | { type: 'close' };
type FromWorker =
  | { type: 'ready' }
  | { type: 'fatal'; message: string }
  | { type: 'result'; id: number; result: ReadResult }
  | { type: 'error'; id: number; error: { name: string; message: string; reason?: RejectReason } };

interface Job {
  id: number;
  data: Uint8Array;
  opts: ReadOptions;
  enqueued: number;
  resolve: (r: ReadResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
}

/** The compiled worker script: this file when running from JavaScript, else the build in dist/. */
function defaultEntry(): URL {
  const self = new URL(import.meta.url);
  if (self.pathname.endsWith('.js')) return self;
  const built = new URL('../../dist/anpr/worker.js', self);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(`ANPR worker script not built: run \`npm run build\` (looked for ${fileURLToPath(built)})`);
}

export class AnprWorkerPool {
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  readonly #opts: Required<Pick<WorkerPoolOptions, 'workers' | 'threadsPerWorker' | 'maxQueue'>> & WorkerPoolOptions;
  readonly #entry: URL;
  readonly #ready: Promise<void>;
  #readyResolve!: () => void;
  #readyReject!: (e: Error) => void;
  #fatal: Error | null = null;
  #closed = false;
  #nextId = 1;
  #stats = { completed: 0, failed: 0, rejectedBusy: 0, restarts: 0, latencySum: 0 };

  constructor(opts: WorkerPoolOptions = {}) {
    const workers = Math.max(1, Math.floor(opts.workers ?? 1));
    this.#opts = {
      ...opts,
      workers,
      threadsPerWorker: Math.max(1, Math.floor(opts.threadsPerWorker ?? Math.max(1, Math.floor(defaultThreads() / workers)))),
      maxQueue: Math.max(0, Math.floor(opts.maxQueue ?? workers)),
    };
    this.#entry = opts.entry ? (opts.entry instanceof URL ? opts.entry : pathToFileURL(opts.entry)) : defaultEntry();
    this.#ready = new Promise((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.#ready.catch(() => undefined);
    for (let i = 0; i < workers; i++) this.#slots.push(this.#spawn());
  }

  /** Resolves when every worker has loaded its models; rejects if one cannot. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * Read one encoded image. Takes ownership of `image`: when it spans its whole ArrayBuffer the
   * buffer is transferred to the worker (and detached here); otherwise its bytes are copied.
   * Rejects with {@link AnprBusyError} when the pool is saturated, `ImageRejected` for bad input.
   * `opts` as for `AnprEngine.read` (the camera's motion region, its previous frame's readings).
   */
  read(image: Uint8Array, opts: ReadOptions = {}): Promise<ReadResult> {
    if (this.#closed) return Promise.reject(new Error('ANPR worker pool is closed'));
    if (this.#fatal) return Promise.reject(this.#fatal);
    const idle = this.#slots.find((s) => s.ready && !s.job);
    if (!idle && this.#queue.length >= this.#opts.maxQueue) {
      this.#stats.rejectedBusy++;
      return Promise.reject(new AnprBusyError());
    }
    return new Promise<ReadResult>((resolve, reject) => {
      const job: Job = { id: this.#nextId++, data: image, opts, enqueued: performance.now(), resolve, reject };
      if (idle) this.#dispatch(idle, job);
      else this.#queue.push(job);
    });
  }

  stats(): PoolStats {
    const s = this.#stats;
    return {
      workers: this.#slots.length,
      ready: this.#slots.filter((x) => x.ready).length,
      busy: this.#slots.filter((x) => x.job).length,
      queued: this.#queue.length,
      maxQueue: this.#opts.maxQueue,
      completed: s.completed,
      failed: s.failed,
      rejectedBusy: s.rejectedBusy,
      restarts: s.restarts,
      meanLatencyMs: s.completed ? Math.round((s.latencySum / s.completed) * 10) / 10 : 0,
    };
  }

  /** Stop accepting frames, fail the queued ones, let running ones finish, end the workers. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new Error('ANPR worker pool closed'));
    await Promise.all(
      this.#slots.map(
        (slot) =>
          new Promise<void>((resolve) => {
            slot.worker.once('exit', () => resolve());
            const msg: ToWorker = { type: 'close' };
            slot.worker.postMessage(msg);
            // A worker stuck in native code gets a hard stop after a grace period.
            setTimeout(() => void slot.worker.terminate(), 10_000).unref();
          }),
      ),
    );
  }

  #spawn(): Slot {
    const worker = new Worker(this.#entry, {
      workerData: {
        [WORKER_MARK]: true,
        engine: { ...this.#opts.engine, threads: this.#opts.threadsPerWorker },
        niceness: this.#opts.niceness ?? INFERENCE_NICENESS,
      },
    });
    const slot: Slot = { worker, ready: false, job: null };
    worker.on('message', (msg: FromWorker) => this.#onMessage(slot, msg));
    worker.on('error', (err) => this.#onExit(slot, err));
    worker.on('exit', (code) => this.#onExit(slot, new Error(`ANPR worker exited with code ${code}`)));
    return slot;
  }

  #onMessage(slot: Slot, msg: FromWorker): void {
    if (msg.type === 'ready') {
      slot.ready = true;
      if (this.#slots.every((s) => s.ready)) this.#readyResolve();
      this.#next(slot);
      return;
    }
    if (msg.type === 'fatal') {
      this.#fail(new Error(`ANPR worker could not start: ${msg.message}`));
      return;
    }
    const job = slot.job;
    if (!job || job.id !== msg.id) return;
    slot.job = null;
    if (msg.type === 'result') {
      this.#stats.completed++;
      this.#stats.latencySum += performance.now() - job.enqueued;
      job.resolve(msg.result);
    } else {
      this.#stats.failed++;
      job.reject(reviveError(msg.error));
    }
    this.#next(slot);
  }

  #onExit(slot: Slot, err: Error): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0) return; // already handled ('error' is followed by 'exit')
    if (slot.job) {
      this.#stats.failed++;
      slot.job.reject(err);
      slot.job = null;
    }
    if (this.#closed || this.#fatal) {
      this.#slots.splice(index, 1);
      return;
    }
    if (!slot.ready) {
      // Died before loading its models: restarting would only loop.
      this.#slots.splice(index, 1);
      this.#fail(err);
      return;
    }
    this.#stats.restarts++;
    this.#slots[index] = this.#spawn();
  }

  #fail(err: Error): void {
    if (this.#fatal) return;
    this.#fatal = err;
    this.#readyReject(err);
    for (const job of this.#queue.splice(0)) job.reject(err);
    for (const s of this.#slots) void s.worker.terminate();
  }

  #next(slot: Slot): void {
    const job = this.#queue.shift();
    if (job) this.#dispatch(slot, job);
  }

  #dispatch(slot: Slot, job: Job): void {
    slot.job = job;
    const { data } = job;
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    const buffer = whole ? (data.buffer as ArrayBuffer) : data.slice().buffer;
    const msg: ToWorker = { type: 'read', id: job.id, buffer, offset: 0, length: data.byteLength, opts: job.opts };
    job.data = new Uint8Array(0);
    slot.worker.postMessage(msg, [buffer]);
  }
}

function reviveError(e: { name: string; message: string; reason?: RejectReason }): Error {
  if (e.name === 'ImageRejected' && e.reason) return new ImageRejected(e.reason, e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** Worker side: one engine, one frame at a time. */
async function serve(options: EngineOptions, niceness: number): Promise<void> {
  const port = parentPort!;
  // Before the engine starts its inference threads, so they inherit the lower priority.
  if (niceness !== 0) lowerThreadPriority(niceness);
  let engine: AnprEngine;
  try {
    // Loaded here, in the worker: the main thread never loads the inference runtime.
    const { AnprEngine } = await import('./engine.js');
    engine = await AnprEngine.create(options);
  } catch (err) {
    port.postMessage({ type: 'fatal', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker);
    return;
  }
  port.on('message', (msg: ToWorker) => {
    if (msg.type === 'close') {
      void engine.close().finally(() => port.close());
      return;
    }
    engine.read(new Uint8Array(msg.buffer, msg.offset, msg.length), msg.opts).then(
      (result) => port.postMessage({ type: 'result', id: msg.id, result } satisfies FromWorker),
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        const error = { name: e.name, message: e.message, ...(e instanceof ImageRejected ? { reason: e.reason } : {}) };
        port.postMessage({ type: 'error', id: msg.id, error } satisfies FromWorker);
      },
    );
  });
  port.postMessage({ type: 'ready' } satisfies FromWorker);
}

if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARK]) {
  const data = workerData as { engine: EngineOptions; niceness?: number };
  void serve(data.engine, data.niceness ?? INFERENCE_NICENESS);
}
