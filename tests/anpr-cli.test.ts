import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseListHeader } from '../src/anpr/hotlist/header.js';
import { HotlistStore } from '../src/anpr/hotlist/source.js';
import { CLI } from './helpers/daemon.js';
import { chileanPlate, oneLinePlate, scene } from './helpers/plates.js';

const run = async (...args: string[]) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
};

const jsonLines = (s: string) =>
  s
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('vigia anpr read', () => {
  let dir: string;
  let good: string;
  let corrupt: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vigia-anpr-cli-'));
    good = join(dir, 'car.jpg');
    corrupt = join(dir, 'broken.jpg');
    const jpeg = await scene(chileanPlate(['BB', 'CL', '12'], { x: 500, y: 420, w: 300, h: 100 }));
    writeFileSync(good, jpeg);
    writeFileSync(corrupt, jpeg.subarray(0, jpeg.length >> 1));
  });

  it('reads a Chilean plate as BBCL12, format car_2007', async () => {
    const r = await run('anpr', 'read', '--json', good);
    expect(r.code).toBe(0);
    const [line] = jsonLines(r.stdout);
    expect(line!.image).toBe(good);
    const plates = line!.plates as Array<{ text: string; confidence: number; box: number[]; format: string }>;
    expect(plates[0]).toMatchObject({ text: 'BBCL12', format: 'car_2007' });
    expect(plates[0]!.confidence).toBeGreaterThan(0.5);
    expect(plates[0]!.box).toHaveLength(4);
    const [x, y] = plates[0]!.box as [number, number];
    expect(x).toBeGreaterThan(450);
    expect(y).toBeGreaterThan(370);
    expect(plates.map((p) => p.text)).not.toContain('CHILE');
    const human = await run('anpr', 'read', good);
    expect(human.stdout.trim()).toMatch(new RegExp(`^${good.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: BBCL12 \\(\\d\\.\\d\\d, car_2007\\)`));
  });

  it('--secondary reads foreign formats beside --grammar and tags each plate with its country', async () => {
    const r = await run('anpr', 'read', '--json', '--grammar', 'cl', '--secondary', 'ar,bo,pe,br', good);
    expect(r.code).toBe(0);
    const plates = jsonLines(r.stdout)[0]!.plates as Array<{ text: string; format: string; country: string }>;
    expect(plates[0]).toMatchObject({ text: 'BBCL12', format: 'car_2007', country: 'cl' });
    for (const [args, message] of [
      [['--secondary', 'ar,uy'], /unknown grammar "uy"/],
      [['--secondary', 'generic'], /generic cannot be a secondary grammar/],
      [['--secondary', 'ar,ar'], /ar is listed twice/],
      [['--grammar', 'ar', '--secondary', 'cl,ar'], /ar is the primary grammar already/],
    ] as const) {
      const bad = await run('anpr', 'read', ...args, good);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(message);
      expect(bad.stdout).toBe('');
    }
  });

  it('reports every plate of a frame, ranked per plate with its alternatives, and a plate before other text with --grammar generic', async () => {
    const lanes = join(dir, 'lanes.jpg');
    writeFileSync(
      lanes,
      await scene(
        `${oneLinePlate('AB 123 CD', { x: 250, y: 450, w: 260, h: 64 })}${oneLinePlate('KX·48·21', { x: 800, y: 430, w: 230, h: 64 })}` +
          '<text x="420" y="330" font-family="DejaVu Sans" font-weight="bold" font-size="46" fill="#f0f0f0">CHEVROLET</text>' +
          '<rect x="8" y="676" width="300" height="34" fill="#000"/><text x="16" y="702" font-family="DejaVu Sans Mono" font-size="24" fill="#fff">2026-12-05 14:03:22</text>',
      ),
    );
    const r = await run('anpr', 'read', '--json', '--grammar', 'generic', lanes);
    expect(r.code).toBe(0);
    const plates = jsonLines(r.stdout)[0]!.plates as Array<{ text: string; confidence: number; box: number[]; alternatives: Array<{ text: string }> }>;
    const confident = plates.filter((p) => p.confidence >= 0.5);
    expect(confident.map((p) => p.text).sort()).toEqual(['AB123CD', 'KX4821']);
    expect(
      plates
        .slice(0, 2)
        .map((p) => p.text)
        .sort(),
    ).toEqual(['AB123CD', 'KX4821']); // the words and the overlay rank after
    for (const p of plates) expect(Array.isArray(p.alternatives)).toBe(true);
    const left = plates.find((p) => p.text === 'AB123CD')!;
    const right = plates.find((p) => p.text === 'KX4821')!;
    expect(left.box[0]! + left.box[2]!).toBeLessThan(right.box[0]!); // two places, not one
  });

  it('reports a corrupt file, keeps reading the others, and exits 1', async () => {
    const r = await run('anpr', 'read', '--json', corrupt, good);
    expect(r.code).toBe(1);
    const lines = jsonLines(r.stdout);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toEqual({ image: corrupt, error: 'corrupt' });
    expect((lines[1]!.plates as Array<{ text: string }>)[0]!.text).toBe('BBCL12');
  });

  it('--annotate writes the image with the plates drawn as a JPEG', async () => {
    const out = join(dir, 'annotated');
    const r = await run('anpr', 'read', '--annotate', out, good);
    expect(r.code).toBe(0);
    const written = readFileSync(join(out, 'car.jpg'));
    expect(written.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
    const meta = await sharp(written).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 1280, height: 720 });
    // Something green was drawn around the plate.
    const { data, info } = await sharp(written).extract({ left: 440, top: 360, width: 420, height: 220 }).raw().toBuffer({ resolveWithObject: true });
    let green = 0;
    for (let i = 0; i < data.length; i += info.channels) if (data[i + 1]! > 180 && data[i]! < 100 && data[i + 2]! < 100) green++;
    expect(green).toBeGreaterThan(50);
  });
});

