// One measurement of the hotlist benchmark, in a fresh process (node --expose-gc) so that its RSS
// figures are those of a process that holds nothing but the list. Prints one JSON line.
//
// usage: hotlist-child.ts TASK --file CSV --n N [--queries FILE] [--build worker|inline] [--data-dir DIR]
//   baseline          the module loaded and nothing else
//   csv               Hotlist.parse of the CSV text (with --queries: then time the lookups)
//   parse-then-build  parseHotlistCsv, then Hotlist.fromEntries
//   naive             the naive Map (with --queries: then time its lookups)
//   entries           Hotlist.fromEntries of N entry objects
//   store             HotlistStore as the daemon uses it: load, signed delta, cache write, reopen
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Hotlist } from '../../src/anpr/hotlist/list.js';
import { parseHotlistCsv } from '../../src/anpr/hotlist/parse.js';
import { DAY, listedPlate, makeEntry, NOW, type QueryKind } from './hotlist-data.js';
import { type LoopFigures, loopFigures, underLoopProbe } from './loop-probe.js';
import { naiveLoad, naiveLookup } from './naive-hotlist.js';
import { procMem } from './proc.js';
import { percentile } from './stats.js';

export interface LookupStat {
  p50: number | null;
  p99: number | null;
  max: number;
}

export interface LookupFigures {
  all: LookupStat;
  hit: LookupStat;
  confusable: LookupStat;
  miss: LookupStat;
  found: Record<QueryKind, number>;
  count: number;
}

/** What each task prints. */
export interface BaselineOutput {
  rss_mb: number;
  hwm_mb: number | null;
}

/** csv, parse-then-build and naive (which has no version). */
export interface ListOutput extends BaselineOutput {
  rss_before_mb: number;
  load_ms: number;
  size: number;
  version?: string;
  heap_used_mb: number;
  array_buffers_mb: number;
  lookups?: LookupFigures;
  kept: boolean;
}

export interface EntriesOutput {
  load_ms: number;
  size: number;
  version: string;
}

export interface StoreOutput extends BaselineOutput {
  rss_before_mb: number;
  version: string;
  size: number;
  load: LoopFigures;
  rss_after_load_mb: number;
  delta_version: string;
  delta: LoopFigures;
  cache_write: LoopFigures;
  open: LoopFigures;
}

declare const gc: () => void; // node --expose-gc

const settle = async () => {
  for (let k = 0; k < 4; k++) {
    gc();
    await sleep(50);
  }
};
const rssMb = () => process.memoryUsage.rss() / 2 ** 20;
const vmHwmMb = () => procMem('self', 'VmHWM');

type Query = [QueryKind, string];

const readQueries = (file: string): Query[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ') as Query);

function timeLookups(queries: Query[], lookup: (plate: string) => unknown[]): LookupFigures {
  const us = new Float64Array(queries.length);
  const found: Record<QueryKind, number> = { hit: 0, confusable: 0, miss: 0 };
  const byKind: Record<QueryKind, number[]> = { hit: [], confusable: [], miss: [] };
  for (let w = 0; w < Math.min(20_000, queries.length); w++) lookup(queries[w]![1]); // warm-up
  for (let q = 0; q < queries.length; q++) {
    const [kind, plate] = queries[q]!;
    const t0 = performance.now();
    const matches = lookup(plate);
    const dt = (performance.now() - t0) * 1000;
    us[q] = dt;
    byKind[kind].push(dt);
    if (matches.length > 0) found[kind]++;
  }
  const stat = (xs: number[]): LookupStat => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.reduce((a, b) => Math.max(b, a), 0) });
  return { all: stat(Array.from(us)), hit: stat(byKind.hit), confusable: stat(byKind.confusable), miss: stat(byKind.miss), found, count: queries.length };
}

interface Args {
  file: string;
  queries: string | undefined;
  n: number;
  build: 'worker' | 'inline';
  dataDir: string | undefined;
}

/** The module loaded and nothing else. */
async function baseline(): Promise<BaselineOutput> {
  await settle();
  return { rss_mb: rssMb(), hwm_mb: vmHwmMb() };
}

