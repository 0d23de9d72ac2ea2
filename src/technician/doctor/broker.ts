import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { connect as netConnect } from 'node:net';
import mqtt from 'mqtt';
import { mqttTlsOptions, type MqttTlsOptions } from '../../gateway/uplink.js';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, pass, warn } from './check.js';

/**
 * The central broker: can it be reached, does its certificate verify (and for how long), and does
 * it take this device's login. While the daemon runs, its own link answers the last question:
 * a second connection with its client id would throw it off the broker.
 */

const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, tcp: 1883, mqtts: 8883, ssl: 8883, ws: 80, wss: 443 };
const TLS_SCHEMES = new Set(['mqtts', 'ssl', 'wss']);
/** Certificates that end sooner than this are worth a warning: renewing one takes a visit or a push. */
const EXPIRY_WARN_DAYS = 30;
const DAY_MS = 86_400_000;

function endpoint(url: string): { scheme: string; host: string; port: number } {
  const u = new URL(url);
  const scheme = u.protocol.replace(/:$/, '');
  return { scheme, host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : (DEFAULT_PORTS[scheme] ?? 1883) };
}

/** What a network error means for the technician. */
function networkFix(err: unknown, host: string, port: number): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return `nothing listens on ${host}:${port}: check mqtt.url, that the broker runs, and firewalls on the way`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return `the name ${host} does not resolve: check DNS (resolvectl status) or put the broker's address in mqtt.url`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'no route to the broker: check the network link (ip route, the modem or SIM, the cable)';
  return `no answer from ${host}:${port}: check the network link (ping ${host}), the modem or SIM, and firewalls`;
}

export const brokerChecks: Check = async (ctx) => {
  const { host, port, scheme } = endpoint(ctx.config.mqtt.url);
  const checks: DoctorCheck[] = [];
  if (TLS_SCHEMES.has(scheme)) checks.push(...(await tlsCheck(ctx, host, port)));
  else checks.push(await reachable(ctx, host, port));
  checks.push(ctx.status ? linkOfDaemon(ctx) : await login(ctx));
  return checks;
};

function reachable(ctx: DoctorContext, host: string, port: number): Promise<DoctorCheck> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port, timeout: ctx.timeoutMs });
    const done = (check: DoctorCheck) => {
      socket.destroy();
      resolve(check);
    };
    socket.once('connect', () => done(pass('broker reachable', `${host}:${port} accepts connections (no TLS: mqtt:// sends everything in clear)`)));
    socket.once('timeout', () => done(fail('broker reachable', `no answer from ${host}:${port} within ${ctx.timeoutMs} ms`, networkFix({}, host, port))));
    socket.once('error', (err) => done(fail('broker reachable', `${host}:${port}: ${err.message}`, networkFix(err, host, port))));
  });
}

function certDays(validTo: string, now: number): number {
  return Math.floor((Date.parse(validTo) - now) / DAY_MS);
}

const days = (n: number) => `${n} ${n === 1 ? 'day' : 'days'}`;

/** The TLS handshake on its own, so a certificate problem is named as one (and its expiry seen in advance). */
async function tlsCheck(ctx: DoctorContext, host: string, port: number): Promise<DoctorCheck[]> {
  const name = 'broker TLS';
  let opts: MqttTlsOptions;
  try {
    opts = ctx.config.mqtt.tls ? mqttTlsOptions(ctx.config.mqtt.tls) : {};
  } catch (err) {
    return [fail(name, `cannot read a TLS file: ${errorText(err)}`, 'check the paths under mqtt.tls (ca, cert, key) and that the vigia user can read them')];
  }
  const checks: DoctorCheck[] = [];
  const clientCert = clientCertificate(opts, ctx.now());
  if (clientCert) checks.push(clientCert);
  const servername = opts.servername ?? (isIP(host) ? undefined : host);
  const handshake = await new Promise<{ cert?: PeerCertificate; authorized?: boolean; error?: unknown; authError?: string }>((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      ...(servername ? { servername } : {}),
      ...(opts.ca ? { ca: opts.ca as Buffer } : {}),
      ...(opts.cert ? { cert: opts.cert as Buffer } : {}),
      ...(opts.key ? { key: opts.key as Buffer } : {}),
      // Verified below, so that a refusal can say what is wrong with the certificate.
      rejectUnauthorized: false,
      timeout: ctx.timeoutMs,
    });
    const done = (r: Parameters<typeof resolve>[0]) => {
      socket.destroy();
      resolve(r);
    };
    socket.once('secureConnect', () =>
      done({ cert: socket.getPeerCertificate(), authorized: socket.authorized, authError: socket.authorizationError?.toString() }),
    );
    socket.once('timeout', () => done({ error: Object.assign(new Error(`no answer within ${ctx.timeoutMs} ms`), { code: 'ETIMEDOUT' }) }));
    socket.once('error', (error) => done({ error }));
  });
  if (handshake.error) {
    const err = handshake.error as NodeJS.ErrnoException;
    const network = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET'].includes(err.code ?? '');
    return [
      ...checks,
      fail(
        name,
        `${host}:${port}: ${errorText(err)}`,
        network ? networkFix(err, host, port) : 'the broker ended the handshake: it may want a client certificate (mqtt.tls.cert and key) signed by its CA',
      ),
    ];
  }
  const cert = handshake.cert!;
  const left = certDays(cert.valid_to, ctx.now());
  const subject = `${cert.subject?.CN ?? 'broker'}'s certificate`;
  if (!handshake.authorized) {
    const why = handshake.authError ?? 'not trusted';
    const fix = /NOT_YET_VALID|EXPIRED/.test(why)
      ? "check this device's clock first (the clock check); if it is right, the broker needs a new certificate"
      : /ALTNAME|HOST/.test(why)
        ? `the certificate does not name ${host}: use the name it was issued for in mqtt.url, or set mqtt.tls.servername`
        : 'mqtt.tls.ca must be the CA that signed the broker certificate (PEM)';
    if (ctx.config.mqtt.tls?.reject_unauthorized === false)
      return [
        ...checks,
        warn(
          name,
          `${subject} does not verify (${why}), accepted because mqtt.tls.reject_unauthorized is false`,
          `${fix}; then set reject_unauthorized back to true`,
        ),
      ];
    return [...checks, fail(name, `${subject} does not verify: ${why}`, fix)];
  }
  if (left < EXPIRY_WARN_DAYS)
    return [...checks, warn(name, `${subject} verifies, but expires in ${days(left)} (${cert.valid_to})`, 'ask for the broker certificate to be renewed')];
  return [...checks, pass(name, `${subject} verifies, valid for ${days(left)} more`)];
}

