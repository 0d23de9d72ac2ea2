import type { Priority } from '../core/event.js';

/**
 * The topic tree, in one place (documented in docs/mqtt-api.md):
 *   <prefix>/<site>/<device>/status                      retained online/offline (birth + Last Will)
 *   <prefix>/<site>/<device>/events/<priority>/<type>    every event, QoS 1
 *   <prefix>/<site>/<device>/cmd/<name>                  signed commands in
 *   <prefix>/<site>/<device>/cmd/<name>/reply            replies when no MQTT 5 response topic is given
 */
export interface Topics {
  site: string;
  device: string;
  base: string;
  status: string;
  event(priority: Priority, type: string): string;
  commands: string;
  commandName(topic: string): string | undefined;
  reply(name: string): string;
}

export function topicsFor(prefix: string, site: string, device: string): Topics {
  const base = `${prefix}/${site}/${device}`;
  const cmdPrefix = `${base}/cmd/`;
  return {
    site,
    device,
    base,
    status: `${base}/status`,
    event: (priority, type) => `${base}/events/${priority}/${type}`,
    commands: `${cmdPrefix}+`,
    commandName: (topic) => (topic.startsWith(cmdPrefix) && !topic.slice(cmdPrefix.length).includes('/') ? topic.slice(cmdPrefix.length) : undefined),
    reply: (name) => `${cmdPrefix}${name}/reply`,
  };
}
