import { createReadStream, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { type Command, type CommanderError, InvalidArgumentError, Option } from 'commander';
import { ConfigError, formatProblem, loadConfig } from '../config/index.js';
import type { Config } from '../config/schema.js';
import { parseDurationMs } from '../config/units.js';
import { isPriority, PRIORITIES, type Priority } from '../core/event.js';
import { cameraFrame, findCamera } from './camera-frame.js';
import { controlSocketPath, type DaemonRequest, findDaemon } from './daemon-link.js';
import { configFailureReport, type DoctorReport, doctorReport } from './doctor/index.js';
import { formatDoctorReport } from './doctor/format.js';
import { chooseInputs, type EdgeReport, formatEdge, watchLines, watchThroughDaemon } from './gpio-watch.js';
import { LOG_LEVELS, type LogLevel, logPrinter, printLines, readJournal } from './logs.js';
import { countQueued, listQueued, purgeQueued, retryNow } from './outbox-tool.js';
import { testHere, testPattern, testThroughDaemon } from './output-test.js';
import { formatLearnItem, type LearnItem } from './remotes-learn.js';
import { formatTagLearnItem, type TagLearnItem } from './tags-learn.js';
import { controlStream } from '../gateway/control.js';

/**
 * The technician's commands: `vigia doctor`, `gpio watch`, `outputs test`, `camera snapshot`,
 * `outbox list|retry|purge`, `logs`. Each takes the configuration (default /etc/vigia/vigia.yaml),
 * asks the running daemon when there is one and works on its own when it is stopped. Exit codes:
 * 0 done (doctor: nothing failed), 1 failed, 2 bad usage.
 */

export const DEFAULT_CONFIG = '/etc/vigia/vigia.yaml';
const EX_USAGE = 2;

interface ConfigOpts {
  config: string;
  socket?: string;
}

class UsageError extends Error {}

const duration = (value: string) => {
  const ms = parseDurationMs(value);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError('expected a duration such as 2s, 500ms or 1m');
  return ms;
};
const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
};
const priority = (value: string): Priority => {
  if (!isPriority(value)) throw new InvalidArgumentError(`expected ${PRIORITIES.join(', ')}`);
  return value;
};

/** Usage errors (commander's and ours) exit 2, as the issue's contract for these commands says. */
const usageExit = (err: CommanderError) => process.exit(err.exitCode === 0 ? 0 : EX_USAGE);

function withConfig(cmd: Command): Command {
  return cmd
    .exitOverride(usageExit)
    .option('-c, --config <file>', 'the device configuration', DEFAULT_CONFIG)
    .option('-s, --socket <path>', "the daemon's control socket (default: <paths.runtime_dir>/vigia.sock)");
}

function loadOrFail(file: string): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
    process.exit(1);
  }
}

async function daemonFor(config: Config, opts: ConfigOpts): Promise<{ daemon: DaemonRequest | null; socket: string }> {
  const socket = opts.socket ?? controlSocketPath(config);
  return { daemon: await findDaemon(socket), socket };
}

/** Runs a command body: its errors are one line on stderr and exit 1 (usage errors exit 2), never a stack trace. */
function action<A extends unknown[]>(body: (...args: A) => Promise<number | undefined>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      process.exitCode = (await body(...args)) ?? 0;
    } catch (err) {
      process.stderr.write(`vigia: ${(err as Error).message}\n`);
      process.exitCode = err instanceof UsageError ? EX_USAGE : 1;
    }
  };
}

export function registerTechnicianCommands(program: Command): void {
  registerDoctor(program);
  registerGpio(program);
  registerOutputTest(program);
  registerCamera(program);
  registerOutbox(program);
  registerLogs(program);
  registerRemotes(program);
  registerTags(program);
}

