/**
 * The publisher's side of hotlist updates: the arguments of a hotlist.delta command (`vigia hotlist
 * delta`) that a device checks and applies with HotlistStore.applySignedDelta, and the signed
 * header of a whole list (`vigia hotlist sign`) that HotlistStore.fetch checks (source.ts). Both
 * are signed with the list publisher's Ed25519 key and carry a serial, an issue time and a scope
 * (header.ts). Error messages name the options of those commands.
 */
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { HotlistEntryInput, HotlistRowError } from './entry.js';
import { formatListHeader, readStamp, type SignedStamp } from './header.js';
import { parseHotlistCsv, parseHotlistJson } from './parse.js';
import { HotlistStore } from './source.js';

export type DeltaRequest = {
  /** Ed25519 private key of the list publisher (PEM file). */
  keyFile: string;
  /** Version of the list the delta applies to (see hotlist.stats). */
  base?: string;
  /** Hot-list cache to take the base list from; the delta then also announces the resulting version. */
  dataDir?: string;
  /** Entries to add: a hot-list file, JSON when its name ends in .json, else CSV. */
  addFile?: string;
  /** Plates to remove. */
  remove?: string[];
} & StampRequest;

/** The signed fields a publisher gives: above every serial issued before, lists and deltas alike. */
export type StampRequest = {
  serial: number;
  /** Sites that may install it, or ['*']. */
  scope: string[];
  /** Issue time (default now). */
  issued?: Date;
};

/** A hotlist.delta command's arguments: the delta's exact JSON text and the base64 Ed25519 signature of its UTF-8 bytes. */
export type SignedDelta = { delta: string; signature: string };

/** Why no delta was built; `rows` when the file of entries to add has invalid rows. */
export class DeltaError extends Error {
  constructor(
    message: string,
    readonly rows?: { file: string; errors: HotlistRowError[] },
  ) {
    super(message);
    this.name = 'DeltaError';
  }
}

/** Builds and signs a delta; throws DeltaError when the request cannot be met. */
export async function buildSignedDelta(req: DeltaRequest): Promise<SignedDelta> {
  const key = publisherKey(req.keyFile);
  const stamp = checkedStamp(req);
  const add = req.addFile ? entriesToAdd(req.addFile) : [];
  const remove = req.remove ?? [];
  let base = req.base;
  let version: string | undefined;
  if (req.dataDir) ({ base, version } = await applyToCachedList(req.dataDir, base, add, remove));
  if (base === undefined || !/^[0-9a-f]{64}$/.test(base)) throw new DeltaError('give --base <64 hex digits> or --data-dir');
  const delta = JSON.stringify({ base_version: base, add, remove, ...(version ? { version } : {}), ...stamp });
  const signature = sign(null, Buffer.from(delta, 'utf8'), key).toString('base64');
  return { delta, signature };
}

/** A list's signed header (<url>.header) and the base64 signature of its bytes (<url>.sig). */
export type SignedListHeader = { header: string; signature: string };

/** Signs the header of a list file's exact bytes; throws DeltaError when the request cannot be met. */
export function signListHeader(req: { keyFile: string; listFile: string } & StampRequest): SignedListHeader {
  const key = publisherKey(req.keyFile);
  const stamp = checkedStamp(req);
  let bytes: Buffer;
  try {
    bytes = readFileSync(req.listFile);
  } catch (err) {
    throw new DeltaError(`cannot read ${req.listFile}: ${(err as Error).message}`);
  }
  const header = formatListHeader({ ...stamp, sha256: createHash('sha256').update(bytes).digest('hex') });
  return { header, signature: sign(null, Buffer.from(header, 'utf8'), key).toString('base64') };
}

function checkedStamp(req: StampRequest): SignedStamp {
  const issued = (req.issued ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  try {
    return readStamp({ serial: req.serial, issued, scope: req.scope });
  } catch (err) {
    throw new DeltaError(`${(err as Error).message.replace(/"(serial|scope)"/, '--$1')}`);
  }
}

function publisherKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new DeltaError(`cannot read the private key ${file}: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new DeltaError(`${file} is a ${key.asymmetricKeyType} key, an Ed25519 key is needed`);
  return key;
}

function entriesToAdd(file: string): HotlistEntryInput[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DeltaError(`cannot read the entries to add ${file}: ${(err as Error).message}`);
  }
  const parsed = file.toLowerCase().endsWith('.json') ? parseHotlistJson(text) : parseHotlistCsv(text);
  if (parsed.invalidRows > 0) throw new DeltaError(`${file}: ${parsed.invalidRows} invalid row(s)`, { file, errors: parsed.errors });
  return parsed.entries;
}

/** The cached list's version as the base (it must equal `base` when one is given) and the version the delta leads to. */
async function applyToCachedList(
  dataDir: string,
  base: string | undefined,
  add: HotlistEntryInput[],
  remove: string[],
): Promise<{ base: string; version: string }> {
  const store = new HotlistStore({ dataDir });
  try {
    const opened = await store.open();
    if (!opened.ok) throw new DeltaError(opened.detail);
    const current = store.current();
    if (base !== undefined && base !== current.version) {
      throw new DeltaError(`--base ${base.slice(0, 12)}… is not the cached list's version ${current.version.slice(0, 12)}…`);
    }
    try {
      return { base: current.version, version: current.applyDelta({ add, remove }).version };
    } catch (err) {
      throw new DeltaError((err as Error).message);
    }
  } finally {
    await store.close();
  }
}
