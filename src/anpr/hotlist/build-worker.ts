import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, type ResourceLimits, Worker, workerData, type MessagePort, type TransferListItem } from 'node:worker_threads';
import type { HotlistEntryInput, HotlistRowError } from './entry.js';
import { Hotlist, HotlistError, type HotlistDelta, type HotlistLoadResult, type PackedHotlist, type PackedHotlistHeader } from './list.js';
import type { HotlistFormat } from './parse.js';

/**
 * Building hotlists off the main thread. Parsing, sorting, indexing and hashing a 1M-entry list
 * takes about a second of CPU; on the thread that also carries alarms and MQTT that would be a
 * second without them. A worker thread builds the list instead and hands the finished columns
 * back by transferring their one block of memory (no copy); the main thread only wraps it.
 *
 * The worker is started when a build is asked for and ended after `idleMs` without work: a build
 * leaves the file's text and the build columns (about 100 MB for 1M entries) as garbage in the
 * worker, and ending it returns that memory at once. This file is also the worker's entry point
 * (`dist/anpr/hotlist/build-worker.js`).
 */

/** How a file's bytes become text: 'strict' refuses invalid UTF-8, 'lenient' replaces it with U+FFFD. */
export type Utf8Mode = 'strict' | 'lenient';

export type ParseRequest = { format: HotlistFormat; utf8: Utf8Mode; now: number };

/** Decodes and parses a hotlist file (Hotlist.parse); null when `utf8` is 'strict' and the bytes are not UTF-8. */
export function parseHotlistBytes(bytes: Uint8Array, req: ParseRequest): HotlistLoadResult | null {
  let text: string;
  if (req.utf8 === 'strict') {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return null;
    }
  } else {
    text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  }
  return Hotlist.parse(text, req.format, { now: req.now });
}

/** Builds lists, on the calling thread or in a worker. */
export interface HotlistBuilder {
  /**
   * parseHotlistBytes. Takes ownership of `bytes.buffer`, which may be transferred to another
   * thread (and so become empty here).
   */
  parse(bytes: Uint8Array, req: ParseRequest): Promise<HotlistLoadResult | null>;
  /** base.applyDelta(delta); rejects with HotlistError when items are invalid. */
  applyDelta(base: Hotlist, delta: HotlistDelta, now: number): Promise<Hotlist>;
  close(): Promise<void>;
}

/** Builds on the calling thread. */
export const inlineBuilder: HotlistBuilder = {
  parse: async (bytes, req) => parseHotlistBytes(bytes, req),
  applyDelta: async (base, delta, now) => base.applyDelta(delta, { now }),
  close: async () => undefined,
};

/** The build worker failed: it could not start, crashed, ran out of memory or threw. */
export class HotlistBuildFailed extends Error {
  override readonly name = 'HotlistBuildFailed';
}

export type BuildWorkerOptions = {
  /** Worker script; by default this module compiled to JavaScript (see hotlistWorkerEntry). */
  entry?: string | URL;
  /** The worker ends after this long without work (default 1 s; 0: as soon as it is idle). */
  idleMs?: number;
  /** The worker's heap limits (default HOTLIST_WORKER_RESOURCE_LIMITS); a build that exceeds them fails, the daemon goes on. */
  resourceLimits?: ResourceLimits;
};

/**
 * A list that makes the parser allocate without bound must end the worker, not grow the daemon.
 * Measured (Node 20.20, x64, CSV lists from bench/lib/hotlist-data.ts, the smallest
 * maxOldGenerationSizeMb that builds): 1,000,000 entries (41 MB) need 46 MB of old generation,
 * 2,000,000 (83 MB) need 86-88 MB: mostly the file's text as one string. 256 MB is about twice
 * the 2M need and five times the 1M one.
 */
export const HOTLIST_WORKER_RESOURCE_LIMITS: Readonly<ResourceLimits> = { maxOldGenerationSizeMb: 256 };

