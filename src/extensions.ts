import type { Config } from './config/schema.js';
import type { Extension, ExtensionContext } from './core/extension.js';
import type { TelemetrySources } from './gateway/telemetry.js';

/**
 * Every extension the daemon can run, in start order (stop is the reverse). The controller walks
 * this list: an entry whose `enabled(config)` is false is never loaded, so a pole without cameras
 * never loads image or ONNX code. To add a part of the daemon, add an entry here (see CONTRIBUTING.md).
 */

/** The gateway's own state, handed only to the extension that reports on the gateway itself (health). */
export type GatewayServices = TelemetrySources;

export type ExtensionFactory = (ctx: ExtensionContext<Config>, gateway: GatewayServices) => Extension;

export interface ExtensionEntry {
  name: string;
  enabled(config: Config): boolean;
  /** Imports the extension's module only when it is enabled. */
  load(): Promise<ExtensionFactory>;
}

export const EXTENSIONS: readonly ExtensionEntry[] = [
  {
    name: 'telemetry',
    enabled: () => true,
    load: async () => {
      const { Telemetry } = await import('./gateway/telemetry.js');
      return (ctx, gateway) => new Telemetry(ctx, gateway);
    },
  },
  {
    name: 'sim',
    enabled: (config) => config.hardware.backend === 'sim' || config.hardware.synthetic_events,
    load: async () => {
      const { Simulator } = await import('./features/simulator.js');
      return (ctx) => new Simulator(ctx);
    },
  },
  {
    // Before the inputs, so every event they produce is stamped with the position.
    name: 'gps',
    enabled: (config) => config.hardware.gps !== undefined,
    load: async () => {
      const { GpsExtension } = await import('./features/gps.js');
      return (ctx) => new GpsExtension(ctx);
    },
  },
  {
    name: 'field-io',
    enabled: (config) =>
      config.hardware.backend === 'sim' ||
      Object.keys(config.hardware.inputs).length > 0 ||
      Object.keys(config.hardware.outputs).length > 0 ||
      config.radio.receiver !== 'none' ||
      config.personal.enabled,
    load: async () => {
      const { FieldIo } = await import('./features/field-io.js');
      return (ctx) => new FieldIo(ctx);
    },
  },
  {
    name: 'anpr',
    enabled: (config) => config.anpr.enabled,
    load: async () => {
      const { AnprExtension } = await import('./anpr/extension.js');
      return (ctx) => new AnprExtension(ctx);
    },
  },
  {
    // Last: flows see every other part's commands and events, and nothing waits for the editor.
    name: 'nodered',
    enabled: (config) => config.nodered.enabled,
    load: async () => {
      const { NodeRedExtension } = await import('./nodered/extension.js');
      return (ctx) => new NodeRedExtension(ctx);
    },
  },
];
