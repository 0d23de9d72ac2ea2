import { z } from 'zod';
import { ed25519PublicKey, MIN_HMAC_KEY_BYTES } from '../core/keys.js';
import type { PRIORITIES } from '../core/event.js';
import { parsePattern } from '../core/pattern.js';
import { secret, textOrSecret } from './secret.js';
import { bytes, duration } from './units.js';

/** The plate grammars plate reading implements; `anpr/grammar.ts` keys its table by this list, so the two cannot drift. */
export const GRAMMAR_NAMES = ['cl', 'ar', 'bo', 'pe', 'br', 'eu', 'generic'] as const;
export type GrammarName = (typeof GRAMMAR_NAMES)[number];
export const isGrammarName = (name: string): name is GrammarName => (GRAMMAR_NAMES as readonly string[]).includes(name);

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
    profile: z.enum(['pole', 'gantry', 'patrol', 'community']).describe('Deployment profile; selects defaults suited to it'),
    location: z
      .strictObject({
        lat: z.number().min(-90).max(90).describe('Latitude, decimal degrees (WGS 84)'),
        lon: z.number().min(-180).max(180).describe('Longitude, decimal degrees (WGS 84)'),
      })
      .optional()
      .describe("Where a fixed device is installed; sent in its birth message so the call center's map places it (a GPS fix, when there is one, wins)"),
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
      .describe(
        'How to tell that the wall clock is right: auto (systemd-timesyncd flag file, or assume synced if the system has an RTC), timesyncd, file (sync_file exists), assume-synced, never (only GPS/commands can sync)',
      ),
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
      'Per-priority quota; when a class exceeds it, its own oldest events are evicted. Alarms are never evicted: past the alarm quota (and never into alarm_reserve_bytes), alarm events are stored without their embedded images (plate.hit evidence, marked dropped: quota), so panic presses always have room',
    ),
    ttl: perPriority(z.union([duration(), z.literal('never')]), { alarm: 'never', hit: '30d', read: '7d', telemetry: '1d' }).describe(
      'How long an undelivered event stays useful (duration, e.g. 7d, or never); older ones are evicted and counted',
    ),
    commit_interval: duration().prefault('25ms').describe('Group commit window for non-alarm events (fewer fsyncs, less SD wear)'),
    commit_max_events: z.number().int().min(1).default(2000).describe('Commit early when this many events are pending'),
    synchronous: z
      .enum(['full', 'normal'])
      .default('full')
      .describe('full: fsync every commit (power-cut safe); normal: faster, may lose the last commits on power loss'),
    disk_reserve_bytes: bytes()
      .prefault('8MiB')
      .describe(
        'Disk space held in a file beside the outbox (<file>.reserve, written with real blocks) and released when the disk is full, so alarms can still be stored. While it is released only alarm-priority events are stored; it is written again once twice its size is free. 0 disables it',
      ),
  })
  .prefault({})
  .describe('Durable queue of events waiting for the uplink');

export const tlsSchema = z
  .strictObject({
    ca: z.string().optional().describe('CA certificate file (PEM) that signed the broker certificate'),
    cert: z.string().optional().describe('Client certificate file (PEM)'),
    key: secret().optional().describe('Client private key (PEM): {file: ...} or {env: ...}'),
    servername: z.string().optional().describe('Server name for SNI and certificate checking, if it differs from the URL host'),
    reject_unauthorized: z.boolean().default(true).describe('Refuse brokers whose certificate does not verify (keep true in the field)'),
  })
  .describe('TLS settings for mqtts:// URLs');

