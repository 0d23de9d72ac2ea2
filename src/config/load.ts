import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { applyProfileDefaults } from './profiles.js';
import { readUnitSandbox, sandboxProblems } from './sandbox-paths.js';
import { configSchema, configWarnings, type Config } from './schema.js';

export interface ConfigProblem {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** Dotted path of the setting, e.g. `mqtt.reconnect.min_delay`; empty for the file as a whole. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(`invalid configuration:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** `FILE:LINE:COL path.to.field: message`, the shape editors and CI logs link to. */
export const formatProblem = (p: ConfigProblem): string => `${p.file}:${p.line}:${p.col}${p.path ? ` ${p.path}` : ''}: ${p.message}`;

export interface LoadOptions {
  /** Environment for `{env: NAME}` secrets (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Reads, checks and completes a configuration file; throws ConfigError listing every problem. */
export function loadConfig(file: string, opts: LoadOptions = {}): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    // Drop Node's trailing ", open '<file>'": the file name already leads the line.
    const message = (err as Error).message.replace(/, \w+ '.*'$/, '');
    throw new ConfigError(file, [{ file, line: 1, col: 1, path: '', message: `cannot read file: ${message}` }]);
  }
  return parseConfig(text, file, opts);
}

/** Checks and completes configuration text as `loadConfig` does a file; `file` names it in problems. */
export function parseConfig(text: string, file: string, opts: LoadOptions = {}): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const at = (offset: number | undefined) => (offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset));
  const fail = (problems: Omit<ConfigProblem, 'file'>[]): never => {
    throw new ConfigError(
      file,
      problems.map((p) => ({ file, ...p })).sort((a, b) => a.line - b.line || a.col - b.col),
    );
  };

  if (doc.errors.length > 0) {
    fail(doc.errors.map((e) => ({ ...at(e.pos[0]), path: '', message: `YAML syntax error: ${e.message}` })));
  }
  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    fail([{ line: 1, col: 1, path: '', message: 'the file is empty; expected settings such as device: and mqtt:' }]);
  }
  let raw: unknown;
  try {
    raw = doc.toJS(); // throws on alias abuse (billion laughs)
  } catch (err) {
    fail([{ line: 1, col: 1, path: '', message: `YAML error: ${(err as Error).message}` }]);
  }
  if (!isMap(doc.contents)) {
    fail([{ ...at(doc.contents?.range?.[0]), path: '', message: `expected a map of settings (key: value lines), got ${kindOf(raw)}` }]);
  }

  const input = applyProfileDefaults(raw);
  const result = withEnv(opts.env, () => configSchema.safeParse(input));
  if (result.success) return result.data;

  // Union branches can repeat the same complaint; report it once.
  const problems = new Map<string, Omit<ConfigProblem, 'file'>>();
  for (const { path, atKey, message } of result.error.issues.flatMap((issue) => explain(issue, [], input))) {
    const dotted = path.join('.');
    problems.set(`${dotted}\0${message}`, { ...at(locate(doc, path, atKey)), path: dotted, message });
  }
  return fail([...problems.values()]);
}

/**
 * `{env: NAME}` secrets read process.env inside the (synchronous) schema transform; point it at the
 * caller's environment for the duration of the parse.
 */
function withEnv<T>(env: NodeJS.ProcessEnv | undefined, fn: () => T): T {
  const saved = process.env;
  if (env === undefined || env === saved) return fn();
  process.env = env;
  try {
    return fn();
  } finally {
    process.env = saved;
  }
}

type Segment = string | number;
type Issue = z.core.$ZodIssue;
interface Explained {
  path: Segment[];
  /** Point at the last segment's key rather than its value (unknown fields). */
  atKey?: boolean;
  message: string;
}

/** Turns one zod issue into messages a field technician can act on. `base` prefixes the issue path (union branches). */
function explain(issue: Issue, base: Segment[], input: unknown): Explained[] {
  const path = [...base, ...(issue.path as Segment[])];
  const value = valueAt(input, path);
  const one = (message: string): Explained[] => [{ path, message }];

  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union')) {
    const hint = issue.code === 'invalid_value' && issue.values.length > 1 ? ` (one of ${issue.values.join(', ')})` : '';
    return one(`required${hint}`);
  }
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = knownKeys(schemaAt(path));
      return issue.keys.map((key) => {
        const close = suggest(key, known);
        const hint = close ? ` (did you mean "${close}"?)` : known.length ? ` (expected one of ${known.join(', ')})` : '';
        return { path: [...path, key], atKey: true, message: `unknown field${hint}` };
      });
    }
    case 'invalid_type':
      return one(
        `expected ${expectedName(issue.expected)}, got ${kindOf(value)}${issue.expected === 'string' && isScalarValue(value) ? ' (put it in quotes)' : ''}`,
      );
    case 'invalid_value':
      return one(issue.values.length === 1 ? `expected ${JSON.stringify(issue.values[0])}` : `expected one of ${issue.values.join(', ')}`);
    case 'invalid_union': {
      // A branch that got past the type check (e.g. a duration string with a bad unit, or a
      // {file:} map with a typo) says more than "wrong type"; fewest issues wins.
      const deep = issue.errors.filter((branch) => !branch.every(isTypeMismatch)).sort((a, b) => a.length - b.length)[0];
      if (deep) return deep.flatMap((sub) => explain(sub, path, input));
      return one(`expected ${describe(schemaAt(path)) ?? 'another kind of value'}, got ${kindOf(value)}`);
    }
    case 'too_small':
      if (issue.origin === 'string') return one(Number(issue.minimum) <= 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`);
      return one(`must be ${issue.inclusive ? 'at least' : 'greater than'} ${issue.minimum}`);
    case 'too_big':
      if (issue.origin === 'string') return one(`must be at most ${issue.maximum} characters`);
      return one(`must be ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}`);
    default:
      // custom (units, secrets, cross-field checks) and regex formats carry messages written for people.
      return one(issue.message);
  }
}