function clientCertificate(opts: MqttTlsOptions, now: number): DoctorCheck | undefined {
  if (!opts.cert) return undefined;
  const name = 'client certificate';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(opts.cert as Buffer);
  } catch (err) {
    return fail(name, `mqtt.tls.cert is not a PEM certificate: ${errorText(err)}`, 'put the device certificate (PEM) at mqtt.tls.cert');
  }
  const left = certDays(cert.validTo, now);
  if (left < 0) return fail(name, `expired on ${cert.validTo}`, 'install a new device certificate (or check the clock if it should still be valid)');
  if (left < EXPIRY_WARN_DAYS) return warn(name, `expires in ${days(left)} (${cert.validTo})`, 'install a new device certificate before then');
  return pass(name, `${cert.subject.replace(/\n/g, ', ')}, valid for ${days(left)} more`);
}

function linkOfDaemon(ctx: DoctorContext): DoctorCheck {
  const link = ctx.status!.link;
  if (link.state === 'online') return pass('broker login', `the daemon is online for ${link.for_s} s (MQTT ${link.protocol})`);
  return fail(
    'broker login',
    `the daemon's link is ${link.state} for ${link.for_s} s${link.last_error ? `: ${link.last_error}` : ''}`,
    loginFix(link.last_error ?? ''),
  );
}

function loginFix(message: string): string {
  if (/not authori[sz]ed|bad user ?name or password|bad username/i.test(message)) return 'the broker refused the login: check mqtt.username and mqtt.password';
  if (/identifier rejected|client identifier/i.test(message)) return 'the broker refused the client id: check mqtt.client_id with the broker administrator';
  return 'see the checks above for the network and TLS; vigia logs --mod uplink shows each attempt';
}

/** A real MQTT login with the device's credentials and client id: the daemon is stopped, so it cannot be thrown off. */
async function login(ctx: DoctorContext): Promise<DoctorCheck> {
  const cfg = ctx.config.mqtt;
  let tls: MqttTlsOptions = {};
  try {
    tls = cfg.tls ? mqttTlsOptions(cfg.tls) : {};
  } catch {
    /* reported by the TLS check */
  }
  const clientId = cfg.client_id ?? `vigia-${ctx.config.device.site}-${ctx.config.device.id}`;
  const attempt = (protocolVersion: 4 | 5) =>
    mqtt.connectAsync(
      cfg.url,
      {
        protocolVersion,
        clientId,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: ctx.timeoutMs,
        username: cfg.username,
        password: cfg.password?.reveal(),
        ...tls,
      },
      false,
    );
  let client: mqtt.MqttClient;
  let protocol: 4 | 5 = cfg.protocol === '3.1.1' ? 4 : 5;
  try {
    try {
      client = await attempt(protocol);
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (cfg.protocol !== 'auto' || protocol !== 5 || (code !== 132 && code !== 1)) throw err;
      protocol = 4;
      client = await attempt(protocol);
    }
  } catch (err) {
    return fail('broker login', `as ${cfg.username ?? 'anonymous'}, client id ${clientId}: ${errorText(err)}`, loginFix(errorText(err)));
  }
  await client.endAsync().catch(() => undefined);
  return pass('broker login', `logged in as ${cfg.username ?? 'anonymous'} (MQTT ${protocol === 5 ? '5' : '3.1.1'}, client id ${clientId})`);
}