describe('vigia hotlist', () => {
  it('imports a CSV, then looks plates up exactly and by confusable characters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-hotlist-cli-'));
    const data = join(dir, 'data');
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, 'plate,reason,source,added,expires\nBBCL12,stolen,carabineros,2026-01-05,\nHJRS37,warrant,pdi,2026-02-01,\n');
    const imp = await run('hotlist', 'import', csv, '--data-dir', data);
    expect(imp.code).toBe(0);
    expect(imp.stdout).toMatch(/imported 2 entries, version \S+/);

    const stats = await run('hotlist', 'stats', '--data-dir', data);
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout)).toMatchObject({ size: 2 });

    const exact = await run('hotlist', 'lookup', 'BBCL12', '--data-dir', data);
    expect(exact.code).toBe(0);
    expect(jsonLines(exact.stdout)).toEqual([expect.objectContaining({ plate: 'BBCL12', kind: 'exact', distance: 0 })]);

    const confusable = await run('hotlist', 'lookup', '8BCL12', '--data-dir', data);
    expect(confusable.code).toBe(0);
    expect(jsonLines(confusable.stdout)).toEqual([expect.objectContaining({ plate: 'BBCL12', kind: 'confusable', distance: 1 })]);

    const strict = await run('hotlist', 'lookup', '8BCL12', '--data-dir', data, '--no-fuzzy');
    expect(strict.code).toBe(1);
    expect(strict.stdout).toBe('');

    const miss = await run('hotlist', 'lookup', 'ZZZZ99', '--data-dir', data);
    expect(miss.code).toBe(1);
    expect(miss.stdout).toBe('');
  });

  it('refuses a CSV with a bad row, naming FILE:LINE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-hotlist-cli-'));
    const csv = join(dir, 'bad.csv');
    writeFileSync(csv, 'plate,reason,source,added,expires\nBBCL12,stolen,carabineros,2026-01-05,\n!!,stolen,carabineros,not-a-date,\n');
    const r = await run('hotlist', 'import', csv, '--data-dir', join(dir, 'data'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${csv.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:3: \\S`, 'm'));
    const stats = await run('hotlist', 'stats', '--data-dir', join(dir, 'data'));
    expect(JSON.parse(stats.stdout)).toMatchObject({ size: 0 });
  });

  it('signs a list for publishing: FILE.header with its serial, scope and digest, FILE.sig over the header', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-hotlist-cli-'));
    const csv = join(dir, 'hotlist.csv');
    writeFileSync(csv, 'plate,reason,source,added,expires\nBBCL12,stolen,carabineros,2026-01-05,\n');
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const keyFile = join(dir, 'publisher.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));

    const r = await run('hotlist', 'sign', csv, '-k', keyFile, '--serial', '42', '--scope', 'la-serena', 'coquimbo');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const header = readFileSync(`${csv}.header`);
    expect(verify(null, header, publicKey, Buffer.from(readFileSync(`${csv}.sig`, 'utf8').trim(), 'base64'))).toBe(true);
    expect(parseListHeader(header)).toMatchObject({
      serial: 42,
      scope: ['la-serena', 'coquimbo'],
      sha256: createHash('sha256').update(readFileSync(csv)).digest('hex'),
    });
    expect((await run('hotlist', 'sign', csv, '-k', keyFile, '--serial', '1.5', '--scope', '*')).stderr).toMatch(/--serial/);
  });

  it('builds a signed delta that a device holding the public key applies, with the announced version', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-hotlist-cli-'));
    const data = join(dir, 'data');
    const csv = join(dir, 'list.csv');
    writeFileSync(csv, 'plate,reason,source,added,expires\nBBCL12,stolen,carabineros,2026-01-05,\nHJRS37,warrant,pdi,2026-02-01,\n');
    expect((await run('hotlist', 'import', csv, '--data-dir', data)).code).toBe(0);
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const keyFile = join(dir, 'publisher.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const addFile = join(dir, 'add.csv');
    writeFileSync(addFile, 'plate,reason,source,added,expires\nFKZT41,stolen,carabineros,2026-11-30,\n');

    const r = await run('hotlist', 'delta', '-k', keyFile, '--data-dir', data, '--add', addFile, '--remove', 'HJRS37', '--serial', '7', '--scope', 'la-serena');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const args = JSON.parse(r.stdout) as { delta: string; signature: string };
    expect(verify(null, Buffer.from(args.delta), publicKey, Buffer.from(args.signature, 'base64'))).toBe(true);
    const delta = JSON.parse(args.delta) as { base_version: string; version: string; remove: string[]; serial: number; scope: string[]; issued: string };
    expect(delta.remove).toEqual(['HJRS37']);
    expect(delta).toMatchObject({ serial: 7, scope: ['la-serena'] });
    expect(Date.parse(delta.issued)).not.toBeNaN();

    const device = new HotlistStore({
      dataDir: data,
      site: 'la-serena',
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      deltaPersistDelayMs: 0,
    });
    try {
      await device.open();
      expect(device.current().version).toBe(delta.base_version);
      const applied = await device.applySignedDelta(Buffer.from(args.delta), Buffer.from(args.signature, 'base64'));
      expect(applied).toMatchObject({ ok: true, version: delta.version, size: 2 });
      expect(device.current().has('FKZT41')).toBe(true);
      expect(device.current().has('HJRS37')).toBe(false);
      expect(device.stats().serial).toBe(7);
    } finally {
      await device.close();
    }

    const noBase = await run('hotlist', 'delta', '-k', keyFile, '--remove', 'BBCL12', '--serial', '8', '--scope', '*');
    expect(noBase.code).toBe(1);
    expect(noBase.stderr).toMatch(/--base/);
    const noSerial = await run('hotlist', 'delta', '-k', keyFile, '--base', delta.base_version, '--scope', '*');
    expect(noSerial.code).toBe(1);
    expect(noSerial.stderr).toMatch(/--serial/);
    const badSerial = await run('hotlist', 'delta', '-k', keyFile, '--base', delta.base_version, '--serial', '0', '--scope', '*');
    expect(badSerial.code).toBe(1);
    expect(badSerial.stderr).toMatch(/--serial must be a positive integer/);
    const badKey = await run('hotlist', 'delta', '-k', csv, '--base', delta.base_version, '--serial', '8', '--scope', '*');
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/cannot read the private key/);
    const missingAdd = await run(
      'hotlist',
      'delta',
      '-k',
      keyFile,
      '--base',
      delta.base_version,
      '--add',
      join(data, 'missing.csv'),
      '--serial',
      '8',
      '--scope',
      '*',
    );
    expect(missingAdd.code).toBe(1);
    expect(missingAdd.stderr).toMatch(/^vigia: cannot read the entries to add .*missing\.csv: ENOENT/);
    expect(missingAdd.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
  });
});
