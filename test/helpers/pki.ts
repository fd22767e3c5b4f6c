// A test PKI made with the openssl command line (Debian's OpenSSL 3): a root CA, an intermediate
// CA, another root nobody trusts, and end-entity certificates with RSA-3072, ECDSA P-256/P-384 and
// Ed25519 keys and subjectAltNames, issued with `openssl ca` so validity dates can lie in the past
// (expired certificates); revocation with `openssl ca -revoke` and CRLs with `-gencrl`, one per
// issuing CA. Everything lands in one directory; keys are PEM (PKCS#8).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type KeyType = 'rsa3072' | 'rsa2048' | 'p256' | 'p384' | 'p521' | 'ed25519';

export interface Issued {
  name: string;
  /** PEM certificate file. */
  cert: string;
  /** PEM private key file (PKCS#8). */
  key: string;
  /** Subject as strongSwan prints it ("C=CH, O=ikegw test, CN=..."). */
  subject: string;
  der: Uint8Array;
}

export const opensslAvailable = (): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
};

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

const subj = (dn: string): string => `/${dn.split(/\s*,\s*/).join('/')}`;
const stamp = (d: Date): string => `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

export class Pki {
  readonly root: Issued;
  readonly intermediate: Issued;
  readonly otherRoot: Issued;
  private serial = 1;
  /** Serial -> name of the issuing CA: each CA's CRL lists only its own. */
  private readonly issuerOf = new Map<number, string>();

  constructor(readonly dir: string) {
    mkdirSync(join(dir, 'newcerts'), { recursive: true });
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
    this.root = this.selfSigned('root', 'p256', 'C=CH, O=ikegw test, CN=ikegw Root CA');
    this.otherRoot = this.selfSigned('other-root', 'p256', 'C=CH, O=somebody else, CN=Other Root CA');
    this.intermediate = this.issue({
      name: 'intermediate',
      keyType: 'p384',
      subject: 'C=CH, O=ikegw test, CN=ikegw Intermediate CA',
      ca: true,
    });
  }

  keyFile(name: string, type: KeyType): string {
    const key = join(this.dir, `${name}.key`);
    if (existsSync(key)) return key;
    const alg: Record<KeyType, string[]> = {
      rsa3072: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072'],
      rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
      p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
      p521: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521'],
      ed25519: ['-algorithm', 'ED25519'],
    };
    openssl(['genpkey', ...alg[type], '-out', key], this.dir);
    return key;
  }

  private result(name: string, key: string, subject: string): Issued {
    const cert = join(this.dir, `${name}.pem`);
    const pem = readFileSync(cert, 'latin1');
    const b64 = pem.split('-----BEGIN CERTIFICATE-----')[1]!.split('-----END')[0]!.replace(/\s+/g, '');
    return { name, cert, key, subject, der: new Uint8Array(Buffer.from(b64, 'base64')) };
  }

  private selfSigned(name: string, type: KeyType, subject: string): Issued {
    const key = this.keyFile(name, type);
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        key,
        '-out',
        `${name}.pem`,
        '-days',
        '3650',
        '-subj',
        subj(subject),
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      this.dir,
    );
    return this.result(name, key, subject);
  }

  /**
   * An end-entity (or CA) certificate. `san`: openssl syntax ("DNS:gw.example", "IP:10.0.0.1",
   * "email:a@b"). `issuer` defaults to the root; `notBefore/notAfter` to now-1h .. now+1y.
   */
  issue(o: {
    name: string;
    keyType: KeyType;
    subject: string;
    san?: string[];
    issuer?: Issued;
    ca?: boolean;
    keyUsage?: string;
    notBefore?: Date;
    notAfter?: Date;
    /** Sign with this key instead of a new one for `name`. */
    keyFrom?: string;
    /** More extension lines in openssl syntax ("crlDistributionPoints=URI:http://..."). */
    ext?: string[];
  }): Issued {
    const key = o.keyFrom ?? this.keyFile(o.name, o.keyType);
    const issuer = o.issuer ?? this.root;
    openssl(['req', '-new', '-key', key, '-out', `${o.name}.csr`, '-subj', subj(o.subject)], this.dir);
    const ext = [
      `basicConstraints=critical,CA:${o.ca ? 'TRUE' : 'FALSE'}`,
      `keyUsage=critical,${o.keyUsage ?? (o.ca ? 'keyCertSign,cRLSign' : 'digitalSignature')}`,
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      ...(o.san?.length ? [`subjectAltName=${o.san.join(',')}`] : []),
      ...(o.ext ?? []),
    ];
    writeFileSync(join(this.dir, `${o.name}.ext`), `${ext.join('\n')}\n`);
    const serial = this.serial++;
    writeFileSync(join(this.dir, 'serial'), `${serial.toString(16).padStart(4, '0')}\n`);
    this.issuerOf.set(serial, issuer.name);
    this.caConf();
    const now = Date.now();
    openssl(
      [
        'ca',
        '-batch',
        '-config',
        'ca.cnf',
        '-notext',
        '-preserveDN',
        '-cert',
        issuer.cert,
        '-keyfile',
        issuer.key,
        '-in',
        `${o.name}.csr`,
        '-out',
        `${o.name}.pem`,
        '-startdate',
        stamp(o.notBefore ?? new Date(now - 3600_000)),
        '-enddate',
        stamp(o.notAfter ?? new Date(now + 365 * 86400_000)),
        '-extfile',
        `${o.name}.ext`,
      ],
      this.dir,
    );
    return this.result(o.name, key, o.subject);
  }

  /** openssl ca's configuration (database index.txt, or `database` for a CRL of one CA). */
  private caConf(database = 'index.txt'): void {
    writeFileSync(
      join(this.dir, 'ca.cnf'),
      `[ca]