function registerTags(program: Command): void {
  const tags = program.command('tags').description('personal alarm tags heard over Bluetooth LE').exitOverride(usageExit);
  withConfig(
    tags
      .command('learn')
      .description('print every tag press the running daemon hears, registered or not, with the configuration that registers a new tag, until Ctrl-C')
      .option('--json', 'one JSON object per press'),
  ).action(
    action(async (opts: ConfigOpts & { json?: boolean }) => {
      const config = loadOrFail(opts.config);
      if (!config.personal.enabled) throw new UsageError('personal alarm tags are not enabled (personal.enabled: true)');
      const { daemon, socket } = await daemonFor(config, opts);
      if (!daemon) throw new Error('the daemon is not running: it holds the Bluetooth scan (start it, then learn)');
      const print = (item: TagLearnItem) => (opts.json ? `${JSON.stringify(item)}\n` : formatTagLearnItem(item));
      return followLearnStream(socket, 'tags.learn', print, `listening on ${config.personal.adapter}: press each tag's button near the device; Ctrl-C ends`);
    }),
  );
  withConfig(tags.command('list').description('registered tags and the unregistered ones heard lately').option('--json', 'as JSON')).action(
    action(async (opts: ConfigOpts & { json?: boolean }) => {
      const config = loadOrFail(opts.config);
      const { daemon } = await daemonFor(config, opts);
      if (!daemon) throw new Error('the daemon is not running: the unregistered tags heard lately are its own');
      const list = (await daemon('tags.list', {})) as {
        tags: Array<{ name: string; id: string; person: { name: string }; source: string }>;
        unknown: Array<{ id: string; address: string; presses: number; last_seen: string }>;
      };
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return 0;
      }
      for (const t of list.tags) process.stdout.write(`${t.name.padEnd(20)} ${t.id.padEnd(12)} ${t.person.name}  (${t.source})\n`);
      if (list.tags.length === 0) process.stdout.write('no tags registered\n');
      for (const u of list.unknown) process.stdout.write(`unregistered ${u.id} (${u.address}): ${u.presses} presses, last ${u.last_seen}\n`);
      return 0;
    }),
  );
}

function registerRemotes(program: Command): void {
  const remotes = program.command('remotes').description('radio remotes of a community kit').exitOverride(usageExit);
  withConfig(
    remotes
      .command('learn')
      .description('print every remote press the running daemon hears, known or not, with the configuration that registers a new one, until Ctrl-C')
      .option('--json', 'one JSON object per press'),
  ).action(
    action(async (opts: ConfigOpts & { json?: boolean }) => {
      const config = loadOrFail(opts.config);
      if (config.radio.receiver === 'none') throw new UsageError('no radio receiver is configured (radio.receiver: rtl_433 or gpio)');
      const { daemon, socket } = await daemonFor(config, opts);
      if (!daemon) throw new Error('the daemon is not running: it holds the radio receiver (start it, then learn)');
      const print = (item: LearnItem) => (opts.json ? `${JSON.stringify(item)}\n` : formatLearnItem(item));
      return followLearnStream(socket, 'remotes.learn', print, `listening on ${config.radio.receiver}: press the remote's buttons one at a time; Ctrl-C ends`);
    }),
  );
  withConfig(remotes.command('list').description('registered remotes and the unknown codes heard lately').option('--json', 'as JSON')).action(
    action(async (opts: ConfigOpts & { json?: boolean }) => {
      const config = loadOrFail(opts.config);
      const { daemon } = await daemonFor(config, opts);
      if (!daemon) throw new Error('the daemon is not running: the list of enrolled remotes and unknown codes is its own');
      const list = (await daemon('remotes.list', {})) as {
        remotes: Array<{ name: string; code: string; buttons: Record<string, string>; household: { name: string } | null; source: string }>;
        unknown: Array<{ code: string; button: number | null; presses: number; last_seen: string }>;
      };
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return 0;
      }
      for (const r of list.remotes) {
        const buttons = Object.entries(r.buttons)
          .map(([b, role]) => `${b}=${role}`)
          .join(' ');
        process.stdout.write(`${r.name.padEnd(20)} ${r.code.padEnd(20)} ${buttons.padEnd(24)} ${r.household?.name ?? '-'}  (${r.source})\n`);
      }
      if (list.remotes.length === 0) process.stdout.write('no remotes registered\n');
      for (const u of list.unknown)
        process.stdout.write(`unknown ${u.code}${u.button === null ? '' : ` button ${u.button}`}: ${u.presses} presses, last ${u.last_seen}\n`);
      return 0;
    }),
  );
}

