// Hotlist benchmark: build time, memory and lookup latency of the stolen-vehicle hotlist with
// 1,000,000 Chilean plates, against a naive Map<string, object> of the same list in the same run.
//
//   npm run build && npm run bench -- hotlist [--quick]      (--quick: 100,000 entries)
//
// Every measurement runs in a fresh child process (lib/hotlist-child.ts, node --expose-gc), so RSS
// figures are those of a process that holds nothing but the list. Progress goes to stderr; stdout
// gets the tables and, as its last line, one JSON object.
//
// It also measures what the daemon's event loop (alarms, MQTT) goes through while HotlistStore
// loads the file, applies a signed delta and reloads its cache, with lists built in the worker
// thread (the default) and on the main thread ('inline'): the longest stall of a 1 ms timer.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastLineJson, runNode } from './lib/child.js';
import { runCleanups, trackDir } from './lib/cleanup.js';
import type { BaselineOutput, EntriesOutput, ListOutput, StoreOutput } from './lib/hotlist-child.js';
import { LOOKUPS, type QueryKind, writeCsv, writeQueries } from './lib/hotlist-data.js';
import type { LoopFigures } from './lib/loop-probe.js';
import { difference, median, ratio, round } from './lib/stats.js';
import { fmt, table } from './lib/table.js';

const HERE = import.meta.dirname;
const CHILD = join(HERE, 'lib', 'hotlist-child.js');
const QUICK = process.argv.includes('--quick');
const N = QUICK ? 100_000 : 1_000_000;
const RUNS = 3;
const log = (msg: string) => process.stderr.write(`${msg}\n`);

type Build = 'worker' | 'inline';
type StorePhase = 'load' | 'delta' | 'open' | 'cache_write';
const LOOKUP_KINDS: ReadonlyArray<readonly [QueryKind, string]> = [
  ['hit', 'listed plate'],
  ['confusable', 'misread (1-2 confusable)'],
  ['miss', 'not listed'],
];

/** The keys of T whose values are figures. */
type NumericKey<T> = { [K in keyof T]: T[K] extends number | null ? K : never }[keyof T];

/** Every child's output: RUNS of each kind, lookups timed in the last csv and naive runs. */
interface Runs {
  csvBytes: number;
  baseline: BaselineOutput;
  csv: ListOutput[];
  naive: ListOutput[];
  entries: EntriesOutput[];
  twoStep: ListOutput[];
  store: Record<Build, StoreOutput[]>;
}

/** One measurement in a fresh process. */
async function runChild<T>(task: string, extra: string[] = []): Promise<T> {
  return lastLineJson<T>(await runNode(CHILD, [task, ...extra], { nodeFlags: ['--expose-gc'] }));
}

async function measure(dir: string): Promise<Runs> {
  const csvFile = join(dir, 'hotlist.csv');
  const queryFile = join(dir, 'queries.txt');
  log(`▶ generating ${fmt(N)} entries and ${fmt(LOOKUPS)} queries`);
  const t = performance.now();
  writeCsv(csvFile, N);
  writeQueries(queryFile, N);
  const csvBytes = readFileSync(csvFile).length;
  log(`  ${fmt(csvBytes / 2 ** 20, 1)} MB of CSV in ${fmt((performance.now() - t) / 1000, 1)} s`);

  const common = ['--file', csvFile, '--n', String(N)];
  log('▶ baseline: empty process');
  const runs: Runs = {
    csvBytes,
    baseline: await runChild<BaselineOutput>('baseline', common),
    csv: [],
    naive: [],
    entries: [],
    twoStep: [],
    store: { worker: [], inline: [] },
  };
  for (let r = 0; r < RUNS; r++) {
    const last = r === RUNS - 1 ? ['--queries', queryFile] : [];
    log(`▶ run ${r + 1}/${RUNS}: hotlist from CSV${last.length ? ' + lookups' : ''}`);
    const csv = await runChild<ListOutput>('csv', [...common, ...last]);
    runs.csv.push(csv);
    log(`  ${fmt(csv.load_ms)} ms, RSS ${fmt(csv.rss_mb, 1)} MB`);
    log(`▶ run ${r + 1}/${RUNS}: naive Map from CSV${last.length ? ' + lookups' : ''}`);
    const naive = await runChild<ListOutput>('naive', [...common, ...last]);
    runs.naive.push(naive);
    log(`  ${fmt(naive.load_ms)} ms, RSS ${fmt(naive.rss_mb, 1)} MB`);
  }
  for (let r = 0; r < RUNS; r++) {
    log(`▶ run ${r + 1}/${RUNS}: hotlist from entries, and parseHotlistCsv + fromEntries`);
    runs.entries.push(await runChild<EntriesOutput>('entries', common));
    runs.twoStep.push(await runChild<ListOutput>('parse-then-build', common));
  }
  for (let r = 0; r < RUNS; r++) {
    for (const build of ['worker', 'inline'] as const) {
      log(`▶ run ${r + 1}/${RUNS}: HotlistStore load, delta, cache write, reopen (build: ${build})`);
      const run = await runChild<StoreOutput>('store', [...common, '--build', build, '--data-dir', join(dir, `store-${build}-${r}`)]);
      runs.store[build].push(run);
      const took = (f: LoopFigures) => `${fmt(f.ms)} ms (${fmt(f.stall_max_ms, 1)} ms)`;
      log(
        `  load ${fmt(run.load.ms)} ms (longest stall ${fmt(run.load.stall_max_ms, 1)} ms), delta ${took(run.delta)}, open ${took(run.open)}, ` +
          `RSS ${fmt(run.rss_mb, 1)} MB`,
      );
    }
  }
  return runs;
}

