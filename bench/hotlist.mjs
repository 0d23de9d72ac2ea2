// Hotlist benchmark: build time, memory and lookup latency of the stolen-vehicle hotlist with
// 1,000,000 Chilean plates, against a naive Map<string, object> of the same list in the same run.
//
//   npm run build && npm run bench -- hotlist [--quick]      (--quick: 100,000 entries)
//
// Every measurement runs in a fresh child process (node --expose-gc), so RSS figures are those of
// a process that holds nothing but the list. Progress goes to stderr; stdout gets the tables and,
// as its last line, one JSON object.
//
// It also measures what the daemon's event loop (alarms, MQTT) goes through while HotlistStore
// loads the file, applies a signed delta and reloads its cache, with lists built in the worker
// thread (the default) and on the main thread ('inline'): the longest stall of a 1 ms timer.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runCleanups, trackChild, trackDir } from './lib/cleanup.mjs';
import { fmt, median, percentile, procMem, ratio, round, table } from './lib/stats.mjs';

const HERE = import.meta.dirname;
const SELF = fileURLToPath(import.meta.url);
const DIST = join(HERE, '..', 'dist', 'anpr', 'hotlist', 'list.js');
const DIST_PARSE = join(HERE, '..', 'dist', 'anpr', 'hotlist', 'parse.js');
const DIST_STORE = join(HERE, '..', 'dist', 'anpr', 'hotlist', 'source.js');
const QUICK = process.argv.includes('--quick');
const N = QUICK ? 100_000 : 1_000_000;
const LOOKUPS = 200_000;
const RUNS = 3;
/** The time of every lookup: 2025-06-15T12:00:00Z (some entries have expired by then). */
const NOW = Date.UTC(2025, 5, 15, 12);
const log = (msg) => process.stderr.write(`${msg}\n`);

// ---------------------------------------------------------------------------------------------
// Deterministic data. Entry i is a function of i alone, so parent and children agree without
// passing the list around. 60% current plates LLLLNN (the 18 letters used since 2007), 40% older
// LLNNNN; each format is a fixed permutation of its whole space, so the plates are distinct and
// plates taken further along the permutation are guaranteed not to be on the list.

const L4 = 'BCDFGHJKLPRSTVWXYZ';
const L2 = 'ABCDEFGHIJKLNPRSTUVWXYZ';
const SPACE_A = L4.length ** 4 * 100;
const SPACE_B = L2.length ** 2 * 10_000;
const MULT = 1_000_003; // prime, coprime with both space sizes

function plateA(k) {
  let r = (MULT * k + 12_345) % SPACE_A;
  const nn = r % 100;
  r = (r - nn) / 100;
  let s = '';
  for (let j = 0; j < 4; j++) {
    s = L4[r % L4.length] + s;
    r = Math.floor(r / L4.length);
  }
  return s + String(nn).padStart(2, '0');
}

function plateB(k) {
  let r = (MULT * k + 54_321) % SPACE_B;
  const nnnn = r % 10_000;
  r = (r - nnnn) / 10_000;
  return L2[Math.floor(r / L2.length)] + L2[r % L2.length] + String(nnnn).padStart(4, '0');
}

/** Listed plate number i (0 <= i < n). */
const listedPlate = (i) => (i % 5 < 3 ? plateA(Math.floor(i / 5) * 3 + (i % 5)) : plateB(Math.floor(i / 5) * 2 + (i % 5) - 3));
/** A plate that is not on a list of n entries. */
const unlistedPlate = (n, j) => (j % 5 < 3 ? plateA(Math.ceil(n * 0.6) + 10 + j) : plateB(Math.ceil(n * 0.4) + 10 + j));

