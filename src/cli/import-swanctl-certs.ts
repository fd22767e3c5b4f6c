// The certificate part of `ikegw import-swanctl`: where swanctl finds its files and what ikegw
// needs written out.
//
// swanctl (swanctl --load-creds) loads every file of the credential directories next to
// swanctl.conf — x509/ (end-entity certificates), x509ca/ (CA certificates, trust anchors and
// intermediates alike), private/ rsa/ ecdsa/ pkcs8/ (private keys) — and charon then picks:
// the certificate named in local.certs (relative to x509/), its private key by matching public
// key, intermediates by issuer, and for remote.auth pubkey any CA in x509ca/ unless remote.cacerts
// names some. ikegw takes explicit files instead: local.certs (ours, then intermediates),
// local.key, remote.cacerts. This module makes those lists from the directory, so the YAML says
// what charon would have used. Messages name files, never key material.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/** swanctl's private key directories (swanctl/private/ and the per-type ones). */
export const KEY_DIRS = ['private', 'rsa', 'ecdsa', 'pkcs8'] as const;

export interface CertFile {
  path: string;
  x509: X509Certificate;
}

export class SwanctlCreds {
  private cache = new Map<string, CertFile[]>();

  constructor(readonly dir: string) {}

  /** Files of a credential directory (sorted; missing directory = none). */
  files(sub: string): string[] {
    const d = join(this.dir, sub);
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return [];
    }
    return names
      .sort()
      .map((n) => join(d, n))
      .filter((p) => {
        try {
          return statSync(p).isFile();
        } catch {
          return false;
        }
      });
  }

  /** A swanctl file reference: absolute as written, else relative to its directory. */
  resolve(sub: string, name: string): string {
    return isAbsolute(name) ? name : join(this.dir, sub, name);
  }

  /** Every certificate of a directory that parses (PEM, one or more, or DER). */
  certs(sub: string): CertFile[] {
    const hit = this.cache.get(sub);
    if (hit) return hit;
    const out = this.files(sub).flatMap((p) => {
      const c = readCert(p);
      return c ? [{ path: p, x509: c }] : [];
    });
    this.cache.set(sub, out);
    return out;
  }
}

/** The first certificate of a file, or undefined when it holds none that parses. */
export function readCert(path: string): X509Certificate | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    return undefined;
  }
  try {
    return new X509Certificate(raw);
  } catch {
    return undefined;
  }
}

const selfSigned = (c: X509Certificate): boolean => c.checkIssued(c) && c.verify(c.publicKey);

/**
 * The intermediates for `ee` from x509ca/ (then x509/), issuer by issuer up to a self-signed
 * certificate or one that is not there: what charon sends with our certificate.
 */
export function intermediates(creds: SwanctlCreds, ee: X509Certificate): CertFile[] {
  const pool = [...creds.certs('x509ca'), ...creds.certs('x509')];
  const out: CertFile[] = [];
  for (let cur = ee; !selfSigned(cur) && out.length < 8; ) {
    const up = pool.find(
      (p) => p.x509.ca && !out.includes(p) && cur.checkIssued(p.x509) && cur.verify(p.x509.publicKey),
    );
    if (!up || selfSigned(up.x509)) break;
    out.push(up);
    cur = up.x509;
  }
  return out;
}

export type KeySearch = { ok: true; path: string } | { ok: false; message: string };

function readKey(raw: Buffer): KeyObject | 'encrypted' | undefined {
  const text = raw.toString('latin1');
  if (text.includes('-----BEGIN')) {
    if (/ENCRYPTED/.test(text)) return 'encrypted';
    try {
      return createPrivateKey({ key: raw, format: 'pem' });
    } catch {
      return undefined;
    }
  }
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: raw, format: 'der', type });
    } catch {
      // next encoding
    }
  }
  return undefined;
}

/**
 * The private key that belongs to `cert`, from private/, rsa/, ecdsa/ and pkcs8/ — as charon
 * matches it — if ikegw can read it (PEM, or PKCS#8 DER; unencrypted).
 */
export function findKey(creds: SwanctlCreds, cert: X509Certificate, certName: string): KeySearch {
  const encrypted: string[] = [];
  for (const sub of KEY_DIRS) {
    for (const path of creds.files(sub)) {
      let raw: Buffer;
      try {
        raw = readFileSync(path);
      } catch {
        continue;
      }
      const key = readKey(raw);
      if (key === 'encrypted') {
        encrypted.push(path);
        continue;
      }
      if (key?.type !== 'private') continue;
      let matches = false;
      try {
        matches = cert.checkPrivateKey(key);
      } catch {
        matches = false;
      }
      if (!matches) continue;
      const pem = raw.toString('latin1').includes('-----BEGIN');
      let pkcs8Der = false;
      if (!pem) {
        try {
          createPrivateKey({ key: raw, format: 'der', type: 'pkcs8' });
          pkcs8Der = true;
        } catch {
          pkcs8Der = false;
        }
      }
      if (!pem && !pkcs8Der) {
        return {
          ok: false,
          message: `the private key of ${certName} is ${path}, a DER ${key.asymmetricKeyType} key ikegw cannot read (it takes PEM or PKCS#8 DER): convert it with \`openssl pkey -in ${path} -out ${path}.pem\` and rerun`,
        };
      }
      return { ok: true, path };
    }
  }
  const where = KEY_DIRS.map((d) => `${d}/`).join(', ');
  return {
    ok: false,
    message: encrypted.length
      ? `no unencrypted private key in ${where} of ${creds.dir} matches ${certName}; encrypted keys (ikegw needs the key unencrypted, protected by file mode): ${encrypted.join(', ')} — decrypt the right one with \`openssl pkey -in FILE -out FILE.plain\` (mode 600) and rerun`
      : `no private key in ${where} of ${creds.dir} matches ${certName}; set local.key in the YAML by hand (or pass --swanctl-dir)`,
  };
}