export const mqttSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, 'expected mqtt://host:port or mqtts://host:port')
      .describe('Central broker'),
    servers: z
      .array(z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, 'expected mqtt://host:port or mqtts://host:port'))
      .max(16)
      .default([])
      .describe(
        'More brokers to fail over to (the other nodes of a cluster), tried in turn after url: a link that drops, or an attempt that fails, moves to the next one',
      ),
    client_id: z.string().optional().describe('Default: vigia-<site>-<device>'),
    username: z.string().optional().describe('Broker user name, if the broker requires one'),
    password: secret().optional().describe('{file: ...} or {env: ...}; never logged'),
    tls: tlsSchema.optional(),
    protocol: z.enum(['auto', '5', '3.1.1']).default('auto').describe('auto: MQTT 5, falling back to 3.1.1 if the broker refuses it'),
    topic_prefix: z.string().default('vigia').describe('First topic level: <prefix>/<site>/<device>/...'),
    keepalive: duration().prefault('30s').describe('MQTT keepalive (duration, e.g. 30s); lower it if a NAT drops idle connections'),
    session_expiry: duration()
      .prefault('0s')
      .describe(
        "How long the broker keeps the device's session (its command subscription and the commands sent meanwhile) after the link drops (duration; 0 = a clean session each time). On a RabbitMQ cluster set it (e.g. 10m): a clean session's queue lives on one node and blocks the device's reconnects when that node dies, a kept one is a replicated quorum queue",
      ),
    connect_timeout: duration().prefault('15s').describe('Give up a connection attempt after this long (duration)'),
    inflight_window: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(64)
      .describe("Unacknowledged QoS 1 publishes at once (also capped by the broker's receive maximum)"),
    max_inbound_bytes: bytes()
      .prefault('512KiB')
      .pipe(z.number().int().min(4096, 'must be at least 4KiB').max(268_435_455, 'must be at most 256MiB (the largest MQTT packet)'))
      .describe(
        'Largest message the device takes from the broker (commands); MQTT 5 announces it so the broker drops bigger ones, under 3.1.1 they are dropped on arrival and counted. A hotlist.delta costs about 190 bytes per added plate, so 512KiB fits about 2700',
      ),
    drain_rate: z.number().min(0).default(0).describe('Max events/s when draining a backlog after an outage, 0 = unlimited; alarms are never held back'),
    reconnect: z
      .strictObject({
        min_delay: duration().prefault('1s').describe('First retry delay (duration); doubles on each failure'),
        max_delay: duration().prefault('60s').describe('Longest retry delay (duration)'),
        jitter: z.number().min(0).max(1).default(0.3).describe('Random +/- fraction applied to every delay'),
        spread: duration()
          .optional()
          .describe(
            'After a lost link, the first attempt goes at once to the next server; if it fails too (the whole central side is down), the next is at a random time within this window, so a fleet comes back spread out rather than in the same second (duration; default: half of max_delay). An alarm waiting does not wait for it',
          ),
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

const lineRef = z
  .union([
    z.string().min(1).describe('Line name as the kernel knows it, e.g. GPIO17 (Raspberry Pi header pins are named so on Pi 4 and Pi 5)'),
    z.strictObject({
      chip: z.string().min(1).describe('Chip label (pinctrl-bcm2711, pinctrl-rp1...), name (gpiochip0) or path (/dev/gpiochip0)'),
      offset: z.number().int().min(0).max(1023).describe('Line offset within the chip'),
    }),
  ])
  .describe('Which GPIO line: a line name like GPIO17, or {chip, offset}');

const inputSchema = z
  .strictObject({
    line: lineRef,
    kind: z.enum(['panic', 'motion', 'door', 'tamper']).describe('panic button, PIR motion sensor, cabinet door or tamper switch'),
    active_low: z.boolean().default(true).describe('Active when the pin is low: a switch to ground with a pull-up (the usual wiring)'),
    bias: z.enum(['pull-up', 'pull-down', 'disabled', 'as-is']).default('pull-up').describe('Internal resistor; pull-up for switches to ground'),
    debounce: duration().prefault('30ms').describe('Contact bounce window (the first edge counts at once)'),
    long_press: duration().prefault('3s').describe('panic: held this long is a long press'),
    stuck: duration().prefault('60s').describe('panic: held this long is a jammed button (one fault event, not an endless alarm)'),
    hold: duration().prefault('10s').describe('motion: motion lasts this long after the last trigger'),
    min_interval: duration().prefault('30s').describe('motion: at most one motion event per interval'),
  })
  .describe('A GPIO input');

const outputSchema = z
  .strictObject({
    line: lineRef,
    kind: z.enum(['strobe', 'siren', 'relay', 'led']).describe('What is wired to the line'),
    active_low: z.boolean().default(false).describe('On when the pin is low (some relay boards)'),
    max_on: duration().optional().describe('Safety cut-off: no pattern runs longer (default: siren 3m, strobe 15m, relay 1h, led none; 0 = none)'),
  })
  .describe('A GPIO output');

export const DEFAULT_MAX_ON_MS: Readonly<Record<z.output<typeof outputSchema>['kind'], number>> = {
  siren: 3 * 60_000,
  strobe: 15 * 60_000,
  relay: 3_600_000,
  led: 0,
};

const namePattern = /^[a-z][a-z0-9_]{0,31}$/;

export const hardwareSchema = z
  .strictObject({
    backend: z
      .enum(['auto', 'chardev', 'sysfs', 'sim'])
      .default('auto')
      .describe(
        'GPIO access: chardev (/dev/gpiochipN, the only one on Trixie and the Pi 5), sysfs (/sys/class/gpio, older systems), sim (driven by `vigia sim`), auto: the best one present',
      ),
    synthetic_events: z
      .boolean()
      .default(false)
      .describe(
        'Accept synthetic events (`vigia sim event|burst`, type sim.*) through the control socket with real GPIO too, for commissioning and acceptance tests; always on with backend sim. Leave off in service',
      ),
    inputs: z
      .record(z.string().regex(namePattern, 'lower-case letters, digits and _'), inputSchema)
      .default({})
      .describe('Inputs by name, e.g. panic, pir_north, door'),
    outputs: z
      .record(z.string().regex(namePattern, 'lower-case letters, digits and _'), outputSchema)
      .default({})
      .describe('Outputs by name, e.g. strobe, siren, button_led'),
    gps: z
      .strictObject({
        port: z.string().describe('Serial device, e.g. /dev/ttyACM0 (USB) or /dev/serial0 (UART)'),
        baud: z.number().int().positive().default(9600).describe('Baud rate'),
        sync_clock: z
          .boolean()
          .default(true)
          .describe(
            'Mark the wall clock as synced from GPS time when NTP has not; a wrong clock is set through the clock helper (systemctl enable --now vigia-clock.socket)',
          ),
        max_fix_age: duration().prefault('10s').describe('Older fixes are not attached to events'),
      })
      .optional()
      .describe('GPS receiver speaking NMEA 0183'),
  })
  .prefault({})
  .describe('Inputs and outputs (GPIO, serial devices)');

const patternSchema = z
  .union([z.enum(['on', 'off']), z.record(z.string(), z.unknown())])
  .describe('An output pattern: on, off, {mode: blink, period_ms, duty}, {mode: pulse, ms} or {mode: sequence, steps: [{on, ms}], repeat}');

export const poleSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('The smart-pole alarm behaviour (on by default in the pole profile)'),
    panic_input: z.string().default('panic').describe('Input whose press raises alarm.panic'),
    led_output: z.string().optional().describe('The lit button: shows "received" once the alarm is on disk, "acknowledged" when the call center answers'),
    strobe_output: z.string().optional().describe('Strobe lit on an alarm'),
    strobe_for: duration().prefault('60s').describe('How long the strobe runs after a press'),
    siren_output: z.string().optional().describe('Siren; sounded by command (output.set), and by an alarm only when siren_pattern is set'),
    siren_pattern: patternSchema
      .optional()
      .describe(
        'Siren pattern played when an alarm is raised (a community kit: the neighbours must hear it); unset: the siren sounds only by command (a pole)',
      ),
    siren_for: duration().prefault('3m').describe('How long the siren sounds after an alarm is raised (a remote with a silence button stops it sooner)'),
    led_received: patternSchema.default({ mode: 'blink', period_ms: 250 }).describe('LED pattern while the call center has not answered'),
    led_acknowledged: patternSchema.default('on').describe('LED pattern once the call center acknowledged'),
    snapshot_camera: z.string().optional().describe('Camera (an anpr.cameras id) whose picture is attached to the alarm'),
  })
  .prefault({})
  .describe('The alarm of a smart pole or a community kit: panic button or radio remotes, strobe, siren, lit button, snapshot');