function registerDoctor(program: Command): void {
  withConfig(
    program
      .command('doctor')
      .description(
        'check this box: config, broker and TLS, clock, disk and SD card, GPIO lines, cameras, GPS, radio receiver, hotlist, Node-RED; exit 1 if any check fails',
      )
      .option('--json', 'print the report as JSON')
      .option('--timeout <duration>', 'how long a camera, the GPS or the broker may take', duration, 10_000),
  ).action(
    action(async (opts: ConfigOpts & { json?: boolean; timeout: number }) => {
      let report: DoctorReport;
      let config: Config | undefined;
      try {
        config = loadConfig(opts.config);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        report = configFailureReport(err.problems.map(formatProblem));
      }
      if (config) {
        const { daemon } = await daemonFor(config, opts);
        report = await doctorReport(config, { daemon, timeoutMs: opts.timeout });
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report!, null, 2)}\n` : formatDoctorReport(report!));
      return report!.ok ? 0 : 1;
    }),
  );
}

/**
 * Prints what a learn stream of the daemon sends (`remotes.learn`, `tags.learn`) until Ctrl-C or
 * the daemon ends it: 0 on Ctrl-C, 1 with the reason when the daemon ended it.
 */
async function followLearnStream<T>(socket: string, op: string, print: (item: T) => string, banner: string): Promise<number> {
  const stream = controlStream(socket, op, {}, (item) => process.stdout.write(print(item as T)));
  await stream.started;
  process.stderr.write(`${banner}\n`);
  const end = await Promise.race([interrupted().then(() => null), stream.ended.then((reason) => reason ?? 'the daemon closed the stream')]);
  stream.close();
  if (end === null) return 0;
  process.stderr.write(`vigia: ${end}\n`);
  return 1;
}

/** Resolves on Ctrl-C or SIGTERM (once). */
const interrupted = () =>
  new Promise<string>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => resolve(signal));
  });

function registerGpio(program: Command): void {
  const gpio = program.command('gpio').description('GPIO tools').exitOverride(usageExit);
  withConfig(
    gpio
      .command('watch')
      .description('print every edge on the inputs (all, or those named) until Ctrl-C: from the running daemon, or from the lines themselves')
      .argument('[inputs...]', 'input names (hardware.inputs)')
      .option('--json', 'one JSON object per edge'),
  ).action(
    action(async (names: string[], opts: ConfigOpts & { json?: boolean }) => {
      const config = loadOrFail(opts.config);
      let inputs: string[];
      try {
        inputs = chooseInputs(config, names);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      if (inputs.length === 0) throw new UsageError('no inputs configured (hardware.inputs)');
      const print = (e: EdgeReport) => process.stdout.write(opts.json ? `${JSON.stringify(e)}\n` : formatEdge(e, config.hardware.inputs[e.input]?.kind));
      const { daemon, socket } = await daemonFor(config, opts);
      const watch = daemon ? await watchThroughDaemon(socket, inputs, print) : await watchLines(config, inputs, print);
      process.stderr.write(`watching ${inputs.join(', ')} (${watch.source === 'daemon' ? 'through the daemon' : 'lines opened here'}); Ctrl-C ends\n`);
      const end = await Promise.race([interrupted().then(() => null), watch.ended.then((reason) => reason ?? 'the daemon closed the stream')]);
      await watch.stop();
      if (end === null) return 0;
      process.stderr.write(`vigia: ${end}\n`);
      return 1;
    }),
  );
}

function registerOutputTest(program: Command): void {
  const outputs = program.commands.find((c) => c.name() === 'outputs') ?? program.command('outputs').description('GPIO output tools');
  withConfig(
    outputs
      .command('test')
      .description('play a pattern on an output to check its wiring: through the running daemon (its safety cut-off applies), or on the line itself')
      .argument('<name>', 'output name (hardware.outputs)')
      .option('--pattern <pattern>', 'on, blink, pulse, or a JSON pattern such as {"mode":"blink","period_ms":200}', 'on')
      .addOption(new Option('--for <duration>', 'how long it plays').argParser(duration).default(2000, '2s')),
  ).action(
    action(async (name: string, opts: ConfigOpts & { pattern: string; for: number }) => {
      const config = loadOrFail(opts.config);
      let pattern;
      try {
        pattern = testPattern(opts.pattern, opts.for);
      } catch (err) {
        throw new UsageError(`--pattern: ${(err as Error).message}`);
      }
      if (!config.hardware.outputs[name])
        throw new UsageError(`no output named ${name} (configured: ${Object.keys(config.hardware.outputs).join(', ') || 'none'})`);
      const { daemon } = await daemonFor(config, opts);
      if (daemon) {
        await testThroughDaemon(daemon, name, pattern);
        process.stdout.write(`${name}: ${JSON.stringify(pattern)} through the daemon\n`);
        return 0;
      }
      const abort = new AbortController();
      void interrupted().then(() => abort.abort());
      process.stdout.write(`${name}: ${JSON.stringify(pattern)} on the line (Ctrl-C stops it)\n`);
      await testHere(config, name, pattern, abort.signal);
      process.stdout.write(`${name}: off\n`);
      return 0;
    }),
  );
}

function registerCamera(program: Command): void {
  const camera = program.command('camera').description('camera tools').exitOverride(usageExit);
  withConfig(
    camera
      .command('snapshot')
      .description("save a frame from a configured camera: the running daemon's, or the camera opened here (an upload directory's newest picture)")
      .argument('<name>', 'camera id (anpr.cameras)')
      .argument('<out>', 'JPEG file to write')
      .option('--timeout <duration>', 'how long the camera may take', duration, 10_000),
  ).action(
    action(async (name: string, out: string, opts: ConfigOpts & { timeout: number }) => {
      const config = loadOrFail(opts.config);
      let cam;
      try {
        cam = findCamera(config, name);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const { daemon } = await daemonFor(config, opts);
      const frame = await cameraFrame(cam, daemon, opts.timeout);
      writeFileSync(out, frame.jpeg);
      const from = frame.from === 'daemon' ? "from the daemon's source" : frame.from === 'upload' ? 'the newest upload' : 'from the camera';
      process.stdout.write(`${out}: ${frame.jpeg.length} bytes, ${from}${frame.ageMs > 1000 ? `, ${Math.round(frame.ageMs / 1000)} s old` : ''}\n`);
      return 0;
    }),
  );
}

function registerOutbox(program: Command): void {
  const outbox = program.command('outbox').description('the queue of events waiting for the broker').exitOverride(usageExit);
  withConfig(
    outbox
      .command('list')
      .description('events waiting to be sent, in sending order')
      .option('-p, --priority <priority>', PRIORITIES.join(', '), priority)
      .option('-n, --limit <n>', 'at most this many', positiveInt, 50)
      .option('--json', 'one JSON object per event'),
  ).action(
    action(async (opts: ConfigOpts & { priority?: Priority; limit: number; json?: boolean }) => {
      const config = loadOrFail(opts.config);
      const { daemon } = await daemonFor(config, opts);
      const events = await listQueued(config, daemon, { ...(opts.priority ? { priority: opts.priority } : {}), limit: opts.limit });
      for (const e of events) {
        process.stdout.write(
          opts.json
            ? `${JSON.stringify(e)}\n`
            : `${String(e.seq).padStart(9)}  ${e.priority.padEnd(9)} ${e.time}${e.clock === 'synced' ? ' ' : '?'} ${e.type}  ${e.bytes} B\n`,
        );
      }
      if (!opts.json) process.stderr.write(`${events.length} events${events.length === opts.limit ? ` (first ${opts.limit}: --limit shows more)` : ''}\n`);
      return 0;
    }),
  );
  withConfig(outbox.command('retry').description('send now what waits for a retry (events the broker refused), and reconnect now if the link waits to')).action(
    action(async (opts: ConfigOpts) => {
      const config = loadOrFail(opts.config);
      const { daemon } = await daemonFor(config, opts);
      const r = await retryNow(daemon);
      process.stdout.write(`${r.waiting} refused events retried now${r.reconnecting ? '; reconnecting to the broker now' : ''}\n`);
      return 0;
    }),
  );
  withConfig(
    outbox
      .command('purge')
      .description('delete every waiting event of one priority (never alarms); counted as evicted (purged) and reported to the broker')
      .requiredOption('-p, --priority <priority>', 'hit, read or telemetry', priority)
      .option('-y, --yes', 'do not ask'),
  ).action(
    action(async (opts: ConfigOpts & { priority: Priority; yes?: boolean }) => {
      if (opts.priority === 'alarm') throw new UsageError('alarms are never purged: they wait for the broker (vigia doctor says why it does not take them)');
      const config = loadOrFail(opts.config);
      const { daemon } = await daemonFor(config, opts);
      if (!opts.yes) {
        if (!process.stdin.isTTY) throw new UsageError('refusing to purge without a terminal to ask on: add --yes');
        const count = await countQueued(config, daemon, opts.priority);
        if (count === 0) {
          process.stdout.write(`no ${opts.priority} events waiting\n`);
          return 0;
        }
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(`Delete ${count} ${opts.priority} events without sending them? They are reported as evicted (purged). [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) {
          process.stdout.write('nothing purged\n');
          return 1;
        }
      }
      const purged = await purgeQueued(config, daemon, opts.priority);
      process.stdout.write(`purged ${purged} ${opts.priority} events${daemon ? '' : ' (reported when the daemon starts)'}\n`);
      return 0;
    }),
  );
}

