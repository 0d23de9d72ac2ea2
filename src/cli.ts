#!/usr/bin/env -S node --max-semi-space-size=2
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { annotateImage } from './anpr/annotate.js';
import type { AnprEngine } from './anpr/engine.js';
import { grammarFor } from './anpr/grammar.js';
import { GRAMMAR_NAMES, isGrammarName } from './config/schema.js';
import { buildSignedDelta, DeltaError, type SignedDelta, type SignedListHeader, signListHeader } from './anpr/hotlist/delta.js';
import { HotlistStore } from './anpr/hotlist/source.js';
import { rankWithGrammar, type RankedPlate } from './anpr/pipeline.js';
import { ConfigError, configJsonSchema, formatProblem, loadConfig, runConfigCheck } from './config/index.js';
import type { Config } from './config/schema.js';
import { INSTALLED_UNIT } from './config/sandbox-paths.js';
import { isPriority } from './core/event.js';
import type { DaemonStatus } from './status.js';
import { runDaemonFromFile } from './daemon.js';
import { controlRequest } from './gateway/control.js';
import { signCommand } from './gateway/command-auth.js';
import { AdminApiError } from './nodered/admin-client.js';
import { FlowError, type FlowDevice } from './nodered/flows.js';
import { type AdminTarget, adminUrl, deployFlows, exportFlows, flowDevice, importFlows, readFlowsFile } from './nodered/tool.js';
import { formatStatus } from './status-format.js';
import { registerCentralCommands } from './central/cli.js';
import { registerTechnicianCommands } from './technician/commands.js';
import { VERSION } from './version.js';

const EX_CONFIG = 78;
const DEFAULT_SOCKET = '/run/vigia/vigia.sock';

function exitWithProblems(err: ConfigError): never {
  for (const p of err.problems) process.stderr.write(`${formatProblem(p)}\n`);
  process.exit(EX_CONFIG);
}

function loadOrExit(file: string): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return exitWithProblems(err);
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

const grammarName = (value: string) => {
  if (!isGrammarName(value)) throw new InvalidArgumentError(`expected one of ${GRAMMAR_NAMES.join(', ')}`);
  return value;
};
/** `ar,bo,pe`: known grammars, not generic, none twice (the primary is checked with --grammar). */
const grammarList = (value: string) => {
  const names = value
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!isGrammarName(name)) throw new InvalidArgumentError(`unknown grammar ${JSON.stringify(name)}: expected names from ${GRAMMAR_NAMES.join(', ')}`);
    if (name === 'generic') throw new InvalidArgumentError('generic cannot be a secondary grammar: it accepts any text');
  }
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice !== undefined) throw new InvalidArgumentError(`${twice} is listed twice`);
  return names;
};
const round3 = (n: number) => Math.round(n * 1000) / 1000;