export const radioSchema = z
  .strictObject({
    receiver: z
      .enum(['none', 'rtl_433', 'gpio'])
      .default('none')
      .describe('How 433 MHz remotes are received: an RTL-SDR dongle through rtl_433, or a plain OOK receiver module on a GPIO line'),
    line: lineRef.optional().describe("gpio: the line the receiver module's data pin is wired to"),
    active_low: z.boolean().default(false).describe('gpio: carrier on reads as a low pin (some modules invert)'),
    rtl_433: z
      .strictObject({
        command: z.string().default('rtl_433').describe('The rtl_433 program'),
        device: z.string().default('0').describe('rtl_433 -d: the dongle (index or :serial)'),
        frequency: z.string().default('433.92M').describe('rtl_433 -f'),
        protocols: z
          .array(z.number().int().positive())
          .optional()
          .describe('rtl_433 -R: the decoders to run (default: the fixed-code and KeeLoq remote decoders; fewer decoders, fewer false frames and less CPU)'),
        extra_args: z.array(z.string()).default([]).describe('More rtl_433 options (gain: -g 40...)'),
      })
      .prefault({})
      .describe('RTL-SDR dongle through rtl_433'),
    press_gap: duration()
      .prefault('1s')
      .describe('Frames of one remote and button closer than this are one press (a held button repeats its frame every ~40 ms)'),
    learn_window: z.number().int().min(1).max(1000).default(50).describe('Unknown codes remembered for `vigia remotes learn` and status'),
  })
  .prefault({})
  .describe('433 MHz radio remotes (community kits)');

const householdSchema = z
  .strictObject({
    name: z.string().min(1).max(120).describe('Household or person, as the call center reads it'),
    address: z.string().max(200).optional().describe('Where they live'),
    phone: z.string().max(40).optional().describe('Who the call center calls back'),
    notes: z.string().max(500).optional().describe('Anything the operator should know (a person with reduced mobility...)'),
  })
  .describe('Who a remote belongs to');

export const REMOTE_ROLES = ['alarm', 'silence', 'ignore'] as const;

export const remoteSchema = z
  .strictObject({
    code: z
      .string()
      .regex(/^[a-z0-9-]+:[0-9a-f]+$/, 'protocol:id in lowercase hex, as `vigia remotes learn` shows it (ev1527:a3f5c)')
      .describe('The remote, as `vigia remotes learn` shows it: protocol:id (ev1527:a3f5c, hcs200:1a2b3c4)'),
    buttons: z
      .record(z.string().regex(/^(\d+|\*)$/, 'a button number or *'), z.enum(REMOTE_ROLES))
      .default({ '*': 'alarm' })
      .describe('What each button does: alarm (raise the alarm), silence (stop the siren and strobe; the alarm stays open), ignore; * is every other button'),
    household: householdSchema.optional(),
  })
  .describe('A registered radio remote');

const hexBytes = (what: string) =>
  z
    .string()
    .regex(/^([0-9a-fA-F]{2})+$/, `${what}: hex bytes, e.g. 0215`)
    .transform((s) => s.toLowerCase());

