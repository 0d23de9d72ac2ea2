/**
 * Where the hotlist comes from, and how it is replaced without ever being half-loaded.
 *
 * HotlistStore holds the current Hotlist (immutable) and swaps the reference only once a new list
 * has been fetched, verified, parsed and fully built; a reader that took current() keeps a
 * consistent list for as long as it holds it. Updates (load, fetch, delta) run one at a time, in
 * the order they were asked for. Whatever fails, the previous list stays: the failure is counted
 * (`rejected`), kept as `last_error` and logged.
 *
 * Sources
 *   load(file)      a local CSV or JSON file (by extension), placed by the operator; trusted like
 *                   the configuration, so no signature is needed. It has no issue time (it never
 *                   goes stale) and leaves the highest serial as it was.
 *   fetch(url)      an https:// URL, with three files published side by side:
 *                     <url>          the list (CSV or JSON by the path's extension, else Content-Type)
 *                     <url>.header   its signed header (header.ts): one JSON object
 *                                    {"serial","issued","scope","sha256"}, sha256 being the list's
 *                     <url>.sig      the standard base64 of the Ed25519 signature of the header's
 *                                    exact bytes
 *                   (".header"/".sig" are appended to the path; a query string is kept as is).
 *                   The list is requested with If-None-Match (304 keeps the current list), then the
 *                   header's signature (against the configured public key), the list's digest, the
 *                   scope and the serial are checked before a byte of the list is parsed. The
 *                   header is a sidecar file so any static web server or bucket can publish it and
 *                   a proxy cannot strip it; its digest tells a truncated or corrupted download
 *                   ("digest") apart from a forged one ("signature"). A list without a header is
 *                   refused ("header"). Publish the list first, then the header and .sig: a device
 *                   that reads a new list with an old header refuses it and takes it on its next
 *                   fetch. Redirects are not followed; gzip transfer encoding is accepted.
 *   applySignedDelta(body, signature)
 *                   a change to the current list, typically arriving as a command. `body` is UTF-8
 *                   JSON {"base_version": "<hex>", "add": [entries], "remove": ["PLATE", ...],
 *                   "version"?: "<hex>", "serial", "issued", "scope"} and `signature` the raw 64-byte
 *                   Ed25519 signature of its exact bytes. It is refused unless base_version is the
 *                   current version (a delta never lands on a list it was not computed for);
 *                   `version`, when given, must be the version of the result.
 *
 * Rollback and scope. The store keeps the highest serial it has installed (in the cache) and
 * refuses a list below it, or a delta not above it ("rollback"): an old signed list served again
 * cannot bring back a list in which a newly stolen car is missing. A list of the same serial is
 * taken only if it is that very list (same digest), so the signed list can replace a technician's
 * local file again. Anything whose scope does not name the device's site (or "*") is refused
 * ("scope"). A cache written before serials existed reads as serial 0, issued when it was loaded,
 * without its ETag, so the next fetch must bring a signed header.
 *
 * Producing a signed list with openssl (cc.key is the call center's Ed25519 private key; the serial
 * rises with every list and delta):
 *
 *   printf '{"serial":%d,"issued":"%s","scope":["la-serena"],"sha256":"%s"}\n' "$SERIAL" \
 *     "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(sha256sum hotlist.csv | cut -d' ' -f1)" > hotlist.csv.header
 *   openssl pkeyutl -sign -inkey cc.key -rawin -in hotlist.csv.header | openssl base64 -A > hotlist.csv.sig
 *
 * Cache. Every list that is installed is written to <dataDir>/hotlist.cache (a first line with its
 * version, source, ETag, serial and issue time, then the list as CSV) through a temporary file,
 * fsync and rename, so a power cut leaves either the old or the new cache. open() loads it, so a
 * device that restarts without network matches against the last good list. After a delta the
 * write waits a little (`deltaPersistDelayMs`) so a burst of deltas costs one rewrite of the SD
 * card, not one each.
 *
 * Building. Parsing, sorting, indexing and hashing a 1M-entry list takes about a second of CPU, and
 * so does applying a delta to it (the list is rebuilt); the event loop that runs them also carries
 * alarms and MQTT. By default (`build: 'worker'`) lists are built in a worker thread
 * (build-worker.ts): the file's bytes are transferred to it and the finished list transferred
 * back, so the main thread neither parses nor copies them; a delta's base list, which stays in use
 * here, is copied to the worker in small slices, one per event-loop turn. Row errors, refusals and
 * the list built are the same as with `build: 'inline'`; if the worker fails (crash, out of
 * memory) the update is refused as 'build' and the next one starts a new worker. The worker ends
 * after `buildWorkerIdleMs` without work, which returns the memory a build leaves behind in it.
 *
 * Nothing is downloaded except the URL the operator configured.
 */
