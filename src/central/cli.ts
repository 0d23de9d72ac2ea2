import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { PRIORITIES, type Priority } from '../core/event.js';

/**
 * `vigia central ...`: the call center's commands. Registered by the CLI; the service code is
 * loaded only when one of them runs.
 */

type Opts = Record<string, string | boolean | undefined>;

/** The options the ingest and the console share: broker, store, sessions, retention. */
function ingestOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--broker <urls>', 'central broker (mqtt:// or mqtts://); the nodes of a cluster separated by commas, tried in turn')
    .requiredOption('--store <url>', 'where events are kept: sqlite:PATH or postgres://USER@HOST:PORT/DATABASE (password in PGPASSWORD or ~/.pgpass)')
    .option('--prefix <prefix>', "devices' topic prefix", 'vigia')
    .option('--site <site>', 'only this site (default: every site)', '+')
    .option(
      '--client-id <id>',
      'prefix of the client ids of the persistent sessions (ID-alarm, ID-hit, ID-read, ID-telemetry, ID-status); keep it from run to run',
      'vigia-central-ingest',
    )
    .option(
      '--share-group <name>',
      'split the events with the other ingest instances of this group (MQTT 5 shared subscriptions); give each instance its own --client-id',
    )
    .option(
      '--priorities <list>',
      'only these priority classes, comma-separated (alarm,hit,read,telemetry): instances split the load so on a broker without shared subscriptions',
    )
    .option('--mqtt <version>', 'MQTT version: 5, or 3.1.1 for a broker without MQTT 5 (RabbitMQ 3.x); both acknowledge after the commit', '5')
    .option('--username <name>', 'broker user')
    .option('--password-file <file>', "file holding the broker user's password")
    .option('--ca <file>', 'CA certificate of the broker (PEM)')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client key (PEM)')
    .option('--synchronous <mode>', 'SQLite: full (an acknowledged event survives a power cut) or normal (survives a crash of the ingest; faster)', 'full')
    .option(
      '--retention <spec>',
      'how long events are kept, per priority or type, e.g. read=30d,telemetry=14d,plate.read=7d (defaults: alarm 730d, hit 365d, read 30d, telemetry 30d)',
    )
    .option('--log-level <level>', 'log level', 'info');
}

function priorityList(spec: string, cmd: Command): Priority[] {
  const list = spec
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const bad = list.filter((p) => !(PRIORITIES as readonly string[]).includes(p));
  if (list.length === 0 || bad.length > 0) cmd.error(`error: option '--priorities <list>': ${bad.join(', ') || 'empty'}: use ${PRIORITIES.join(', ')}`);
  return list as Priority[];
}

async function serviceOptions(opts: Opts, cmd: Command) {
  if (opts.synchronous !== 'full' && opts.synchronous !== 'normal') cmd.error("error: option '--synchronous <mode>': full or normal");
  const { parseRetention } = await import('./service.js');
  let retention: ReturnType<typeof parseRetention> | undefined;
  try {
    retention = typeof opts.retention === 'string' ? parseRetention(opts.retention) : undefined;
  } catch (err) {
    cmd.error(`error: option '--retention <spec>': ${(err as Error).message}`);
  }
  const read = (f: unknown) => (typeof f === 'string' ? readFileSync(f) : undefined);
  const tls = { ...(opts.ca ? { ca: read(opts.ca) } : {}), ...(opts.cert ? { cert: read(opts.cert) } : {}), ...(opts.key ? { key: read(opts.key) } : {}) };
  const [url, ...servers] = String(opts.broker)
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (!url) cmd.error("error: option '--broker <urls>': give the broker's URL");
  if (opts.mqtt !== '5' && opts.mqtt !== '3.1.1') cmd.error("error: option '--mqtt <version>': 5 or 3.1.1");
  return {
    url: url!,
    ...(servers.length ? { servers } : {}),
    ...(opts.mqtt === '3.1.1' ? { protocolVersion: 4 as const } : {}),
    ...(typeof opts.shareGroup === 'string' ? { group: opts.shareGroup } : {}),
    ...(typeof opts.priorities === 'string' ? { priorities: priorityList(opts.priorities, cmd) } : {}),
    store: String(opts.store),
    prefix: String(opts.prefix),
    site: String(opts.site),
    clientId: String(opts.clientId),
    synchronous: opts.synchronous as 'full' | 'normal',
    ...(typeof opts.username === 'string' ? { username: opts.username } : {}),
    ...(typeof opts.passwordFile === 'string' ? { passwordFile: opts.passwordFile } : {}),
    ...(Object.keys(tls).length ? { tls } : {}),
    ...(retention ? { retention } : {}),
  };
}

/** Runs until SIGINT or SIGTERM, then stops cleanly. */
function untilSignal(stop: () => Promise<void>, done: () => void): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      void stop().then(() => {
        done();
        process.exit(0);
      });
    });
}

