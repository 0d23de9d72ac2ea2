import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { z } from 'zod';

/**
 * A credential read from a file or the environment. It never serialises its value, so a config
 * object can be logged or dumped without leaking it; call reveal() only where the value is used.
 */
export class Secret {
  readonly #value: string;
  readonly origin: string;

  constructor(value: string, origin: string) {
    this.#value = value;
    this.origin = origin;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return `[secret from ${this.origin}]`;
  }

  toString(): string {
    return this.toJSON();
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

const secretFile = () => z.strictObject({ file: z.string().min(1).describe('Path of a file holding the secret (trailing newline ignored)') });
const secretEnv = () => z.strictObject({ env: z.string().min(1).describe('Name of an environment variable holding the secret') });

/** Reads a `{file}` or `{env}` reference inside a zod transform; a missing file or variable is a config error. */
function resolveRef(ref: { file: string } | { env: string }, ctx: z.RefinementCtx): Secret {
  if ('file' in ref) {
    try {
      return new Secret(readFileSync(ref.file, 'utf8').replace(/\r?\n$/, ''), `file ${ref.file}`);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read secret file ${ref.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
      return z.NEVER;
    }
  }
  const value = process.env[ref.env];
  if (value === undefined || value === '') {
    ctx.addIssue({ code: 'custom', message: `environment variable ${ref.env} is not set` });
    return z.NEVER;
  }
  return new Secret(value, `env ${ref.env}`);
}

/**
 * `{ file: /etc/vigia/mqtt-password }`, `{ env: VIGIA_MQTT_PASSWORD }` or, discouraged, an inline
 * string. Files are read at load time (trailing newline trimmed) so a missing file is a config error.
 */
export const secret = () =>
  z.union([z.string().min(1), secretFile(), secretEnv()]).transform((ref, ctx) => (typeof ref === 'string' ? new Secret(ref, 'inline') : resolveRef(ref, ctx)));

/**
 * A value that is usually plain text but may be kept secret: a string stays a string (shown in
 * dumps), `{file}`/`{env}` gives a Secret (never shown). For camera URLs that carry a token.
 */
export const textOrSecret = () =>
  z.union([z.string().min(1), secretFile(), secretEnv()]).transform((ref, ctx) => (typeof ref === 'string' ? ref : resolveRef(ref, ctx)));
