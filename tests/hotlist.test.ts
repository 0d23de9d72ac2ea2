import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOTLIST_WORKER_RESOURCE_LIMITS, HotlistBuildFailed, HotlistBuildWorker, hotlistWorkerEntry } from '../src/anpr/hotlist/build-worker.js';
import { HotlistFreshness } from '../src/anpr/hotlist/freshness.js';
import type { HotlistEntryInput } from '../src/anpr/hotlist/entry.js';
import { Hotlist, HotlistError } from '../src/anpr/hotlist/list.js';
import { parseHotlistCsv, parseHotlistJson } from '../src/anpr/hotlist/parse.js';
import { confusableForm, normalisePlate } from '../src/anpr/hotlist/plate-code.js';
import { HotlistStore, type HotlistStoreOptions, type HotlistUpdate } from '../src/anpr/hotlist/source.js';
import { makeTlsFiles, type TlsFiles } from './helpers/tls.js';

const NOW = Date.UTC(2025, 5, 15, 12, 0, 0); // 2025-06-15T12:00:00Z

const entry = (plate: string, over: Partial<HotlistEntryInput> = {}): HotlistEntryInput => ({
  plate,
  reason: 'robo',
  source: 'carabineros',
  added: '2025-01-10',
  expires: null,
  ...over,
});

const plates = (list: Hotlist, read: string, fuzzy = true, now = NOW) =>
  list.lookup(read, { fuzzy, now }).map((m) => `${m.kind}:${m.entry.plate}:${m.distance}`);

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-hotlist-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function keyPair(): { pub: string; priv: KeyObject } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { pub: publicKey.export({ type: 'spki', format: 'pem' }).toString(), priv: privateKey };
}

function expectOk(u: HotlistUpdate): Extract<HotlistUpdate, { ok: true }> {
  if (!u.ok) throw new Error(`expected success, got ${u.reason}: ${u.detail}`);
  return u;
}

function expectRefused(u: HotlistUpdate, reason: string): Extract<HotlistUpdate, { ok: false }> {
  if (u.ok) throw new Error(`expected ${reason}, but the update was accepted (${u.status})`);
  expect(u.reason, u.detail).toBe(reason);
  return u;
}

const CSV_HEADER = 'plate,reason,source,added,expires\n';

/** The device's site (config.device.site) in these tests. */
const SITE = 'test-site';
/** Serials of signed lists and deltas only rise; tests that do not look at them take the next one. */
let lastSerial = 1000;
const nextSerial = () => ++lastSerial;
/** The signed fields every delta carries: its serial, issue time and the sites it is for. */
const stamp = (serial = nextSerial(), scope: string[] = [SITE], issued = new Date(NOW).toISOString()) => ({ serial, issued, scope });