import { createHash, verify as verifyBytes, type KeyObject } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { decodeCanonicalBase64, ed25519PublicKey } from '../../core/keys.js';
import type { ResourceLimits } from 'node:worker_threads';
import { HotlistBuildFailed, HotlistBuildWorker, hotlistWorkerEntry, inlineBuilder, type HotlistBuilder, type Utf8Mode } from './build-worker.js';
import type { HotlistEntryInput, HotlistRowError } from './entry.js';
import { inScope, parseListHeader, readStamp, STAMP_FIELDS, type SignedStamp } from './header.js';
import { Hotlist, HotlistError, type HotlistLoadResult } from './list.js';
import type { HotlistFormat } from './parse.js';

export type HotlistStoreOptions = {
  /** Directory for the cache of the last good list (created when missing). */
  dataDir: string;
  /** Ed25519 public key (PEM) that signs fetched lists and deltas. Without it both are refused. */
  publicKey?: string;
  /** The device's site (config.device.site): signed lists and deltas must name it in their scope. Without it only scope ["*"] is taken. */
  site?: string;
  /** Largest list accepted, in bytes once decompressed (default 256 MiB). */
  maxBytes?: number;
  /** Largest delta accepted, in bytes (default 16 MiB). */
  maxDeltaBytes?: number;
  /** Wall clock in ms (default Date.now); only for loaded_at and the count of expired entries. */
  now?: () => number;
  /** How long the cache write waits after a delta (default 5 minutes; 0 writes at once). */
  deltaPersistDelayMs?: number;
  /**
   * Where lists are parsed and built (see the module comment): 'worker' (default) in a worker
   * thread, 'inline' on the calling thread. Without a built worker script (running from TypeScript
   * sources before `npm run build`) 'worker' falls back to 'inline' with a warning.
   */
  build?: 'worker' | 'inline';
  /** How long the build worker stays after its last build (default 1 s); it is started again when needed. */
  buildWorkerIdleMs?: number;
  /** The build worker's script (default: build-worker.js as compiled). */
  buildWorkerEntry?: string | URL;
  /** Heap limits of the build worker (default HOTLIST_WORKER_RESOURCE_LIMITS); tests set tiny ones. */
  buildWorkerResourceLimits?: ResourceLimits;
  logger?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
};

export type FetchOptions = {
  /** Certificate authorities to trust instead of the system ones (PEM). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Default true. Only for tests; a list over unauthenticated TLS is still checked by its signature. */
  rejectUnauthorized?: boolean;
  /** Extra request headers, e.g. Authorization. */
  headers?: Record<string, string>;
  /** Whole fetch (three requests), default 120 s. */
  timeoutMs?: number;
};

export type HotlistRejectReason =
  | 'io' // the file or the server could not be read
  | 'http' // unexpected HTTP status, redirect, or not https
  | 'too_large'
  | 'digest' // body does not match <url>.sha256
  | 'signature' // missing or wrong Ed25519 signature
  | 'header' // a list without its <url>.header, or a header that is not the expected JSON
  | 'rollback' // a list or delta whose serial is not above the installed one
  | 'scope' // a list or delta not meant for this device's site
  | 'no_key' // no public key configured
  | 'format' // unknown file type
  | 'invalid' // rows with errors; see `errors`
  | 'malformed' // a delta that is not the expected JSON
  | 'base_version' // a delta for another list
  | 'version_mismatch' // a delta whose result is not the version it announced
  | 'cache' // the cache file could not be used
  | 'build'; // the build worker failed (crash, out of memory) before the list was built

export type HotlistUpdate =
  | { ok: true; status: 'replaced' | 'not_modified'; version: string; size: number }
  | { ok: false; reason: HotlistRejectReason; detail: string; errors?: HotlistRowError[] };

export type HotlistStats = {
  size: number;
  version: string;
  /** When the list the current one is based on was loaded or fetched (ISO); null before any. */
  loaded_at: string | null;
  /** Last change of the current list in this process (load, fetch, delta, cache). */
  updated_at: string | null;
  /** Where the current list came from: a path, a URL, or null; deltas since then are counted apart. */
  source: string | null;
  etag: string | null;
  /** Highest serial installed (0: none yet, or a cache from before serials). */
  serial: number;
  /** Signed issue time of the current list or its last delta; null for a local file. */
  issued: string | null;
  /** Sites the current list was signed for; null for a local file or an old cache. */
  scope: string[] | null;
  deltas_applied: number;
  /** Entries of the current list already expired when it was installed. */
  expired_at_load: number;
  last_checked_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  /** Updates refused since start, in total and by reason. */
  rejected: number;
  rejected_by: Partial<Record<HotlistRejectReason, number>>;
  cache_error: string | null;
};

