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

/**
 * `{ file: /etc/vigia/mqtt-password }`, `{ env: VIGIA_MQTT_PASSWORD }` or, discouraged, an inline
 * string. Files are read at load time (trailing newline trimmed) so a missing file is a config error.
 */
export const secret = () =>
  z
    .union([
      z.string().min(1),
      z.strictObject({ file: z.string().min(1).describe('Path of a file holding the secret (trailing newline ignored)') }),
      z.strictObject({ env: z.string().min(1).describe('Name of an environment variable holding the secret') }),
    ])
    .transform((ref, ctx) => {
      if (typeof ref === 'string') return new Secret(ref, 'inline');
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
    });
