/**
 * Node flags the daemon runs with (systemd/vigia.service and the `vigia` shebang say the same).
 * A 2 MB young generation keeps RSS near 90 MB after a burst of a million events; V8 never gives
 * back what the default 16 MB semi-spaces grow to (~165 MB after the same burst).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
