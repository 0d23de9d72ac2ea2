import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { PRIVATE_FILE_MODE } from './private-files.js';

/**
 * Replaces `file` with `data` so that a power cut leaves either the old or the new content, never
 * an empty or partial file: written to a temporary file, fsynced, renamed over, and the directory
 * fsynced. On failure (a full disk) the temporary file is removed and the error thrown.
 */
export function writeFileDurably(file: string, data: string, mode = PRIVATE_FILE_MODE): void {
  const tmp = `${file}.tmp`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dir = openSync(dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