/**
 * Files larger than this share of the heap limit are refused before the worker decodes them. The
 * text is allocated as one string in one step, which V8 cannot interrupt: one far past the limit
 * aborts the whole process (measured: a 2M-entry list under a 64 MB limit) instead of ending the
 * worker. A third leaves room for a text that decodes to two bytes per character.
 */
const MAX_INPUT_SHARE_OF_HEAP = 1 / 3;

const WORKER_MARK = 'vigia-hotlist-worker';
/** Bytes below this size are copied rather than transferred: the copy costs nothing, and small Buffers may share Node's pool with others. */
const COPY_BELOW_BYTES = 64 * 1024;
/**
 * A delta's base list goes to the worker in copies of this size, one per event-loop turn: copying
 * into fresh memory can cost a few ms per MB where page faults are slow, and no single copy may
 * hold the thread that long.
 */
const BASE_SLICE_BYTES = 256 * 1024;

type ToWorker =
  | { type: 'parse'; id: number; bytes: ArrayBuffer; offset: number; length: number; request: ParseRequest }
  | { type: 'base'; id: number; header: PackedHotlistHeader }
  | { type: 'base-slice'; id: number; bytes: ArrayBuffer }
  | { type: 'delta'; id: number; add: readonly HotlistEntryInput[]; remove: readonly string[]; now: number };

type FromWorker =
  | { type: 'parsed'; id: number; list: PackedHotlist | null; errors: HotlistRowError[]; invalidRows: number; rows: number }
  | { type: 'not-utf8'; id: number }
  | { type: 'delta-built'; id: number; list: PackedHotlist }
  | { type: 'delta-invalid'; id: number; message: string; errors: HotlistRowError[] }
  | { type: 'failed'; id: number; message: string };

type Job = { resolve: (reply: FromWorker) => void; reject: (err: Error) => void };

/** The compiled worker script: this file when running from JavaScript, else the build in dist/ (undefined when there is none). */
export function hotlistWorkerEntry(): URL | undefined {
  const self = new URL(import.meta.url);
  if (self.pathname.endsWith('.js')) return self;
  const built = new URL('../../../dist/anpr/hotlist/build-worker.js', self);
  return existsSync(fileURLToPath(built)) ? built : undefined;
}

/** Builds lists in a worker thread, one request after the other. */
export class HotlistBuildWorker implements HotlistBuilder {
  readonly #entry: URL;
  readonly #idleMs: number;
  readonly #resourceLimits: ResourceLimits;
  #worker: Worker | undefined;
  readonly #jobs = new Map<number, Job>();
  #nextId = 1;
  #idleTimer: NodeJS.Timeout | undefined;
  #started = 0;

  constructor(opts: BuildWorkerOptions = {}) {
    const entry = opts.entry ?? hotlistWorkerEntry();
    if (entry === undefined) throw new Error('hotlist worker script not built: run `npm run build`');
    this.#entry = entry instanceof URL ? entry : pathToFileURL(entry);
    this.#idleMs = Math.max(0, opts.idleMs ?? 1000);
    this.#resourceLimits = { ...HOTLIST_WORKER_RESOURCE_LIMITS, ...opts.resourceLimits };
  }

  /** Worker threads started so far. */
  get started(): number {
    return this.#started;
  }

  /** Whether a worker thread is running now. */
  get running(): boolean {
    return this.#worker !== undefined;
  }