function registerLogs(program: Command): void {
  program
    .command('logs')
    .exitOverride(usageExit)
    .description("the daemon's log from the journal, readable and filtered (journalctl -u UNIT -o cat)")
    .option('-f, --follow', 'keep printing new lines')
    .option('-n, --lines <n>', 'the last N lines', positiveInt)
    .option('--since <time>', 'as journalctl --since: "1 hour ago", "today", "2026-05-01 10:00"')
    .addOption(new Option('--level <level>', 'the least severe level shown').choices(LOG_LEVELS))
    .option('--mod <part...>', 'only these parts (uplink, outbox, field-io, anpr, nodered...)')
    .option('-u, --unit <unit>', 'the systemd unit', 'vigia')
    .option('--file <file>', 'read recorded lines instead (journalctl -o json or -o cat output; - for stdin)')
    .option('--json', 'print the matching pino lines as they are')
    .action(
      action(
        async (opts: { follow?: boolean; lines?: number; since?: string; level?: LogLevel; mod?: string[]; unit: string; file?: string; json?: boolean }) => {
          const print = logPrinter(
            { ...(opts.level ? { level: opts.level } : {}), ...(opts.mod ? { mods: opts.mod } : {}) },
            { json: opts.json ?? false, colorize: process.stdout.isTTY === true },
          );
          const write = (s: string) => void process.stdout.write(s);
          if (opts.file) {
            await printLines(opts.file === '-' ? process.stdin : createReadStream(opts.file), print, write);
            return 0;
          }
          return readJournal(
            { unit: opts.unit, follow: opts.follow ?? false, ...(opts.lines ? { lines: opts.lines } : {}), ...(opts.since ? { since: opts.since } : {}) },
            print,
            write,
          );
        },
      ),
    );
}
