import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/**
 * Runs WAL checkpoints on its own connection and thread. A checkpoint copies the WAL into the
 * database and fsyncs it, which can take tens of ms on an SD card; done inside a commit on the main
 * thread it would land on whichever alarm happened to trigger it.
 */
const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new Database(file);
db.pragma('busy_timeout = 50');
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    /* busy or the file moved aside: try again next time */
  }
};
const timer = setInterval(checkpoint, intervalMs);
parentPort!.on('message', (msg) => {
  if (msg !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort!.postMessage('stopped');
});