const CACHE_FILE = 'hotlist.cache';
const CACHE_MAGIC = '# vigia-hotlist-cache 1 ';
const SIDECAR_MAX_BYTES = 4096;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const DELTA_FIELDS = new Set(['base_version', 'add', 'remove', 'version', ...STAMP_FIELDS]);
/** Enough of the cache file to hold its header line. */
const CACHE_HEADER_MAX_BYTES = 64 * 1024;
/** Bytes of CSV per cache write: each chunk is formatted in one go on the event loop, and 64 KiB (about 1,700 entries) is a fraction of a millisecond of work. */
const CACHE_CHUNK_BYTES = 64 * 1024;

type CacheMeta = {
  version: string;
  source: string | null;
  etag: string | null;
  etag_url: string | null;
  loaded_at: string | null;
  deltas_applied: number;
  /** Highest serial installed, and the digest of the list signed with it (null when it came with a delta). */
  serial: number;
  serial_digest: string | null;
  issued: string | null;
  scope: string[] | null;
};

const NO_SERIAL = { serial: 0, serial_digest: null, issued: null, scope: null } as const;

class Refusal extends Error {
  constructor(
    readonly reason: HotlistRejectReason,
    message: string,
    readonly errors?: HotlistRowError[],
  ) {
    super(message);
  }
}

type StoreSettings = Required<Pick<HotlistStoreOptions, 'dataDir' | 'maxBytes' | 'maxDeltaBytes' | 'now' | 'deltaPersistDelayMs'>> &
  Pick<HotlistStoreOptions, 'logger'>;

export class HotlistStore {
  readonly #opts: StoreSettings;
  readonly #key: KeyObject | undefined;
  readonly #builder: HotlistBuilder;
  readonly #cacheFile: string;
  #current: Hotlist = Hotlist.empty();
  #meta: CacheMeta = { version: this.#current.version, source: null, etag: null, etag_url: null, loaded_at: null, deltas_applied: 0, ...NO_SERIAL };
  /** Whether the highest serial was taken from the cache (or a list installed): it must be known before anything is checked against it. */
  #serialKnown = false;
  readonly #site: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #lastChecked: string | null = null;
  #lastError: string | null = null;
  #lastErrorAt: string | null = null;
  #cacheError: string | null = null;
  #rejected = 0;
  #rejectedBy: Partial<Record<HotlistRejectReason, number>> = {};
  #persistTimer: NodeJS.Timeout | undefined;
  #persisting: Promise<void> | undefined;
  #dirty = false;
  #installed = false;
  #updatedAt: string | null = null;

