import { z } from 'zod';
import { ed25519PublicKey } from '../core/keys.js';
import { MIN_HMAC_KEY_BYTES } from '../gateway/command-auth.js';
import { PRIORITIES } from '../core/event.js';
import { secret } from './secret.js';
import { bytes, duration } from './units.js';

/**
 * The one settings schema: it validates the YAML, fills defaults and is exported as JSON Schema
 * (`vigia config schema`) for editor completion. Every field carries a description for that reason.
 */

const perPriority = <T extends z.ZodType>(item: T, defaults: Record<(typeof PRIORITIES)[number], z.input<T>>) =>
  z
    .strictObject({
      alarm: item.prefault(defaults.alarm as never),
      hit: item.prefault(defaults.hit as never),
      read: item.prefault(defaults.read as never),
      telemetry: item.prefault(defaults.telemetry as never),
    })
    .prefault({});

const idPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export const deviceSchema = z
  .strictObject({
    id: z.string().regex(idPattern, 'letters, digits, - and _ only (it is an MQTT topic level)').describe('Unique device id, e.g. pole-0142'),
    site: z.string().regex(idPattern, 'letters, digits, - and _ only (it is an MQTT topic level)').describe('Site or municipality, e.g. la-serena'),
    profile: z.enum(['pole', 'gantry', 'patrol']).describe('Deployment profile; selects defaults suited to it'),
  })
  .describe('Who this device is');

export const pathsSchema = z
  .strictObject({
    data_dir: z.string().default('/var/lib/vigia').describe('Persistent state: outbox database, sequence numbers'),
    runtime_dir: z.string().default('/run/vigia').describe('Control socket and other runtime files'),
  })
  .prefault({})
  .describe('Directories; relative paths are resolved from the working directory of the daemon');

export const logSchema = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info').describe('Least severe level written to the log'),
  })
  .prefault({})
  .describe('Logging (JSON lines on stdout, collected by journald)');

export const clockSchema = z
  .strictObject({
    sync_source: z
      .enum(['auto', 'timesyncd', 'file', 'assume-synced', 'never'])
      .default('auto')
      .describe('How to tell that the wall clock is right: auto (systemd-timesyncd flag file, or assume synced if the system has an RTC), timesyncd, file (sync_file exists), assume-synced, never (only GPS/commands can sync)'),
    sync_file: z.string().default('/run/systemd/timesync/synchronized').describe('File whose existence means the clock is synchronised'),
    poll_interval: duration().prefault('5s').describe('How often the sync state is checked until synced (duration, e.g. 5s)'),
  })
  .prefault({})
  .describe('Wall clock trust: events are marked unsynced until the clock is known to be right');

export const outboxSchema = z
  .strictObject({
    file: z.string().optional().describe('SQLite file (default: <data_dir>/outbox.db)'),
    max_bytes: bytes().prefault('256MiB').describe('Total size all buffered events may use (size, e.g. 256MiB)'),
    alarm_reserve_bytes: bytes().prefault('16MiB').describe('Part of max_bytes that only alarms may use; must be smaller than max_bytes'),
    quota_bytes: perPriority(bytes(), { alarm: '256MiB', hit: '64MiB', read: '128MiB', telemetry: '16MiB' }).describe(
      'Per-priority quota; when a class exceeds it, its own oldest events are evicted (alarms are never evicted)',
    ),
    ttl: perPriority(z.union([duration(), z.literal('never')]), { alarm: 'never', hit: '30d', read: '7d', telemetry: '1d' }).describe(
      'How long an undelivered event stays useful (duration, e.g. 7d, or never); older ones are evicted and counted',
    ),
    commit_interval: duration().prefault('25ms').describe('Group commit window for non-alarm events (fewer fsyncs, less SD wear)'),
    commit_max_events: z.number().int().min(1).default(2000).describe('Commit early when this many events are pending'),
    synchronous: z.enum(['full', 'normal']).default('full').describe('full: fsync every commit (power-cut safe); normal: faster, may lose the last commits on power loss'),
  })
  .prefault({})
  .describe('Durable queue of events waiting for the uplink');

export const tlsSchema = z.strictObject({
  ca: z.string().optional().describe('CA certificate file (PEM) that signed the broker certificate'),
  cert: z.string().optional().describe('Client certificate file (PEM)'),
  key: secret().optional().describe('Client private key (PEM): {file: ...} or {env: ...}'),
  servername: z.string().optional().describe('Server name for SNI and certificate checking, if it differs from the URL host'),
  reject_unauthorized: z.boolean().default(true).describe('Refuse brokers whose certificate does not verify (keep true in the field)'),
}).describe('TLS settings for mqtts:// URLs');

