/**
 * Modes for what the daemon writes: plate reads, evidence pictures and the outbox are personal
 * data, readable by the daemon's user and group (a technician in the `vigia` group), never by any
 * other local user. Applied explicitly where files are made, and as the daemon's umask.
 */
export const PRIVATE_FILE_MODE = 0o640;
export const PRIVATE_DIR_MODE = 0o750;
/** The umask that yields the modes above for everything else the daemon (or Node-RED) creates. */
export const PRIVATE_UMASK = 0o027;