default_ca = ca_default
[ca_default]
dir = ${this.dir}
database = ${this.dir}/${database}
new_certs_dir = ${this.dir}/newcerts
serial = ${this.dir}/serial
crlnumber = ${this.dir}/crlnumber
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
[policy_any]
commonName = supplied
countryName = optional
organizationName = optional
organizationalUnitName = optional
`,
    );
    if (!existsSync(join(this.dir, 'crlnumber'))) writeFileSync(join(this.dir, 'crlnumber'), '1000\n');
  }

  /** Revokes a certificate (`openssl ca -revoke`); it appears in its issuer's next crl(). */
  revoke(cert: Issued, reason = 'keyCompromise', issuer: Issued = this.root): void {
    this.caConf();
    openssl(
      [
        'ca',
        '-config',
        'ca.cnf',
        '-revoke',
        cert.cert,
        '-crl_reason',
        reason,
        '-cert',
        issuer.cert,
        '-keyfile',
        issuer.key,
      ],
      this.dir,
    );
  }

  /**
   * A CRL of `issuer` (`openssl ca -gencrl`), PEM, listing the certificates it issued that were
   * revoked; valid for `hours` (nextUpdate). Returns the file's path.
   */
  crl(issuer: Issued = this.root, o: { hours?: number; file?: string } = {}): string {
    const own = readFileSync(join(this.dir, 'index.txt'), 'latin1')
      .split('\n')
      .filter((l) => l && this.issuerOf.get(Number.parseInt(l.split('\t')[3] ?? '', 16)) === issuer.name);
    const db = `index-${issuer.name}.txt`;
    writeFileSync(join(this.dir, db), own.map((l) => `${l}\n`).join(''));
    writeFileSync(join(this.dir, `${db}.attr`), 'unique_subject = no\n');
    this.caConf(db);
    const file = o.file ?? join(this.dir, `${issuer.name}.crl.pem`);
    openssl(
      [
        'ca',
        '-config',
        'ca.cnf',
        '-gencrl',
        '-cert',
        issuer.cert,
        '-keyfile',
        issuer.key,
        '-crlhours',
        String(o.hours ?? 24),
        '-out',
        file,
      ],
      this.dir,
    );
    this.caConf();
    return file;
  }
}