export const mqttSchema = z
  .strictObject({
    url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, 'expected mqtt://host:port or mqtts://host:port').describe('Central broker'),
    client_id: z.string().optional().describe('Default: vigia-<site>-<device>'),
    username: z.string().optional().describe('Broker user name, if the broker requires one'),
    password: secret().optional().describe('{file: ...} or {env: ...}; never logged'),
    tls: tlsSchema.optional(),
    protocol: z.enum(['auto', '5', '3.1.1']).default('auto').describe('auto: MQTT 5, falling back to 3.1.1 if the broker refuses it'),
    topic_prefix: z.string().default('vigia').describe('First topic level: <prefix>/<site>/<device>/...'),
    keepalive: duration().prefault('30s').describe('MQTT keepalive (duration, e.g. 30s); lower it if a NAT drops idle connections'),
    connect_timeout: duration().prefault('15s').describe('Give up a connection attempt after this long (duration)'),
    inflight_window: z.number().int().min(1).max(1000).default(64).describe('Unacknowledged QoS 1 publishes at once (also capped by the broker\'s receive maximum)'),
    drain_rate: z.number().min(0).default(0).describe('Max events/s when draining a backlog after an outage, 0 = unlimited; alarms are never held back'),
    reconnect: z
      .strictObject({
        min_delay: duration().prefault('1s').describe('First retry delay (duration); doubles on each failure'),
        max_delay: duration().prefault('60s').describe('Longest retry delay (duration)'),
        jitter: z.number().min(0).max(1).default(0.3).describe('Random +/- fraction applied to every delay'),
      })
      .prefault({})
      .describe('Reconnect back-off after the connection drops'),
  })
  .describe('MQTT uplink to the central broker');

export const commandsSchema = z
  .strictObject({
    auth: z.enum(['hmac-sha256', 'ed25519']).default('hmac-sha256').describe('How commands from the call center are signed'),
    key: secret().optional().describe('HMAC key, or the Ed25519 public key (PEM) of the call center; commands are refused without it'),
    replay_window: duration().prefault('5m').describe('Commands older or newer than this (by their timestamp) are refused (duration, e.g. 5m)'),
  })
  .prefault({})
  .describe('Remote commands (siren, reboot...) from the call center');

export const telemetrySchema = z
  .strictObject({
    interval: duration().prefault('60s').describe('Health telemetry period (duration, e.g. 60s)'),
  })
  .prefault({})
  .describe('Periodic health reports');

export const hardwareSchema = z
  .strictObject({
    backend: z.enum(['sim', 'auto']).default('auto').describe('auto: detect the real hardware; sim: simulated inputs driven by `vigia sim` (demo, tests)'),
  })
  .prefault({})
  .describe('Inputs and outputs (GPIO, cameras)');

export const demoSchema = z
  .strictObject({
    embedded_broker: z
      .strictObject({
        enabled: z.boolean().default(false).describe('Run an in-process MQTT broker (aedes) for demos; never in the field'),
        host: z.string().default('127.0.0.1').describe('Address the embedded broker listens on'),
        port: z.number().int().min(1).max(65535).default(1883).describe('Port the embedded broker listens on'),
      })
      .prefault({}),
  })
  .prefault({})
  .describe('Demo-only features');

export const configSchema = z
  .strictObject({
    device: deviceSchema,
    paths: pathsSchema,
    log: logSchema,
    clock: clockSchema,
    outbox: outboxSchema,
    mqtt: mqttSchema,
    commands: commandsSchema,
    telemetry: telemetrySchema,
    hardware: hardwareSchema,
    demo: demoSchema,
  })
  .superRefine((cfg, ctx) => {
    if (cfg.outbox.alarm_reserve_bytes >= cfg.outbox.max_bytes) {
      ctx.addIssue({ code: 'custom', path: ['outbox', 'alarm_reserve_bytes'], message: 'must be smaller than outbox.max_bytes' });
    }
    if (cfg.mqtt.reconnect.min_delay > cfg.mqtt.reconnect.max_delay) {
      ctx.addIssue({ code: 'custom', path: ['mqtt', 'reconnect', 'min_delay'], message: 'must not exceed mqtt.reconnect.max_delay' });
    }
    const key = cfg.commands.key?.reveal();
    if (key !== undefined && cfg.commands.auth === 'hmac-sha256' && Buffer.byteLength(key) < MIN_HMAC_KEY_BYTES) {
      ctx.addIssue({ code: 'custom', path: ['commands', 'key'], message: `an HMAC key needs at least ${MIN_HMAC_KEY_BYTES} bytes (e.g. openssl rand -base64 32)` });
    }
    if (key !== undefined && cfg.commands.auth === 'ed25519') {
      try {
        ed25519PublicKey(key, 'the key');
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['commands', 'key'], message: (err as Error).message });
      }
    }
    if (cfg.mqtt.tls && (cfg.mqtt.tls.cert === undefined) !== (cfg.mqtt.tls.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['mqtt', 'tls', cfg.mqtt.tls.cert ? 'key' : 'cert'], message: 'tls.cert and tls.key go together' });
    }
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type Profile = Config['device']['profile'];
