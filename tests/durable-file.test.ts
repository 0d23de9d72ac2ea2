import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileDurably } from '../src/core/durable-file.js';

describe('writeFileDurably', () => {
  it('replaces a file with private permissions and leaves nothing beside it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-durable-'));
    const file = join(dir, 'mark');
    writeFileSync(file, 'old\n');
    writeFileDurably(file, 'new\n');
    expect(readFileSync(file, 'utf8')).toBe('new\n');
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir)).toEqual(['mark']);
  });

  it('throws when it cannot replace the file, keeps what was there and removes its temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-durable-'));
    const target = join(dir, 'taken');
    mkdirSync(join(target, 'inside'), { recursive: true }); // a non-empty directory cannot be renamed over
    expect(() => writeFileDurably(target, 'x')).toThrow();
    expect(readdirSync(dir)).toEqual(['taken']);
    expect(readdirSync(target)).toEqual(['inside']);
  });
});