/** Builds the list from CSV text (or the naive Map), then measures memory and, with queries, lookups. */
async function fromCsv(task: 'csv' | 'parse-then-build' | 'naive', args: Args): Promise<ListOutput> {
  let text: string | null = readFileSync(args.file, 'utf8');
  await settle();
  const rss_before_mb = rssMb();
  const t0 = performance.now();
  let list: Hotlist | undefined;
  let naive: ReturnType<typeof naiveLoad> | undefined;
  if (task === 'csv') {
    const r = Hotlist.parse(text, 'csv');
    if (!r.hotlist) throw new Error(`the generated list has errors: ${JSON.stringify(r.errors.slice(0, 3))}`);
    list = r.hotlist;
  } else if (task === 'parse-then-build') {
    const parsed = parseHotlistCsv(text);
    if (parsed.errors.length) throw new Error(`the generated list has errors: ${JSON.stringify(parsed.errors.slice(0, 3))}`);
    list = Hotlist.fromEntries(parsed.entries);
  } else {
    naive = naiveLoad(text);
  }
  const load_ms = performance.now() - t0;
  text = null;
  await settle();
  const mem = process.memoryUsage();
  const out: ListOutput = {
    rss_before_mb,
    load_ms,
    size: list ? list.size : naive!.size,
    version: list?.version,
    rss_mb: rssMb(),
    hwm_mb: vmHwmMb(),
    heap_used_mb: mem.heapUsed / 2 ** 20,
    array_buffers_mb: mem.arrayBuffers / 2 ** 20,
    kept: false,
  };
  if (args.queries) {
    const queries = readQueries(args.queries);
    out.lookups = list
      ? timeLookups(queries, (plate) => list.lookup(plate, { fuzzy: true, now: NOW }))
      : timeLookups(queries, (plate) => naiveLookup(naive!, plate, NOW, DAY));
  }
  // Keep the structure alive until after the measurements.
  out.kept = (list?.size ?? 0) + (naive?.size ?? 0) > 0;
  return out;
}

async function fromEntries(n: number): Promise<EntriesOutput> {
  const entries = Array.from({ length: n }, (_, i) => makeEntry(i));
  await settle();
  const t0 = performance.now();
  const list = Hotlist.fromEntries(entries);
  return { load_ms: performance.now() - t0, size: list.size, version: list.version };
}

/**
 * HotlistStore as the daemon uses it: load the file (read, build, install, write the cache), apply
 * a signed delta, write the cache, then a new store reloads the cache.
 */
async function store(args: Args): Promise<StoreOutput> {
  // Loaded here only, so that the other tasks (the baseline above all) hold the list modules and nothing more.
  const { HotlistStore } = await import('../../src/anpr/hotlist/source.js');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const opts = { dataDir: args.dataDir!, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(), build: args.build, now: () => NOW };
  await settle();
  const rss_before_mb = rssMb();
  const first = new HotlistStore(opts);
  const expectOk = (r: Awaited<ReturnType<typeof first.load>>, what: string) => {
    if (!r.ok) throw new Error(`${what} refused: ${r.reason}: ${r.detail}`);
    return r;
  };
  const load = await underLoopProbe(() => first.load(args.file));
  const { version, size } = expectOk(load.result, 'load');
  await settle();
  const rss_after_load_mb = rssMb(); // the build worker, if any, is still there (idle)
  await sleep(1500); // past the worker's idle time
  await settle();
  const rss_mb = rssMb();

  const delta = {
    base_version: version,
    add: Array.from({ length: 1000 }, (_, k) => makeEntry(args.n + k)),
    remove: Array.from({ length: 1000 }, (_, k) => listedPlate(k)),
    serial: 1,
    issued: new Date(NOW).toISOString(),
    scope: ['*'],
  };
  const body = Buffer.from(JSON.stringify(delta));
  const applied = await underLoopProbe(() => first.applySignedDelta(body, sign(null, body, privateKey)));
  const delta_version = expectOk(applied.result, 'delta').version;
  const flushed = await underLoopProbe(() => first.flush());
  await first.close();

  const reopened = new HotlistStore(opts);
  const open = await underLoopProbe(() => reopened.open());
  if (expectOk(open.result, 'open').version !== delta_version) throw new Error('the cache did not hold the list after the delta');
  await reopened.close();
  return {
    rss_before_mb,
    version,
    size,
    load: loopFigures(load),
    rss_after_load_mb,
    rss_mb,
    delta_version,
    delta: loopFigures(applied),
    cache_write: loopFigures(flushed),
    open: loopFigures(open),
    hwm_mb: vmHwmMb(),
  };
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    file: { type: 'string' },
    queries: { type: 'string' },
    n: { type: 'string' },
    build: { type: 'string', default: 'worker' },
    'data-dir': { type: 'string' },
  },
});
const task = positionals[0] ?? '';
const args: Args = {
  file: values.file ?? '',
  queries: values.queries,
  n: Number(values.n),
  build: values.build === 'inline' ? 'inline' : 'worker',
  dataDir: values['data-dir'],
};

let out: object;
if (task === 'baseline') out = await baseline();
else if (task === 'csv' || task === 'parse-then-build' || task === 'naive') out = await fromCsv(task, args);
else if (task === 'entries') out = await fromEntries(args.n);
else if (task === 'store') out = await store(args);
else throw new Error(`unknown task ${JSON.stringify(task)}`);
process.stdout.write(`${JSON.stringify({ task, ...out })}\n`);
