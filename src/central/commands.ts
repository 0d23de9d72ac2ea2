import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type CommandAuthAlgorithm, signCommand } from '../gateway/command-auth.js';

/**
 * Commands from the call center to a device (`alarm.ack`, `alarm.clear`, `hotlist.delta`...):
 * signed here, on the server, with the command key the devices verify, and published to the
 * device's command topic. The key never leaves this process: the console's browser asks the
 * server to send a command and never sees it.
 */

export interface CommandSenderOptions {
  url: string;
  /** The other nodes of a clustered broker; MQTT.js moves to the next one when a connection drops. */
  servers?: string[];
  prefix?: string;
  auth: CommandAuthAlgorithm;
  /** HMAC key, or the Ed25519 private key (PEM). */
  key: string;
  clientId?: string;
  /** MQTT 5 (default) or 3.1.1. */
  protocolVersion?: 4 | 5;
  username?: string;
  password?: string;
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
}

export class CommandSender {
  #client: MqttClient | null = null;

  constructor(private readonly opts: CommandSenderOptions) {}

  async start(): Promise<void> {
    const o = this.opts;
    const options: IClientOptions = {
      clientId: o.clientId ?? 'vigia-central-commands',
      protocolVersion: o.protocolVersion ?? 5,
      reconnectPeriod: 1000,
      ...(o.servers?.length
        ? {
            servers: [o.url, ...o.servers].map((u) => {
              const url = new URL(u);
              return {
                host: url.hostname,
                port: Number(url.port || (url.protocol === 'mqtts:' ? 8883 : 1883)),
                protocol: url.protocol.replace(':', '') as 'mqtt' | 'mqtts',
              };
            }),
          }
        : {}),
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {}),
      ...(o.tls ?? {}),
    };
    this.#client = await mqtt.connectAsync(o.url, options);
  }

  /** Signs and publishes (QoS 1); resolves when the broker has it. */
  async send(site: string, device: string, cmd: string, args: Record<string, unknown>): Promise<void> {
    if (!this.#client) throw new Error('the command sender is not started');
    const payload = signCommand({ auth: this.opts.auth, key: this.opts.key, site, device, cmd, args });
    await this.#client.publishAsync(`${this.opts.prefix ?? 'vigia'}/${site}/${device}/cmd/${cmd}`, payload, { qos: 1 });
  }

  async stop(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    if (c) await c.endAsync();
  }
}