export const personalSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Listen for personal alarm tags over Bluetooth LE (BlueZ; community kits and poles near schools)'),
    adapter: z
      .string()
      .regex(/^(hci\d+|sim)$/, 'a BlueZ adapter, e.g. hci0, or sim')
      .default('hci0')
      .describe('The Bluetooth adapter that scans; sim: a simulated one, fed by the control socket (sim.advert; the demo)'),
    format: z
      .strictObject({
        company_id: z
          .number()
          .int()
          .min(0)
          .max(0xffff)
          .default(0x004c)
          .describe("The manufacturer data's company identifier the tags use (0x004c: iBeacon frames)"),
        prefix: hexBytes('prefix')
          .optional()
          .describe(
            "Bytes the manufacturer data starts with, in hex: for iBeacon-style tags 0215 then the tags' 16-byte UUID (required: it keeps every other beacon in the street out)",
          ),
        id_offset: z.number().int().min(0).max(250).default(18).describe('Where the tag id starts in the manufacturer data (iBeacon: 18, the major)'),
        id_length: z.number().int().min(1).max(16).default(2).describe('Bytes of the tag id (iBeacon major: 2)'),
        button_offset: z.number().int().min(0).max(250).default(20).describe('The byte that carries the button flag (iBeacon: 20, the high byte of the minor)'),
        button_mask: z.number().int().min(1).max(0xff).default(0x80).describe('The button flag within that byte: set while the button is pressed'),
        counter_offset: z
          .number()
          .int()
          .min(0)
          .max(250)
          .nullable()
          .default(21)
          .describe(
            'A byte the tag changes at every press (iBeacon: 21, the low byte of the minor); a new value is a new press even within press_gap. null: the tag has none',
          ),
      })
      .prefault({})
      .describe('How a tag says who it is and that its button is pressed, in its manufacturer-specific advertising data'),
    press_gap: duration()
      .prefault('5s')
      .describe('Adverts of one tag with the button flag closer than this are one press (a tag repeats its advert every 0.1-1 s for a few seconds)'),
    min_rssi_dbm: z.number().int().min(-127).max(20).default(-100).describe('Adverts weaker than this are ignored (a tag far from the pole, or a reflection)'),
    learn_window: z.number().int().min(1).max(1000).default(50).describe('Unknown tags remembered for `vigia tags learn` and status'),
  })
  .prefault({})
  .superRefine((p, ctx) => {
    if (p.enabled && p.format.prefix === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['format', 'prefix'],
        message:
          "set the bytes every tag's manufacturer data starts with (iBeacon: 0215 then the tags' UUID): without it every beacon in the street is read as a tag",
      });
    }
    const f = p.format;
    const prefixLength = (f.prefix?.length ?? 0) / 2;
    if (f.id_offset < prefixLength)
      ctx.addIssue({ code: 'custom', path: ['format', 'id_offset'], message: 'the tag id cannot be inside the prefix (every tag has the same prefix)' });
    const idEnd = f.id_offset + f.id_length;
    for (const [key, offset] of [
      ['button_offset', f.button_offset],
      ['counter_offset', f.counter_offset],
    ] as const) {
      if (offset !== null && offset >= f.id_offset && offset < idEnd) ctx.addIssue({ code: 'custom', path: ['format', key], message: 'overlaps the tag id' });
    }
    if (f.counter_offset !== null && f.counter_offset === f.button_offset && (f.button_mask & 0xff) === 0xff) {
      ctx.addIssue({ code: 'custom', path: ['format', 'counter_offset'], message: 'is the whole button byte' });
    }
  })
  .describe('Personal alarm tags heard over Bluetooth LE');

export const personalTagSchema = z
  .strictObject({
    id: hexBytes('id').describe('The tag id as the tag advertises it, hex (iBeacon: the major, 4 hex digits), as `vigia tags learn` shows it'),
    person: householdSchema.describe('Who carries the tag'),
  })
  .describe('A registered personal alarm tag');

const normalisedPoint = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);