  /** Throws on an unusable public key, so a bad configuration shows at start-up. */
  constructor(opts: HotlistStoreOptions) {
    this.#opts = {
      dataDir: opts.dataDir,
      maxBytes: opts.maxBytes ?? 256 * 1024 * 1024,
      maxDeltaBytes: opts.maxDeltaBytes ?? 16 * 1024 * 1024,
      now: opts.now ?? Date.now,
      deltaPersistDelayMs: opts.deltaPersistDelayMs ?? 5 * 60_000,
      logger: opts.logger,
    };
    this.#site = opts.site;
    this.#key = opts.publicKey === undefined ? undefined : ed25519PublicKey(opts.publicKey, 'the hotlist key');
    this.#cacheFile = join(opts.dataDir, CACHE_FILE);
    this.#builder = chooseBuilder(opts);
  }

  /** The list to match against. Hold on to it for a consistent view; it never changes. */
  current(): Hotlist {
    return this.#current;
  }

  stats(): HotlistStats {
    const m = this.#meta;
    return {
      size: this.#current.size,
      version: this.#current.version,
      loaded_at: m.loaded_at,
      updated_at: this.#updatedAt,
      source: m.source,
      etag: m.etag,
      serial: m.serial,
      issued: m.issued,
      scope: m.scope,
      deltas_applied: m.deltas_applied,
      expired_at_load: this.#current.expiredAtBuild,
      last_checked_at: this.#lastChecked,
      last_error: this.#lastError,
      last_error_at: this.#lastErrorAt,
      rejected: this.#rejected,
      rejected_by: { ...this.#rejectedBy },
      cache_error: this.#cacheError,
    };
  }

  /**
   * Loads the cached list, if there is a usable one. Meant for start-up: once a list has been
   * installed (load, fetch) the cache, which can only be older, is left alone.
   */
  open(): Promise<HotlistUpdate> {
    return this.#run('cache', async () => {
      if (this.#installed) return { ok: true, status: 'not_modified', version: this.#current.version, size: this.#current.size };
      let bytes: Buffer;
      try {
        bytes = await readFile(this.#cacheFile);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          return { ok: true, status: 'not_modified', version: this.#current.version, size: this.#current.size };
        throw new Refusal('cache', `cannot read ${this.#cacheFile}: ${(err as Error).message}`);
      }
      const nl = bytes.indexOf(0x0a);
      let meta: CacheMeta;
      try {
        const header = bytes.toString('utf8', 0, nl < 0 ? bytes.length : nl);
        if (!header.startsWith(CACHE_MAGIC) || nl < 0) throw new Error('no header line');
        meta = cacheMeta(JSON.parse(header.slice(CACHE_MAGIC.length)));
      } catch (err) {
        throw new Refusal('cache', `${this.#cacheFile} is not a hotlist cache (${(err as Error).message})`);
      }
      let list: Hotlist;
      try {
        list = await this.#parse(bytes.subarray(nl + 1), 'csv', 'lenient', this.#cacheFile);
      } catch (err) {
        throw err instanceof Refusal && err.reason === 'invalid' ? new Refusal('cache', err.message, err.errors) : err;
      }
      if (list.version !== meta.version)
        throw new Refusal('cache', `${this.#cacheFile} holds version ${list.version.slice(0, 12)}…, its header says ${meta.version.slice(0, 12)}…`);
      this.#install(list, meta, false);
      return this.#replaced();
    });
  }

  /** Loads a local CSV or JSON file (by extension). */
  load(file: string): Promise<HotlistUpdate> {
    return this.#run(file, async () => {
      const format = formatOf(file);
      if (!format) throw new Refusal('format', `${file}: the extension must be .csv or .json`);
      let bytes: Buffer;
      try {
        const st = await stat(file);
        if (st.size > this.#opts.maxBytes) throw new Refusal('too_large', `${file} has ${st.size} bytes, the limit is ${this.#opts.maxBytes}`);
        bytes = await readFile(file);
      } catch (err) {
        if (err instanceof Refusal) throw err;
        throw new Refusal('io', `cannot read ${file}: ${(err as Error).message}`);
      }
      await this.#learnSerial();
      const list = await this.#parse(bytes, format, 'lenient', file);
      // A local list is not signed: it keeps the highest serial (a technician's file is no way to roll back) and has no issue time.
      const { serial, serial_digest } = this.#meta;
      this.#install(
        list,
        {
          version: list.version,
          source: file,
          etag: null,
          etag_url: null,
          loaded_at: this.#isoNow(),
          deltas_applied: 0,
          serial,
          serial_digest,
          issued: null,
          scope: null,
        },
        true,
      );
      await this.#persistNow();
      return this.#replaced();
    });
  }

  /** Fetches, verifies and installs the list at an https:// URL (see the module comment). */
  fetch(url: string, opts: FetchOptions = {}): Promise<HotlistUpdate> {
    return this.#run(url, async () => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        throw new Refusal('http', `${JSON.stringify(url)} is not a URL`);
      }
      if (target.protocol !== 'https:') throw new Refusal('http', `${target.protocol}// is not allowed, the hotlist is fetched over https only`);
      if (!this.#key) throw new Refusal('no_key', 'no hotlist public key is configured: a downloaded list cannot be verified');
      const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
      const etag = this.#meta.etag_url === url ? this.#meta.etag : null;

      const res = await httpsGet(target, { ...opts, deadline, maxBytes: this.#opts.maxBytes, etag });
      this.#lastChecked = this.#isoNow();
      if (res.status === 304) {
        if (etag === null) throw new Refusal('http', `${url}: 304 Not Modified to a request without If-None-Match`);
        return { ok: true, status: 'not_modified', version: this.#current.version, size: this.#current.size };
      }
      if (res.status >= 300 && res.status < 400)
        throw new Refusal('http', `${url}: HTTP ${res.status} redirect (redirects are not followed; configure the final URL)`);
      if (res.status !== 200) throw new Refusal('http', `${url}: HTTP ${res.status}`);
      const body = res.body;

      const headerUrl = sidecar(target, '.header');
      const headerRes = await httpsGet(headerUrl, { ...opts, deadline, maxBytes: SIDECAR_MAX_BYTES, etag: null });
      if (headerRes.status !== 200) throw new Refusal('header', `${headerUrl.href}: HTTP ${headerRes.status} (a list is published with its signed header)`);
      const sigRes = await httpsGet(sidecar(target, '.sig'), { ...opts, deadline, maxBytes: SIDECAR_MAX_BYTES, etag: null });
      if (sigRes.status !== 200) throw new Refusal('signature', `${sidecar(target, '.sig').href}: HTTP ${sigRes.status}`);
      const signature = decodeCanonicalBase64(sigRes.body.toString('latin1').trim());
      if (signature?.length !== 64) throw new Refusal('signature', `${sidecar(target, '.sig').href} is not a base64 Ed25519 signature (64 bytes)`);
      if (!this.#signatureValid(headerRes.body, signature))
        throw new Refusal('signature', `${headerUrl.href}: the Ed25519 signature does not match the header (wrong key or altered header)`);

      // An authenticated header from here on; the list is authenticated once its digest matches.
      let header: ReturnType<typeof parseListHeader>;
      try {
        header = parseListHeader(headerRes.body);
      } catch (err) {
        throw new Refusal('header', `${headerUrl.href}: ${(err as Error).message}`);
      }
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual !== header.sha256) {
        throw new Refusal(
          'digest',
          `${url}: SHA-256 of the ${body.length} bytes received is ${actual.slice(0, 16)}…, the header says ${header.sha256.slice(0, 16)}… (truncated or changed in transit)`,
        );
      }
      await this.#learnSerial();
      this.#checkStamp(header, url);
      if (header.serial === this.#meta.serial && header.sha256 !== this.#meta.serial_digest) {
        throw new Refusal('rollback', `${url}: serial ${header.serial} is already installed with other contents`);
      }

      const format = formatOf(target.pathname) ?? formatOfType(res.headers['content-type']);
      if (!format) throw new Refusal('format', `${url}: cannot tell CSV from JSON (path extension or Content-Type)`);
      const list = await this.#parse(body, format, 'strict', url);
      const newEtag = typeof res.headers.etag === 'string' && res.headers.etag.length <= 256 ? res.headers.etag : null;
      this.#install(
        list,
        {
          version: list.version,
          source: url,
          etag: newEtag,
          etag_url: newEtag ? url : null,
          loaded_at: this.#isoNow(),
          deltas_applied: 0,
          serial: header.serial,
          serial_digest: header.sha256,
          issued: header.issued,
          scope: header.scope,
        },
        true,
      );
      await this.#persistNow();
      return this.#replaced();
    });
  }

  /** Applies a signed delta to the current list (see the module comment). */
  applySignedDelta(body: Buffer, signature: Buffer): Promise<HotlistUpdate> {
    return this.#run('delta', async () => {
      if (!this.#key) throw new Refusal('no_key', 'no hotlist public key is configured: a delta cannot be verified');
      if (!(body instanceof Uint8Array) || !(signature instanceof Uint8Array)) throw new Refusal('malformed', 'body and signature must be binary data');
      if (body.byteLength > this.#opts.maxDeltaBytes)
        throw new Refusal('too_large', `delta has ${body.byteLength} bytes, the limit is ${this.#opts.maxDeltaBytes}`);
      if (signature.byteLength !== 64) throw new Refusal('signature', `signature has ${signature.byteLength} bytes, Ed25519 needs 64`);
      if (!this.#signatureValid(Buffer.from(body), Buffer.from(signature))) throw new Refusal('signature', 'the Ed25519 signature does not match the delta');

      let doc: unknown;
      try {
        doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
      } catch {
        throw new Refusal('malformed', 'delta is not UTF-8 JSON');
      }
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Refusal('malformed', 'delta must be a JSON object');
      const d = doc as Record<string, unknown>;
      const unknown = Object.keys(d).find((k) => !DELTA_FIELDS.has(k));
      if (unknown !== undefined) throw new Refusal('malformed', `unknown field ${JSON.stringify(unknown.slice(0, 40))} in the delta`);
      if (typeof d.base_version !== 'string' || !SHA256_HEX.test(d.base_version)) throw new Refusal('malformed', '"base_version" must be a SHA-256 in hex');
      if (d.version !== undefined && (typeof d.version !== 'string' || !SHA256_HEX.test(d.version)))
        throw new Refusal('malformed', '"version" must be a SHA-256 in hex');
      if (d.add !== undefined && !Array.isArray(d.add)) throw new Refusal('malformed', '"add" must be an array of entries');
      if (d.remove !== undefined && !Array.isArray(d.remove)) throw new Refusal('malformed', '"remove" must be an array of plates');
      let stamp: SignedStamp;
      try {
        stamp = readStamp(d);
      } catch (err) {
        throw new Refusal('malformed', `delta: ${(err as Error).message}`);
      }
      await this.#learnSerial();
      // A delta is never re-applied: unlike a whole list, the same serial twice would change the list twice.
      this.#checkStamp(stamp, 'delta', true);

      const base = this.#current;
      if (d.base_version.toLowerCase() !== base.version) {
        throw new Refusal('base_version', `delta is for version ${d.base_version.slice(0, 12)}…, the current list is ${base.version.slice(0, 12)}…`);
      }
      let next: Hotlist;
      try {
        next = await this.#builder.applyDelta(base, { add: (d.add ?? []) as HotlistEntryInput[], remove: (d.remove ?? []) as string[] }, this.#opts.now());
      } catch (err) {
        if (err instanceof HotlistError) throw new Refusal('invalid', `delta: ${err.message}`, err.errors);
        if (err instanceof HotlistBuildFailed) throw new Refusal('build', `delta: ${err.message}`);
        throw err;
      }
      if (typeof d.version === 'string' && d.version.toLowerCase() !== next.version) {
        throw new Refusal('version_mismatch', `delta announces version ${d.version.slice(0, 12)}…, applying it gives ${next.version.slice(0, 12)}…`);
      }
      this.#install(
        next,
        {
          ...this.#meta,
          version: next.version,
          deltas_applied: this.#meta.deltas_applied + 1,
          serial: stamp.serial,
          serial_digest: null,
          issued: stamp.issued,
          scope: stamp.scope,
        },
        false,
      );
      this.#schedulePersist();
      return this.#replaced();
    });
  }

  /** Writes a pending cache update now. */
  async flush(): Promise<void> {
    if (this.#persistTimer || this.#dirty) await this.#persistNow();
    else await this.#persisting;
  }

  /** Flushes the cache, stops the timer and ends the build worker. */
  async close(): Promise<void> {
    await this.#queue.catch(() => undefined);
    await this.flush();
    clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    await this.#builder.close();
  }

  // -------------------------------------------------------------------------------------------

  /** Runs one update after the previous ones; a Refusal becomes a counted, logged rejection. */
  #run(what: string, fn: () => Promise<HotlistUpdate>): Promise<HotlistUpdate> {
    const result = this.#queue.then(async (): Promise<HotlistUpdate> => {
      try {
        return await fn();
      } catch (err) {
        const refusal = err instanceof Refusal ? err : new Refusal(what === 'delta' ? 'malformed' : 'io', (err as Error).message ?? String(err));
        this.#rejected++;
        this.#rejectedBy[refusal.reason] = (this.#rejectedBy[refusal.reason] ?? 0) + 1;
        this.#lastError = `${refusal.reason}: ${refusal.message}`;
        this.#lastErrorAt = this.#isoNow();
        this.#opts.logger?.warn(
          { source: what, reason: refusal.reason, detail: refusal.message, errors: refusal.errors?.slice(0, 5) },
          'hotlist update refused, keeping the current list',
        );
        return { ok: false, reason: refusal.reason, detail: refusal.message, ...(refusal.errors ? { errors: refusal.errors } : {}) };
      }
    });
    this.#queue = result;
    return result;
  }

  /** Parses and builds a file's bytes (given away: they may move to the build worker). */
  async #parse(bytes: Uint8Array, format: HotlistFormat, utf8: Utf8Mode, where: string): Promise<Hotlist> {
    let r: HotlistLoadResult | null;
    try {
      r = await this.#builder.parse(bytes, { format, utf8, now: this.#opts.now() });
    } catch (err) {
      if (err instanceof HotlistBuildFailed) throw new Refusal('build', `${where}: ${err.message}`);
      throw err;
    }
    if (!r) throw new Refusal('invalid', `${where}: the list is not valid UTF-8`);
    if (!r.hotlist) {
      const first = r.errors[0];
      throw new Refusal(
        'invalid',
        `${where}: ${r.invalidRows} invalid row(s)${first ? `, first at line ${first.line}: ${first.message}` : ''}; the whole list is refused`,
        r.errors,
      );
    }
    return r.hotlist;
  }

  /** Refuses a stamp for another site, or one whose serial is below the highest installed (or equal, with `strict`). */
  #checkStamp(stamp: SignedStamp, what: string, strict = false): void {
    if (!inScope(stamp.scope, this.#site)) {
      throw new Refusal('scope', `${what}: signed for ${stamp.scope.slice(0, 5).join(', ')}, not for site ${this.#site ?? '(none configured)'}`);
    }
    const highest = this.#meta.serial;
    if (stamp.serial < highest || (strict && stamp.serial === highest)) {
      throw new Refusal('rollback', `${what}: serial ${stamp.serial} is not above serial ${highest}, already installed`);
    }
  }

  /**
   * Takes the highest serial from the cache when nothing was installed yet (a store used without
   * open(), as `vigia hotlist import` does), so that no write of the cache loses it.
   */
  async #learnSerial(): Promise<void> {
    if (this.#serialKnown || this.#installed) return;
    this.#serialKnown = true;
    try {
      const meta = await readCacheMeta(this.#cacheFile);
      if (meta) this.#meta = { ...this.#meta, serial: meta.serial, serial_digest: meta.serial_digest };
    } catch (err) {
      // An unreadable cache holds no serial to protect; open() reports it.
      this.#opts.logger?.warn({ file: this.#cacheFile, err: (err as Error).message }, 'hotlist cache header not readable');
    }
  }

  #install(list: Hotlist, meta: CacheMeta, log: boolean): void {
    const previous = this.#current;
    this.#current = list; // the only mutation readers can observe: one reference
    this.#meta = meta;
    this.#installed = true;
    this.#serialKnown = true;
    this.#updatedAt = this.#isoNow();
    if (log || previous.version !== list.version) {
      this.#opts.logger?.info(
        {
          source: meta.source,
          size: list.size,
          version: list.version,
          serial: meta.serial,
          issued: meta.issued,
          expired: list.expiredAtBuild,
          deltas: meta.deltas_applied,
        },
        'hotlist installed',
      );
    }
  }

  #replaced(): HotlistUpdate {
    return { ok: true, status: 'replaced', version: this.#current.version, size: this.#current.size };
  }

  #signatureValid(data: Buffer, signature: Buffer): boolean {
    if (!this.#key) return false;
    try {
      return verifyBytes(null, data, this.#key, signature);
    } catch {
      return false;
    }
  }

  #isoNow(): string {
    return new Date(this.#opts.now()).toISOString();
  }

  #schedulePersist(): void {
    this.#dirty = true;
    if (this.#opts.deltaPersistDelayMs <= 0) {
      void this.#persistNow();
      return;
    }
    if (this.#persistTimer) return;
    this.#persistTimer = setTimeout(() => {
      this.#persistTimer = undefined;
      void this.#persistNow();
    }, this.#opts.deltaPersistDelayMs);
    this.#persistTimer.unref();
  }

  /** Writes the current list to the cache; writes never overlap, the last state always lands. */
  async #persistNow(): Promise<void> {
    clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    this.#dirty = true;
    while (this.#persisting) await this.#persisting;
    if (!this.#dirty) return;
    this.#dirty = false;
    const list = this.#current;
    const meta = this.#meta;
    this.#persisting = writeCache(this.#cacheFile, list, meta)
      .then(() => {
        this.#cacheError = null;
      })
      .catch((err: unknown) => {
        this.#cacheError = (err as Error).message;
        this.#opts.logger?.warn({ file: this.#cacheFile, err: (err as Error).message }, 'hotlist cache not written');
      })
      .finally(() => {
        this.#persisting = undefined;
      });
    await this.#persisting;
  }
}