const isTypeMismatch = (issue: Issue): boolean =>
  issue.path.length === 0 &&
  (issue.code === 'invalid_type' || issue.code === 'invalid_value' || (issue.code === 'invalid_union' && issue.errors.every((b) => b.every(isTypeMismatch))));

const isScalarValue = (v: unknown) => typeof v === 'number' || typeof v === 'boolean';

function expectedName(expected: string): string {
  const names: Record<string, string> = {
    string: 'text',
    number: 'a number',
    int: 'a whole number',
    boolean: 'true or false',
    object: 'a map of settings',
    array: 'a list',
  };
  return names[expected] ?? expected;
}

function kindOf(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return 'text';
  if (typeof v === 'number') return Number.isInteger(v) ? 'a whole number' : 'a number';
  if (typeof v === 'boolean') return `${v}`;
  return typeof v === 'object' ? 'a map' : typeof v;
}

function valueAt(input: unknown, path: Segment[]): unknown {
  let v = input;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<Segment, unknown>)[seg];
  }
  return v;
}

// --- schema introspection (for "did you mean" and "expected ..." texts) ---

function unwrap(s: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap();
    else if (s instanceof z.ZodPipe) s = s.in;
    else return s;
  }
}

function schemaAt(path: Segment[]): z.core.$ZodType | undefined {
  let s: z.core.$ZodType | undefined = configSchema;
  for (const seg of path) {
    const objects: z.ZodObject[] = options(s).filter((o): o is z.ZodObject => o instanceof z.ZodObject);
    s = objects.map((o): z.core.$ZodType | undefined => o.shape[String(seg)]).find((x) => x !== undefined);
    if (!s) return undefined;
  }
  return s;
}

/** A schema's alternatives: the options of a union, or just itself. */
function options(s: z.core.$ZodType | undefined): z.core.$ZodType[] {
  if (!s) return [];
  const u = unwrap(s);
  return u instanceof z.ZodUnion ? u.options.flatMap((o: z.core.$ZodType) => options(o)) : [u];
}

const knownKeys = (s: z.core.$ZodType | undefined): string[] => [...new Set(options(s).flatMap((o) => (o instanceof z.ZodObject ? Object.keys(o.shape) : [])))];

