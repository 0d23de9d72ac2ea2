import type { Priority } from '../core/event.js';

/**
 * The topic tree, in one place (documented in docs/mqtt-api.md):
 *   <prefix>/<site>/<device>/status                      retained online/offline (birth + Last Will)
 *   <prefix>/<site>/<device>/events/<priority>/<type>    every event, QoS 1
 *   <prefix>/<site>/<device>/cmd/<name>                  signed commands in
 *   <prefix>/<site>/<device>/cmd/<name>/reply            replies, unless a verified command asked for a topic below
 *   <prefix>/<site>/<device>/reply/...                   MQTT 5 response topics a verified command may ask for
 *
 * Event types and command names hold dots (`alarm.panic`, `hotlist.delta`). RabbitMQ 3.x's MQTT
 * plugin turns each dot into a level on the way out (`cmd/hotlist/delta`): commands are therefore
 * subscribed with `cmd/#` and a name is read from either form; a name never ends in `.reply`.
 */
export interface Topics {
  site: string;
  device: string;
  base: string;
  status: string;
  event(priority: Priority, type: string): string;
  /** What the device subscribes to for its commands. */
  commands: string;
  /** The command a topic carries (`hotlist.delta` from `cmd/hotlist.delta` or `cmd/hotlist/delta`); undefined for a reply or anything else. */
  commandName(topic: string): string | undefined;
  reply(name: string): string;
  /** The only place a response topic may point to: `<base>/reply/`. */
  responseSpace: string;
  /** Whether a command's MQTT 5 response topic lies in the response space (never the events, status or command tree). */
  isResponseTopic(topic: string): boolean;
}

export function topicsFor(prefix: string, site: string, device: string): Topics {
  const base = `${prefix}/${site}/${device}`;
  const cmdPrefix = `${base}/cmd/`;
  const responseSpace = `${base}/reply/`;
  return {
    site,
    device,
    base,
    status: `${base}/status`,
    event: (priority, type) => `${base}/events/${priority}/${type}`,
    commands: `${cmdPrefix}#`,
    commandName: (topic) => {
      if (!topic.startsWith(cmdPrefix)) return undefined;
      const levels = topic.slice(cmdPrefix.length).split('/');
      if (levels.at(-1) === 'reply' || levels.some((l) => l === '')) return undefined;
      return levels.join('.');
    },
    reply: (name) => `${cmdPrefix}${name}/reply`,
    responseSpace,
    isResponseTopic: (topic) => topic.startsWith(responseSpace) && topic.length > responseSpace.length && !/[+#\0]/.test(topic),
  };
}