export function registerCentralCommands(program: Command): void {
  const central = program.command('central').description("the call center's side: the ingest that stores every device's events, and the operator console");

  ingestOptions(
    central
      .command('ingest')
      .description('subscribe to every device on the central broker and store each event once (acknowledged to the broker after the commit)'),
  ).action(async (opts: Opts, cmd: Command) => {
    const options = await serviceOptions(opts, cmd);
    const { startIngestService } = await import('./service.js');
    const { createLogger } = await import('../core/logger.js');
    const logger = createLogger(String(opts.logLevel ?? 'info'));
    let service: Awaited<ReturnType<typeof startIngestService>>;
    try {
      service = await startIngestService(options, logger);
    } catch (err) {
      process.stderr.write(`vigia: ${(err as Error).message}\n`);
      process.exit(1);
    }
    logger.info({ mod: 'ingest', store: options.store }, 'ingest running');
    untilSignal(service.stop, () => logger.info({ mod: 'ingest', ...service.ingest.stats() }, 'ingest stopped'));
  });

  ingestOptions(central.command('serve').description('the ingest and the operator console (API and live stream) in one process'))
    .requiredOption('--users <file>', 'operators file (vigia central user add)')
    .requiredOption(
      '--command-key-file <file>',
      'the key commands to the devices are signed with (the HMAC key, or the Ed25519 private key in PEM); it never reaches a browser',
    )
    .option('--command-auth <alg>', 'hmac-sha256 or ed25519, as the devices verify (commands.auth)', 'hmac-sha256')
    .option('--listen <host:port>', 'where the console listens', '127.0.0.1:8080')
    .option('--secure-cookies', 'mark session cookies Secure (the console is reached over HTTPS, e.g. behind a reverse proxy)')
    .option(
      '--hotlist-key <file>',
      "the list publisher's Ed25519 private key (PEM; devices hold its public key in anpr.hotlist.public_key): enables the list tab's changes",
    )
    .option('--hotlist-dir <dir>', 'where the center keeps its list and the deltas it signed', '/var/lib/vigia-central/hotlist')
    .option('--hotlist-scope <sites>', 'sites the deltas may be installed at, comma-separated', '*')
    .action(async (opts: Opts, cmd: Command) => {
      const options = await serviceOptions(opts, cmd);
      if (opts.commandAuth !== 'hmac-sha256' && opts.commandAuth !== 'ed25519') cmd.error("error: option '--command-auth <alg>': hmac-sha256 or ed25519");
      const m = /^(.+):(\d{1,5})$/.exec(String(opts.listen));
      if (!m || Number(m[2]) > 65535) cmd.error("error: option '--listen <host:port>': e.g. 127.0.0.1:8080");
      const { startConsoleService } = await import('./service.js');
      const { createLogger } = await import('../core/logger.js');
      const logger = createLogger(String(opts.logLevel ?? 'info'));
      let service: Awaited<ReturnType<typeof startConsoleService>>;
      try {
        service = await startConsoleService(
          {
            ...options,
            listen: { host: m![1]!, port: Number(m![2]) },
            usersFile: String(opts.users),
            commandAuth: opts.commandAuth as 'hmac-sha256' | 'ed25519',
            commandKeyFile: String(opts.commandKeyFile),
            ...(opts.secureCookies ? { secureCookies: true } : {}),
            ...(opts.hotlistKey
              ? {
                  hotlist: {
                    keyFile: String(opts.hotlistKey),
                    dir: String(opts.hotlistDir),
                    scope: String(opts.hotlistScope)
                      .split(',')
                      .map((x) => x.trim())
                      .filter(Boolean),
                  },
                }
              : {}),
          },
          logger,
        );
      } catch (err) {
        process.stderr.write(`vigia: ${(err as Error).message}\n`);
        process.exit(1);
      }
      logger.info({ mod: 'console', listen: `${m![1]}:${service.port}` }, 'console and ingest running');
      untilSignal(service.stop, () => logger.info({ mod: 'ingest', ...service.ingest.stats() }, 'stopped'));
    });

  const user = central.command('user').description("the console's operators (a file of names, roles and bcrypt hashes)");
  user
    .command('add')
    .description('add an operator; the password is read from standard input (at least 10 characters)')
    .argument('<name>')
    .requiredOption('--users <file>', 'operators file (created if missing, mode 0600)')
    .option('--role <role>', 'operator, supervisor or admin', 'operator')
    .action(async (name: string, opts: Opts) => {
      const { UsersFile } = await import('./console/users.js');
      const password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
      try {
        await new UsersFile(String(opts.users)).add(name, opts.role as 'operator', password);
      } catch (err) {
        process.stderr.write(`vigia: ${(err as Error).message}\n`);
        process.exit(1);
      }
      process.stdout.write(`${name} added as ${String(opts.role)}\n`);
    });
  user
    .command('remove')
    .argument('<name>')
    .requiredOption('--users <file>', 'operators file')
    .action(async (name: string, opts: Opts) => {
      const { UsersFile } = await import('./console/users.js');
      if (!new UsersFile(String(opts.users)).remove(name)) {
        process.stderr.write(`vigia: no user ${name}\n`);
        process.exit(1);
      }
      process.stdout.write(`${name} removed\n`);
    });
  user
    .command('list')
    .requiredOption('--users <file>', 'operators file')
    .action(async (opts: Opts) => {
      const { UsersFile } = await import('./console/users.js');
      for (const u of new UsersFile(String(opts.users)).list()) process.stdout.write(`${u.name}\t${u.role}\t${u.created}\n`);
    });
}