export const cameraSchema = z
  .strictObject({
    id: z.string().regex(idPattern, 'letters, digits, - and _ only (it names the camera in events)').describe('Camera id, e.g. lane-1'),
    kind: z
      .enum(['stream', 'snapshot', 'directory'])
      .describe(
        'stream: anything ffmpeg reads (rtsp://, http MJPEG, /dev/videoN, a file); snapshot: poll a JPEG snapshot URL (ONVIF-style); directory: JPEGs uploaded by the camera (FTP)',
      ),
    url: textOrSecret()
      .optional()
      .describe(
        'stream or snapshot: the URL (or V4L2 device / file path for stream); {file: ...} or {env: ...} keeps a URL that carries a token out of the config. Prefer username/password to user:password@ in the URL',
      ),
    dir: z.string().optional().describe('directory: where the camera uploads its JPEGs'),
    after_read: z
      .enum(['delete', 'move'])
      .default('delete')
      .describe(
        'directory: what happens to an uploaded picture once read: delete (the SD card never fills; hit evidence is kept apart) or move to <dir>/processed',
      ),
    fps: z.number().positive().max(30).default(4).describe('stream: frames per second taken from the stream'),
    interval: duration().prefault('1s').describe('snapshot: poll period (duration)'),
    max_width: z.number().int().min(320).max(8192).default(1920).describe('stream: frames wider than this are downscaled by ffmpeg'),
    username: z.string().optional().describe('stream (rtsp://, http MJPEG) or snapshot: user name for the camera'),
    password: secret().optional().describe('stream or snapshot: password ({file: ...} or {env: ...}); never logged, never on the ffmpeg command line'),
    auth: z
      .enum(['auto', 'basic', 'digest'])
      .default('auto')
      .describe(
        'snapshot: authentication scheme; auto answers Digest, and Basic only over https; basic sends the password in clear even over http; digest never sends it in clear',
      ),
    insecure_tls: z.boolean().default(false).describe('snapshot over https: accept the self-signed certificate many cameras ship with'),
    loop: z.boolean().default(false).describe('stream from a file: loop it forever (tests, demos)'),
    rtsp_transport: z
      .enum(['tcp', 'udp'])
      .default('tcp')
      .describe(
        'stream over rtsp://: RTP over the RTSP connection (tcp: survives NAT and cellular links) or over UDP (for cameras and relays that only do UDP, on a LAN)',
      ),
    roi: z
      .array(normalisedPoint)
      .min(3)
      .optional()
      .describe('Region of interest: polygon of [x, y] points from 0 to 1 of the frame; motion and plates outside it are ignored'),
    grammar: z.string().optional().describe('Plate grammar for this camera (default: anpr.grammar)'),
    secondary_grammars: z.array(z.string()).optional().describe("Foreign plate grammars read beside this camera's grammar (default: anpr.secondary_grammars)"),
    motion: z.boolean().optional().describe('Override anpr.motion.enabled for this camera (e.g. false for a trigger-driven camera)'),
  })
  .superRefine((cam, ctx) => {
    if ((cam.kind === 'stream' || cam.kind === 'snapshot') && !cam.url)
      ctx.addIssue({ code: 'custom', path: ['url'], message: `a ${cam.kind} camera needs url` });
    if (cam.kind === 'stream' && (cam.username !== undefined || cam.password !== undefined)) {
      if (typeof cam.url === 'string' && !/^[a-z][a-z0-9+.-]*:\/\//i.test(cam.url))
        ctx.addIssue({ code: 'custom', path: ['username'], message: 'username/password need a network url (rtsp://, http://...)' });
      if (cam.username === undefined) ctx.addIssue({ code: 'custom', path: ['password'], message: 'a stream camera password needs username' });
    }
    if (cam.kind === 'directory' && !cam.dir) ctx.addIssue({ code: 'custom', path: ['dir'], message: 'a directory camera needs dir' });
  })
  .describe('One camera');

export const anprSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Read plates from the cameras below'),
    cameras: z.array(cameraSchema).default([]).describe('Cameras whose frames are read'),
    workers: z.number().int().min(1).max(8).default(1).describe('Inference worker threads (each loads its own models)'),
    threads_per_worker: z.number().int().min(1).max(16).optional().describe('ONNX Runtime threads per worker (default: cores / workers)'),
    detector: z
      .union([z.literal('ppocr'), z.strictObject({ yolo: z.string().describe('Path of a YOLO plate detector .onnx (end2end or YOLOv8 output)') })])
      .default('ppocr')
      .describe('Plate detector: ppocr (bundled PP-OCRv4 text detector) or {yolo: /path/model.onnx}'),
    recogniser: z
      .enum(['ppocr', 'tesseract'])
      .default('ppocr')
      .describe('Character recogniser: ppocr (bundled PP-OCRv4) or tesseract (tesseract.js, bundled English data)'),
    detector_max_side: z
      .number()
      .int()
      .min(320)
      .max(2048)
      .default(800)
      .describe('Longer side of the detector input; raise for distant plates, lower for speed'),
    grammar: z.string().default('cl').describe('Plate grammar: cl (Chile), ar (Argentina), bo (Bolivia), pe (Peru), br (Brazil), eu or generic'),
    secondary_grammars: z
      .array(z.string())
      .default([])
      .describe(
        'Foreign plate grammars read beside anpr.grammar (e.g. [ar, bo, pe, br] near a border): their reads are tagged with their country, rank below an equally good primary read, and match the hotlist exactly only',
      ),
    min_confidence: z.number().min(0).max(1).default(0.5).describe('Readings less confident than this are ignored'),
    motion: z
      .strictObject({
        enabled: z.boolean().default(true).describe('Only read frames with motion in the region of interest (an idle street costs almost no CPU)'),
        width: z.number().int().min(32).max(640).default(160).describe('Width of the grey frame compared for motion'),
        threshold: z.number().int().min(1).max(255).default(18).describe('Grey-level change (0-255) for a pixel to count as moving'),
        min_changed: z.number().min(0).max(1).default(0.004).describe('Fraction of the region that must change'),
        cooldown: duration().prefault('2s').describe('Keep reading this long after motion stops (a car stopped at the gantry)'),
      })
      .prefault({})
      .describe('Motion gate before inference'),
    saving: z
      .strictObject({
        motion_region: z
          .boolean()
          .default(true)
          .describe('Run the plate detector on a window around the part of the frame that moved (needs the motion gate), not on the whole frame'),
        reuse_unchanged: z
          .boolean()
          .default(true)
          .describe("Take the previous frame's reading of a plate whose crop has not changed instead of reading it again (at most 4 frames in a row)"),
      })
      .prefault({})
      .describe('Work saved per frame: the same plates read for fewer CPU cycles'),
    tracking: z
      .strictObject({
        max_gap: duration().prefault('1500ms').describe('A plate unseen for this long has passed: its reads are voted into one plate.read'),
        max_track: duration().prefault('10s').describe('A plate in view longer than this (parked, queued) is reported and tracked anew'),
        dedup_window: duration().prefault('60s').describe('The same plate on the same camera is not reported again within this time'),
        min_frames: z.number().int().min(1).default(1).describe('Passages read in fewer frames are dropped as noise'),
      })
      .prefault({})
      .describe('Voting of reads over consecutive frames'),
    hits: z
      .strictObject({
        min_confidence: z
          .number()
          .min(0)
          .max(1)
          .default(0.6)
          .describe('Single-frame reads less confident than this do not raise a hit (the voted read still can)'),
        fuzzy: z
          .boolean()
          .default(true)
          .describe('Also match hotlist plates that differ only by OCR-confusable characters (O/0, I/1, B/8...); the match kind is reported'),
        dedup_window: duration().prefault('5m').describe('A hit for the same hotlist plate on the same camera is not raised again within this time'),
      })
      .prefault({})
      .describe('Hotlist matches (plate.hit, alarm priority)'),
    hotlist: z
      .strictObject({
        file: z.string().optional().describe('Local CSV or JSON list, placed by the operator (loaded at start)'),
        url: z
          .string()
          .regex(/^https:\/\//, 'the hotlist is fetched over https only')
          .optional()
          .describe(
            'https URL of the list; <url>.header (serial, issued, scope, sha256) and <url>.sig (its signature) are checked before use: lower serials and lists for other sites are refused',
          ),
        public_key: secret().optional().describe('Ed25519 public key (PEM) that signs downloaded lists and hotlist.delta commands'),
        refresh: duration().prefault('15m').describe('How often the URL is checked (ETag: an unchanged list costs one request)'),
        max_age: duration()
          .prefault('24h')
          .describe(
            'A signed list issued longer ago than this raises hotlist.stale (once the clock is synced), even while the server answers 304: the publisher must issue a new serial at least this often',
          ),
        ca: z.string().optional().describe('CA certificate file (PEM) for the hotlist server, if not a public CA'),
      })
      .prefault({})
      .describe('The stolen-vehicle list ("encargo por robo")'),
    privacy: z
      .strictObject({
        reads: z
          .enum(['full', 'hashed', 'off'])
          // Off by default: law 21.719 asks for data protection by default, and catching stolen cars needs only the hits.
          .default('off')
          .describe(
            'Plates that are not hits: off (default: not sent at all), hashed (keyed HMAC-SHA256, so a later query for a plate can still match) or full (text; needs a legal basis for tracking every car)',
          ),
        hash_key: secret().optional().describe('Key of the plate hash (at least 16 bytes); required when reads is hashed'),
      })
      .prefault({})
      .describe('Personal data (Chile, law 21.719): what leaves the device about vehicles that are not wanted'),
    evidence: z
      .strictObject({
        dir: z.string().optional().describe('Where hit evidence (plate crop, frame) is kept (default: <data_dir>/evidence)'),
        retention: duration().prefault('30d').describe('Local evidence older than this is deleted'),
        max_bytes: bytes().prefault('512MiB').describe('Oldest evidence is deleted beyond this size'),
        frame_width: z.number().int().min(160).max(1920).default(640).describe('Width of the downscaled frame attached to a hit'),
        jpeg_quality: z.number().int().min(30).max(95).default(75).describe('JPEG quality of the evidence images'),
      })
      .prefault({})
      .describe('Evidence images attached to hits and kept on the device'),
  })
  .prefault({})
  .describe('Plate reading (ANPR) and hotlist matching');

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

