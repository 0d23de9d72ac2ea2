import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AlarmRecord } from '../src/features/alarm-record.js';

describe('the active alarm record', () => {
  const file = () => join(mkdtempSync(join(tmpdir(), 'vigia-alarm-')), 'active-alarm.json');
  const alarm = { id: '0192f0c0-0000-7000-8000-000000000001', input: 'panic', presses: 2, state: 'acknowledged' as const, raised_at: 1_764_000_000_000 };

  it('keeps an alarm privately until it is cleared', () => {
    const record = new AlarmRecord(file());
    expect(record.load()).toBeNull();
    record.save(alarm);
    expect(record.load()).toEqual(alarm);
    expect(statSync(record.file).mode & 0o777).toBe(0o640);
    record.clear();
    expect(existsSync(record.file)).toBe(false);
    expect(record.load()).toBeNull();
  });

  it('refuses a damaged record with the reason, instead of raising a made-up alarm', () => {
    const record = new AlarmRecord(file());
    writeFileSync(record.file, '{"id":');
    expect(() => record.load()).toThrow(/JSON/);
    writeFileSync(record.file, JSON.stringify({ ...alarm, presses: 0 }));
    expect(() => record.load()).toThrow(/presses/);
    writeFileSync(record.file, JSON.stringify({ ...alarm, state: 'idle' }));
    expect(() => record.load()).toThrow(/state/);
  });
});