function describe(s: z.core.$ZodType | undefined): string | undefined {
  const parts = [
    ...new Set(
      options(s).map((o) => {
        if (o instanceof z.ZodString) return 'text';
        if (o instanceof z.ZodNumber) return 'a number';
        if (o instanceof z.ZodBoolean) return 'true or false';
        if (o instanceof z.ZodLiteral) return o.values.size === 1 ? JSON.stringify([...o.values][0]) : 'a fixed value';
        if (o instanceof z.ZodEnum) return `one of ${o.options.join(', ')}`;
        if (o instanceof z.ZodObject) {
          const keys = Object.keys(o.shape);
          return keys.length <= 2 ? `{${keys.map((k) => `${k}: ...`).join(', ')}}` : 'a map of settings';
        }
        return 'another kind of value';
      }),
    ),
  ];
  return parts.length ? (parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} or ${parts.at(-1)}`) : undefined;
}

/** The closest known key by edit distance, if it is close enough to be a typo. */
function suggest(key: string, known: string[]): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(key.length / 3)));
  const ranked = known.map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) })).sort((a, b) => a.d - b.d);
  return ranked[0] && ranked[0].d <= limit ? ranked[0].k : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

// --- source positions ---

/**
 * Offset of the node at `path`, or of the nearest ancestor that exists (the map that should hold
 * a missing field). With `atKey`, the last segment's key is pointed at rather than its value.
 */
function locate(doc: Document, path: Segment[], atKey = false): number | undefined {
  let node: unknown = doc.contents;
  let offset = (doc.contents as YamlNode | null)?.range?.[0];
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let keyNode: YamlNode | undefined;
    let valueNode: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) break;
      keyNode = pair.key as YamlNode;
      valueNode = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      valueNode = node.items[seg];
    } else break;

    const valueRange = (valueNode as YamlNode | null)?.range;
    // An empty value (`device:` with nothing after it) has no text of its own: point at its key.
    const emptyValue = !valueRange || (isScalar(valueNode) && valueNode.value === null && valueRange[0] === valueRange[1]);
    offset = (atKey && i === path.length - 1) || emptyValue ? (keyNode?.range?.[0] ?? offset) : valueRange[0];
    node = valueNode;
  }
  return offset;
}

// --- JSON Schema and `vigia config check` ---

/** JSON Schema (draft 2020-12) of what may be written in the YAML file, for editor completion. */
export function configJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
  return {
    $schema,
    $id: 'urn:vigia:config',
    title: 'Vigía device configuration',
    description: 'Settings file of the Vigía edge daemon (YAML). Durations: 500ms, 30s, 5m, 2h, 7d. Sizes: 512kB, 64MiB, 1GB.',
    ...rest,
  };
}

/** Line writers: each call is one line, without its newline (console.log-like). */
export interface CheckOutput {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/** EX_CONFIG from sysexits.h: systemd and scripts can tell a bad file from a crash. */
export const EX_CONFIG = 78;

/**
 * `vigia config check FILE`: 0 and one summary line, or every problem on stderr and EX_CONFIG.
 * With `unitFile` (the installed systemd unit), a directory the config makes the daemon write but
 * the unit's sandbox keeps read-only is a problem too: the daemon would fail on the pole.
 */
export function runConfigCheck(file: string, out: CheckOutput, unitFile?: string): number {
  try {
    const config = loadConfig(file);
    const sandbox = unitFile === undefined ? null : readUnitSandbox(unitFile);
    if (sandbox) {
      const problems = sandboxProblems(config, sandbox);
      if (problems.length > 0) {
        const lineCounter = new LineCounter();
        const doc = parseDocument(readFileSync(file, 'utf8'), { lineCounter });
        throw new ConfigError(
          file,
          problems.map((p) => {
            const offset = locate(doc, p.path);
            return { file, ...(offset === undefined ? { line: 1, col: 1 } : lineCounter.linePos(offset)), path: p.path.join('.'), message: p.message };
          }),
        );
      }
    }
    // Warnings do not fail the check: the file is valid, but someone should look.
    for (const w of configWarnings(config)) out.stderr(`${file} ${w.path}: warning: ${w.message}`);
    const { device } = config;
    const checked = sandbox ? `; every directory it writes is writable under ${sandbox.unitFile}` : '';
    out.stdout(`${file}: ok (profile ${device.profile}, device ${device.site}/${device.id})${checked}`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) out.stderr(formatProblem(p));
    return EX_CONFIG;
  }
}
