import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';

/** An in-process MQTT broker so the demo runs with nothing else installed. Never used in the field. */
export class DemoBroker {
  readonly name = 'demo-broker';
  #broker: Aedes | undefined;
  #server: Server | undefined;

  constructor(
    private readonly opts: { host: string; port: number },
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.#broker = await Aedes.createBroker();
    const server = createServer(this.#broker.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    this.#server = server;
    this.logger.info({ url: `mqtt://${this.opts.host}:${this.opts.port}` }, 'embedded demo broker listening');
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.#broker ? this.#broker.close(() => resolve()) : resolve()));
  }
}