  async parse(bytes: Uint8Array, request: ParseRequest): Promise<HotlistLoadResult | null> {
    const limitMb = this.#resourceLimits.maxOldGenerationSizeMb;
    if (limitMb !== undefined && bytes.byteLength > limitMb * 1024 * 1024 * MAX_INPUT_SHARE_OF_HEAP) {
      throw new HotlistBuildFailed(
        `the list is too large to build: ${(bytes.byteLength / 1024 / 1024).toFixed(1)} MB, over ${Math.floor(limitMb * MAX_INPUT_SHARE_OF_HEAP)} MB (a third of the build worker's ${limitMb} MB heap limit)`,
      );
    }
    const own = bytes.byteLength < COPY_BELOW_BYTES || !(bytes.buffer instanceof ArrayBuffer) ? new Uint8Array(bytes) : bytes;
    const buffer = own.buffer as ArrayBuffer;
    const job = this.#open();
    job.post({ type: 'parse', id: job.id, bytes: buffer, offset: own.byteOffset, length: own.byteLength, request }, [buffer]);
    const reply = await job.reply;
    if (reply.type === 'not-utf8') return null;
    if (reply.type !== 'parsed') throw unexpected(reply);
    const { list, errors, invalidRows, rows } = reply;
    return { hotlist: list ? adoptFromWorker(list) : null, errors, invalidRows, rows };
  }

  async applyDelta(base: Hotlist, delta: HotlistDelta, now: number): Promise<Hotlist> {
    const { header, slices } = Hotlist.copyOut(base, BASE_SLICE_BYTES);
    const job = this.#open();
    job.post({ type: 'base', id: job.id, header });
    for (const slice of slices()) {
      if (job.settled()) break;
      job.post({ type: 'base-slice', id: job.id, bytes: slice }, [slice]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    job.post({ type: 'delta', id: job.id, add: delta.add ?? [], remove: delta.remove ?? [], now });
    const reply = await job.reply;
    if (reply.type === 'delta-invalid') throw new HotlistError(reply.message, reply.errors);
    if (reply.type !== 'delta-built') throw unexpected(reply);
    return adoptFromWorker(reply.list);
  }

  /** Ends the worker; requests still running fail. */
  async close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const worker = this.#worker;
    if (worker) await this.#forget(worker, new HotlistBuildFailed('hotlist build worker closed'));
  }

  /** A new request: its id, how to send it its messages, and its reply. */
  #open(): { id: number; post: (msg: ToWorker, transfer?: TransferListItem[]) => void; reply: Promise<FromWorker>; settled: () => boolean } {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    let worker: Worker;
    try {
      worker = this.#worker ?? this.#spawn();
    } catch (err) {
      throw new HotlistBuildFailed(`cannot start the hotlist build worker: ${(err as Error).message}`);
    }
    worker.ref(); // a build in flight keeps the process alive
    const id = this.#nextId++;
    let settled = false;
    const reply = new Promise<FromWorker>((resolve, reject) => this.#jobs.set(id, { resolve, reject })).finally(() => {
      settled = true;
      this.#jobs.delete(id);
      if (this.#jobs.size === 0) this.#idle();
    });
    // The reply may fail (worker crash) while the request is still being sent: never unhandled.
    reply.catch(() => undefined);
    const post = (msg: ToWorker, transfer?: TransferListItem[]): void => {
      if (settled) return;
      try {
        worker.postMessage(msg, transfer);
      } catch (err) {
        this.#jobs.get(id)?.reject(new HotlistBuildFailed(`cannot send to the hotlist build worker: ${(err as Error).message}`));
      }
    };
    return { id, post, reply, settled: () => settled };
  }

