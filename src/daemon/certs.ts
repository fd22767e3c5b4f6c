// Certificate files for `local.auth: pubkey` / `remote.auth: pubkey` (swanctl names: local.certs,
// local.key, remote.cacerts): read, parsed and checked when the configuration loads, so that
// `ikegw config check` says what is wrong — the key does not belong to the certificate, the chain
// does not build, a certificate expires within 14 days. The private key goes into SecretBytes
// (PKCS#8 DER), which print as "[secret]"; no message here ever contains key material.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import type { IdConfig } from '../ike/config.js';
import { describeKey, keyKind, SignatureError } from '../ike/crypto/signature.js';
import {
  type Cert,
  type Crl,
  certHasId,
  certIds,
  crlSignatureProblem,
  isSelfSigned,
  parseCert,
  parseCrl,
  sameName,
} from '../ike/crypto/x509.js';

/** Warn when a certificate expires within this many days. */
export const EXPIRY_WARNING_DAYS = 14;

/** What the loader's context offers (config.ts's Ctx). */
export interface CertCtx {
  err(path: string, msg: string): undefined;
  readonly warnings: string[];
  readFile(path: string): Uint8Array;
  /** Told of every file read here (the daemon watches them: src/daemon/cert-watch.ts). */
  onCredentialFile?: (file: string, field: string, bytes: Uint8Array) => void;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g;
const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/g;

/**
 * Every certificate, key and CRL file is read here: what it reads, the daemon watches for rotation
 * (a new kind of credential file is watched as soon as it is read through this function).
 */
function read(ctx: CertCtx, path: string, file: string): Uint8Array | undefined {
  try {
    const bytes = ctx.readFile(file);
    ctx.onCredentialFile?.(file, path, bytes);
    return bytes;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return ctx.err(path, `cannot read ${JSON.stringify(file)}: ${code}`);
  }
}

/** Every certificate in a file: PEM (one or more blocks) or a single DER certificate. */
export function certsFromFile(ctx: CertCtx, path: string, file: string): Cert[] | undefined {
  const raw = read(ctx, path, file);
  if (!raw) return undefined;
  const text = Buffer.from(raw).toString('latin1');
  const ders: Uint8Array[] = [];
  if (text.includes('-----BEGIN')) {
    for (const m of text.matchAll(PEM_CERT))
      ders.push(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
    if (ders.length === 0) return ctx.err(path, `${JSON.stringify(file)} holds no PEM CERTIFICATE block`);
  } else ders.push(raw);
  const out: Cert[] = [];
  for (const [i, der] of ders.entries()) {
    try {
      new X509Certificate(der);
      out.push(parseCert(der));
    } catch (e) {
      return ctx.err(
        path,
        `${JSON.stringify(file)}: certificate ${i + 1} does not parse (${(e as Error).message})`,
      );
    }
  }
  return out;
}

/**
 * The CRLs in a file: PEM (one or more "X509 CRL" blocks) or one DER CRL. `inCacerts`: a
 * remote.cacerts file, whose CRL blocks (if any) count too — no error when it has none.
 */
export function crlsFromFile(ctx: CertCtx, path: string, file: string, inCacerts = false): Crl[] | undefined {
  const raw = read(ctx, path, file);
  if (!raw) return undefined;
  const text = Buffer.from(raw).toString('latin1');
  const ders: Uint8Array[] = [];
  if (text.includes('-----BEGIN')) {
    for (const m of text.matchAll(PEM_CRL))
      ders.push(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
    if (ders.length === 0 && !inCacerts)
      return ctx.err(path, `${JSON.stringify(file)} holds no PEM X509 CRL block`);
  } else if (inCacerts) return [];
  else ders.push(raw);
  const out: Crl[] = [];
  for (const [i, der] of ders.entries()) {
    try {
      out.push(parseCrl(der));
    } catch (e) {
      return ctx.err(
        path,
        `${JSON.stringify(file)}: ${ders.length > 1 ? `CRL ${i + 1}` : 'the CRL'} does not parse (${(e as Error).message.replace(/^the CRL does not parse: /, '')})`,
      );
    }
    const crl = out[out.length - 1]!;
    if (crl.parts.unknownCritical.length) {
      return ctx.err(
        path,
        `${JSON.stringify(file)}: the CRL of "${crl.issuer}" has critical extension(s) ikegw does not implement: ${crl.parts.unknownCritical.join(', ')}`,
      );
    }
  }
  return out;
}

/**
 * A CRL against the trusted CAs: signed by the one it names (an error when that CA is in
 * remote.cacerts and the signature does not verify), stale (a warning: it is applied anyway).
 * A CRL of a CA not in remote.cacerts is checked when that CA arrives as an intermediate in CERT.
 */
export function checkCrl(ctx: CertCtx, path: string, crl: Crl, cas: Cert[], nowMs: number): void {
  const named = cas.filter((c) => sameName(c.parts.subject, crl.parts.issuer));
  if (named.length && !named.some((c) => crlSignatureProblem(crl, c) === undefined)) {
    ctx.err(path, `the CRL of "${crl.issuer}": ${crlSignatureProblem(crl, named[0]!)}`);
    return;
  }
  if (!named.length) {
    ctx.warnings.push(
      `${path}: the CRL of "${crl.issuer}" names no CA in remote.cacerts; it applies when the peer sends that CA as an intermediate`,
    );
  }
  const next = crl.parts.nextUpdate;
  if (next !== undefined && nowMs > next) {
    ctx.warnings.push(
      `${path}: the CRL of "${crl.issuer}" is stale (nextUpdate ${new Date(next).toISOString()}); it is applied anyway — replace it`,
    );
  }
}

/** The private key file (PEM or DER; PKCS#8, PKCS#1 RSA or SEC1 EC; not encrypted). */
export function keyFromFile(ctx: CertCtx, path: string, file: string): KeyObject | undefined {
  const raw = read(ctx, path, file);
  if (!raw) return undefined;
  const pem = Buffer.from(raw).toString('latin1').includes('-----BEGIN');
  if (pem && /ENCRYPTED/.test(Buffer.from(raw).toString('latin1'))) {
    return ctx.err(
      path,
      `${JSON.stringify(file)} is an encrypted private key; ikegw needs it unencrypted (protect the file instead)`,
    );
  }
  let key: KeyObject;
  try {
    key = pem
      ? createPrivateKey({ key: Buffer.from(raw), format: 'pem' })
      : createPrivateKey({ key: Buffer.from(raw), format: 'der', type: 'pkcs8' });
  } catch {
    // the library's message may quote the input; never repeat it
    return ctx.err(
      path,
      `${JSON.stringify(file)} does not hold a private key ikegw can read (PEM or PKCS#8 DER, unencrypted)`,
    );
  }
  try {
    keyKind(key);
  } catch (e) {
    if (e instanceof SignatureError) return ctx.err(path, e.message);
    throw e;
  }
  return key;
}

const DAY = 86_400_000;

/** Expiry warnings (and not-yet-valid) for one certificate. */
export function expiryWarnings(ctx: CertCtx, path: string, c: Cert, nowMs: number): void {
  const to = c.x509.validToDate.getTime();
  const day = c.x509.validToDate.toISOString().slice(0, 10);
  if (nowMs > to)
    ctx.warnings.push(`${path}: certificate "${c.subject}" EXPIRED on ${day}; peers will refuse it`);
  else if (to - nowMs < EXPIRY_WARNING_DAYS * DAY) {
    ctx.warnings.push(
      `${path}: certificate "${c.subject}" expires on ${day} (in ${Math.ceil((to - nowMs) / DAY)} days)`,
    );
  }
  if (nowMs < c.x509.validFromDate.getTime()) {
    ctx.warnings.push(
      `${path}: certificate "${c.subject}" is not valid before ${c.x509.validFromDate.toISOString()}`,
    );
  }
}

/**
 * Our certificate chain (local.certs): the first certificate is ours and must match the key; the
 * others must be its issuers, in any order, each verifying the one below (the peer must hold
 * whatever is above the last). `anchors` (remote.cacerts) may complete it.
 */
export function checkLocalChain(
  ctx: CertCtx,
  path: string,
  certs: Cert[],
  key: KeyObject,
  keyPath: string,
  anchors: Cert[],
): boolean {
  const ee = certs[0]!;
  if (!ee.x509.checkPrivateKey(key)) {
    ctx.err(
      keyPath,
      `the private key (${describeKey(key)}) does not belong to certificate "${ee.subject}" (${describeKey(ee.x509.publicKey)})`,
    );
    return false;
  }
  if (ee.x509.ca)
    ctx.warnings.push(`${path}: certificate "${ee.subject}" is a CA certificate, used as an end entity`);
  const rest = certs.slice(1);
  const used = new Set<Cert>();
  for (let cur = ee; !isSelfSigned(cur); ) {
    const up = [...rest, ...anchors].find(
      (p) => p !== cur && !used.has(p) && cur.x509.checkIssued(p.x509) && cur.x509.verify(p.x509.publicKey),
    );
    if (!up) break; // the peer must hold the rest of the chain
    if (!up.x509.ca) {
      ctx.err(path, `"${up.subject}" issued "${cur.subject}" but is not a CA (basicConstraints)`);
      return false;
    }
    used.add(up);
    cur = up;
  }
  const stray = rest.filter((r) => !used.has(r));
  if (stray.length) {
    ctx.err(
      path,
      `certificate(s) ${stray.map((s) => `"${s.subject}"`).join(', ')} are not issuers in the chain of "${ee.subject}" (issuer "${ee.x509.issuer.replace(/\n/g, ', ')}"): the chain does not build`,
    );
    return false;
  }
  return true;
}

/** local.id for a certificate: given, it must be in the certificate; absent, the subject DN. */
export function localIdForCert(
  ctx: CertCtx,
  path: string,
  ee: Cert,
  given: IdConfig | undefined,
): IdConfig | undefined {
  if (!given) return { type: 9, data: ee.parts.subject };
  if (!certHasId(ee, given.type, given.data)) {
    return ctx.err(
      path,
      `is not in our certificate (it has ${certIds(ee)}); use the subject DN or a subjectAltName`,
    );
  }
  // a DN written in the file: send the certificate's own encoding
  return given.type === 9 ? { type: 9, data: ee.parts.subject } : given;
}