async function writeCache(file: string, list: Hotlist, meta: CacheMeta): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o640);
  try {
    await fh.write(`${CACHE_MAGIC}${JSON.stringify({ ...meta, version: list.version })}\n`);
    // Each chunk reuses one buffer: it is written before the next one is formatted.
    for (const chunk of list.csvBytes(CACHE_CHUNK_BYTES)) await fh.write(chunk);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, file);
  // The rename is durable only once the directory is.
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function chooseBuilder(opts: HotlistStoreOptions): HotlistBuilder {
  const mode = opts.build ?? 'worker';
  if (mode === 'inline') return inlineBuilder;
  if (mode !== 'worker') throw new TypeError(`build must be 'worker' or 'inline', not ${JSON.stringify(mode)}`);
  const entry = opts.buildWorkerEntry ?? hotlistWorkerEntry();
  if (entry === undefined) {
    opts.logger?.warn({}, 'hotlist worker script not built (npm run build): hotlists are built on the main thread');
    return inlineBuilder;
  }
  return new HotlistBuildWorker({
    entry,
    ...(opts.buildWorkerIdleMs !== undefined ? { idleMs: opts.buildWorkerIdleMs } : {}),
    ...(opts.buildWorkerResourceLimits ? { resourceLimits: opts.buildWorkerResourceLimits } : {}),
  });
}

