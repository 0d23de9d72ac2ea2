import { isScalar, parseDocument, visit } from 'yaml';
import { Secret } from './config/secret.js';
import { type Config, URL_WITH_PASSWORD } from './config/schema.js';
import { redactUrl } from './core/redact.js';

/**
 * What `config.get` may show of a configuration. Secrets never leave the device: a `{file}` or
 * `{env}` secret shows where it comes from (never its value or the file's content), an inline
 * secret, a password in a URL and the Node-RED users' password hashes show as REDACTED. config.set
 * refuses a document that still holds REDACTED, so sending back an edited copy cannot replace a
 * secret with the placeholder.
 */
export const REDACTED = '[redacted]';

type Path = Array<string | number>;

/** Where the Node-RED users' bcrypt hashes sit: not the password, but enough to try guessing it offline. */
const userHashPaths = (config: Config): Path[] => config.nodered.users.map((_, i) => ['nodered', 'users', i, 'password']);

/** The running configuration, defaults filled in, as JSON without any secret value. */
export function redactedConfig(config: Config): unknown {
  const json = JSON.parse(
    JSON.stringify(config, (_key, value: unknown) => (typeof value === 'string' && URL_WITH_PASSWORD.test(value) ? redactUrl(value) : value)),
  ) as Record<string, unknown>;
  for (const path of userHashPaths(config)) setAt(json, path, REDACTED);
  return json;
}

/** The file's own text (comments kept) with inline secrets, URL passwords and password hashes replaced by REDACTED. */
export function redactedDocument(text: string, config: Config): string {
  const doc = parseDocument(text);
  for (const path of [...inlineSecretPaths(config, []), ...userHashPaths(config)]) {
    if (doc.hasIn(path)) doc.setIn(path, REDACTED);
  }
  visit(doc, {
    Scalar(_key, node) {
      if (isScalar(node) && typeof node.value === 'string' && URL_WITH_PASSWORD.test(node.value)) node.value = REDACTED;
    },
  });
  return doc.toString();
}

function inlineSecretPaths(value: unknown, path: Path): Path[] {
  if (value instanceof Secret) return value.origin === 'inline' ? [path] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => inlineSecretPaths(v, [...path, i]));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => inlineSecretPaths(v, [...path, k]));
  return [];
}

function setAt(root: Record<string, unknown>, path: Path, value: unknown): void {
  let node: unknown = root;
  for (const seg of path.slice(0, -1)) {
    if (!node || typeof node !== 'object') return;
    node = (node as Record<string | number, unknown>)[seg];
  }
  if (node && typeof node === 'object') (node as Record<string | number, unknown>)[path.at(-1)!] = value;
}
