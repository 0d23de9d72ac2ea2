/**
 * The signed stamp that orders hotlists and says where they may be installed.
 *
 * Signing the list's bytes alone proves who wrote a list, not that it is the latest one nor that it
 * is meant for this device: an old signed list served again (rollback) or a list made for another
 * region would pass. So every downloaded list comes with a header, and every delta carries the same
 * fields inside its own signed bytes:
 *
 *   serial   a positive integer that rises with every list and delta the publisher issues (one
 *            sequence for both); a device refuses anything not above the highest it installed
 *   issued   when it was issued (ISO 8601 with a time zone); a device raises hotlist.stale when its
 *            list is older than anpr.hotlist.max_age, whatever the server answers
 *   scope    the sites (config.device.site) that may install it, or ["*"] for every site
 *   sha256   (list header only) the SHA-256 in hex of the list's bytes
 *
 * The header is a small JSON file signed as exact bytes, so a publisher can write it with printf
 * and sign it with openssl; no canonical JSON is needed.
 */

export type SignedStamp = { serial: number; issued: string; scope: string[] };
export type ListHeader = SignedStamp & { sha256: string };

export const LIST_HEADER_FIELDS = ['serial', 'issued', 'scope', 'sha256'] as const;
export const STAMP_FIELDS = ['serial', 'issued', 'scope'] as const;

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
/** ISO 8601 date and time with seconds and a zone, as `date -u +%Y-%m-%dT%H:%M:%SZ` prints. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const SCOPE_ITEM = /^(\*|[A-Za-z0-9_-]{1,64})$/;

/** The serial, issue time and scope of a signed document; throws an Error naming the bad field. */
export function readStamp(doc: Record<string, unknown>): SignedStamp {
  const { serial, issued, scope } = doc;
  if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 1) throw new Error('"serial" must be a positive integer');
  if (typeof issued !== 'string' || !ISO_TIME.test(issued) || Number.isNaN(Date.parse(issued)))
    throw new Error('"issued" must be an ISO 8601 time with a zone, e.g. 2025-06-15T12:00:00Z');
  if (!Array.isArray(scope) || scope.length === 0 || scope.length > 1000 || !scope.every((s) => typeof s === 'string' && SCOPE_ITEM.test(s)))
    throw new Error('"scope" must be a non-empty array of site ids, or ["*"]');
  return { serial, issued: new Date(issued).toISOString(), scope: [...(scope as string[])] };
}

/** Parses a list header's bytes; throws an Error saying what is wrong. */
export function parseListHeader(bytes: Uint8Array): ListHeader {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new Error('the header is not UTF-8 JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('the header must be a JSON object');
  const d = doc as Record<string, unknown>;
  const unknown = Object.keys(d).find((k) => !(LIST_HEADER_FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw new Error(`unknown field ${JSON.stringify(unknown.slice(0, 40))} in the header`);
  if (typeof d.sha256 !== 'string' || !SHA256_HEX.test(d.sha256)) throw new Error('"sha256" must be a SHA-256 in hex');
  return { ...readStamp(d), sha256: d.sha256.toLowerCase() };
}

/** Whether a list or delta scoped to `scope` may be installed at `site` (no site: only lists for every site). */
export function inScope(scope: readonly string[], site: string | undefined): boolean {
  return scope.includes('*') || (site !== undefined && scope.includes(site));
}

/** A list header's exact bytes, as the publisher signs them (`vigia hotlist sign`, tests). */
export function formatListHeader(header: ListHeader): string {
  return `${JSON.stringify({ serial: header.serial, issued: header.issued, scope: header.scope, sha256: header.sha256 })}\n`;
}