/** The last-line JSON: medians over the runs, after checking that every run built the same list. */
function summarise(runs: Runs) {
  const allStore = [...runs.store.worker, ...runs.store.inline];
  const versions = new Set([...runs.csv, ...runs.entries, ...runs.twoStep, ...allStore].map((r) => r.version));
  if (versions.size !== 1) throw new Error(`the same list gave different versions: ${[...versions].join(', ')}`);
  if (new Set(allStore.map((r) => r.delta_version)).size !== 1) throw new Error('the same delta gave different versions in the worker and inline');
  const version = [...versions][0]!;

  const med = <T>(list: T[], k: NumericKey<T>) => median(list.map((r) => r[k] as number | null));
  /** Median of a phase's figure over the store runs of one build mode. */
  const phase = (build: Build, name: StorePhase, k: keyof LoopFigures) => median(runs.store[build].map((r) => r[name][k]));
  const L = runs.csv.at(-1)!.lookups!;
  const NL = runs.naive.at(-1)!.lookups!;
  const figures = {
    quick: QUICK ? 1 : 0,
    entries: runs.csv[0]!.size,
    csv_mb: round(runs.csvBytes / 2 ** 20, 1),
    load_ms_1m: round(med(runs.csv, 'load_ms')),
    load_from_entries_ms_1m: round(med(runs.entries, 'load_ms')),
    parse_then_build_ms_1m: round(med(runs.twoStep, 'load_ms')),
    lookup_p50_us: round(L.all.p50, 2),
    lookup_p99_us: round(L.all.p99, 2),
    lookup_max_us: round(L.all.max, 1),
    lookup_hit_p99_us: round(L.hit.p99, 2),
    lookup_confusable_p99_us: round(L.confusable.p99, 2),
    lookup_miss_p99_us: round(L.miss.p99, 2),
    rss_mb_1m: round(med(runs.csv, 'rss_mb'), 1),
    rss_mb_baseline: round(runs.baseline.rss_mb, 1),
    rss_growth_mb_1m: round(difference(med(runs.csv, 'rss_mb'), runs.baseline.rss_mb), 1),
    peak_rss_mb_1m: round(med(runs.csv, 'hwm_mb'), 1),
    naive_load_ms_1m: round(med(runs.naive, 'load_ms')),
    naive_rss_mb_1m: round(med(runs.naive, 'rss_mb'), 1),
    naive_peak_rss_mb_1m: round(med(runs.naive, 'hwm_mb'), 1),
    naive_lookup_p50_us: round(NL.all.p50, 2),
    naive_lookup_p99_us: round(NL.all.p99, 2),
    load_loop_block_ms_1m: round(phase('worker', 'load', 'stall_max_ms'), 1),
    load_loop_block_ms_1m_inline: round(phase('inline', 'load', 'stall_max_ms'), 1),
    load_loop_block_cpu_ms_1m: round(phase('worker', 'load', 'stall_cpu_max_ms'), 1),
    load_loop_block_cpu_ms_1m_inline: round(phase('inline', 'load', 'stall_cpu_max_ms'), 1),
    load_loop_stalled_ms_1m: round(phase('worker', 'load', 'stalled_ms')),
    load_loop_stalled_ms_1m_inline: round(phase('inline', 'load', 'stalled_ms')),
    store_load_ms_1m: round(phase('worker', 'load', 'ms')),
    store_load_ms_1m_inline: round(phase('inline', 'load', 'ms')),
    delta_loop_block_ms_1m: round(phase('worker', 'delta', 'stall_max_ms'), 1),
    delta_loop_block_ms_1m_inline: round(phase('inline', 'delta', 'stall_max_ms'), 1),
    delta_loop_block_cpu_ms_1m: round(phase('worker', 'delta', 'stall_cpu_max_ms'), 1),
    delta_loop_block_cpu_ms_1m_inline: round(phase('inline', 'delta', 'stall_cpu_max_ms'), 1),
    delta_ms_1m: round(phase('worker', 'delta', 'ms')),
    delta_ms_1m_inline: round(phase('inline', 'delta', 'ms')),
    open_loop_block_ms_1m: round(phase('worker', 'open', 'stall_max_ms'), 1),
    open_loop_block_ms_1m_inline: round(phase('inline', 'open', 'stall_max_ms'), 1),
    open_loop_block_cpu_ms_1m: round(phase('worker', 'open', 'stall_cpu_max_ms'), 1),
    open_loop_block_cpu_ms_1m_inline: round(phase('inline', 'open', 'stall_cpu_max_ms'), 1),
    open_ms_1m: round(phase('worker', 'open', 'ms')),
    open_ms_1m_inline: round(phase('inline', 'open', 'ms')),
    cache_write_loop_block_ms_1m: round(median(allStore.map((r) => r.cache_write.stall_max_ms)), 1),
    cache_write_loop_block_cpu_ms_1m: round(median(allStore.map((r) => r.cache_write.stall_cpu_max_ms)), 1),
    cache_write_ms_1m: round(median(allStore.map((r) => r.cache_write.ms))),
    store_rss_mb_1m: round(med(runs.store.worker, 'rss_mb'), 1),
    store_rss_mb_1m_inline: round(med(runs.store.inline, 'rss_mb'), 1),
    store_rss_worker_idle_mb_1m: round(med(runs.store.worker, 'rss_after_load_mb'), 1),
    store_peak_rss_mb_1m: round(med(runs.store.worker, 'hwm_mb'), 1),
    store_peak_rss_mb_1m_inline: round(med(runs.store.inline, 'hwm_mb'), 1),
    version,
  };
  return {
    ...figures,
    rss_vs_naive_ratio: ratio(figures.rss_mb_1m, figures.naive_rss_mb_1m),
    rss_growth_vs_naive_ratio: ratio(figures.rss_growth_mb_1m, difference(figures.naive_rss_mb_1m, figures.rss_mb_baseline)),
    load_vs_naive_ratio: ratio(figures.load_ms_1m, figures.naive_load_ms_1m),
  };
}