/** A bcrypt hash as Node-RED's adminAuth stores it (`vigia nodered hash-password` makes one). */
const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

export const noderedSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Run the embedded Node-RED (local flows); needs at least one user'),
    bind: z
      .string()
      .min(1)
      .default('127.0.0.1')
      .describe('Address the editor and admin API listen on; keep loopback and reach it with ssh -L 1880:127.0.0.1:1880'),
    port: z.number().int().min(0).max(65535).default(1880).describe('Port of the editor and admin API (0: any free port)'),
    users: z
      .array(
        z.strictObject({
          username: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, dot, dash and underscore, at most 64'),
          password: z
            .string()
            .regex(BCRYPT_HASH, 'must be a bcrypt hash (make one with: vigia nodered hash-password)')
            .describe('bcrypt hash of the password, never the password itself'),
          permissions: z.enum(['*', 'read']).default('*').describe('* may deploy flows; read may only look'),
        }),
      )
      .default([])
      .describe('Who may log in to the editor and the admin API (adminAuth is always on)'),
    credential_secret: secret().optional().describe('Key that encrypts the credentials stored with the flows (e.g. {file: /etc/vigia/nodered-secret})'),
    user_dir: z.string().optional().describe('Node-RED user directory (flows, context); default <data_dir>/nodered'),
    memory: bytes().prefault('192MiB').describe('Heap cap of the Node-RED process; over it the runtime is restarted'),
    node: z.string().min(1).optional().describe("Node.js executable for the Node-RED process (default: the daemon's own); a wrapper script works too"),
    allow_alarm: z.boolean().default(false).describe('May flows emit events of alarm priority (a community kit turning two inputs into one alarm)'),
    event_rate: z
      .strictObject({
        per_second: z.number().positive().max(1000).default(5).describe('Events a vigia event node may emit per second, sustained'),
        burst: z.number().int().min(1).max(10_000).default(20).describe('Events a vigia event node may emit at once'),
      })
      .prefault({})
      .describe('Rate limit of each vigia event node; events over it are refused and counted'),
    palette_installs: z.boolean().default(false).describe('Allow installing nodes from npm in the editor (needs internet; off in the field)'),
    heartbeat: duration().prefault('1s').describe('How often the runtime is asked whether it is alive'),
    hang_timeout: duration().prefault('10s').describe('A runtime that has not answered for this long is killed and restarted'),
    restart: z
      .strictObject({
        min_delay: duration().prefault('1s').describe('First restart delay after a failure'),
        max_delay: duration().prefault('5m').describe('Longest restart delay after repeated failures'),
      })
      .prefault({}),
  })
  .prefault({})
  .describe('Embedded Node-RED: local rules built by technicians, isolated in a supervised process');

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

/** `host:port` or `[v6]:port` of a listening socket, or null if it is not one. */
export function parseListen(listen: string): { host: string; port: number; loopback: boolean } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port < 0 || port > 65535) return null;
  const host = (m[1] ?? m[2])!;
  return { host, port, loopback: LOOPBACK.test(host) };
}

export const metricsSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Serve Prometheus metrics over HTTP (GET /metrics)'),
    listen: z
      .string()
      .default('127.0.0.1:9464')
      .refine((s) => parseListen(s) !== null, 'expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464')
      .describe('Address of the metrics endpoint; loopback by default (scrape through an SSH tunnel or a local agent)'),
    allow_remote: z
      .boolean()
      .default(false)
      .describe('Allow a listen address other than loopback: the endpoint has no authentication, so only on a trusted network'),
  })
  .prefault({})
  .describe('Prometheus metrics: outbox, delivery latency, link, cameras, plate reading, GPIO, process');