function mulberry32(seed) {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const REASONS = [
  [0.5, 'robo'],
  [0.15, 'robo con violencia'],
  [0.15, 'hurto'],
  [0.1, 'encargo por robo'],
  [0.05, 'apropiación indebida'],
  [0.05, 'robo, con intimidación'], // needs quoting in CSV
];
const SOURCES = [
  [0.6, 'carabineros'],
  [0.25, 'pdi'],
  [0.1, 'fiscalia'],
  [0.05, 'municipal'],
];
const pickWeighted = (table, x) => {
  for (const [w, v] of table) if ((x -= w) < 0) return v;
  return table.at(-1)[1];
};
const DAY = 86_400_000;
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const ADDED_FROM = Date.UTC(2015, 0, 1);
const ADDED_DAYS = (Date.UTC(2025, 5, 30) - ADDED_FROM) / DAY;
const EXPIRES_FROM = Date.UTC(2024, 0, 1);
const EXPIRES_DAYS = (Date.UTC(2027, 11, 31) - EXPIRES_FROM) / DAY;

function makeEntry(i) {
  const rnd = mulberry32(i * 2_654_435_761);
  return {
    plate: listedPlate(i),
    reason: pickWeighted(REASONS, rnd()),
    source: pickWeighted(SOURCES, rnd()),
    added: isoDay(ADDED_FROM + Math.floor(rnd() * ADDED_DAYS) * DAY),
    expires: rnd() < 0.25 ? isoDay(EXPIRES_FROM + Math.floor(rnd() * EXPIRES_DAYS) * DAY) : null,
  };
}

const csvCell = (s) => (/[",]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

function writeCsv(file, n) {
  const parts = ['plate,reason,source,added,expires\n'];
  let chunk = '';
  for (let i = 0; i < n; i++) {
    const e = makeEntry(i);
    chunk += `${e.plate},${csvCell(e.reason)},${csvCell(e.source)},${e.added},${e.expires ?? ''}\n`;
    if (chunk.length > 1 << 20) {
      parts.push(chunk);
      chunk = '';
    }
  }
  parts.push(chunk);
  writeFileSync(file, parts.join(''));
}

// Confusable partners used to make "misread" queries (within LOOKALIKE_CLASSES of src/anpr/plate-text.ts).
const PARTNER = { B: '8', 8: 'B', S: '5', 5: 'S', Z: '2', 2: 'Z', G: '6', 6: 'G', T: '7', 7: 'T', D: '0', 0: 'O', 1: 'I', 4: 'A', A: '4', O: '0', I: '1', Q: '0' };

/** LOOKUPS queries, a third each: plates on the list, misreads of listed plates (1-2 confusable characters), plates not on the list. */
function writeQueries(file, n) {
  const rnd = mulberry32(424_242);
  const lines = [];
  for (let q = 0; q < LOOKUPS; q++) {
    const kind = q % 3;
    if (kind === 0) lines.push(`hit ${listedPlate(Math.floor(rnd() * n))}`);
    else if (kind === 1) {
      const plate = listedPlate(Math.floor(rnd() * n)).split('');
      const spots = plate.map((c, k) => (PARTNER[c] ? k : -1)).filter((k) => k >= 0);
      const changes = Math.min(spots.length, rnd() < 0.5 ? 1 : 2);
      for (let c = 0; c < changes; c++) {
        const k = spots.splice(Math.floor(rnd() * spots.length), 1)[0];
        plate[k] = PARTNER[plate[k]];
      }
      lines.push(`confusable ${plate.join('')}`);
    } else lines.push(`miss ${unlistedPlate(n, Math.floor(rnd() * n))}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------
// Children

const settle = async () => {
  for (let k = 0; k < 4; k++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 50));
  }
};
const rssMb = () => process.memoryUsage.rss() / 2 ** 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU time of the main thread in ms (Linux schedstat), or null where the kernel does not keep it. */
const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
function mainThreadCpuMs() {
  try {
    return Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

/**
 * Runs `fn` while a 1 ms timer ticks on the event loop, as an alarm or an MQTT keep-alive would.
 * stall_max_ms: the longest time the loop could not run it (gap between ticks minus the 1 ms);
 * stalled_ms: the time spent in stalls over 10 ms (the daemon's latency budget);
 * stall_cpu_max_ms: the most CPU the main thread itself used within one gap. On a machine whose
 * cores are busy with other work a gap also holds time spent waiting for a core; this one does not.
 */
async function underLoopProbe(fn) {
  const gaps = [];
  const cpu = [];
  let last = performance.now();
  let lastCpu = mainThreadCpuMs();
  let timer;
  const record = () => {
    const now = performance.now();
    const nowCpu = mainThreadCpuMs();
    gaps.push(now - last - 1);
    if (nowCpu !== null && lastCpu !== null) cpu.push(nowCpu - lastCpu);
    last = now;
    lastCpu = nowCpu;
  };
  const tick = () => {
    record();
    timer = setTimeout(tick, 1);
  };
  timer = setTimeout(tick, 1);
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  clearTimeout(timer);
  record(); // the gap that ends with fn, which no tick saw
  const max = (xs) => (xs.length ? xs.reduce((a, b) => (b > a ? b : a), 0) : null);
  const stalled_ms = gaps.filter((g) => g > 10).reduce((a, b) => a + b, 0);
  return { result, ms, stall_max_ms: max(gaps), stalled_ms, stall_cpu_max_ms: max(cpu) };
}
const phaseFigures = ({ ms, stall_max_ms, stalled_ms, stall_cpu_max_ms }) => ({ ms, stall_max_ms, stalled_ms, stall_cpu_max_ms });
const vmHwmMb = () => procMem('self', 'VmHWM');

function timeLookups(queries, lookup) {
  const us = new Float64Array(queries.length);
  const found = { hit: 0, confusable: 0, miss: 0 };
  const byKind = { hit: [], confusable: [], miss: [] };
  for (let w = 0; w < Math.min(20_000, queries.length); w++) lookup(queries[w][1]); // warm-up
  for (let q = 0; q < queries.length; q++) {
    const [kind, plate] = queries[q];
    const t0 = performance.now();
    const matches = lookup(plate);
    const dt = (performance.now() - t0) * 1000;
    us[q] = dt;
    byKind[kind].push(dt);
    if (matches.length > 0) found[kind]++;
  }
  const all = Array.from(us);
  const stat = (xs) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.reduce((a, b) => (b > a ? b : a), 0) });
  return { all: stat(all), hit: stat(byKind.hit), confusable: stat(byKind.confusable), miss: stat(byKind.miss), found, count: queries.length };
}

const readQueries = (file) =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '));

/** The obvious implementation: split the CSV, one object per row in a Map keyed by the plate. No validation, exact match only. */
function naiveLoad(text) {
  const map = new Map();
  const lines = text.split('\n');
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k];
    if (!line) continue;
    const f = line.includes('"') ? splitQuoted(line) : line.split(',');
    const plate = f[0].toUpperCase().replace(/[^A-Z0-9]/g, '');
    map.set(plate, { plate, reason: f[1], source: f[2], added: f[3], expires: f[4] || null });
  }
  return map;
}

function splitQuoted(line) {
  const out = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(cur), (cur = '');
    else cur += c;
  }
  out.push(cur);
  return out;
}

async function child(task, args) {
  const { Hotlist } = await import(pathToFileURL(DIST).href);
  const { parseHotlistCsv } = await import(pathToFileURL(DIST_PARSE).href);
  const out = { task };
  if (task === 'baseline') {
    // The same process with the module loaded and nothing else.
    await settle();
    out.rss_mb = rssMb();
    out.hwm_mb = vmHwmMb();
  } else if (task === 'csv' || task === 'parse-then-build' || task === 'naive') {
    let text = readFileSync(args.file, 'utf8');
    await settle();
    out.rss_before_mb = rssMb();
    const t0 = performance.now();
    let list;
    let naive;
    if (task === 'csv') {
      const r = Hotlist.parse(text, 'csv');
      if (!r.hotlist) throw new Error(`the generated list has errors: ${JSON.stringify(r.errors.slice(0, 3))}`);
      list = r.hotlist;
      out.version = list.version;
    } else if (task === 'parse-then-build') {
      const parsed = parseHotlistCsv(text);
      if (parsed.errors.length) throw new Error(`the generated list has errors: ${JSON.stringify(parsed.errors.slice(0, 3))}`);
      list = Hotlist.fromEntries(parsed.entries);
      out.version = list.version;
    } else {
      naive = naiveLoad(text);
    }
    out.load_ms = performance.now() - t0;
    out.size = list ? list.size : naive.size;
    text = null;
    await settle();
    out.rss_mb = rssMb();
    out.hwm_mb = vmHwmMb();
    const mem = process.memoryUsage();
    out.heap_used_mb = mem.heapUsed / 2 ** 20;
    out.array_buffers_mb = mem.arrayBuffers / 2 ** 20;
    if (args.queries) {
      const queries = readQueries(args.queries);
      out.lookups = list
        ? timeLookups(queries, (plate) => list.lookup(plate, { fuzzy: true, now: NOW }))
        : timeLookups(queries, (plate) => {
            const e = naive.get(plate.toUpperCase().replace(/[^A-Z0-9]/g, ''));
            return e && !(e.expires && Date.parse(e.expires) + DAY - 1 < NOW) ? [e] : [];
          });
    }
    // Keep the structure alive until after the measurements.
    out.kept = (list?.size ?? 0) + (naive?.size ?? 0) > 0;
  } else if (task === 'store') {
    // HotlistStore as the daemon uses it: load the file (read, build, install, write the cache),
    // apply a signed delta, write the cache, then a new store reloads the cache.
    const { HotlistStore } = await import(pathToFileURL(DIST_STORE).href);
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const opts = { dataDir: args.dataDir, publicKey: publicKey.export({ type: 'spki', format: 'pem' }), build: args.build, now: () => NOW };
    await settle();
    out.rss_before_mb = rssMb();
    const store = new HotlistStore(opts);
    const expectOk = (r, what) => {
      if (!r.ok) throw new Error(`${what} refused: ${r.reason}: ${r.detail}`);
      return r;
    };
    const load = await underLoopProbe(() => store.load(args.file));
    out.version = expectOk(load.result, 'load').version;
    out.size = load.result.size;
    out.load = phaseFigures(load);
    await settle();
    out.rss_after_load_mb = rssMb(); // the build worker, if any, is still there (idle)
    await sleep(1500); // past the worker's idle time
    await settle();
    out.rss_mb = rssMb();

    const delta = { base_version: out.version, add: Array.from({ length: 1000 }, (_, k) => makeEntry(args.n + k)), remove: Array.from({ length: 1000 }, (_, k) => listedPlate(k)) };
    const body = Buffer.from(JSON.stringify(delta));
    const applied = await underLoopProbe(() => store.applySignedDelta(body, sign(null, body, privateKey)));
    out.delta_version = expectOk(applied.result, 'delta').version;
    out.delta = phaseFigures(applied);
    const flushed = await underLoopProbe(() => store.flush());
    out.cache_write = phaseFigures(flushed);
    await store.close();

    const reopened = new HotlistStore(opts);
    const open = await underLoopProbe(() => reopened.open());
    if (expectOk(open.result, 'open').version !== out.delta_version) throw new Error('the cache did not hold the list after the delta');
    out.open = phaseFigures(open);
    await reopened.close();
    out.hwm_mb = vmHwmMb();
  } else if (task === 'entries') {
    const entries = Array.from({ length: args.n }, (_, i) => makeEntry(i));
    await settle();
    const t0 = performance.now();
    const list = Hotlist.fromEntries(entries);
    out.load_ms = performance.now() - t0;
    out.size = list.size;
    out.version = list.version;
  } else {
    throw new Error(`unknown child task ${task}`);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

// ---------------------------------------------------------------------------------------------
// Parent

function runChild(task, extra = []) {
  return new Promise((resolve, reject) => {
    const c = trackChild(spawn(process.execPath, ['--expose-gc', SELF, '--child', task, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr = (stderr + b).slice(-8000)));
    c.on('close', (code, signal) => {
      if (code === 0) resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
      else reject(new Error(`child ${task} exited with ${code ?? signal}\n${stderr}`));
    });
  });
}

async function main() {
  if (!existsSync(DIST)) {
    log(`${DIST} is missing: run npm run build first`);
    process.exit(2);
  }
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'vigia-bench-hotlist-')));
  const csvFile = join(dir, 'hotlist.csv');
  const queryFile = join(dir, 'queries.txt');
  log(`▶ generating ${fmt(N)} entries and ${fmt(LOOKUPS)} queries`);
  let t = performance.now();
  writeCsv(csvFile, N);
  writeQueries(queryFile, N);
  const csvBytes = readFileSync(csvFile).length;
  log(`  ${fmt(csvBytes / 2 ** 20, 1)} MB of CSV in ${fmt((performance.now() - t) / 1000, 1)} s`);

  const common = ['--file', csvFile, '--n', String(N)];
  log('▶ baseline: empty process');
  const baseline = await runChild('baseline', common);
  const csvRuns = [];
  const naiveRuns = [];
  for (let r = 0; r < RUNS; r++) {
    const last = r === RUNS - 1 ? ['--queries', queryFile] : [];
    log(`▶ run ${r + 1}/${RUNS}: hotlist from CSV${last.length ? ' + lookups' : ''}`);
    csvRuns.push(await runChild('csv', [...common, ...last]));
    log(`  ${fmt(csvRuns.at(-1).load_ms)} ms, RSS ${fmt(csvRuns.at(-1).rss_mb, 1)} MB`);
    log(`▶ run ${r + 1}/${RUNS}: naive Map from CSV${last.length ? ' + lookups' : ''}`);
    naiveRuns.push(await runChild('naive', [...common, ...last]));
    log(`  ${fmt(naiveRuns.at(-1).load_ms)} ms, RSS ${fmt(naiveRuns.at(-1).rss_mb, 1)} MB`);
  }
  const entryRuns = [];
  const twoStepRuns = [];
  for (let r = 0; r < RUNS; r++) {
    log(`▶ run ${r + 1}/${RUNS}: hotlist from entries, and parseHotlistCsv + fromEntries`);
    entryRuns.push(await runChild('entries', common));
    twoStepRuns.push(await runChild('parse-then-build', common));
  }
  const storeRuns = { worker: [], inline: [] };
  for (let r = 0; r < RUNS; r++) {
    for (const build of ['worker', 'inline']) {
      log(`▶ run ${r + 1}/${RUNS}: HotlistStore load, delta, cache write, reopen (build: ${build})`);
      const run = await runChild('store', [...common, '--build', build, '--data-dir', join(dir, `store-${build}-${r}`)]);
      storeRuns[build].push(run);
      log(`  load ${fmt(run.load.ms)} ms (longest stall ${fmt(run.load.stall_max_ms, 1)} ms), delta ${fmt(run.delta.ms)} ms (${fmt(run.delta.stall_max_ms, 1)} ms), open ${fmt(run.open.ms)} ms (${fmt(run.open.stall_max_ms, 1)} ms), RSS ${fmt(run.rss_mb, 1)} MB`);
    }
  }
  const allStoreRuns = [...storeRuns.worker, ...storeRuns.inline];
  const versions = new Set([...csvRuns, ...entryRuns, ...twoStepRuns, ...allStoreRuns].map((r) => r.version));
  if (versions.size !== 1) throw new Error(`the same list gave different versions: ${[...versions].join(', ')}`);
  if (new Set(allStoreRuns.map((r) => r.delta_version)).size !== 1) throw new Error('the same delta gave different versions in the worker and inline');

  const med = (runs, k) => median(runs.map((r) => r[k]));
  /** Median of a phase's figure over the store runs of one build mode. */
  const phase = (build, name, k) => median(storeRuns[build].map((r) => r[name][k]));
  const L = csvRuns.at(-1).lookups;
  const NL = naiveRuns.at(-1).lookups;
  const results = {
    quick: QUICK ? 1 : 0,
    entries: csvRuns[0].size,
    csv_mb: round(csvBytes / 2 ** 20, 1),
    load_ms_1m: round(med(csvRuns, 'load_ms')),
    load_from_entries_ms_1m: round(med(entryRuns, 'load_ms')),
    parse_then_build_ms_1m: round(med(twoStepRuns, 'load_ms')),
    lookup_p50_us: round(L.all.p50, 2),
    lookup_p99_us: round(L.all.p99, 2),
    lookup_max_us: round(L.all.max, 1),
    lookup_hit_p99_us: round(L.hit.p99, 2),
    lookup_confusable_p99_us: round(L.confusable.p99, 2),
    lookup_miss_p99_us: round(L.miss.p99, 2),
    rss_mb_1m: round(med(csvRuns, 'rss_mb'), 1),
    rss_mb_baseline: round(baseline.rss_mb, 1),
    rss_growth_mb_1m: round(med(csvRuns, 'rss_mb') - baseline.rss_mb, 1),
    peak_rss_mb_1m: round(med(csvRuns, 'hwm_mb'), 1),
    naive_load_ms_1m: round(med(naiveRuns, 'load_ms')),
    naive_rss_mb_1m: round(med(naiveRuns, 'rss_mb'), 1),
    naive_peak_rss_mb_1m: round(med(naiveRuns, 'hwm_mb'), 1),
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
    cache_write_loop_block_ms_1m: round(median(allStoreRuns.map((r) => r.cache_write.stall_max_ms)), 1),
    cache_write_loop_block_cpu_ms_1m: round(median(allStoreRuns.map((r) => r.cache_write.stall_cpu_max_ms)), 1),
    cache_write_ms_1m: round(median(allStoreRuns.map((r) => r.cache_write.ms))),
    store_rss_mb_1m: round(med(storeRuns.worker, 'rss_mb'), 1),
    store_rss_mb_1m_inline: round(med(storeRuns.inline, 'rss_mb'), 1),
    store_rss_worker_idle_mb_1m: round(med(storeRuns.worker, 'rss_after_load_mb'), 1),
    store_peak_rss_mb_1m: round(med(storeRuns.worker, 'hwm_mb'), 1),
    store_peak_rss_mb_1m_inline: round(med(storeRuns.inline, 'hwm_mb'), 1),
    version: [...versions][0],
  };
  results.rss_vs_naive_ratio = ratio(results.rss_mb_1m, results.naive_rss_mb_1m);
  results.rss_growth_vs_naive_ratio = ratio(results.rss_growth_mb_1m, results.naive_rss_mb_1m - results.rss_mb_baseline);
  results.load_vs_naive_ratio = ratio(results.load_ms_1m, results.naive_load_ms_1m);

  const r = results;
  const csv = csvRuns.at(-1);
  const out = [];
  out.push('');
  out.push(`Vigía hotlist benchmark${QUICK ? ' (--quick)' : ''}: ${fmt(r.entries)} entries (${fmt(r.csv_mb, 1)} MB CSV), ${fmt(LOOKUPS)} lookups — ${new Date().toISOString()}`);
  out.push('');
  out.push(
    table(
      ['structure', 'load ms', 'RSS MB', 'RSS - empty MB', 'peak RSS MB', 'lookup p50 µs', 'lookup p99 µs', 'fuzzy'],
      [
        ['empty process', '–', fmt(r.rss_mb_baseline, 1), '0', fmt(baseline.hwm_mb, 1), '–', '–', '–'],
        ['Hotlist (CSV text)', fmt(r.load_ms_1m), fmt(r.rss_mb_1m, 1), fmt(r.rss_growth_mb_1m, 1), fmt(r.peak_rss_mb_1m, 1), fmt(r.lookup_p50_us, 2), fmt(r.lookup_p99_us, 2), 'yes'],
        ['naive Map<string, object>', fmt(r.naive_load_ms_1m), fmt(r.naive_rss_mb_1m, 1), fmt(r.naive_rss_mb_1m - r.rss_mb_baseline, 1), fmt(r.naive_peak_rss_mb_1m, 1), fmt(r.naive_lookup_p50_us, 2), fmt(r.naive_lookup_p99_us, 2), 'no'],
      ],
    ),
  );
  out.push('');
  out.push(
    table(
      ['Hotlist lookups (fuzzy)', 'count', 'matched', 'p50 µs', 'p99 µs', 'max µs'],
      ['hit', 'confusable', 'miss'].map((k) => [k === 'hit' ? 'listed plate' : k === 'confusable' ? 'misread (1-2 confusable)' : 'not listed', fmt(LOOKUPS / 3), fmt(L.found[k]), fmt(L[k].p50, 2), fmt(L[k].p99, 2), fmt(L[k].max, 1)]),
    ),
  );
  out.push('');
  const ms = (x) => fmt(x);
  const stall = (x) => fmt(x, 1);
  out.push(
    table(
      ['HotlistStore, event loop', 'build', 'ms', 'longest stall ms', 'main-thread CPU in a stall, max ms', 'stalls > 10 ms, total ms'],
      [
        ['load (file -> list + cache)', 'worker', ms(r.store_load_ms_1m), stall(r.load_loop_block_ms_1m), stall(r.load_loop_block_cpu_ms_1m), ms(r.load_loop_stalled_ms_1m)],
        ['', 'inline', ms(r.store_load_ms_1m_inline), stall(r.load_loop_block_ms_1m_inline), stall(r.load_loop_block_cpu_ms_1m_inline), ms(r.load_loop_stalled_ms_1m_inline)],
        ['signed delta (+1,000 -1,000)', 'worker', ms(r.delta_ms_1m), stall(r.delta_loop_block_ms_1m), stall(r.delta_loop_block_cpu_ms_1m), '–'],
        ['', 'inline', ms(r.delta_ms_1m_inline), stall(r.delta_loop_block_ms_1m_inline), stall(r.delta_loop_block_cpu_ms_1m_inline), '–'],
        ['open (reload the cache)', 'worker', ms(r.open_ms_1m), stall(r.open_loop_block_ms_1m), stall(r.open_loop_block_cpu_ms_1m), '–'],
        ['', 'inline', ms(r.open_ms_1m_inline), stall(r.open_loop_block_ms_1m_inline), stall(r.open_loop_block_cpu_ms_1m_inline), '–'],
        ['cache write after the delta', 'either', ms(r.cache_write_ms_1m), stall(r.cache_write_loop_block_ms_1m), stall(r.cache_write_loop_block_cpu_ms_1m), '–'],
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
  out.push(`  load ms       median of ${RUNS} fresh processes; CSV text already in memory -> Hotlist.parse (parse, validate, sort, confusable index, SHA-256 version).`);
  out.push(`                from entries (Hotlist.fromEntries of ${fmt(r.entries)} objects): ${fmt(r.load_from_entries_ms_1m)} ms; parseHotlistCsv + fromEntries: ${fmt(r.parse_then_build_ms_1m)} ms`);
  out.push('                naive: split lines and commas, one object per row into a Map keyed by the plate; no validation, no fuzzy index, no version');
  out.push('  RSS MB        VmRSS after the load, once the CSV text is released and after forced GCs (node --expose-gc), median of the runs;');
  out.push(`                empty process: the same child with the module loaded and no list. Hotlist heap ${fmt(csv.heap_used_mb, 1)} MB, typed arrays ${fmt(csv.array_buffers_mb, 1)} MB;`);
  out.push(`                naive heap ${fmt(naiveRuns.at(-1).heap_used_mb, 1)} MB, which includes the CSV text: substrings of it (reasons of 13+ characters) keep it alive, as in any such loader`);
  out.push('  peak RSS MB   VmHWM of the loading process (CSV text + columns being built)');
  out.push(`  lookup µs     performance.now() around each lookup(plate, {fuzzy: true}), ${fmt(LOOKUPS)} lookups after 20,000 warm-up ones, nearest-rank percentiles;`);
  out.push('                a third each listed plates, listed plates with 1-2 characters swapped for a confusable one, plates not on the list;');
  out.push('                naive: Map.get of the normalised plate and an expiry check (exact only)');
  out.push(`  HotlistStore  median of ${RUNS} fresh processes per build mode. A 1 ms timer runs during each call; its longest stall (gap between ticks`);
  out.push('                minus 1 ms) is how long alarms and MQTT would have waited; of that gap, the main thread\'s own CPU time (schedstat) is what the');
  out.push('                code holds it for, the rest is waiting for a core (other processes, the build worker, GC threads on a busy machine).');
  out.push('                load = store.load(file): read, build, install and the cache write;');
  out.push('                delta = applySignedDelta adding 1,000 entries and removing 1,000 (the whole list is rebuilt); open = a new store reloading the cache.');
  out.push('                RSS after forced GCs in the main isolate: right after the load (the worker, idle, still holds its garbage), then 1.5 s later');
  out.push('                once the worker has ended (idle time 1 s); peak RSS: VmHWM over the whole run, worker included.');
  out.push(`  version       every run built the same list: ${r.version.slice(0, 16)}…`);
  out.push('');
  const target = (label, ok, value) => `  ${ok == null ? 'n/a ' : ok ? 'ok  ' : 'MISS'}  ${label}: ${value}`;
  out.push('Targets:');
  out.push(target(`load <= 2 s for ${fmt(r.entries)}`, r.load_ms_1m == null ? null : r.load_ms_1m <= 2000, `${fmt(r.load_ms_1m)} ms`));
  out.push(target('process RSS <= ~150 MB with the list', r.rss_mb_1m == null ? null : r.rss_mb_1m <= 150, `${fmt(r.rss_mb_1m, 1)} MB (${fmt(r.rss_growth_mb_1m, 1)} MB over an empty process)`));
  out.push(target('lookup p99 <= 20 µs with fuzzy', r.lookup_p99_us == null ? null : r.lookup_p99_us <= 20, `${fmt(r.lookup_p99_us, 2)} µs`));
  out.push(
    target(
      'event loop stalls <= 10 ms while loading, applying a delta, reloading the cache',
      r.load_loop_block_ms_1m == null ? null : Math.max(r.load_loop_block_ms_1m, r.delta_loop_block_ms_1m, r.open_loop_block_ms_1m) <= 10,
      `${stall(r.load_loop_block_ms_1m)} / ${stall(r.delta_loop_block_ms_1m)} / ${stall(r.open_loop_block_ms_1m)} ms (inline: ${stall(r.load_loop_block_ms_1m_inline)} / ${stall(r.delta_loop_block_ms_1m_inline)} / ${stall(r.open_loop_block_ms_1m_inline)} ms)`,
    ),
  );
  out.push('');
  process.stdout.write(out.join('\n') + '\n');
  process.stdout.write(JSON.stringify(results) + '\n');
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  const opt = (name) => {
    const k = process.argv.indexOf(name);
    return k >= 0 ? process.argv[k + 1] : undefined;
  };
  await child(process.argv[childAt + 1], { file: opt('--file'), queries: opt('--queries'), n: Number(opt('--n')), build: opt('--build'), dataDir: opt('--data-dir') });
} else {
  try {
    await main();
  } finally {
    await runCleanups();
  }
}