/** The header of a cache file, checked field by field. */
function cacheMeta(value: unknown): CacheMeta {
  if (typeof value !== 'object' || value === null) throw new Error('header is not an object');
  const v = value as Record<string, unknown>;
  const text = (k: string): string | null => {
    const x = v[k];
    if (x === null || x === undefined) return null;
    if (typeof x !== 'string') throw new Error(`${k} is not a string`);
    return x;
  };
  const version = text('version');
  if (version === null || !SHA256_HEX.test(version)) throw new Error('no version');
  const deltas = v.deltas_applied ?? 0;
  if (typeof deltas !== 'number' || !Number.isSafeInteger(deltas) || deltas < 0) throw new Error('deltas_applied is not a count');
  const base = { version, source: text('source'), etag: text('etag'), etag_url: text('etag_url'), loaded_at: text('loaded_at'), deltas_applied: deltas };
  if (v.serial === undefined) {
    // Written before serials: serial 0, so the first signed list is taken. A downloaded list counts as
    // issued when it was loaded (it can only be older), and its ETag is dropped so that a server that
    // answers 304 cannot keep the device on it: the next fetch must bring a signed header.
    const fromUrl = base.source?.startsWith('https://') ?? false;
    return { ...base, ...(fromUrl ? { etag: null, etag_url: null } : {}), ...NO_SERIAL, issued: fromUrl ? base.loaded_at : null };
  }
  const serial = v.serial;
  if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0) throw new Error('serial is not a count');
  const digest = text('serial_digest');
  if (digest !== null && !SHA256_HEX.test(digest)) throw new Error('serial_digest is not a SHA-256');
  const issued = text('issued');
  if (issued !== null && Number.isNaN(Date.parse(issued))) throw new Error('issued is not a time');
  const scope = v.scope ?? null;
  if (scope !== null && !(Array.isArray(scope) && scope.every((s) => typeof s === 'string'))) throw new Error('scope is not a list of sites');
  return { ...base, serial, serial_digest: digest, issued, scope: scope as string[] | null };
}