function writeImageError(image: string, reason: string, message: string, json?: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify({ image, error: reason })}\n`);
  else process.stdout.write(`${image}: rejected (${reason})\n`);
  process.stderr.write(`vigia: ${image}: ${message}\n`);
}

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
    await runDaemonFromFile(opts.config, (err) => exitWithProblems(err));
  });

const config = program.command('config').description('configuration tools');
config
  .command('check')
  .description('validate a configuration file; exits 78 and lists every problem as FILE:LINE:COL field: message')
  .argument('<file>')
  .option('--unit <file>', `also check that every directory the config writes is writable under this systemd unit (default: ${INSTALLED_UNIT}, when installed)`)
  .action((file: string, opts: { unit?: string }) => {
    const unit = opts.unit ?? (existsSync(INSTALLED_UNIT) ? INSTALLED_UNIT : undefined);
    process.exitCode = runConfigCheck(file, { stdout: (s) => process.stdout.write(`${s}\n`), stderr: (s) => process.stderr.write(`${s}\n`) }, unit);
  });
config
  .command('schema')
  .description('print the JSON Schema of the configuration (for editor completion)')
  .action(() => {
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

const socketOptions = (cmd: Command) =>
  cmd
    .option('-s, --socket <path>', `control socket (default: $VIGIA_SOCKET or ${DEFAULT_SOCKET})`)
    .option('-c, --config <file>', 'take the socket path from this configuration');

socketOptions(program.command('status').description("show the running daemon's state").option('--json', 'machine-readable output')).action(
  async (opts: { socket?: string; config?: string; json?: boolean }) => {
    const status = (await talk(opts, 'status')) as DaemonStatus;
    process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
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
  if (opts.ids && r.ids) process.stdout.write(`${r.ids.join('\n')}\n`);
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
  process.stdout.write(`${JSON.stringify(await talk(opts, 'sim.event', { type: opts.type, priority: opts.priority, payload: opts.payload ?? {} }))}\n`);
});
socketOptions(sim.command('clock-sync').description('mark the wall clock as synchronised (as NTP or GPS would)')).action(
  async (opts: { socket?: string; config?: string }) => {
    await talk(opts, 'sim.clock_sync');
    process.stdout.write('clock marked synchronised\n');
  },
);

const simInput = (name: string, description: string, active: boolean | 'tap', defaultInput: string) =>
  socketOptions(sim.command(`${name} [input]`).description(description)).action(
    async (input: string | undefined, opts: { socket?: string; config?: string }) => {
      const target = input ?? defaultInput;
      if (active === 'tap') {
        // A PIR output pulse: active for a moment, then back.
        await talk(opts, 'sim.input', { input: target, active: true });
        await new Promise((r) => setTimeout(r, 200));
        await talk(opts, 'sim.input', { input: target, active: false });
      } else {
        await talk(opts, 'sim.input', { input: target, active });
      }
      process.stdout.write(`${target}: ${active === 'tap' ? 'triggered' : active ? 'active' : 'inactive'}\n`);
    },
  );
simInput('press', 'press a simulated panic button (default input: panic)', true, 'panic');
simInput('release', 'release a simulated panic button', false, 'panic');
simInput('motion', 'trigger a simulated PIR sensor (default input: pir)', 'tap', 'pir');
socketOptions(sim.command('door <open|close> [input]').description('open or close a simulated door/tamper switch (default input: door)')).action(
  async (state: string, input: string | undefined, opts: { socket?: string; config?: string }) => {
    if (state !== 'open' && state !== 'close') {
      process.stderr.write('vigia: door state must be open or close\n');
      process.exit(2);
    }
    await talk(opts, 'sim.input', { input: input ?? 'door', active: state === 'open' });
    process.stdout.write(`${input ?? 'door'}: ${state}\n`);
  },
);

program
  .command('outputs')
  .description('GPIO output tools')
  .command('safe')
  .description('put every configured output (siren, strobe, relays, LEDs) in its safe, inactive state; run by systemd after the daemon stops or crashes')
  .requiredOption('-c, --config <file>', 'the device configuration')
  .action(async (opts: { config: string }) => {
    const cfg = loadOrExit(opts.config);
    const { safeOutputs } = await import('./features/safe-outputs.js');
    const results = await safeOutputs(cfg);
    let failed = false;
    for (const r of results) {
      if (r.error) failed = true;
      process.stdout.write(`${r.output}: ${r.error ? `FAILED: ${r.error}` : 'safe'}\n`);
    }
    process.exitCode = failed ? 1 : 0;
  });

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
    process.stdout.write(
      `${signCommand({ auth: cfg.commands.auth, key, site: cfg.device.site, device: cfg.device.id, cmd: opts.name, args: opts.args ?? {} })}\n`,
    );
  });

const anpr = program.command('anpr').description('plate reading tools');
anpr
  .command('read')
  .description('read the plates in image files; one line per image (exit 1 if any image was rejected)')
  .argument('<images...>')
  .option('--json', 'one JSON object per line')
  .option('--grammar <name>', `plate grammar (${GRAMMAR_NAMES.join(', ')})`, grammarName, 'cl')
  .option('--secondary <names>', 'foreign grammars read beside --grammar, comma-separated (e.g. ar,bo,pe,br); reads carry their country', grammarList, [])
  .option('--annotate <dir>', 'write each image with the plates drawn into this directory')
  .action(async (images: string[], opts: { json?: boolean; grammar: string; secondary: string[]; annotate?: string }, cmd: Command) => {
    if (opts.secondary.includes(opts.grammar)) cmd.error(`error: option '--secondary <names>': ${opts.grammar} is the primary grammar already`);
    const grammar = grammarFor(opts.grammar, opts.secondary);
    const withCountry = opts.secondary.length > 0;
    if (opts.annotate) mkdirSync(opts.annotate, { recursive: true });
    // Loaded here: the models' runtime is heavy and only this command needs it.
    const { AnprEngine, ImageRejected } = await import('./anpr/engine.js');
    let engine: AnprEngine;
    try {
      engine = await AnprEngine.create();
    } catch (err) {
      process.stderr.write(`vigia: ${(err as Error).message}\n`);
      process.exit(1);
    }
    let failed = false;
    try {
      for (const image of images) {
        let data: Buffer;
        try {
          data = readFileSync(image);
        } catch (err) {
          failed = true;
          writeImageError(image, 'io', (err as Error).message, opts.json);
          continue;
        }
        let plates: RankedPlate[];
        try {
          plates = rankWithGrammar((await engine.read(data)).plates, grammar);
        } catch (err) {
          if (!(err instanceof ImageRejected)) throw err;
          failed = true;
          writeImageError(image, err.reason, err.message, opts.json);
          continue;
        }
        if (opts.json) {
          // Every plate of the frame, best first, each with the other readings of its place.
          const out = plates.map((p) => ({
            text: p.text,
            confidence: round3(p.confidence),
            box: p.box.map(Math.round),
            format: p.format,
            ...(p.country ? { country: p.country } : {}),
            alternatives: p.alternatives.map((a) => ({
              text: a.text,
              confidence: round3(a.confidence),
              format: a.format,
              ...(a.country ? { country: a.country } : {}),
            })),
          }));
          process.stdout.write(`${JSON.stringify({ image, plates: out })}\n`);
        } else if (plates.length === 0) {
          process.stdout.write(`${image}: no plate\n`);
        } else {
          process.stdout.write(
            `${image}: ${plates.map((p) => `${p.text} (${p.confidence.toFixed(2)}${p.format ? `, ${p.format}` : ''}${withCountry && p.country ? `, ${p.country}` : ''})`).join(' ')}\n`,
          );
        }
        if (opts.annotate) {
          const out = join(opts.annotate, basename(image));
          try {
            await annotateImage(data, plates, out);
          } catch (err) {
            failed = true;
            process.stderr.write(`vigia: cannot annotate ${image}: ${(err as Error).message}\n`);
          }
        }
      }
    } finally {
      await engine.close();
    }
    process.exitCode = failed ? 1 : 0;
  });

const hotlist = program.command('hotlist').description('hot-list tools (the list the daemon matches plates against)');
const dataDirOptions = (cmd: Command) =>
  cmd
    .option('-d, --data-dir <dir>', 'data directory holding the hot-list cache')
    .option('-c, --config <file>', 'take the data directory from this configuration');
function dataDir(opts: { dataDir?: string; config?: string }): string {
  if (opts.dataDir) return opts.dataDir;
  if (opts.config) return loadOrExit(opts.config).paths.data_dir;
  process.stderr.write('vigia: give --data-dir or --config\n');
  process.exit(2);
}
dataDirOptions(
  hotlist.command('import').description('load a CSV or JSON hot list into the cache; exit 1 with FILE:LINE: message lines if it is refused').argument('<file>'),
).action(async (file: string, opts: { dataDir?: string; config?: string }) => {
  const store = new HotlistStore({ dataDir: dataDir(opts) });
  try {
    const r = await store.load(file);
    if (r.ok) {
      process.stdout.write(`imported ${r.size} entries, version ${r.version}\n`);
    } else {
      if (r.errors?.length) for (const e of r.errors) process.stderr.write(`${file}:${e.line}: ${e.message}\n`);
      else process.stderr.write(`vigia: ${r.detail}\n`);
      process.exitCode = 1;
    }
  } finally {
    await store.close();
  }
});
dataDirOptions(hotlist.command('stats').description('statistics of the cached hot list (JSON)')).action(async (opts: { dataDir?: string; config?: string }) => {
  const store = await openHotlist(dataDir(opts));
  try {
    process.stdout.write(`${JSON.stringify(store.stats(), null, 2)}\n`);
  } finally {
    await store.close();
  }
});
dataDirOptions(
  hotlist
    .command('lookup')
    .description('match a plate against the cached hot list; one JSON line per match (exit 1 if none)')
    .argument('<plate>')
    .option('--no-fuzzy', 'exact matches only'),
).action(async (plate: string, opts: { dataDir?: string; config?: string; fuzzy: boolean }) => {
  const store = await openHotlist(dataDir(opts));
  try {
    const matches = store.current().lookup(plate, { fuzzy: opts.fuzzy });
    for (const m of matches) process.stdout.write(`${JSON.stringify({ plate: m.entry.plate, kind: m.kind, distance: m.distance, entry: m.entry })}\n`);
    process.exitCode = matches.length ? 0 : 1;
  } finally {
    await store.close();
  }
});

hotlist
  .command('delta')
  .description('build and sign a hotlist.delta command\'s arguments (JSON on stdout; send with `vigia cmd sign -n hotlist.delta -a "$(...)"`)')
  .requiredOption('-k, --key <file>', 'Ed25519 private key of the list publisher (PEM)')
  .option('--base <version>', 'version of the list the delta applies to (see hotlist.stats)')
  .option('-d, --data-dir <dir>', 'take the base list from this cache and announce the resulting version')
  .option('--add <file>', 'entries to add (CSV or JSON, like a hot list)')
  .option('--remove <plate...>', 'plates to remove')
  .requiredOption('--serial <n>', 'serial of the delta: above every list and delta issued before', Number)
  .requiredOption('--scope <site...>', "sites that may apply it (config device.site), or '*'")
  .action(async (opts: { key: string; base?: string; dataDir?: string; add?: string; remove?: string[]; serial: number; scope: string[] }) => {
    let signed: SignedDelta;
    try {
      signed = await buildSignedDelta({
        keyFile: opts.key,
        base: opts.base,
        dataDir: opts.dataDir,
        addFile: opts.add,
        remove: opts.remove,
        serial: opts.serial,
        scope: opts.scope,
      });
    } catch (err) {
      if (!(err instanceof DeltaError)) throw err;
      if (err.rows) for (const e of err.rows.errors) process.stderr.write(`${err.rows.file}:${e.line}: ${e.message}\n`);
      else process.stderr.write(`vigia: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify(signed)}\n`);
  });

hotlist
  .command('sign')
  .description('write FILE.header (serial, issue time, scope, SHA-256 of FILE) and FILE.sig (its Ed25519 signature) to publish FILE at a URL')
  .argument('<file>')
  .requiredOption('-k, --key <file>', 'Ed25519 private key of the list publisher (PEM)')
  .requiredOption('--serial <n>', 'serial of the list: above every list and delta issued before', Number)
  .requiredOption('--scope <site...>', "sites that may install it (config device.site), or '*'")
  .action((file: string, opts: { key: string; serial: number; scope: string[] }) => {
    let signed: SignedListHeader;
    try {
      signed = signListHeader({ keyFile: opts.key, listFile: file, serial: opts.serial, scope: opts.scope });
    } catch (err) {
      if (!(err instanceof DeltaError)) throw err;
      process.stderr.write(`vigia: ${err.message}\n`);
      process.exit(1);
    }
    writeFileSync(`${file}.header`, signed.header);
    writeFileSync(`${file}.sig`, `${signed.signature}\n`);
    process.stdout.write(`${signed.header}`);
  });

const flows = program.command('flows').description("Node-RED flows of a running daemon, through its admin API (see the README's Node-RED guide)");
const adminOptions = (cmd: Command) =>
  cmd
    .option('-c, --config <file>', 'the device configuration (editor address, first user, outputs to check against)')
    .option('--url <url>', 'editor address (default: from the configuration, e.g. http://127.0.0.1:1880/)')
    .option('-u, --user <name>', 'Node-RED user (default: the first in nodered.users)')
    .option('--password-file <file>', 'read the password from this file (default: $VIGIA_NODERED_PASSWORD, or ask)');
type AdminOpts = { config?: string; url?: string; user?: string; passwordFile?: string };

async function adminTarget(opts: AdminOpts): Promise<{ target: AdminTarget; device?: FlowDevice }> {
  const cfg = opts.config ? loadOrExit(opts.config) : undefined;
  const url = opts.url ?? (cfg ? adminUrl(cfg) : null);
  if (!url) fail('give --url (or -c with a configuration whose nodered.port is fixed)');
  const username = opts.user ?? cfg?.nodered.users[0]?.username;
  if (!username) fail('give --user (or -c with a configuration that has nodered.users)');
  const password = opts.passwordFile
    ? readFileSync(opts.passwordFile, 'utf8').replace(/\r?\n$/, '')
    : (process.env.VIGIA_NODERED_PASSWORD ?? (await askSecret(`Node-RED password for ${username}: `)));
  return { target: { url, username, password }, ...(cfg ? { device: flowDevice(cfg) } : {}) };
}

function fail(message: string): never {
  process.stderr.write(`vigia: ${message}\n`);
  process.exit(2);
}

async function flowsAction<T>(run: () => Promise<T>, report: (r: T) => string): Promise<void> {
  try {
    process.stdout.write(`${report(await run())}\n`);
  } catch (err) {
    if (!(err instanceof FlowError) && !(err instanceof AdminApiError)) throw err;
    process.stderr.write(`vigia: ${err.message}\n`);
    process.exitCode = 1;
  }
}

flows
  .command('check')
  .description('check a flows file without deploying it (unknown node types, bad wiring, Vigía node settings); exit 1 on problems')
  .argument('<file>')
  .option('-c, --config <file>', 'also check the Vigía nodes against this device configuration')
  .action((file: string, opts: { config?: string }) =>
    flowsAction(
      async () => readFlowsFile(file, opts.config ? flowDevice(loadOrExit(opts.config)) : undefined),
      (nodes) => `${file}: ${nodes.length} nodes, ok`,
    ),
  );
adminOptions(flows.command('export').description('write the running flows to FILE').argument('<file>')).action(async (file: string, opts: AdminOpts) => {
  const { target } = await adminTarget(opts);
  await flowsAction(
    () => exportFlows(target, file),
    (r) => `exported ${r.nodes} nodes (rev ${r.rev}) to ${file}`,
  );
});
adminOptions(
  flows.command('import').description('add the flows of FILE to the running ones (checked first; ids in use are renewed)').argument('<file>'),
).action(async (file: string, opts: AdminOpts) => {
  const { target, device } = await adminTarget(opts);
  await flowsAction(
    () => importFlows(target, file, device),
    (r) => `imported ${r.added} nodes${r.renamed ? ` (${r.renamed} given new ids)` : ''}, rev ${r.rev}`,
  );
});
adminOptions(flows.command('deploy').description('replace every running flow with FILE (checked first)').argument('<file>')).action(
  async (file: string, opts: AdminOpts) => {
    const { target, device } = await adminTarget(opts);
    await flowsAction(
      () => deployFlows(target, file, device),
      (r) => `deployed ${r.nodes} nodes, rev ${r.rev}`,
    );
  },
);

program
  .command('nodered')
  .description('Node-RED helpers')
  .command('hash-password')
  .description('print the bcrypt hash of a password for nodered.users (reads it from stdin, or asks twice)')
  .option('--cost <n>', 'bcrypt cost factor', positiveInt, 10)
  .action(async (opts: { cost: number }) => {
    let password: string;
    if (process.stdin.isTTY) {
      password = await askSecret('Password: ');
      if ((await askSecret('Again: ')) !== password) fail('the passwords differ');
    } else {
      password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
    }
    if (password.length < 8) fail('use at least 8 characters');
    const { default: bcrypt } = await import('bcryptjs');
    process.stdout.write(`${bcrypt.hashSync(password, Math.min(opts.cost, 15))}\n`);
  });

/** Reads a line from the terminal without echoing it. */
async function askSecret(prompt: string): Promise<string> {
  const { stdin, stderr } = process;
  if (!stdin.isTTY) fail('no terminal to ask the password on: use --password-file or $VIGIA_NODERED_PASSWORD');
  stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve) => {
    let value = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          stdin.off('data', onData);
          stdin.setRawMode(false);
          stdin.pause();
          stderr.write('\n');
          resolve(value);
          return;
        }
        if (ch === '\u0003') process.exit(130);
        if (ch === '\u007f') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function openHotlist(dir: string): Promise<HotlistStore> {
  const store = new HotlistStore({ dataDir: dir });
  const r = await store.open();
  if (!r.ok) {
    process.stderr.write(`vigia: ${r.detail}\n`);
    await store.close();
    process.exit(1);
  }
  return store;
}

// doctor, gpio watch, outputs test, camera snapshot, outbox, logs (src/technician/).
registerCentralCommands(program);
registerTechnicianCommands(program);

await program.parseAsync(process.argv);