/** Secondary grammars: known, not `generic` (it accepts any text), not the primary, none twice. */
function checkSecondaryGrammars(ctx: z.RefinementCtx, path: Array<string | number>, names: readonly string[], primary: string): void {
  const seen = new Set<string>();
  names.forEach((name, j) => {
    const at = [...path, j];
    if (!isGrammarName(name)) ctx.addIssue({ code: 'custom', path: at, message: `unknown grammar (known: ${GRAMMAR_NAMES.join(', ')})` });
    else if (name === 'generic') ctx.addIssue({ code: 'custom', path: at, message: 'generic cannot be a secondary grammar: it accepts any text' });
    else if (name === primary) ctx.addIssue({ code: 'custom', path: at, message: `${name} is the primary grammar already` });
    else if (seen.has(name)) ctx.addIssue({ code: 'custom', path: at, message: `${name} is listed twice` });
    seen.add(name);
  });
}

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
    pole: poleSchema,
    radio: radioSchema,
    remotes: z
      .record(z.string().regex(idPattern, 'letters, digits, - and _ only'), remoteSchema)
      .default({})
      .describe('Radio remotes by name (community kits)'),
    personal: personalSchema,
    tags: z.record(z.string().regex(idPattern, 'letters, digits, - and _ only'), personalTagSchema).default({}).describe('Personal alarm tags by name'),
    anpr: anprSchema,
    nodered: noderedSchema,
    demo: demoSchema,
    metrics: metricsSchema,
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
      ctx.addIssue({
        code: 'custom',
        path: ['commands', 'key'],
        message: `an HMAC key needs at least ${MIN_HMAC_KEY_BYTES} bytes (e.g. openssl rand -base64 32)`,
      });
    }
    if (key !== undefined && cfg.commands.auth === 'ed25519') {
      try {
        ed25519PublicKey(key, 'the key');
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['commands', 'key'], message: (err as Error).message });
      }
    }
    const cameraIds = new Set<string>();
    cfg.anpr.cameras.forEach((cam, i) => {
      if (cameraIds.has(cam.id)) ctx.addIssue({ code: 'custom', path: ['anpr', 'cameras', i, 'id'], message: `camera id ${cam.id} is used twice` });
      cameraIds.add(cam.id);
      if (cam.grammar !== undefined && !isGrammarName(cam.grammar)) {
        ctx.addIssue({ code: 'custom', path: ['anpr', 'cameras', i, 'grammar'], message: `unknown grammar (known: ${GRAMMAR_NAMES.join(', ')})` });
      }
      const primary = cam.grammar ?? cfg.anpr.grammar;
      if (cam.secondary_grammars !== undefined) checkSecondaryGrammars(ctx, ['anpr', 'cameras', i, 'secondary_grammars'], cam.secondary_grammars, primary);
      else if (cam.grammar !== undefined && cfg.anpr.secondary_grammars.includes(cam.grammar)) {
        ctx.addIssue({
          code: 'custom',
          path: ['anpr', 'cameras', i, 'grammar'],
          message: `${cam.grammar} is also in anpr.secondary_grammars; give this camera its own secondary_grammars`,
        });
      }
    });
    if (!isGrammarName(cfg.anpr.grammar))
      ctx.addIssue({ code: 'custom', path: ['anpr', 'grammar'], message: `unknown grammar (known: ${GRAMMAR_NAMES.join(', ')})` });
    checkSecondaryGrammars(ctx, ['anpr', 'secondary_grammars'], cfg.anpr.secondary_grammars, cfg.anpr.grammar);
    if (cfg.anpr.privacy.reads === 'hashed' && !cfg.anpr.privacy.hash_key) {
      ctx.addIssue({
        code: 'custom',
        path: ['anpr', 'privacy', 'hash_key'],
        message: 'reads: hashed needs a hash_key (e.g. {file: /etc/vigia/plate-hash-key})',
      });
    }
    const hashKey = cfg.anpr.privacy.hash_key?.reveal();
    if (hashKey !== undefined && Buffer.byteLength(hashKey) < MIN_HMAC_KEY_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: ['anpr', 'privacy', 'hash_key'],
        message: `the hash key needs at least ${MIN_HMAC_KEY_BYTES} bytes (e.g. openssl rand -base64 32)`,
      });
    }
    const hotlistKey = cfg.anpr.hotlist.public_key?.reveal();
    if (hotlistKey !== undefined) {
      try {
        ed25519PublicKey(hotlistKey, 'the key');
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['anpr', 'hotlist', 'public_key'], message: (err as Error).message });
      }
    }
    if (cfg.anpr.hotlist.url && !cfg.anpr.hotlist.public_key) {
      ctx.addIssue({ code: 'custom', path: ['anpr', 'hotlist', 'public_key'], message: 'a hotlist url needs the public_key that signs the list' });
    }
    if (cfg.anpr.enabled && cfg.anpr.cameras.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['anpr', 'cameras'], message: 'anpr is enabled but no camera is configured' });
    }
    const lines = new Map<string, string>();
    for (const [kind, map] of [
      ['inputs', cfg.hardware.inputs],
      ['outputs', cfg.hardware.outputs],
    ] as const) {
      for (const [name, io] of Object.entries(map)) {
        const key = typeof io.line === 'string' ? io.line : `${io.line.chip}:${io.line.offset}`;
        const other = lines.get(key);
        if (other) ctx.addIssue({ code: 'custom', path: ['hardware', kind, name, 'line'], message: `line ${key} is already used by ${other}` });
        else lines.set(key, `${kind}.${name}`);
      }
    }
    if (cfg.radio.receiver === 'gpio') {
      if (cfg.radio.line === undefined)
        ctx.addIssue({ code: 'custom', path: ['radio', 'line'], message: 'receiver gpio needs the line of the receiver module' });
      else {
        const key = typeof cfg.radio.line === 'string' ? cfg.radio.line : `${cfg.radio.line.chip}:${cfg.radio.line.offset}`;
        const other = lines.get(key);
        if (other) ctx.addIssue({ code: 'custom', path: ['radio', 'line'], message: `line ${key} is already used by ${other}` });
      }
    }
    const codes = new Map<string, string>();
    for (const [name, remote] of Object.entries(cfg.remotes)) {
      const other = codes.get(remote.code);
      if (other) ctx.addIssue({ code: 'custom', path: ['remotes', name, 'code'], message: `${remote.code} is already registered as ${other}` });
      codes.set(remote.code, name);
    }
    if (Object.keys(cfg.remotes).length > 0 && cfg.radio.receiver === 'none') {
      ctx.addIssue({ code: 'custom', path: ['radio', 'receiver'], message: 'remotes are registered but no radio receiver is configured (rtl_433 or gpio)' });
    }
    const tagIds = new Map<string, string>();
    for (const [name, tag] of Object.entries(cfg.tags)) {
      const other = tagIds.get(tag.id);
      if (other) ctx.addIssue({ code: 'custom', path: ['tags', name, 'id'], message: `tag ${tag.id} is already registered as ${other}` });
      tagIds.set(tag.id, name);
      if (tag.id.length !== cfg.personal.format.id_length * 2) {
        ctx.addIssue({
          code: 'custom',
          path: ['tags', name, 'id'],
          message: `a tag id is ${cfg.personal.format.id_length} bytes (personal.format.id_length): ${cfg.personal.format.id_length * 2} hex digits`,
        });
      }
    }
    if (Object.keys(cfg.tags).length > 0 && !cfg.personal.enabled) {
      ctx.addIssue({ code: 'custom', path: ['personal', 'enabled'], message: 'tags are registered but personal alarms are not enabled' });
    }
    // A kit raised by radio remotes or tags may have no wired button.
    const wireless = cfg.radio.receiver !== 'none' || cfg.personal.enabled;
    if (cfg.pole.enabled && (Object.keys(cfg.hardware.inputs).length > 0 || wireless)) {
      const refs: Array<[keyof typeof cfg.pole, 'inputs' | 'outputs', string | undefined]> = [
        ['panic_input', 'inputs', wireless && !Object.hasOwn(cfg.hardware.inputs, cfg.pole.panic_input) ? undefined : cfg.pole.panic_input],
        ['led_output', 'outputs', cfg.pole.led_output],
        ['strobe_output', 'outputs', cfg.pole.strobe_output],
        ['siren_output', 'outputs', cfg.pole.siren_output],
      ];
      for (const [field, kind, name] of refs) {
        if (name !== undefined && !Object.hasOwn(cfg.hardware[kind], name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['pole', field],
            message: `no hardware.${kind}.${name} is configured (known: ${Object.keys(cfg.hardware[kind]).join(', ') || 'none'})`,
          });
        }
      }
      const panic = cfg.hardware.inputs[cfg.pole.panic_input];
      if (panic && panic.kind !== 'panic')
        ctx.addIssue({ code: 'custom', path: ['pole', 'panic_input'], message: `hardware.inputs.${cfg.pole.panic_input} is a ${panic.kind} input, not panic` });
    }
    if (cfg.pole.snapshot_camera !== undefined && !cfg.anpr.cameras.some((c) => c.id === cfg.pole.snapshot_camera)) {
      ctx.addIssue({ code: 'custom', path: ['pole', 'snapshot_camera'], message: `no anpr.cameras entry has id ${cfg.pole.snapshot_camera}` });
    }
    for (const field of ['led_received', 'led_acknowledged', 'siren_pattern'] as const) {
      if (cfg.pole[field] === undefined) continue;
      try {
        parsePattern(cfg.pole[field]);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['pole', field], message: (err as Error).message });
      }
    }
    if (cfg.nodered.enabled && cfg.nodered.users.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodered', 'users'],
        message: 'Node-RED needs at least one user (adminAuth is always on); make a password hash with: vigia nodered hash-password',
      });
    }
    if (cfg.nodered.enabled && cfg.nodered.restart.min_delay > cfg.nodered.restart.max_delay) {
      ctx.addIssue({ code: 'custom', path: ['nodered', 'restart', 'min_delay'], message: 'must not exceed nodered.restart.max_delay' });
    }
    if (cfg.metrics.enabled && parseListen(cfg.metrics.listen)?.loopback === false && !cfg.metrics.allow_remote) {
      ctx.addIssue({
        code: 'custom',
        path: ['metrics', 'listen'],
        message: 'not a loopback address: the endpoint has no authentication; set metrics.allow_remote: true to serve it on the network',
      });
    }
    if (cfg.mqtt.tls && (cfg.mqtt.tls.cert === undefined) !== (cfg.mqtt.tls.key === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['mqtt', 'tls', cfg.mqtt.tls.cert ? 'key' : 'cert'], message: 'tls.cert and tls.key go together' });
    }
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type Profile = Config['device']['profile'];

export interface ConfigWarning {
  /** Dotted path of the setting. */
  path: string;
  message: string;
}

/** Credentials inside a plain URL: `scheme://user:password@host`. */
export const URL_WITH_PASSWORD = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]*@/i;

/**
 * Settings that load but deserve attention. A camera password written inside a plain `url` still
 * works (many installers copy the URL from the camera's manual) but anyone who can read the
 * config file reads it, and it cannot be rotated apart from the URL: say so, do not refuse.
 */
export function configWarnings(cfg: Config): ConfigWarning[] {
  const warnings: ConfigWarning[] = [];
  cfg.anpr.cameras.forEach((cam, i) => {
    if (typeof cam.url === 'string' && URL_WITH_PASSWORD.test(cam.url))
      warnings.push({
        path: `anpr.cameras.${i}.url`,
        message: `camera ${cam.id}: the url carries a password that anyone who can read this file can see; use username + password: {file: ...} (or url: {file: ...})`,
      });
  });
  return warnings;
}
