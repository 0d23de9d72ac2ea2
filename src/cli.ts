#!/usr/bin/env -S node --max-semi-space-size=2
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, configJsonSchema, formatProblem, loadConfig, runConfigCheck } from './config/index.js';
import type { Config } from './config/schema.js';
import { isPriority } from './core/event.js';
import type { DaemonStatus } from './controller.js';
import { runDaemon } from './daemon.js';
import { controlRequest } from './gateway/control.js';
import { signCommand } from './gateway/command-auth.js';
import { formatStatus } from './status-format.js';
import { VERSION } from './version.js';

const EX_CONFIG = 78;
const DEFAULT_SOCKET = '/run/vigia/vigia.sock';

function loadOrExit(file: string): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) process.stderr.write(formatProblem(p) + '\n');
    process.exit(EX_CONFIG);
  }
}

function socketPath(opts: { socket?: string; config?: string }): string {
  if (opts.socket) return opts.socket;
  if (opts.config) return resolve(loadOrExit(opts.config).paths.runtime_dir, 'vigia.sock');
  return process.env.VIGIA_SOCKET ?? DEFAULT_SOCKET;
}

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
};
const priority = (value: string) => {
  if (!isPriority(value)) throw new InvalidArgumentError('expected alarm, hit, read or telemetry');
  return value;
};
const jsonObject = (value: string) => {
  try {
    const v = JSON.parse(value) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new InvalidArgumentError('expected a JSON object');
};

async function talk(opts: { socket?: string; config?: string }, op: string, args: Record<string, unknown> = {}): Promise<unknown> {
  try {
    return await controlRequest(socketPath(opts), op, args);
  } catch (err) {
    process.stderr.write(`vigia: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

const program = new Command('vigia').version(VERSION).description('Edge daemon for public-safety poles, plate readers and patrol vehicles');

program
  .command('run')
  .description('run the daemon')
  .requiredOption('-c, --config <file>', 'configuration file (YAML)')
  .action(async (opts: { config: string }) => {
    await runDaemon(loadOrExit(opts.config));
  });

const config = program.command('config').description('configuration tools');
config
  .command('check')
  .description('validate a configuration file; exits 78 and lists every problem as FILE:LINE:COL field: message')
  .argument('<file>')
  .action((file: string) => {
    process.exitCode = runConfigCheck(file, { stdout: (s) => process.stdout.write(s + '\n'), stderr: (s) => process.stderr.write(s + '\n') });
  });
config
  .command('schema')
  .description('print the JSON Schema of the configuration (for editor completion)')
  .action(() => {
    process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
  });

const socketOptions = (cmd: Command) =>
  cmd.option('-s, --socket <path>', `control socket (default: $VIGIA_SOCKET or ${DEFAULT_SOCKET})`).option('-c, --config <file>', 'take the socket path from this configuration');

socketOptions(program.command('status').description('show the running daemon\'s state').option('--json', 'machine-readable output')).action(
  async (opts: { socket?: string; config?: string; json?: boolean }) => {
    const status = (await talk(opts, 'status')) as DaemonStatus;
    process.stdout.write(opts.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
  },
);

const sim = program.command('sim').description('drive the simulated hardware of a daemon running with hardware.backend: sim');
socketOptions(
  sim
    .command('burst')
    .description('inject N synthetic events as fast as they are accepted')
    .requiredOption('-n, --count <n>', 'number of events', positiveInt)
    .option('-t, --type <type>', 'event type', 'sim.test')
    .option('-p, --priority <priority>', 'alarm, hit, read or telemetry', priority, 'telemetry')
    .option('--ids', 'print the accepted event ids, one per line'),
).action(async (opts: { count: number; type: string; priority: string; ids?: boolean; socket?: string; config?: string }) => {
  const r = (await talk(opts, 'sim.burst', { count: opts.count, type: opts.type, priority: opts.priority })) as {
    accepted: number;
    first_seq: number;
    last_seq: number;
    ids?: string[];
    ms: number;
    per_s: number;
  };
  if (opts.ids && r.ids) process.stdout.write(r.ids.join('\n') + '\n');
  else process.stdout.write(`accepted ${r.accepted} events (seq ${r.first_seq}..${r.last_seq}) in ${r.ms} ms, ${r.per_s}/s\n`);
});
socketOptions(
  sim
    .command('event')
    .description('inject one event')
    .requiredOption('-t, --type <type>', 'event type')
    .option('-p, --priority <priority>', 'alarm, hit, read or telemetry', priority, 'telemetry')
    .option('--payload <json>', 'payload (JSON object)', jsonObject),
).action(async (opts: { type: string; priority: string; payload?: object; socket?: string; config?: string }) => {
  process.stdout.write(JSON.stringify(await talk(opts, 'sim.event', { type: opts.type, priority: opts.priority, payload: opts.payload ?? {} })) + '\n');
});
socketOptions(sim.command('clock-sync').description('mark the wall clock as synchronised (as NTP or GPS would)')).action(
  async (opts: { socket?: string; config?: string }) => {
    await talk(opts, 'sim.clock_sync');
    process.stdout.write('clock marked synchronised\n');
  },
);

program
  .command('cmd')
  .description('command tools for the call center and for testing')
  .command('sign')
  .description('print a signed command payload for this device (publish it to <prefix>/<site>/<device>/cmd/<name>)')
  .requiredOption('-c, --config <file>', 'the device configuration (site, device, command key)')
  .requiredOption('-n, --name <cmd>', 'command name, e.g. ping')
  .option('-a, --args <json>', 'arguments (JSON object)', jsonObject)
  .option('-k, --key-file <file>', 'signing key (HMAC key, or Ed25519 private key PEM); default: the configured key')
  .action((opts: { config: string; name: string; args?: Record<string, unknown>; keyFile?: string }) => {
    const cfg = loadOrExit(opts.config);
    const key = opts.keyFile ? readFileSync(opts.keyFile, 'utf8').replace(/\r?\n$/, '') : cfg.commands.key?.reveal();
    if (!key) {
      process.stderr.write('vigia: no key: set commands.key in the configuration or pass --key-file\n');
      process.exit(EX_CONFIG);
    }
    process.stdout.write(signCommand({ auth: cfg.commands.auth, key, site: cfg.device.site, device: cfg.device.id, cmd: opts.name, args: opts.args ?? {} }) + '\n');
  });

await program.parseAsync(process.argv);
