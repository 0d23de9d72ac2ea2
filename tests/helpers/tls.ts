import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Paths of PEM files produced by {@link makeTlsFiles}. */
export interface TlsFiles {
  /** Directory holding every generated file. */
  dir: string;
  /** Test CA certificate: trust anchor for both the broker and the clients. */
  caFile: string;
  /** Broker certificate for `localhost` / 127.0.0.1, signed by the test CA. */
  serverCert: string;
  serverKey: string;
  /** Client certificate (CN `vigia-test-client`) signed by the test CA. */
  clientCert: string;
  clientKey: string;
  /** Client certificate signed by an unrelated CA: the broker must refuse it. */
  rogueClientCert: string;
  rogueClientKey: string;
}

const VALIDITY_DAYS = '2';

// Self-contained request config so the result does not depend on the system openssl.cnf.
const REQ_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
`;

const CA_EXT = `[v3]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

const serverExt = (names: readonly string[]) => `[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${['DNS:localhost', 'IP:127.0.0.1', ...names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`))].join(', ')}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

const CLIENT_EXT = `[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

const createdDirs = new Set<string>();
let exitHookInstalled = false;

function removeCreatedDirs(): void {
  for (const dir of createdDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
  createdDirs.clear();
}

function installExitHooks(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', removeCreatedDirs);
  // Test runners stop their workers with signals, which skip 'exit'.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      removeCreatedDirs();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    const detail = e.stderr ? e.stderr.toString() : e.message;
    throw new Error(`openssl ${args[0] ?? ''} failed: ${detail}`);
  }
}

function genKey(file: string, cwd: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], cwd);
}

function serial(): string {
  // Positive 64-bit serial; unique per certificate so clients never see two certs with the same issuer+serial.
  const bytes = randomBytes(8);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}

function makeCa(dir: string, name: string, cn: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  // `req -x509` takes its extensions from the -config file, so the request and v3 sections share one file.
  const cnf = join(dir, `${name}.cnf`);
  writeFileSync(cnf, REQ_CONFIG + CA_EXT);
  genKey(key, dir);
  openssl(
    [
      'req',
      '-new',
      '-x509',
      '-config',
      cnf,
      '-extensions',
      'v3',
      '-key',
      key,
      '-subj',
      `/CN=${cn}`,
      '-days',
      VALIDITY_DAYS,
      '-sha256',
      '-set_serial',
      serial(),
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

function makeLeaf(dir: string, name: string, cn: string, extText: string, ca: { cert: string; key: string }, reqCnf: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext.cnf`);
  writeFileSync(ext, extText);
  genKey(key, dir);
  openssl(['req', '-new', '-config', reqCnf, '-key', key, '-subj', `/CN=${cn}`, '-out', csr], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      serial(),
      '-days',
      VALIDITY_DAYS,
      '-sha256',
      '-extfile',
      ext,
      '-extensions',
      'v3',
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

/**
 * Generates a test PKI with the `openssl` CLI (EC P-256, valid 2 days):
 * a CA, a broker certificate for localhost/127.0.0.1, a client certificate
 * signed by the CA, and a client certificate signed by an unrelated "rogue" CA.
 *
 * Without `dir` a fresh temp directory is created and removed at process exit. `serverNames`
 * adds host names or IPv4 addresses to the broker certificate (a VM reaches the host by another
 * address than 127.0.0.1).
 */
export function makeTlsFiles(dir?: string, { serverNames = [] }: { serverNames?: readonly string[] } = {}): TlsFiles {
  let target: string;
  if (dir === undefined) {
    target = mkdtempSync(join(tmpdir(), 'vigia-tls-'));
    createdDirs.add(target);
    installExitHooks();
  } else {
    mkdirSync(dir, { recursive: true });
    target = dir;
  }

  const reqCnf = join(target, 'req.cnf');
  writeFileSync(reqCnf, REQ_CONFIG);

  const ca = makeCa(target, 'ca', 'Vigia Test CA');
  const server = makeLeaf(target, 'server', 'localhost', serverExt(serverNames), ca, reqCnf);
  const client = makeLeaf(target, 'client', 'vigia-test-client', CLIENT_EXT, ca, reqCnf);
  const rogueCa = makeCa(target, 'rogue-ca', 'Rogue Test CA');
  const rogue = makeLeaf(target, 'rogue-client', 'vigia-test-client', CLIENT_EXT, rogueCa, reqCnf);

  return {
    dir: target,
    caFile: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    rogueClientCert: rogue.cert,
    rogueClientKey: rogue.key,
  };
}
