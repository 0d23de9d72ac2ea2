import { readFileSync, rmSync } from 'node:fs';
import { z } from 'zod';
import { writeFileDurably } from '../core/durable-file.js';

/**
 * The pole's active alarm, kept on disk until the call center clears it: after a crash or a power
 * cut the pole comes back with the same alarm (its id, presses and state), so the LED still tells
 * the person at the pole that help is on its way, a new press joins the same incident, and the
 * call center's `alarm.ack` / `alarm.clear` still find it.
 */
const STORED_ALARM = z
  .object({
    id: z.string().min(1),
    input: z.string(),
    presses: z.number().int().min(1),
    state: z.enum(['raised', 'acknowledged']),
    /** Wall time of the first press, ms since the epoch (as the clock said then). */
    raised_at: z.number(),
  })
  .strict();

export type StoredAlarm = z.infer<typeof STORED_ALARM>;

export class AlarmRecord {
  constructor(readonly file: string) {}

  /** The stored alarm; null when there is none. Throws with the reason when the file is unreadable or damaged. */
  load(): StoredAlarm | null {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const parsed = STORED_ALARM.safeParse(JSON.parse(text));
    if (!parsed.success) throw new Error(`${this.file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    return parsed.data;
  }

  save(alarm: StoredAlarm): void {
    writeFileDurably(this.file, `${JSON.stringify(alarm)}\n`);
  }

  clear(): void {
    rmSync(this.file, { force: true });
  }
}