describe('Hotlist lookup', () => {
  const list = Hotlist.fromEntries([entry('BBCL1Z'), entry('FHKT54'), entry('AB1234', { reason: 'encargo', source: 'pdi' })]);

  it('finds exact matches whatever the separators and case of the read', () => {
    expect(plates(list, 'FHKT54', false)).toEqual(['exact:FHKT54:0']);
    expect(plates(list, 'fh·kt·54', false)).toEqual(['exact:FHKT54:0']);
    expect(plates(list, 'AB-1234')).toEqual(['exact:AB1234:0']);
    const [m] = list.lookup('ab 1234', { now: NOW });
    expect(m?.entry).toEqual({ plate: 'AB1234', reason: 'encargo', source: 'pdi', added: '2025-01-10', expires: null });
    expect(list.lookup('ZZZZ99', { fuzzy: true, now: NOW })).toEqual([]);
  });

  it('finds confusable matches at one or two positions only with fuzzy', () => {
    expect(plates(list, 'BBCL12')).toEqual(['confusable:BBCL1Z:1']);
    expect(plates(list, '8BCL12')).toEqual(['confusable:BBCL1Z:2']);
    expect(plates(list, 'BBCLIZ')).toEqual(['confusable:BBCL1Z:1']);
    expect(plates(list, 'A8I234')).toEqual(['confusable:AB1234:2']);
    expect(plates(list, 'BBCL12', false)).toEqual([]);
  });

  it('does not match different letters, three confusions or another length', () => {
    expect(plates(list, 'BBCL13')).toEqual([]); // 3 and Z are not confusable
    expect(plates(list, 'BBCK1Z')).toEqual([]); // K is not L
    expect(plates(list, 'PBCL1Z')).toEqual([]); // P is not B
    expect(plates(list, '88CL12')).toEqual([]); // three positions
    expect(plates(list, 'BBCL1')).toEqual([]);
    expect(plates(list, 'BBCL1Z0')).toEqual([]);
    expect(plates(list, 'BB#CL1Z')).toEqual([]); // not a plate
  });

  it('returns exact matches first, then confusable ones by distance', () => {
    const l = Hotlist.fromEntries([entry('8BCL1Z'), entry('BBCL12'), entry('BBCL1Z')]);
    expect(plates(l, 'BBCL12')).toEqual(['exact:BBCL12:0', 'confusable:BBCL1Z:1', 'confusable:8BCL1Z:2']);
  });

  it('uses the documented classes', () => {
    expect(confusableForm('ODQ0')).toBe('0000');
    expect(confusableForm('BBCL1Z')).toBe('88CL12');
    expect(confusableForm('GTAS')).toBe('6745');
    expect(confusableForm('LJUC3')).toBe('LJUC3');
    expect(normalisePlate(' bb-cl.12 ')).toBe('BBCL12');
    expect(normalisePlate('BBÑL12')).toBeNull();
    expect(normalisePlate('ABCDEFGHIJK')).toBeNull();
  });

  it('never matches an expired entry; a date expires at the end of that day (UTC)', () => {
    const l = Hotlist.fromEntries(
      [
        entry('GHJK11', { expires: '2025-06-14' }),
        entry('GHJK22', { expires: '2025-06-15' }),
        entry('GHJK33', { expires: '2025-06-15T08:00:00-03:00' }), // 11:00Z
        entry('GHJK44', { expires: '2025-06-15T12:00:00Z' }),
      ],
      { now: NOW },
    );
    expect(l.expiredAtBuild).toBe(2);
    expect(plates(l, 'GHJK11')).toEqual([]);
    expect(plates(l, 'GHJK22')).toEqual(['exact:GHJK22:0']);
    expect(plates(l, 'GHJK22', true, Date.UTC(2025, 5, 15, 23, 59, 59, 999))).toEqual(['exact:GHJK22:0']);
    expect(plates(l, 'GHJK22', true, Date.UTC(2025, 5, 16))).toEqual([]);
    expect(plates(l, 'GHJK33')).toEqual([]);
    expect(plates(l, 'GHJK44')).toEqual(['exact:GHJK44:0']); // expires == now is not yet expired
    expect(plates(l, 'GHJK44', true, NOW + 1)).toEqual([]);
    expect(plates(l, 'GHJK11', true, Date.UTC(2025, 5, 14, 20))).toEqual(['exact:GHJK11:0']);
    // A confusable candidate that expired is not returned either.
    expect(plates(l, 'GHJKI1', true, Date.UTC(2025, 5, 14, 20))).toEqual(['confusable:GHJK11:1']);
    expect(plates(l, 'GHJKI1')).toEqual([]);
  });

  it('keeps several entries of one plate, drops identical ones', () => {
    const l = Hotlist.fromEntries([entry('KLPR12'), entry('KLPR12', { source: 'pdi' }), entry('kl-pr-12')]);
    expect(l.size).toBe(2);
    expect(l.lookup('KLPR12', { now: NOW }).map((m) => m.entry.source)).toEqual(['carabineros', 'pdi']);
  });

  it('refuses invalid entries as a whole, listing each', () => {
    let caught: unknown;
    try {
      Hotlist.fromEntries([entry('BBCL12'), entry('BB$L12'), entry('CCDD12', { added: '2025-02-30' }), entry('CCDD13', { reason: 'a\tb' })]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(HotlistError);
    expect((caught as HotlistError).errors.map((e) => e.line)).toEqual([2, 3, 4]);
  });
});

describe('Hotlist version and deltas', () => {
  it('is the SHA-256 of the sorted canonical lines, whatever the input order and form', () => {
    const a = Hotlist.fromEntries([
      entry('ZZ1234', { reason: 'robo con violencia', expires: '2026-01-01T03:00:00-03:00' }),
      entry('bb-cl-12', { added: '2025-01-10T10:00:00Z' }),
      entry('BBCL12', { source: 'pdi' }),
    ]);
    const lines = [
      'ZZ1234\trobo con violencia\tcarabineros\t2025-01-10\t2026-01-01T06:00:00.000Z\n',
      'BBCL12\trobo\tcarabineros\t2025-01-10T10:00:00.000Z\t\n',
      'BBCL12\trobo\tpdi\t2025-01-10\t\n',
    ].map((l) => Buffer.from(l));
    lines.sort(Buffer.compare);
    expect(a.version).toBe(createHash('sha256').update(Buffer.concat(lines)).digest('hex'));
    expect(
      Hotlist.fromEntries([entry('BBCL12', { added: '2025-01-10T10:00:00.5-03:00' })])
        .entries()
        .next().value?.added,
    ).toBe('2025-01-10T13:00:00.500Z');
    const b = Hotlist.fromEntries([...a.entries()].reverse());
    expect(b.version).toBe(a.version);
    expect(Hotlist.empty().version).toBe(createHash('sha256').digest('hex'));
  });

  it('applyDelta returns a new list and leaves the old one untouched', () => {
    const base = Hotlist.fromEntries([entry('BBCL12'), entry('FHKT54'), entry('AB1234')]);
    const next = base.applyDelta({ remove: ['fh-kt-54'], add: [entry('XYWV98', { source: 'municipal' })] });
    expect([...next.entries()].map((e) => e.plate)).toEqual(['AB1234', 'BBCL12', 'XYWV98']);
    expect(next.lookup('XYWV98', { now: NOW })[0]?.entry.source).toBe('municipal');
    expect(plates(next, 'FHKT54')).toEqual([]);
    expect([...base.entries()].map((e) => e.plate)).toEqual(['AB1234', 'BBCL12', 'FHKT54']);
    expect(plates(base, 'FHKT54')).toEqual(['exact:FHKT54:0']);
    expect(next.version).toBe(Hotlist.fromEntries([entry('BBCL12'), entry('AB1234'), entry('XYWV98', { source: 'municipal' })]).version);
    expect(() => base.applyDelta({ add: [entry('')] })).toThrow(HotlistError);
  });

  it('round-trips through CSV', () => {
    const l = Hotlist.fromEntries([entry('BBCL12', { reason: 'robo, "con" violencia' }), entry('XY1234', { expires: '2030-12-31' })]);
    const parsed = Hotlist.parse([...l.toCsv()].join(''), 'csv');
    expect(parsed.hotlist?.version).toBe(l.version);
  });

  it('writes the same CSV as bytes, in chunks of the size asked for', () => {
    const l = Hotlist.fromEntries(
      Array.from({ length: 300 }, (_, i) =>
        entry(`KL${String(i).padStart(4, '0')}`, {
          reason: i % 3 ? 'apropiación "indebida", año 2025' : 'robo',
          source: i % 2 ? 'pdi' : 'carabineros',
          added: i % 4 ? '2025-01-10' : '2025-01-10T10:00:00.5-03:00',
          expires: i % 5 ? null : i % 2 ? '2030-12-31' : '2030-12-31T23:00:00Z',
        }),
      ),
    );
    const text = [...l.toCsv()].join('');
    const chunks = Array.from(l.csvBytes(1000), (c) => Buffer.from(c)); // copied as they come: the buffer is reused
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.every((c) => c.length < 1200)).toBe(true);
    expect(Buffer.concat(chunks).toString('utf8')).toBe(text);
    expect(text).toContain('KL0001,"apropiación ""indebida"", año 2025",pdi,2025-01-10,\n');
    expect(text).toContain('KL0000,robo,carabineros,2025-01-10T13:00:00.500Z,2030-12-31T23:00:00.000Z\n');
    expect(Hotlist.parse(text, 'csv').hotlist?.version).toBe(l.version);
    expect(Array.from(Hotlist.empty().csvBytes(), (c) => Buffer.from(c).toString())).toEqual([CSV_HEADER]);
  });
});

describe('parsing files', () => {
  it('reads CSV with BOM, CRLF, quoted fields, blank lines, extra columns and any column order', () => {
    const text =
      '\uFEFFPlate,Source,Reason,Added,Expires,notes\r\n' +
      'BB-CL-12,carabineros,"robo, con ""violencia""",2025-01-10,,x\r\n' +
      '\r\n' +
      'AB1234 , municipal , encargo ,2025-01-12,2026-01-01,"a\r\nb"\r\n' +
      'FHKT54,pdi,robo,2025-01-11T09:30:00-03:00,,\r\n';
    const r = parseHotlistCsv(text);
    expect(r.errors).toEqual([]);
    expect(r.entries).toEqual([
      { plate: 'BB-CL-12', reason: 'robo, con "violencia"', source: 'carabineros', added: '2025-01-10', expires: null },
      { plate: 'AB1234', reason: 'encargo', source: 'municipal', added: '2025-01-12', expires: '2026-01-01' },
      { plate: 'FHKT54', reason: 'robo', source: 'pdi', added: '2025-01-11T09:30:00-03:00', expires: null },
    ]);
    const l = Hotlist.fromEntries(r.entries);
    expect([...l.entries()].map((e) => `${e.plate} ${e.added}`)).toEqual(['AB1234 2025-01-12', 'BBCL12 2025-01-10', 'FHKT54 2025-01-11T12:30:00.000Z']);
    expect(Hotlist.parse(text, 'csv').hotlist?.version).toBe(l.version);
  });

  it('reports each bad CSV row with the line it starts on, and Hotlist.parse refuses the file', () => {
    const text =
      CSV_HEADER + // 1
      'BBCL12,robo,carabineros,2025-01-10,\n' + // 2 ok
      'BB$L12,robo,carabineros,2025-01-10,\n' + // 3 bad plate
      'FHKT54,"robo\ncon salto",pdi,2025-01-10,\n' + // 4-5 newline inside reason
      'AB1234,robo,pdi,10/01/2025,\n' + // 6 bad date
      'AB1235,robo,pdi,2025-01-10\n' + // 7 four fields
      'AB1236,,pdi,2025-01-10,\n' + // 8 empty reason
      'AB1237,robo,pdi,2025-01-10,2025-13-01\n' + // 9 bad expiry
      'CD5678,robo,pdi,2025-01-10,\n'; // 10 ok
    const r = parseHotlistCsv(text);
    expect(r.errors.map((e) => e.line)).toEqual([3, 4, 6, 7, 8, 9]);
    expect(r.errors[0]?.message).toMatch(/plate/);
    expect(r.errors[2]?.message).toMatch(/added/);
    expect(r.errors[3]?.message).toMatch(/expected 5 fields, found 4/);
    expect(r.invalidRows).toBe(6);
    expect(r.entries.map((e) => e.plate)).toEqual(['BBCL12', 'CD5678']);
    const whole = Hotlist.parse(text, 'csv');
    expect(whole.hotlist).toBeNull();
    expect(whole.errors).toEqual(r.errors);
  });

  it('refuses a CSV without the right header or with a broken quote', () => {
    expect(parseHotlistCsv('plate,reason,source,added\nBBCL12,robo,pdi,2025-01-10\n').errors).toEqual([
      { line: 1, message: expect.stringMatching(/missing expires/) as unknown as string },
    ]);
    expect(parseHotlistCsv('').errors[0]?.message).toMatch(/no header/);
    const broken = parseHotlistCsv(`${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\nFHKT54,"robo,pdi,2025-01-10,\nXY1234,robo,pdi,2025-01-10,\n`);
    expect(broken.errors).toEqual([{ line: 3, message: 'quoted field is never closed' }]);
    expect(parseHotlistCsv(`${CSV_HEADER}BBCL12,ro"bo,pdi,2025-01-10,\n`).errors[0]?.line).toBe(2);
  });

  it('reads JSON as an array or {entries}, and reports bad elements by line', () => {
    const good = parseHotlistJson(JSON.stringify([entry('BBCL12'), entry('FHKT54', { expires: '2026-01-01' })]));
    expect(good.errors).toEqual([]);
    expect(good.entries.map((e) => e.plate)).toEqual(['BBCL12', 'FHKT54']);

    const text = [
      '{',
      '  "generated": "2025-06-15",',
      '  "entries": [',
      '    {"plate": "BBCL12", "reason": "robo", "source": "pdi", "added": "2025-01-10", "expires": null},',
      '    {"plate": "BB$L12", "reason": "robo", "source": "pdi", "added": "2025-01-10"},',
      '    {',
      '      "plate": "FHKT54", "reason": "robo", "source": "pdi",',
      '      "added": 20250110',
      '    },',
      '    "AB1234",',
      '    {"plate": "XY1234", "reason": "robo", "source": "pdi", "added": "2025-01-10", "note": "ignored"}',
      '  ]',
      '}',
    ].join('\n');
    const r = parseHotlistJson(text);
    expect(r.errors.map((e) => e.line)).toEqual([5, 6, 10]);
    expect(r.errors[1]?.message).toMatch(/entry 3: added/);
    expect(r.entries.map((e) => e.plate)).toEqual(['BBCL12', 'XY1234']);
    expect(Hotlist.parse(text, 'json').hotlist).toBeNull();

    const syntax = parseHotlistJson('[\n{"plate": "BBCL12",\n}\n]');
    expect(syntax.errors).toHaveLength(1);
    expect(syntax.errors[0]?.line).toBe(3);
    expect(parseHotlistJson('{"list": []}').errors[0]?.message).toMatch(/expected an array/);
  });
});

describe('HotlistStore: local files, deltas, cache', () => {
  it('loads files by extension, refuses a bad file whole and keeps the previous list', async () => {
    const dir = tempDir();
    const store = new HotlistStore({ dataDir: join(dir, 'data'), now: () => NOW });
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\nFHKT54,robo,pdi,2025-01-10,\n`);
    writeFileSync(join(dir, 'b.json'), JSON.stringify({ entries: [entry('XY1234')] }));
    writeFileSync(join(dir, 'bad.csv'), `${CSV_HEADER}ZZZZ99,robo,pdi,2025-01-10,\nBB$L12,robo,pdi,2025-01-10,\n`);
    writeFileSync(join(dir, 'c.txt'), 'x');

    expect(expectOk(await store.load(join(dir, 'a.csv'))).size).toBe(2);
    const v1 = store.current().version;
    const bad = expectRefused(await store.load(join(dir, 'bad.csv')), 'invalid');
    expect(bad.detail).toMatch(/line 3/);
    expect(bad.errors?.[0]?.line).toBe(3);
    expect(store.current().version).toBe(v1);
    expect(store.current().lookup('ZZZZ99', { now: NOW })).toEqual([]); // the valid row of the bad file is not loaded either
    expectRefused(await store.load(join(dir, 'c.txt')), 'format');
    expectRefused(await store.load(join(dir, 'missing.csv')), 'io');
    const s = store.stats();
    expect(s).toMatchObject({ size: 2, version: v1, source: join(dir, 'a.csv'), rejected: 3, rejected_by: { invalid: 1, format: 1, io: 1 } });
    expect(s.last_error).toMatch(/^io: cannot read/);

    expect(expectOk(await store.load(join(dir, 'b.json'))).size).toBe(1);
    expect(store.current().lookup('XY1234', { now: NOW })).toHaveLength(1);
    await store.close();
  });

  it('replaces atomically: a reader holding the old list keeps a consistent view', async () => {
    const dir = tempDir();
    const store = new HotlistStore({ dataDir: dir, now: () => NOW });
    const first = Array.from({ length: 5000 }, (_, i) => `AA${String(i).padStart(4, '0')}`);
    writeFileSync(join(dir, 'one.csv'), CSV_HEADER + first.map((p) => `${p},robo,pdi,2025-01-10,\n`).join(''));
    writeFileSync(join(dir, 'two.csv'), `${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\n`);
    await store.load(join(dir, 'one.csv'));

    const held = store.current();
    const version = held.version;
    const iterator = held.entries()[Symbol.iterator]();
    const firstSeen = iterator.next().value;
    const loading = store.load(join(dir, 'two.csv')); // runs while the reader is mid-iteration
    await loading;
    expect(store.current().size).toBe(1);
    expect(store.current().lookup('AA0000', { now: NOW })).toEqual([]);

    // The held instance is unchanged: same size, version, every entry, lookups.
    const rest = [...{ [Symbol.iterator]: () => iterator }];
    expect([firstSeen, ...rest].map((e) => e?.plate)).toEqual(first);
    expect(held.size).toBe(5000);
    expect(held.version).toBe(version);
    expect(held.lookup('AA4999', { now: NOW })).toHaveLength(1);
    expect(held.lookup('BBCL12', { now: NOW })).toEqual([]);
    await store.close();
  });

  it('applies a signed delta to its base version only', async () => {
    const { pub, priv } = keyPair();
    const dir = tempDir();
    const store = new HotlistStore({ dataDir: dir, site: SITE, publicKey: pub, now: () => NOW, deltaPersistDelayMs: 0 });
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\nFHKT54,robo,pdi,2025-01-10,\n`);
    await store.load(join(dir, 'a.csv'));
    const base = store.current();
    const delta = (over: Record<string, unknown>) =>
      Buffer.from(JSON.stringify({ base_version: base.version, add: [entry('XY1234')], remove: ['FHKT54'], ...stamp(), ...over }));
    const body = delta({});

    // Wrong signer, truncated signature: refused before anything is parsed.
    expectRefused(await store.applySignedDelta(body, sign(null, body, keyPair().priv)), 'signature');
    expectRefused(await store.applySignedDelta(body, sign(null, body, priv).subarray(0, 63)), 'signature');
    // Signed but for another list.
    const other = delta({ base_version: createHash('sha256').update('other').digest('hex') });
    expectRefused(await store.applySignedDelta(other, sign(null, other, priv)), 'base_version');
    // Signed, right base, but announcing a result it does not produce.
    const lying = delta({ version: base.version });
    expectRefused(await store.applySignedDelta(lying, sign(null, lying, priv)), 'version_mismatch');
    const unknown = delta({ replace: true });
    expectRefused(await store.applySignedDelta(unknown, sign(null, unknown, priv)), 'malformed');
    const invalid = delta({ add: [entry('BB$L12')] });
    expectRefused(await store.applySignedDelta(invalid, sign(null, invalid, priv)), 'invalid');
    expect(store.current()).toBe(base);

    const expected = base.applyDelta({ add: [entry('XY1234')], remove: ['FHKT54'] });
    const announced = delta({ version: expected.version });
    const ok = expectOk(await store.applySignedDelta(announced, sign(null, announced, priv)));
    expect(ok).toMatchObject({ status: 'replaced', size: 2, version: expected.version });
    expect(store.current().lookup('XY1234', { now: NOW })).toHaveLength(1);
    expect(store.current().lookup('FHKT54', { now: NOW })).toEqual([]);
    expect(base.lookup('FHKT54', { now: NOW })).toHaveLength(1);

    // The same delta again: its serial is no longer above the installed one (nor is its base current).
    expectRefused(await store.applySignedDelta(announced, sign(null, announced, priv)), 'rollback');
    expect(store.stats()).toMatchObject({
      deltas_applied: 1,
      rejected: 7,
      rejected_by: { signature: 2, base_version: 1, rollback: 1, version_mismatch: 1, malformed: 1, invalid: 1 },
    });
    await store.close();

    const noKey = new HotlistStore({ dataDir: tempDir() });
    expectRefused(await noKey.applySignedDelta(body, sign(null, body, priv)), 'no_key');
    expect(() => new HotlistStore({ dataDir: dir, publicKey: 'not a key' })).toThrow(/PEM/);
  });

  it('reloads the last good list from the cache after a restart, and ignores a damaged cache', async () => {
    const { pub, priv } = keyPair();
    const dir = tempDir();
    const dataDir = join(dir, 'data');
    const first = new HotlistStore({ dataDir, site: SITE, publicKey: pub, now: () => NOW });
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL1Z,"robo, con violencia",carabineros,2025-01-10,2030-01-01\nFHKT54,robo,pdi,2025-01-10T10:00:00Z,\n`);
    await first.load(join(dir, 'a.csv'));
    const body = Buffer.from(JSON.stringify({ base_version: first.current().version, add: [entry('XY1234')], ...stamp() }));
    expectOk(await first.applySignedDelta(body, sign(null, body, priv))); // persisted later (5 min)...
    await first.close(); // ...or at close
    const version = first.current().version;

    const second = new HotlistStore({ dataDir, site: SITE, publicKey: pub, now: () => NOW });
    expect(second.current().size).toBe(0);
    expect(expectOk(await second.open()).version).toBe(version);
    expect(second.current().size).toBe(3);
    expect(plates(second.current(), 'BBCL12')).toEqual(['confusable:BBCL1Z:1']);
    expect(second.stats()).toMatchObject({ source: join(dir, 'a.csv'), deltas_applied: 1, version });
    // Deltas keep working on the reloaded list.
    const next = Buffer.from(JSON.stringify({ base_version: version, remove: ['XY1234'], ...stamp() }));
    expectOk(await second.applySignedDelta(next, sign(null, next, priv)));
    await second.close();

    const cache = join(dataDir, 'hotlist.cache');
    const lines = readFileSync(cache, 'utf8').split('\n');
    writeFileSync(cache, lines.map((l) => l.replace('FHKT54', 'FHKT55')).join('\n'));
    const third = new HotlistStore({ dataDir, now: () => NOW });
    expectRefused(await third.open(), 'cache');
    expect(third.current().size).toBe(0);
    expect(third.stats().last_error).toMatch(/holds version/);

    const fresh = new HotlistStore({ dataDir: join(dir, 'nothing-here') });
    expectOk(await fresh.open());
    expect(fresh.current().size).toBe(0);
  });
});

describe('HotlistStore: serials, scope and the old cache format', () => {
  it('refuses a delta whose serial is not above the installed one, or scoped to another site', async () => {
    const { pub, priv } = keyPair();
    const dir = tempDir();
    const store = new HotlistStore({ dataDir: join(dir, 'data'), site: SITE, publicKey: pub, now: () => NOW, deltaPersistDelayMs: 0 });
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\n`);
    expectOk(await store.load(join(dir, 'a.csv')));
    const delta = (serial: number, doc: object, scope: string[] = [SITE]) => {
      const body = Buffer.from(JSON.stringify({ base_version: store.current().version, ...stamp(serial, scope), ...doc }));
      return [body, sign(null, body, priv)] as const;
    };
    expectOk(await store.applySignedDelta(...delta(5, { add: [entry('KLPR12')] })));
    expect(store.stats()).toMatchObject({ serial: 5, issued: new Date(NOW).toISOString() });
    const installed = store.current();

    expect(expectRefused(await store.applySignedDelta(...delta(5, { remove: ['KLPR12'] })), 'rollback').detail).toMatch(/serial 5/);
    expectRefused(await store.applySignedDelta(...delta(4, { remove: ['KLPR12'] })), 'rollback');
    expectRefused(await store.applySignedDelta(...delta(6, { remove: ['KLPR12'] }, ['another-site'])), 'scope');
    const unstamped = Buffer.from(JSON.stringify({ base_version: installed.version, remove: ['KLPR12'] }));
    expectRefused(await store.applySignedDelta(unstamped, sign(null, unstamped, priv)), 'malformed');
    expect(store.current()).toBe(installed);
    expect(plates(store.current(), 'KLPR12')).toEqual(['exact:KLPR12:0']);

    // A site-wide scope and a higher serial go through; the serial survives a restart.
    expectOk(await store.applySignedDelta(...delta(7, { remove: ['KLPR12'] }, ['*'])));
    await store.close();
    const restarted = new HotlistStore({ dataDir: join(dir, 'data'), site: SITE, publicKey: pub, now: () => NOW });
    expectOk(await restarted.open());
    expect(restarted.stats().serial).toBe(7);
    const replay = Buffer.from(JSON.stringify({ base_version: restarted.current().version, add: [entry('KLPR12')], ...stamp(7) }));
    expectRefused(await restarted.applySignedDelta(replay, sign(null, replay, priv)), 'rollback');
    await restarted.close();
  });

  it('still loads a cache written before serials (serial 0), and takes the first signed delta', async () => {
    const { pub, priv } = keyPair();
    const dataDir = tempDir();
    const list = Hotlist.fromEntries([entry('BBCL12'), entry('FHKT54')]);
    const oldHeader = {
      version: list.version,
      source: 'https://lists.example/hotlist.csv',
      etag: '"old"',
      etag_url: 'https://lists.example/hotlist.csv',
      loaded_at: '2025-06-15T06:00:00.000Z',
      deltas_applied: 0,
    };
    writeFileSync(join(dataDir, 'hotlist.cache'), `# vigia-hotlist-cache 1 ${JSON.stringify(oldHeader)}\n${[...list.toCsv()].join('')}`);
    const store = new HotlistStore({ dataDir, site: SITE, publicKey: pub, now: () => NOW, deltaPersistDelayMs: 0 });
    expect(expectOk(await store.open()).version).toBe(list.version);
    expect(plates(store.current(), 'FHKT54')).toEqual(['exact:FHKT54:0']);
    // Serial 0; counted as issued when it was fetched; the old ETag dropped so the next fetch takes a signed header.
    expect(store.stats()).toMatchObject({ serial: 0, issued: '2025-06-15T06:00:00.000Z', etag: null, source: oldHeader.source });
    const body = Buffer.from(JSON.stringify({ base_version: list.version, remove: ['FHKT54'], ...stamp(1) }));
    expectOk(await store.applySignedDelta(body, sign(null, body, priv)));
    expect(store.stats().serial).toBe(1);
    await store.close();
  });
});