/** The tables, how each figure was measured, and the targets. */
function report(runs: Runs, r: ReturnType<typeof summarise>): string {
  const csv = runs.csv.at(-1)!;
  const L = csv.lookups!;
  const naiveGrowth = difference(r.naive_rss_mb_1m, r.rss_mb_baseline);
  const out: string[] = [];
  out.push('');
  out.push(
    `Vigía hotlist benchmark${QUICK ? ' (--quick)' : ''}: ${fmt(r.entries)} entries (${fmt(r.csv_mb, 1)} MB CSV), ${fmt(LOOKUPS)} lookups — ` +
      new Date().toISOString(),
  );
  out.push('');
  out.push(
    table(
      ['structure', 'load ms', 'RSS MB', 'RSS - empty MB', 'peak RSS MB', 'lookup p50 µs', 'lookup p99 µs', 'fuzzy'],
      [
        ['empty process', '–', fmt(r.rss_mb_baseline, 1), '0', fmt(runs.baseline.hwm_mb, 1), '–', '–', '–'],
        [
          'Hotlist (CSV text)',
          fmt(r.load_ms_1m),
          fmt(r.rss_mb_1m, 1),
          fmt(r.rss_growth_mb_1m, 1),
          fmt(r.peak_rss_mb_1m, 1),
          fmt(r.lookup_p50_us, 2),
          fmt(r.lookup_p99_us, 2),
          'yes',
        ],
        [
          'naive Map<string, object>',
          fmt(r.naive_load_ms_1m),
          fmt(r.naive_rss_mb_1m, 1),
          fmt(naiveGrowth, 1),
          fmt(r.naive_peak_rss_mb_1m, 1),
          fmt(r.naive_lookup_p50_us, 2),
          fmt(r.naive_lookup_p99_us, 2),
          'no',
        ],
      ],
    ),
  );
  out.push('');
  out.push(
    table(
      ['Hotlist lookups (fuzzy)', 'count', 'matched', 'p50 µs', 'p99 µs', 'max µs'],
      LOOKUP_KINDS.map(([k, label]) => [label, fmt(LOOKUPS / 3), fmt(L.found[k]), fmt(L[k].p50, 2), fmt(L[k].p99, 2), fmt(L[k].max, 1)]),
    ),
  );
  out.push('');
  const ms = (x: number | null) => fmt(x);
  const stall = (x: number | null) => fmt(x, 1);
  out.push(
    table(
      ['HotlistStore, event loop', 'build', 'ms', 'longest stall ms', 'main-thread CPU in a stall, max ms', 'stalls > 10 ms, total ms'],
      [
        [
          'load (file -> list + cache)',
          'worker',
          ms(r.store_load_ms_1m),
          stall(r.load_loop_block_ms_1m),
          stall(r.load_loop_block_cpu_ms_1m),
          ms(r.load_loop_stalled_ms_1m),
        ],
        [
          '',
          'inline',
          ms(r.store_load_ms_1m_inline),
          stall(r.load_loop_block_ms_1m_inline),
          stall(r.load_loop_block_cpu_ms_1m_inline),
          ms(r.load_loop_stalled_ms_1m_inline),
        ],
        ['signed delta (+1,000 -1,000)', 'worker', ms(r.delta_ms_1m), stall(r.delta_loop_block_ms_1m), stall(r.delta_loop_block_cpu_ms_1m), '–'],
        ['', 'inline', ms(r.delta_ms_1m_inline), stall(r.delta_loop_block_ms_1m_inline), stall(r.delta_loop_block_cpu_ms_1m_inline), '–'],
        ['open (reload the cache)', 'worker', ms(r.open_ms_1m), stall(r.open_loop_block_ms_1m), stall(r.open_loop_block_cpu_ms_1m), '–'],
        ['', 'inline', ms(r.open_ms_1m_inline), stall(r.open_loop_block_ms_1m_inline), stall(r.open_loop_block_cpu_ms_1m_inline), '–'],
        [
          'cache write after the delta',
          'either',
          ms(r.cache_write_ms_1m),
          stall(r.cache_write_loop_block_ms_1m),
          stall(r.cache_write_loop_block_cpu_ms_1m),
          '–',
        ],
      ],
    ),
  );
  out.push('');
  out.push(
    table(
      ['HotlistStore, memory', 'RSS MB', 'peak RSS MB'],
      [
        ['worker: after load, worker idle', fmt(r.store_rss_worker_idle_mb_1m, 1), '–'],
        ['worker: after the worker ended', fmt(r.store_rss_mb_1m, 1), fmt(r.store_peak_rss_mb_1m, 1)],
        ['inline', fmt(r.store_rss_mb_1m_inline, 1), fmt(r.store_peak_rss_mb_1m_inline, 1)],
      ],
    ),
  );
  out.push('');
  out.push('How each figure was measured:');
  out.push(
    `  load ms       median of ${RUNS} fresh processes; CSV text already in memory -> Hotlist.parse ` +
      '(parse, validate, sort, confusable index, SHA-256 version).',
  );
  out.push(
    `                from entries (Hotlist.fromEntries of ${fmt(r.entries)} objects): ${fmt(r.load_from_entries_ms_1m)} ms; ` +
      `parseHotlistCsv + fromEntries: ${fmt(r.parse_then_build_ms_1m)} ms`,
  );
  out.push('                naive: split lines and commas, one object per row into a Map keyed by the plate; no validation, no fuzzy index, no version');
  out.push('  RSS MB        VmRSS after the load, once the CSV text is released and after forced GCs (node --expose-gc), median of the runs;');
  out.push(
    '                empty process: the same child with the module loaded and no list. ' +
      `Hotlist heap ${fmt(csv.heap_used_mb, 1)} MB, typed arrays ${fmt(csv.array_buffers_mb, 1)} MB;`,
  );
  out.push(
    `                naive heap ${fmt(runs.naive.at(-1)!.heap_used_mb, 1)} MB, which includes the CSV text: ` +
      'substrings of it (reasons of 13+ characters) keep it alive, as in any such loader',
  );
  out.push('  peak RSS MB   VmHWM of the loading process (CSV text + columns being built)');
  out.push(
    `  lookup µs     performance.now() around each lookup(plate, {fuzzy: true}), ${fmt(LOOKUPS)} lookups after 20,000 warm-up ones, ` +
      'nearest-rank percentiles;',
  );
  out.push('                a third each listed plates, listed plates with 1-2 characters swapped for a confusable one, plates not on the list;');
  out.push('                naive: Map.get of the normalised plate and an expiry check (exact only)');
  out.push(`  HotlistStore  median of ${RUNS} fresh processes per build mode. A 1 ms timer runs during each call; its longest stall (gap between ticks`);
  out.push("                minus 1 ms) is how long alarms and MQTT would have waited; of that gap, the main thread's own CPU time (schedstat) is what the");
  out.push('                code holds it for, the rest is waiting for a core (other processes, the build worker, GC threads on a busy machine).');
  out.push('                load = store.load(file): read, build, install and the cache write;');
  out.push(
    '                delta = applySignedDelta adding 1,000 entries and removing 1,000 (the whole list is rebuilt); ' +
      'open = a new store reloading the cache.',
  );
  out.push('                RSS after forced GCs in the main isolate: right after the load (the worker, idle, still holds its garbage), then 1.5 s later');
  out.push('                once the worker has ended (idle time 1 s); peak RSS: VmHWM over the whole run, worker included.');
  out.push(`  version       every run built the same list: ${r.version.slice(0, 16)}…`);
  out.push('');
  const target = (label: string, ok: boolean | null, value: string) => `  ${ok == null ? 'n/a ' : ok ? 'ok  ' : 'MISS'}  ${label}: ${value}`;
  const meets = (x: number | null, pass: (x: number) => boolean) => (x == null ? null : pass(x));
  out.push('Targets:');
  out.push(
    target(
      `load <= 2 s for ${fmt(r.entries)}`,
      meets(r.load_ms_1m, (x) => x <= 2000),
      `${fmt(r.load_ms_1m)} ms`,
    ),
  );
  out.push(
    target(
      'process RSS <= ~150 MB with the list',
      meets(r.rss_mb_1m, (x) => x <= 150),
      `${fmt(r.rss_mb_1m, 1)} MB (${fmt(r.rss_growth_mb_1m, 1)} MB over an empty process)`,
    ),
  );
  out.push(
    target(
      'lookup p99 <= 20 µs with fuzzy',
      meets(r.lookup_p99_us, (x) => x <= 20),
      `${fmt(r.lookup_p99_us, 2)} µs`,
    ),
  );
  // A stall that was not measured counts as none, as Math.max(null) would have it.
  const worstStall = Math.max(r.load_loop_block_ms_1m ?? 0, r.delta_loop_block_ms_1m ?? 0, r.open_loop_block_ms_1m ?? 0);
  out.push(
    target(
      'event loop stalls <= 10 ms while loading, applying a delta, reloading the cache',
      meets(r.load_loop_block_ms_1m, () => worstStall <= 10),
      `${stall(r.load_loop_block_ms_1m)} / ${stall(r.delta_loop_block_ms_1m)} / ${stall(r.open_loop_block_ms_1m)} ms ` +
        `(inline: ${stall(r.load_loop_block_ms_1m_inline)} / ${stall(r.delta_loop_block_ms_1m_inline)} / ${stall(r.open_loop_block_ms_1m_inline)} ms)`,
    ),
  );
  out.push('');
  return out.join('\n');
}

async function main(): Promise<void> {
  const runs = await measure(trackDir(mkdtempSync(join(tmpdir(), 'vigia-bench-hotlist-'))));
  const results = summarise(runs);
  process.stdout.write(`${report(runs, results)}\n`);
  process.stdout.write(`${JSON.stringify(results)}\n`);
}

try {
  await main();
} finally {
  await runCleanups();
}
