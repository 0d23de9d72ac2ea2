import mqtt, { type MqttClient } from 'mqtt';
import { signCommand } from '../../src/gateway/command-auth.js';
import { TEST_KEY } from './daemon.js';

export type Reply = { ok: boolean; nonce?: string; result?: Record<string, any>; error?: { code: string; message: string } };

/**
 * The call center's command side in tests: signs commands with the test key for one device,
 * publishes them with an MQTT 5 response topic in the device's reply space (`<base>/reply/...`,
 * the only place a device answers a response topic) and waits for the matching reply.
 */
export class CommandClient {
  #client!: MqttClient;
  #replies = new Map<string, Reply>();
  #n = 0;
  readonly #replyTopic: string;

  constructor(
    readonly brokerUrl: string,
    readonly site: string,
    readonly device: string,
    readonly prefix = 'vigia',
  ) {
    this.#replyTopic = `${prefix}/${site}/${device}/reply/test-${Math.random().toString(36).slice(2, 8)}`;
  }

  async connect(): Promise<void> {
    this.#client = await mqtt.connectAsync(this.brokerUrl, { protocolVersion: 5 });
    this.#client.on('message', (_t, payload, packet) => {
      const corr = packet.properties?.correlationData?.toString();
      if (corr) this.#replies.set(corr, JSON.parse(payload.toString()) as Reply);
    });
    // Refusals of commands that did not verify always come on the fixed reply topics.
    await this.#client.subscribeAsync([this.#replyTopic, `${this.prefix}/${this.site}/${this.device}/cmd/+/reply`], { qos: 1 });
  }

  /** Resolves once the device answers: its command subscription is live. */
  async ready(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await this.call('ping', {}, 500)).ok) return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
  }

  /** A signed payload for `name`, to send (or send again) with {@link send}. */
  sign(name: string, args: Record<string, unknown> = {}): string {
    return signCommand({ auth: 'hmac-sha256', key: TEST_KEY, site: this.site, device: this.device, cmd: name, args });
  }

  call(name: string, args: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<Reply> {
    return this.send(name, this.sign(name, args), timeoutMs);
  }

  async send(name: string, payload: string, timeoutMs = 15_000): Promise<Reply> {
    const corr = `c${++this.#n}`;
    await this.#client.publishAsync(`${this.prefix}/${this.site}/${this.device}/cmd/${name}`, payload, {
      qos: 1,
      properties: { responseTopic: this.#replyTopic, correlationData: Buffer.from(corr) },
    });
    const deadline = Date.now() + timeoutMs;
    while (!this.#replies.has(corr)) {
      if (Date.now() > deadline) throw new Error(`no reply to ${name}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.#replies.get(corr)!;
  }

  close(): void {
    this.#client?.end(true);
  }
}