/** The header line of a cache file, or null without one; throws when it is there but unusable. */
async function readCacheMeta(file: string): Promise<CacheMeta | null> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const buf = Buffer.alloc(CACHE_HEADER_MAX_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    const line = buf.toString('utf8', 0, nl < 0 ? bytesRead : nl);
    if (!line.startsWith(CACHE_MAGIC) || nl < 0) throw new Error('no header line');
    return cacheMeta(JSON.parse(line.slice(CACHE_MAGIC.length)));
  } finally {
    await fh.close();
  }
}

function formatOf(path: string): HotlistFormat | undefined {
  const ext = extname(path).toLowerCase();
  return ext === '.csv' ? 'csv' : ext === '.json' ? 'json' : undefined;
}

function formatOfType(type: string | undefined): HotlistFormat | undefined {
  const t = (type ?? '').split(';')[0]!.trim().toLowerCase();
  return t === 'text/csv' ? 'csv' : t === 'application/json' ? 'json' : undefined;
}

function sidecar(url: URL, suffix: string): URL {
  const u = new URL(url.href);
  u.pathname += suffix;
  return u;
}

type GetOptions = FetchOptions & { deadline: number; maxBytes: number; etag: string | null };
type GetResult = { status: number; headers: IncomingHttpHeaders; body: Buffer };

