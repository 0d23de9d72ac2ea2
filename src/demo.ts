import { fileURLToPath } from 'node:url';
import { loadConfig } from './config/index.js';
import type { Context, Extension } from './controller.js';
import { runDaemon } from './daemon.js';

/**
 * `npm start`: the daemon on config/demo.yaml with simulated hardware and an embedded broker, plus a
 * little scripted street life so a newcomer sees every priority class flow.
 */
class DemoScenario implements Extension {
  readonly name = 'demo-scenario';
  #timers: NodeJS.Timeout[] = [];
  #n = 0;

  constructor(private readonly ctx: Context) {}

  start(): void {
    const every = (ms: number, fn: () => Promise<unknown>) =>
      this.#timers.push(setInterval(() => void fn().catch((err) => this.ctx.logger.error({ err }, 'demo event failed')), ms));
    every(3_000, () => this.ctx.emit({ type: 'sim.motion', priority: 'read', payload: { input: 'pir-north', n: ++this.#n } }));
    every(15_000, () => this.ctx.emit({ type: 'sim.panic', priority: 'alarm', payload: { input: 'panic-button', note: 'demo press' } }));
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
  }
}

const file = fileURLToPath(new URL('../config/demo.yaml', import.meta.url));
const config = loadConfig(file);
const { port, host } = config.demo.embedded_broker;
process.stderr.write(
  [
    '',
    `Vigía demo: device ${config.device.site}/${config.device.id}, simulated hardware, embedded broker on ${host}:${port}.`,
    'Watch the events in another terminal:',
    `  npx mqtt sub -h ${host} -p ${port} -t 'vigia/#' -v        (or: mosquitto_sub -h ${host} -p ${port} -t 'vigia/#' -v)`,
    'Try the control socket:',
    `  npx vigia status -c config/demo.yaml`,
    `  npx vigia sim burst -c config/demo.yaml --count 1000 --type sim.test --priority read`,
    'Ctrl-C stops the demo.',
    '',
  ].join('\n') + '\n',
);
await runDaemon(config, { extensions: (ctx) => [new DemoScenario(ctx)] });