/** Plate of row i of sampleCsv (BR0000, CR0001, ...): each plate comes back every 10,000 rows, with another source. */
const samplePlate = (i: number) => `${'BCDFGHJKLP'[i % 10]}${'RSTVWXYZ'[((i / 10) | 0) % 8]}${String(i % 5000).padStart(4, '0')}`;

/** A CSV of `n` valid rows with quoting, several entries per plate, identical rows and expired entries. */
function sampleCsv(n: number): string {
  const reasons = ['robo', 'robo con violencia', 'encargo, por robo', 'apropiación "indebida"'];
  const sources = ['carabineros', 'pdi', 'municipal'];
  const cell = (t: string) => (/[",]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t);
  let text = CSV_HEADER;
  for (let i = 0; i < n; i++) {
    const plate = samplePlate(i);
    const expires = i % 7 === 0 ? '2025-03-01' : i % 5 === 0 ? '2030-01-01T00:00:00-03:00' : '';
    const row = `${plate},${cell(reasons[i % 4]!)},${sources[i % 3]!},2025-01-${String((i % 28) + 1).padStart(2, '0')},${expires}\n`;
    text += i % 100 === 0 ? row + row : row;
  }
  return text;
}

describe('building lists in a worker thread', () => {
  // Listed plates, misreads of them (B/8, 0/O, 1/I) and plates that are not listed.
  const reads = [0, 1, 7, 12, 9972, 19_999]
    .map(samplePlate)
    .flatMap((p) => [p, p.replace('B', '8').replace('0', 'O').replace('1', 'I')])
    .concat(['ZZ0000', 'BR99999']);
  const lookups = (list: Hotlist) => reads.map((p) => plates(list, p));

  it('finds the compiled worker script when running from sources', () => {
    expect(hotlistWorkerEntry()?.pathname).toMatch(/\/dist\/anpr\/hotlist\/build-worker\.js$/);
  });

  it('builds the same list as the main thread, and ends the worker when idle', async () => {
    const text = sampleCsv(30_000);
    const inline = Hotlist.parse(text, 'csv', { now: NOW });
    const builder = new HotlistBuildWorker({ idleMs: 50 });
    try {
      const bytes = Buffer.from(text);
      const r = await builder.parse(bytes, { format: 'csv', utf8: 'lenient', now: NOW });
      expect(bytes.byteLength).toBe(0); // transferred, not copied
      const list = r?.hotlist;
      if (!list || !inline.hotlist) throw new Error('expected both lists to build');
      expect({ rows: r.rows, errors: r.errors, invalidRows: r.invalidRows }).toEqual({ rows: inline.rows, errors: [], invalidRows: 0 });
      expect(list.version).toBe(inline.hotlist.version);
      expect(list.size).toBe(inline.hotlist.size);
      expect(list.expiredAtBuild).toBe(inline.hotlist.expiredAtBuild);
      expect([...list.entries()]).toEqual([...inline.hotlist.entries()]);
      expect(lookups(list)).toEqual(lookups(inline.hotlist));
      expect(builder.started).toBe(1);

      const json = JSON.stringify([...inline.hotlist.entries()].slice(0, 500));
      const fromJson = await builder.parse(Buffer.from(json), { format: 'json', utf8: 'strict', now: NOW });
      expect(fromJson?.hotlist?.version).toBe(Hotlist.parse(json, 'json', { now: NOW }).hotlist?.version);
      expect(await builder.parse(Buffer.from([0x70, 0x6c, 0xff, 0x0a]), { format: 'csv', utf8: 'strict', now: NOW })).toBeNull();

      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(builder.running).toBe(false);
      expect((await builder.parse(Buffer.from(CSV_HEADER), { format: 'csv', utf8: 'lenient', now: NOW }))?.hotlist?.size).toBe(0);
      expect(builder.started).toBe(2);
    } finally {
      await builder.close();
    }
    expect(builder.running).toBe(false);
  });

  it('moves a list between threads without copying its memory', () => {
    const list = Hotlist.fromEntries([entry('BBCL12'), entry('FHKT54', { source: 'pdi', expires: '2025-01-31' })], { now: NOW });
    const version = list.version;
    const packed = Hotlist.release(list);
    expect(list.size).toBe(0); // the memory moved out
    const back = Hotlist.adopt(packed);
    expect(back.version).toBe(version);
    expect(back.expiredAtBuild).toBe(1);
    expect(plates(back, 'BBCL1Z')).toEqual(['confusable:BBCL12:1']);
    expect(() => Hotlist.adopt({ ...packed, size: packed.size + 1 })).toThrow(RangeError);
  });

  function storePair(extra: Partial<HotlistStoreOptions> = {}) {
    const opts = { now: () => NOW, site: SITE, deltaPersistDelayMs: 0, ...extra };
    const workerDir = tempDir();
    return {
      worker: new HotlistStore({ ...opts, dataDir: workerDir, build: 'worker' }),
      inline: new HotlistStore({ ...opts, dataDir: tempDir(), build: 'inline' }),
      workerDir,
    };
  }

  it('gives a store the same lists, row errors and refusals as building inline', async () => {
    const dir = tempDir();
    const good = join(dir, 'good.csv');
    writeFileSync(good, sampleCsv(20_000));
    // More bad rows than are reported, a bad JSON element and a file that is not JSON at all.
    const badRows = Array.from({ length: 1500 }, (_, i) => (i % 2 ? `BB$L${i},robo,pdi,2025-01-10,` : `XY${i},robo,pdi,10/01/2025,`));
    writeFileSync(join(dir, 'bad.csv'), `${CSV_HEADER}ZZZZ99,robo,pdi,2025-01-10,\n${badRows.join('\n')}\nAB1,"never closed\n`);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ entries: [entry('BBCL12'), entry('BB$L12'), { plate: 'XY1234' }] }, null, 2));
    writeFileSync(join(dir, 'broken.json'), '[\n{"plate": "BBCL12",\n}\n]');
    const { worker, inline } = storePair();
    try {
      for (const file of ['good.csv', 'bad.csv', 'bad.json', 'broken.json']) {
        const [w, i] = [await worker.load(join(dir, file)), await inline.load(join(dir, file))];
        expect(w, file).toEqual(i);
      }
      const invalid = expectRefused(await worker.load(join(dir, 'bad.csv')), 'invalid');
      expect(invalid.errors).toHaveLength(1000);
      expect(invalid.detail).toMatch(/^\S+: 1501 invalid row\(s\), first at line 3: /);
      // Every refusal kept the good list.
      expect(worker.current().version).toBe(inline.current().version);
      expect(worker.current().size).toBe(inline.current().size);
      expect(lookups(worker.current())).toEqual(lookups(inline.current()));
      expect(worker.stats()).toMatchObject({ size: inline.current().size, rejected: 4, rejected_by: { invalid: 4 }, source: good });
    } finally {
      await Promise.all([worker.close(), inline.close()]);
    }
  });

  it('applies deltas and reloads the cache through the worker', async () => {
    const { pub, priv } = keyPair();
    const dir = tempDir();
    writeFileSync(join(dir, 'base.csv'), sampleCsv(40_000)); // a block of about 1.8 MB: sent to the worker in several slices
    const { worker, inline, workerDir } = storePair({ publicKey: pub });
    try {
      expectOk(await worker.load(join(dir, 'base.csv')));
      expectOk(await inline.load(join(dir, 'base.csv')));
      const base = worker.current();
      const signed = (doc: object) => {
        const body = Buffer.from(JSON.stringify({ base_version: base.version, ...stamp(), ...doc }));
        return [body, sign(null, body, priv)] as const;
      };
      const [gone, alsoGone] = [samplePlate(1), samplePlate(12)]; // neither expired
      expect(plates(base, gone)).toEqual([`exact:${gone}:0`, `exact:${gone}:0`, `exact:${gone}:0`, `exact:${gone}:0`]);
      const [badBody, badSig] = signed({ add: [entry('KLPR12'), entry('KL$R12'), 'AB1234'], remove: [gone, 'B R #'] });
      const [w, i] = [await worker.applySignedDelta(badBody, badSig), await inline.applySignedDelta(badBody, badSig)];
      expect(w).toEqual(i);
      expect(expectRefused(w, 'invalid').errors?.map((e) => e.line)).toEqual([2, 2, 3]);
      expect(worker.current()).toBe(base);

      const [body, sig] = signed({ add: [entry('KLPR12', { source: 'pdi' })], remove: [gone, alsoGone.toLowerCase()] });
      const applied = expectOk(await worker.applySignedDelta(body, sig));
      expect(applied).toEqual(expectOk(await inline.applySignedDelta(body, sig)));
      expect(applied.version).toBe(base.applyDelta({ add: [entry('KLPR12', { source: 'pdi' })], remove: [gone, alsoGone] }, { now: NOW }).version);
      expect(plates(worker.current(), 'KLPR12')).toEqual(['exact:KLPR12:0']);
      expect(plates(worker.current(), gone)).toEqual([]);
      expect(plates(base, gone)).toHaveLength(4); // the base is still whole
      await worker.flush();

      const reopened = new HotlistStore({ dataDir: workerDir, now: () => NOW }); // builds in a worker by default
      expect(expectOk(await reopened.open())).toMatchObject({ version: applied.version, size: applied.size });
      expect(reopened.stats()).toMatchObject({ deltas_applied: 1, source: join(dir, 'base.csv') });
      expect(lookups(reopened.current())).toEqual(lookups(worker.current()));
      await reopened.close();
    } finally {
      await Promise.all([worker.close(), inline.close()]);
    }
  });
});