/** One HTTPS GET with a size limit, a deadline and optional gzip; the body only with status 200. */
function httpsGet(url: URL, opts: GetOptions): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const fail = (reason: HotlistRejectReason, message: string) => reject(new Refusal(reason, message));
    const remaining = opts.deadline - Date.now();
    if (remaining <= 0) return fail('io', `${url.href}: timed out`);
    const headers: Record<string, string> = { 'accept-encoding': 'gzip', ...opts.headers };
    if (opts.etag) headers['if-none-match'] = opts.etag;
    const req = httpsRequest(url, {
      method: 'GET',
      headers,
      ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
      rejectUnauthorized: opts.rejectUnauthorized ?? true,
      agent: false,
    });
    const timer = setTimeout(() => req.destroy(new Refusal('io', `${url.href}: timed out`)), remaining);
    const done = () => clearTimeout(timer);
    req.on('error', (err) => {
      done();
      reject(err instanceof Refusal ? err : new Refusal('io', `${url.href}: ${err.message}`));
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        // The caller decides what the status means; the body is not needed.
        res.resume();
        done();
        return resolve({ status, headers: res.headers, body: Buffer.alloc(0) });
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > opts.maxBytes) {
        res.destroy();
        done();
        return fail('too_large', `${url.href}: ${declared} bytes, the limit is ${opts.maxBytes}`);
      }
      const encoding = (res.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') {
        res.destroy();
        done();
        return fail('http', `${url.href}: unsupported Content-Encoding ${encoding}`);
      }
      const stream = encoding === 'gzip' ? res.pipe(createGunzip()) : res;
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > opts.maxBytes) {
          res.destroy();
          stream.destroy();
          done();
          fail('too_large', `${url.href}: more than ${opts.maxBytes} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      stream.on('error', (err) => {
        done();
        reject(err instanceof Refusal ? err : new Refusal('io', `${url.href}: ${err.message}`));
      });
      res.on('close', () => {
        if (res.complete) return;
        done();
        fail('io', `${url.href}: connection closed before the end of the body`);
      });
      stream.on('end', () => {
        done();
        resolve({ status, headers: res.headers, body: Buffer.concat(chunks, size) });
      });
    });
    req.end();
  });
}