  #spawn(): Worker {
    const worker = new Worker(this.#entry, { workerData: { [WORKER_MARK]: true }, resourceLimits: this.#resourceLimits });
    this.#worker = worker;
    this.#started++;
    worker.on('message', (msg: FromWorker) => this.#jobs.get(msg.id)?.resolve(msg));
    worker.on('messageerror', (err) => void this.#forget(worker, new HotlistBuildFailed(`hotlist build worker sent an unreadable message: ${err.message}`)));
    worker.on('error', (err) => void this.#forget(worker, new HotlistBuildFailed(this.#failure(err))));
    worker.on('exit', (code) => void this.#forget(worker, new HotlistBuildFailed(`hotlist build worker exited with code ${code}`)));
    return worker;
  }

  #failure(err: Error): string {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_OUT_OF_MEMORY') return `hotlist build worker failed: ${err.message}`;
    const limit = this.#resourceLimits.maxOldGenerationSizeMb;
    return `hotlist build worker ran out of memory${limit ? ` (heap limit ${limit} MB)` : ''}: the list is too large to build`;
  }

  /** Ends a worker that failed or is being closed; every request still waiting on it fails. */
  async #forget(worker: Worker, err: HotlistBuildFailed): Promise<void> {
    if (this.#worker !== worker) return;
    this.#worker = undefined;
    for (const job of [...this.#jobs.values()]) job.reject(err);
    await worker.terminate();
  }

  #idle(): void {
    const worker = this.#worker;
    if (!worker) return;
    worker.unref(); // an idle worker never keeps the process alive
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#jobs.size === 0 && this.#worker === worker) {
        this.#worker = undefined;
        void worker.terminate();
      }
    }, this.#idleMs);
    this.#idleTimer.unref();
  }
}

/** Hotlist.adopt; a list the worker got wrong (a worker script of another version, say) fails the build. */
function adoptFromWorker(list: PackedHotlist): Hotlist {
  try {
    return Hotlist.adopt(list);
  } catch (err) {
    throw new HotlistBuildFailed(`the hotlist build worker returned an unusable list: ${(err as Error).message}`);
  }
}

function unexpected(reply: FromWorker): Error {
  return reply.type === 'failed'
    ? new HotlistBuildFailed(reply.message)
    : new HotlistBuildFailed(`unexpected reply ${reply.type} from the hotlist build worker`);
}

// ---------------------------------------------------------------------------------------------
// Worker side

type Reply = { message: FromWorker; transfer?: TransferListItem[] };

function serve(port: MessagePort): void {
  /** Delta bases being received, by request. */
  const bases = new Map<number, { header: PackedHotlistHeader; block: Uint8Array; filled: number }>();

  const handle = (msg: ToWorker): Reply | undefined => {
    switch (msg.type) {
      case 'parse': {
        const r = parseHotlistBytes(new Uint8Array(msg.bytes, msg.offset, msg.length), msg.request);
        if (!r) return { message: { type: 'not-utf8', id: msg.id } };
        const list = r.hotlist ? Hotlist.release(r.hotlist) : null;
        return {
          message: { type: 'parsed', id: msg.id, list, errors: r.errors, invalidRows: r.invalidRows, rows: r.rows },
          ...(list ? { transfer: [list.buffer] } : {}),
        };
      }
      case 'base':
        bases.set(msg.id, { header: msg.header, block: new Uint8Array(msg.header.byteLength), filled: 0 });
        return undefined;
      case 'base-slice': {
        const base = bases.get(msg.id);
        if (!base) throw new Error('a slice of a base list that was never announced');
        base.block.set(new Uint8Array(msg.bytes), base.filled);
        base.filled += msg.bytes.byteLength;
        return undefined;
      }
      case 'delta': {
        const base = bases.get(msg.id);
        bases.delete(msg.id);
        if (!base || base.filled !== base.header.byteLength) throw new Error('the base list arrived incomplete');
        const current = Hotlist.adopt({ ...base.header, buffer: base.block.buffer as ArrayBuffer });
        let next: Hotlist;
        try {
          next = current.applyDelta({ add: msg.add, remove: msg.remove }, { now: msg.now });
        } catch (err) {
          if (err instanceof HotlistError) return { message: { type: 'delta-invalid', id: msg.id, message: err.message, errors: err.errors } };
          throw err;
        }
        const list = Hotlist.release(next);
        return { message: { type: 'delta-built', id: msg.id, list }, transfer: [list.buffer] };
      }
    }
  };

  port.on('message', (msg: ToWorker) => {
    let reply: Reply | undefined;
    try {
      reply = handle(msg);
    } catch (err) {
      bases.delete(msg.id);
      reply = { message: { type: 'failed', id: msg.id, message: err instanceof Error ? err.message : String(err) } };
    }
    if (reply) port.postMessage(reply.message, reply.transfer);
  });
}

if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARK]) {
  serve(parentPort);
}