describe('HotlistStore: a build worker that crashes', () => {
  /** The real worker script, except that it crashes on a message whenever `flag` exists (and removes it): it throws, or exits if the flag says "exit". */
  function crashingEntry(dir: string, flag: string): string {
    const script = join(dir, 'crashing-hotlist-worker.mjs');
    const real = hotlistWorkerEntry();
    if (!real) throw new Error('the hotlist worker is not built');
    writeFileSync(
      script,
      [
        "import { existsSync, readFileSync, rmSync } from 'node:fs';",
        "import { parentPort } from 'node:worker_threads';",
        `const flag = ${JSON.stringify(flag)};`,
        'const on = parentPort.on.bind(parentPort);',
        'parentPort.on = (event, listener) =>',
        '  on(event, event !== "message" ? listener : (msg) => {',
        '    if (!existsSync(flag)) return listener(msg);',
        '    const how = readFileSync(flag, "utf8");',
        '    rmSync(flag);',
        '    if (how === "exit") process.exit(70);',
        '    throw new Error("simulated crash");',
        '  });',
        `await import(${JSON.stringify(real.href)});`,
      ].join('\n'),
    );
    return script;
  }

  it('refuses the update, keeps the current list and builds again with a new worker', async () => {
    const { pub, priv } = keyPair();
    const dir = tempDir();
    const flag = join(dir, 'crash-next');
    const store = new HotlistStore({ dataDir: join(dir, 'data'), site: SITE, publicKey: pub, now: () => NOW, buildWorkerEntry: crashingEntry(dir, flag) });
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL1Z,robo,carabineros,2025-01-10,\nFHKT54,robo,pdi,2025-01-10,\n`);
    writeFileSync(join(dir, 'b.csv'), `${CSV_HEADER}XY1234,robo,pdi,2025-01-10,\n`);
    try {
      expectOk(await store.load(join(dir, 'a.csv')));
      const kept = store.current();

      writeFileSync(flag, '');
      const crashed = expectRefused(await store.load(join(dir, 'b.csv')), 'build');
      expect(crashed.detail).toMatch(/b\.csv: hotlist build worker failed: simulated crash$/);
      expect(store.current()).toBe(kept);
      expect(plates(store.current(), 'BBCL12')).toEqual(['confusable:BBCL1Z:1']);

      const delta = (doc: object) => {
        const body = Buffer.from(JSON.stringify({ base_version: store.current().version, ...stamp(), ...doc }));
        return [body, sign(null, body, priv)] as const;
      };
      writeFileSync(flag, 'exit');
      expectRefused(await store.applySignedDelta(...delta({ add: [entry('KLPR12')] })), 'build');
      expect(store.current()).toBe(kept);

      // The next updates start a new worker and go through.
      expectOk(await store.applySignedDelta(...delta({ add: [entry('KLPR12')] })));
      expect(plates(store.current(), 'KLPR12')).toEqual(['exact:KLPR12:0']);
      expect(expectOk(await store.load(join(dir, 'b.csv'))).size).toBe(1);
      expect(store.stats()).toMatchObject({ rejected: 2, rejected_by: { build: 2 } });
      expect(store.stats().last_error).toBe('build: delta: hotlist build worker exited with code 70');
    } finally {
      await store.close();
    }
  });

  it('refuses to build with a worker script that cannot start', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\n`);
    const store = new HotlistStore({ dataDir: dir, now: () => NOW, buildWorkerEntry: join(dir, 'missing-worker.mjs') });
    try {
      expectRefused(await store.load(join(dir, 'a.csv')), 'build');
      expect(store.current().size).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe('HotlistStore: the build worker heap limit', () => {
  it('refuses a list too large for the limit cleanly, keeps the previous list and builds again', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.csv'), `${CSV_HEADER}BBCL12,robo,pdi,2025-01-10,\n`);
    writeFileSync(join(dir, 'big.csv'), sampleCsv(200_000)); // ~8 MB
    const store = new HotlistStore({ dataDir: join(dir, 'data'), now: () => NOW, buildWorkerResourceLimits: { maxOldGenerationSizeMb: 8 } });
    try {
      expectOk(await store.load(join(dir, 'a.csv')));
      const kept = store.current();
      const refused = expectRefused(await store.load(join(dir, 'big.csv')), 'build');
      expect(refused.detail).toMatch(/big\.csv: the list is too large to build: .* MB, over 2 MB \(a third of the build worker's 8 MB heap limit\)/);
      expect(store.current()).toBe(kept);
      expect(plates(store.current(), 'BBCL12')).toEqual(['exact:BBCL12:0']);
      expect(expectOk(await store.load(join(dir, 'a.csv'))).size).toBe(1); // the store goes on
    } finally {
      await store.close();
    }
  });

  it('ends a worker that outgrows the limit with HotlistBuildFailed, not the process', async () => {
    // Under the input cap, but the parse needs more than 4 MB of heap: the worker, not the process, runs out.
    const pool = new HotlistBuildWorker({ idleMs: 0, resourceLimits: { maxOldGenerationSizeMb: 4 } });
    const bytes = new TextEncoder().encode(sampleCsv(25_000));
    expect(bytes.byteLength).toBeLessThan((4 * 1024 * 1024) / 3);
    try {
      const failure = await pool.parse(bytes, { format: 'csv', utf8: 'strict', now: NOW }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(HotlistBuildFailed);
      expect((failure as Error).message).toMatch(/hotlist build worker ran out of memory \(heap limit 4 MB\)|exited with code/);
      expect(pool.running).toBe(false); // ended; this process goes on
    } finally {
      await pool.close();
    }
  });

  it('builds a large list with the default limit', async () => {
    expect(HOTLIST_WORKER_RESOURCE_LIMITS.maxOldGenerationSizeMb).toBeGreaterThanOrEqual(176);
    const pool = new HotlistBuildWorker({ idleMs: 0 });
    try {
      const r = await pool.parse(new TextEncoder().encode(sampleCsv(200_000)), { format: 'csv', utf8: 'strict', now: NOW });
      expect(r?.hotlist?.size).toBe(200_000);
    } finally {
      await pool.close();
    }
  });
});

describe('HotlistStore: HTTPS', () => {
  let tls: TlsFiles;
  let server: Server;
  let base: string;
  const signer = keyPair();
  const files = new Map<string, { body: Buffer; etag?: string; gzip?: boolean; delayMs?: number }>();
  const requests: Array<{ path: string; ifNoneMatch: string | undefined }> = [];

  type PublishOptions = {
    key?: KeyObject;
    digestOf?: string;
    etag?: string;
    gzip?: boolean;
    delayMs?: number;
    serial?: number;
    scope?: string[];
    issued?: string;
  };

  /** Publishes a list with its .header (serial, issued, scope, SHA-256 of `digestOf`) and .sig (the header signed by `key`). */
  function publish(path: string, text: string, opts: PublishOptions = {}) {
    const body = Buffer.from(text);
    files.set(path, { body, etag: opts.etag, gzip: opts.gzip, delayMs: opts.delayMs });
    const header = Buffer.from(
      `${JSON.stringify({
        ...stamp(opts.serial, opts.scope, opts.issued),
        sha256: createHash('sha256')
          .update(opts.digestOf ?? text)
          .digest('hex'),
      })}\n`,
    );
    files.set(`${path}.header`, { body: header });
    files.set(`${path}.sig`, { body: Buffer.from(`${sign(null, header, opts.key ?? signer.priv).toString('base64')}\n`) });
  }

  beforeAll(async () => {
    tls = makeTlsFiles();
    server = createServer({ cert: readFileSync(tls.serverCert), key: readFileSync(tls.serverKey) }, (req, res) => {
      const path = new URL(req.url ?? '/', 'https://x').pathname;
      const ifNoneMatch = req.headers['if-none-match'];
      requests.push({ path, ifNoneMatch });
      if (path === '/truncated.csv') {
        res.writeHead(200, { 'content-length': '1000' });
        res.write(CSV_HEADER);
        return void setTimeout(() => req.socket.destroy(), 20);
      }
      const f = files.get(path);
      if (!f) return void res.writeHead(404).end();
      if (f.etag && ifNoneMatch === f.etag) return void res.writeHead(304, { etag: f.etag }).end();
      const headers: Record<string, string> = {};
      if (f.etag) headers.etag = f.etag;
      const send = () => {
        if (f.gzip && /gzip/.test(String(req.headers['accept-encoding']))) {
          headers['content-encoding'] = 'gzip';
          return void res.writeHead(200, headers).end(gzipSync(f.body));
        }
        res.writeHead(200, headers).end(f.body);
      };
      if (f.delayMs) setTimeout(send, f.delayMs);
      else send();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://localhost:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const listA = `${CSV_HEADER}BBCL1Z,robo,carabineros,2025-01-10,\nFHKT54,robo,pdi,2025-01-10,\n`;
  const listB = `${CSV_HEADER}XY1234,robo,pdi,2025-01-10,\n`;

  function newStore() {
    return new HotlistStore({ dataDir: tempDir(), site: SITE, publicKey: signer.pub, now: () => NOW });
  }

  it('accepts a list with a good digest and signature, then uses the ETag (304 keeps it)', async () => {
    publish('/a/hotlist.csv', listA, { etag: '"v1"', gzip: true });
    const store = newStore();
    const ca = readFileSync(tls.caFile);
    const url = `${base}/a/hotlist.csv`;
    const first = expectOk(await store.fetch(url, { ca }));
    expect(first).toMatchObject({ status: 'replaced', size: 2 });
    expect(plates(store.current(), 'BBCL12')).toEqual(['confusable:BBCL1Z:1']);
    expect(store.stats()).toMatchObject({ source: url, etag: '"v1"', rejected: 0 });

    requests.length = 0;
    const again = expectOk(await store.fetch(url, { ca }));
    expect(again.status).toBe('not_modified');
    expect(requests).toEqual([{ path: '/a/hotlist.csv', ifNoneMatch: '"v1"' }]);
    expect(store.current().version).toBe(first.version);

    // A new version on the server replaces it.
    publish('/a/hotlist.csv', listB, { etag: '"v2"' });
    expect(expectOk(await store.fetch(url, { ca })).status).toBe('replaced');
    expect(store.current().size).toBe(1);
    expect(store.stats().etag).toBe('"v2"');
    await store.close();
  });

  it('refuses a body whose SHA-256 does not match and keeps the previous list', async () => {
    publish('/b/ok.csv', listA);
    publish('/b/hotlist.csv', listB, { digestOf: `${listB}tampered` });
    const store = newStore();
    const ca = readFileSync(tls.caFile);
    expectOk(await store.fetch(`${base}/b/ok.csv`, { ca }));
    const version = store.current().version;
    const r = expectRefused(await store.fetch(`${base}/b/hotlist.csv`, { ca }), 'digest');
    expect(r.detail).toMatch(/SHA-256/);
    expect(store.current().version).toBe(version);
    expect(store.stats()).toMatchObject({ rejected: 1, rejected_by: { digest: 1 }, source: `${base}/b/ok.csv` });
    expect(store.stats().last_error).toMatch(/^digest:/);
    files.delete('/b/hotlist.csv.header');
    expectRefused(await store.fetch(`${base}/b/hotlist.csv`, { ca }), 'header');
    expect(store.current().version).toBe(version);
    await store.close();
  });

  it('refuses a list signed by another key, or unsigned, and keeps the previous list', async () => {
    publish('/c/ok.csv', listA);
    publish('/c/forged.csv', listB, { key: keyPair().priv });
    publish('/c/unsigned.csv', listB);
    files.delete('/c/unsigned.csv.sig');
    publish('/c/garbled.csv', listB);
    files.set('/c/garbled.csv.sig', { body: Buffer.from('not base64!') });
    const store = newStore();
    const ca = readFileSync(tls.caFile);
    expectOk(await store.fetch(`${base}/c/ok.csv`, { ca }));
    const version = store.current().version;
    expect(expectRefused(await store.fetch(`${base}/c/forged.csv`, { ca }), 'signature').detail).toMatch(/does not match/);
    expectRefused(await store.fetch(`${base}/c/unsigned.csv`, { ca }), 'signature');
    expectRefused(await store.fetch(`${base}/c/garbled.csv`, { ca }), 'signature');
    expect(store.current().version).toBe(version);
    expect(store.stats()).toMatchObject({ rejected: 3, rejected_by: { signature: 3 } });
    await store.close();
  });

  it('refuses an untrusted server, plain http, a missing list and a list with bad rows', async () => {
    publish('/d/ok.csv', listA);
    publish('/d/bad.csv', `${CSV_HEADER}XY1234,robo,pdi,2025-01-10,\nBB$L12,robo,pdi,2025-01-10,\n`);
    const store = newStore();
    const ca = readFileSync(tls.caFile);
    expectRefused(await store.fetch(`${base}/d/ok.csv`), 'io'); // the test CA is not trusted by default
    expectRefused(await store.fetch(`http://localhost:1/d/ok.csv`), 'http');
    expectRefused(await store.fetch(`${base}/d/none.csv`, { ca }), 'http');
    expect(expectRefused(await store.fetch(`${base}/truncated.csv`, { ca }), 'io').detail).toMatch(/closed|aborted|reset/);
    expect(store.current().size).toBe(0);
    expectOk(await store.fetch(`${base}/d/ok.csv`, { ca }));
    const bad = expectRefused(await store.fetch(`${base}/d/bad.csv`, { ca }), 'invalid');
    expect(bad.errors?.[0]?.line).toBe(3);
    expect(store.current().size).toBe(2);
    const noKey = new HotlistStore({ dataDir: tempDir() });
    expectRefused(await noKey.fetch(`${base}/d/ok.csv`, { ca }), 'no_key');
    await store.close();
  });

  it('refuses an older signed list served again (rollback) and keeps matching the newer one, across restarts', async () => {
    const ca = readFileSync(tls.caFile);
    const url = `${base}/r/hotlist.csv`;
    const listV1 = `${CSV_HEADER}BBCL1Z,robo,carabineros,2025-01-10,\n`;
    const listV2 = `${CSV_HEADER}BBCL1Z,robo,carabineros,2025-01-10,\nKLPR12,robo,pdi,2025-06-14,\n`; // KLPR12 stolen yesterday
    publish('/r/hotlist.csv', listV1, { serial: 1, etag: '"v1"' });
    const v1Files = ['', '.header', '.sig'].map((suffix) => [`/r/hotlist.csv${suffix}`, files.get(`/r/hotlist.csv${suffix}`)!] as const);
    const dataDir = tempDir();
    const store = new HotlistStore({ dataDir, site: SITE, publicKey: signer.pub, now: () => NOW });
    expectOk(await store.fetch(url, { ca }));
    expect(store.stats().serial).toBe(1);
    publish('/r/hotlist.csv', listV2, { serial: 2, etag: '"v2"' });
    const v2 = expectOk(await store.fetch(url, { ca }));
    expect(plates(store.current(), 'KLPR12')).toEqual(['exact:KLPR12:0']);

    for (const [path, file] of v1Files) files.set(path, file); // the genuine, signed v1 again
    const refused = expectRefused(await store.fetch(url, { ca }), 'rollback');
    expect(refused.detail).toMatch(/serial 1/);
    expect(store.current().version).toBe(v2.version);
    expect(plates(store.current(), 'KLPR12')).toEqual(['exact:KLPR12:0']);
    expect(store.stats()).toMatchObject({ serial: 2, rejected_by: { rollback: 1 } });
    await store.close();

    // The highest serial is kept with the cache: a restarted device refuses v1 too.
    const restarted = new HotlistStore({ dataDir, site: SITE, publicKey: signer.pub, now: () => NOW });
    expectOk(await restarted.open());
    expectRefused(await restarted.fetch(url, { ca }), 'rollback');
    expect(plates(restarted.current(), 'KLPR12')).toEqual(['exact:KLPR12:0']);
    // The same signed v2 again (after a technician's file replaced it, say) is not a rollback.
    publish('/r/hotlist.csv', listV2, { serial: 2, etag: '"v2"' });
    const local = join(tempDir(), 'local.csv');
    writeFileSync(local, `${CSV_HEADER}XY1234,robo,pdi,2025-01-10,\n`);
    expectOk(await restarted.load(local));
    expect(expectOk(await restarted.fetch(url, { ca })).version).toBe(v2.version);
    await restarted.close();
  });

  it('refuses a list scoped to other sites', async () => {
    const ca = readFileSync(tls.caFile);
    publish('/s/other.csv', listB, { scope: ['another-site', 'third-site'] });
    publish('/s/ours.csv', listA, { scope: ['another-site', SITE] });
    publish('/s/all.csv', listB, { scope: ['*'] });
    const store = newStore();
    expect(expectRefused(await store.fetch(`${base}/s/other.csv`, { ca }), 'scope').detail).toMatch(/test-site/);
    expect(store.current().size).toBe(0);
    expectOk(await store.fetch(`${base}/s/ours.csv`, { ca }));
    expectOk(await store.fetch(`${base}/s/all.csv`, { ca }));
    expect(store.stats().rejected_by).toEqual({ scope: 1 });
    await store.close();
  });

  it('raises hotlist.stale once when a server answers 304 forever, and only once the clock is trusted', async () => {
    const ca = readFileSync(tls.caFile);
    let clock = NOW;
    let synced = false;
    const store = new HotlistStore({ dataDir: tempDir(), site: SITE, publicKey: signer.pub, now: () => clock });
    const freshness = new HotlistFreshness({ maxAgeMs: 24 * 3600_000, now: () => clock, clockSynced: () => synced });
    publish('/f/hotlist.csv', listA, { etag: '"frozen"', issued: new Date(NOW).toISOString() });
    const url = `${base}/f/hotlist.csv`;
    const installed = expectOk(await store.fetch(url, { ca }));
    expect(freshness.check(store.stats())).toBeNull();

    clock = NOW + 25 * 3600_000;
    expect(expectOk(await store.fetch(url, { ca })).status).toBe('not_modified');
    expect(freshness.check(store.stats())).toBeNull(); // the wall clock is not trusted yet
    synced = true;
    const stale = freshness.check(store.stats());
    expect(stale).toEqual({ version: installed.version, serial: store.stats().serial, issued: new Date(NOW).toISOString(), age_s: 25 * 3600 });
    expect(freshness.status(store.stats())).toEqual({ stale: true, age_s: 25 * 3600 });
    clock += 3600_000;
    expect(expectOk(await store.fetch(url, { ca })).status).toBe('not_modified');
    expect(freshness.check(store.stats())).toBeNull(); // once per episode

    // A fresh list ends the episode; the next one is reported again.
    publish('/f/hotlist.csv', listB, { etag: '"new"', issued: new Date(clock).toISOString() });
    expectOk(await store.fetch(url, { ca }));
    expect(freshness.check(store.stats())).toBeNull();
    expect(freshness.status(store.stats())).toEqual({ stale: false, age_s: 0 });
    clock += 24 * 3600_000 + 1000;
    expect(freshness.check(store.stats())).toMatchObject({ age_s: 24 * 3600 + 1 });
    await store.close();
  });

  it('runs updates one at a time: a delta sent during a fetch is checked against the fetched list', async () => {
    publish('/e/first.csv', listA);
    publish('/e/second.csv', listB, { delayMs: 300 });
    const store = newStore();
    const ca = readFileSync(tls.caFile);
    expectOk(await store.fetch(`${base}/e/first.csv`, { ca }));
    const before = store.current().version;
    const delta = Buffer.from(JSON.stringify({ base_version: before, add: [entry('KLPR12')], ...stamp() }));
    const fetching = store.fetch(`${base}/e/second.csv`, { ca });
    const applying = store.applySignedDelta(delta, sign(null, delta, signer.priv)); // arrives while the fetch is in flight
    expect(store.current().version).toBe(before);
    expectOk(await fetching);
    expectRefused(await applying, 'base_version');
    expect([...store.current().entries()].map((e) => e.plate)).toEqual(['XY1234']);
    await store.close();
  });
});
