import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { lineRef } from './field-io.js';

/**
 * Puts every configured output in its inactive state without the daemon: systemd runs it after the
 * daemon stops or crashes (`ExecStopPost=`), so a siren never outlives the process that drove it.
 */
export async function safeOutputs(config: Config): Promise<Array<{ output: string; error?: string }>> {
  const outputs = Object.entries(config.hardware.outputs);
  if (outputs.length === 0 || config.hardware.backend === 'sim') return outputs.map(([output]) => ({ output }));
  const { selectGpioBackend } = await import('../drivers/gpio/select.js');
  const { backend } = await selectGpioBackend(config.hardware.backend, { clock: systemClock });
  const results: Array<{ output: string; error?: string }> = [];
  try {
    for (const [name, cfg] of outputs) {
      try {
        const line = await backend.output(lineRef(cfg.line), { activeLow: cfg.active_low, initial: false, consumer: `vigia-safe:${name}` });
        await line.set(false);
        await line.close();
        results.push({ output: name });
      } catch (err) {
        results.push({ output: name, error: (err as Error).message });
      }
    }
  } finally {
    await backend.close();
  }
  return results;
}
