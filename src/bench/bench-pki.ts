// The certificates of the certificate benchmarks, made with the openssl command line: per key
// type (ECDSA P-256, RSA-3072) one CA and two end-entity certificates of that type, the
// generator's ("lt-client") and the responder's ("lt-server"), both signed by the CA with SHA-256.
// Identities are the subject DNs. Everything lands in one directory; keys are PEM (PKCS#8).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type BenchKey = 'p256' | 'rsa3072';

export interface BenchCert {
  /** PEM certificate file. */
  cert: string;
  /** PEM private key file (PKCS#8). */
  key: string;
  /** Subject DN as strongSwan writes it. */
  dn: string;
}

export interface BenchPki {
  keyType: BenchKey;
  ca: BenchCert;
  client: BenchCert;
  server: BenchCert;
}

const GENPKEY: Record<BenchKey, string[]> = {
  p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  rsa3072: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'],
};

/** "C=CH, O=x, CN=y" -> "/C=CH/O=x/CN=y" (openssl -subj). */
const subj = (dn: string): string => `/${dn.split(/\s*,\s*/).join('/')}`;

export function makeBenchPki(dir: string, keyType: BenchKey): BenchPki {
  mkdirSync(dir, { recursive: true });
  const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const key = (name: string): string => {
    const f = join(dir, `${name}.key`);
    ssl(['genpkey', ...GENPKEY[keyType], '-out', f]);
    return f;
  };
  const caDn = `C=CH, O=ikegw bench, CN=bench ${keyType} CA`;
  const ca: BenchCert = { cert: join(dir, 'ca.pem'), key: key('ca'), dn: caDn };
  ssl([
    'req',
    '-x509',
    '-new',
    '-sha256',
    '-key',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    '30',
    '-subj',
    subj(caDn),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 1;
  const issue = (name: string): BenchCert => {
    const dn = `C=CH, O=ikegw bench, CN=${name}`;
    const k = key(name);
    const csr = join(dir, `${name}.csr`);
    ssl(['req', '-new', '-key', k, '-out', csr, '-subj', subj(dn)]);
    const ext = join(dir, `${name}.ext`);
    writeFileSync(
      ext,
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    const cert = join(dir, `${name}.pem`);
    ssl([
      'x509',
      '-req',
      '-sha256',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-set_serial',
      String(serial++),
      '-days',
      '30',
      '-extfile',
      ext,
      '-out',
      cert,
    ]);
    return { cert, key: k, dn };
  };
  return { keyType, ca, client: issue('lt-client'), server: issue('lt-server') };
}
