// Certificates for IKE_AUTH: the trust chain of a peer's certificate to a configured CA (validity,
// basic constraints, key usage), identities against the certificate (subject DN, subjectAltName),
// CERTREQ data (SHA-1 of the trusted CAs' SubjectPublicKeyInfo, RFC 7296 §3.7), revocation by
// CRLs from files (RFC 5280 §6.3, the subset without delta CRLs, indirect CRLs or fetching).
// X.509 parsing and certificate signature checks are node:crypto's X509Certificate; der.ts reads
// what it does not expose, and CRLs, which node:crypto does not parse at all.
// No I/O: certificates and CRLs come as DER from the configuration or CERT payloads, time as `nowMs`.
import { createHash, X509Certificate } from 'node:crypto';
import { concat, equalBytes } from '../../common/bytes.js';
import { IdType } from '../wire/constants.js';
import {
  type CertParts,
  type CrlParts,
  certParts,
  crlParts,
  dnMatches,
  formatDn,
  KeyUsage,
  parseDn,
  type RevokedEntry,
} from './der.js';
import { verifyWithAlgorithm, X509_SIG_HASHES } from './signature.js';

/** Why a certificate was refused: the words in logs, failures and metrics' detail. */
export type CertFailure =
  | 'no-cert'
  | 'bad-cert'
  | 'untrusted-ca'
  | 'expired'
  | 'not-yet-valid'
  | 'not-a-ca'
  | 'key-usage'
  | 'id-mismatch'
  | 'revoked';

export class CertError extends Error {
  constructor(
    readonly code: CertFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface Cert {
  der: Uint8Array;
  x509: X509Certificate;
  parts: CertParts;
  /** Subject DN in strongSwan's form. */
  subject: string;
}

const cache = new WeakMap<Uint8Array, Cert>();
/**
 * Certificates from CERT payloads by content: every IKE_AUTH of a peer carries the same ones, and
 * parsing them (X509Certificate + our DER reader) was ~0.13 ms of each handshake. Bounded; a
 * Cert is immutable, so sharing one between IKE_SAs is safe.
 */
const byContent = new Map<string, Cert>();
const BY_CONTENT_MAX = 512;

/**
 * Parses a DER certificate, cached per array (the configuration's arrays live as long as it) and
 * by content (a peer's certificate arrives in a new array with every IKE_AUTH).
 */
export function parseCert(der: Uint8Array): Cert {
  const hit = cache.get(der);
  if (hit) return hit;
  const key = createHash('sha256').update(der).digest('base64');
  const same = byContent.get(key);
  if (same) {
    cache.set(der, same);
    return same;
  }
  let c: Cert;
  try {
    const x509 = new X509Certificate(der);
    // The public key is decoded only when asked for: one that does not decode must fail here,
    // not later in a signature check (config check, or a peer's CERT in IKE_AUTH).
    void x509.publicKey;
    const parts = certParts(der);
    c = { der, x509, parts, subject: formatDn(parts.subject) };
  } catch (e) {
    throw new CertError('bad-cert', `the certificate does not parse: ${(e as Error).message}`);
  }
  cache.set(der, c);
  if (byContent.size >= BY_CONTENT_MAX) byContent.clear();
  byContent.set(key, c);
  return c;
}

/**
 * Issuer signatures already verified, per certificate (as strongSwan's cert cache): the chain of
 * a peer's certificate is the same for each of its IKE_SAs, and X509Certificate.verify was
 * ~0.15 ms of each. Only successes are kept; Cert objects are shared through parseCert's caches.
 */
const signedBy = new WeakMap<Cert, WeakSet<Cert>>();

function verifiedBy(c: Cert, issuer: Cert): boolean {
  if (signedBy.get(c)?.has(issuer)) return true;
  if (!c.x509.verify(issuer.x509.publicKey)) return false;
  let s = signedBy.get(c);
  if (!s) {
    s = new WeakSet();
    signedBy.set(c, s);
  }
  s.add(issuer);
  return true;
}

/** SHA-1 of the SubjectPublicKeyInfo: a CERTREQ's CA entry and strongSwan's key ID. */
export function spkiSha1(c: Cert): Uint8Array {
  return new Uint8Array(createHash('sha1').update(c.parts.spki).digest());
}

/** CERTREQ (X.509 Certificate - Signature) data for the trusted CAs. */
export function certreqData(cas: readonly Cert[]): Uint8Array {
  return concat(...cas.map(spkiSha1));
}

export function isSelfSigned(c: Cert): boolean {
  return sameName(c.parts.issuer, c.parts.subject) && c.x509.verify(c.x509.publicKey);
}

/** Two DER Names are the same (byte-equal, or equal as strongSwan compares DNs). */
export function sameName(a: Uint8Array, b: Uint8Array): boolean {
  if (equalBytes(a, b)) return true;
  try {
    return dnMatches(parseDn(a), parseDn(b));
  } catch {
    return false;
  }
}

const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

/** Within its validity period at `nowMs`, or CertError expired / not-yet-valid. */
export function checkValidity(c: Cert, nowMs: number, role: string): void {
  if (nowMs > c.x509.validToDate.getTime()) {
    throw new CertError('expired', `${role} "${c.subject}" expired on ${iso(c.x509.validToDate)}`);
  }
  if (nowMs < c.x509.validFromDate.getTime()) {
    throw new CertError(
      'not-yet-valid',
      `${role} "${c.subject}" is not valid before ${iso(c.x509.validFromDate)}`,
    );
  }
}

function checkCa(c: Cert, role: string): void {
  if (!c.x509.ca) {
    throw new CertError(
      'not-a-ca',
      `${role} "${c.subject}" is not a CA (basicConstraints CA:FALSE or absent)`,
    );
  }
  if (c.parts.keyUsage !== undefined && !(c.parts.keyUsage & KeyUsage.keyCertSign)) {
    throw new CertError('key-usage', `${role} "${c.subject}" has keyUsage without keyCertSign`);
  }
}

// ------------------------------------------------------------------------------------ CRLs

export interface Crl {
  der: Uint8Array;
  parts: CrlParts;
  /** Issuer DN in strongSwan's form. */
  issuer: string;
  /** The revoked entries by serial (a CRL of 100,000 entries: a lookup instead of a 1.5 ms scan). */
  bySerial: Map<string, RevokedEntry>;
}

const crlCache = new WeakMap<Uint8Array, Crl>();

/** Parses a DER CRL (cached per array); throws an Error saying what does not parse. */
export function parseCrl(der: Uint8Array): Crl {
  const hit = crlCache.get(der);
  if (hit) return hit;
  let c: Crl;
  try {
    const parts = crlParts(der);
    c = {
      der,
      parts,
      issuer: formatDn(parts.issuer),
      bySerial: new Map(parts.revoked.map((r) => [r.serial, r])),
    };
  } catch (e) {
    throw new Error(`the CRL does not parse: ${(e as Error).message}`);
  }
  crlCache.set(der, c);
  return c;
}

const crlSigCache = new WeakMap<Uint8Array, Map<Uint8Array, string | undefined>>();

/**
 * Why the CRL's signature does not verify with `issuer`'s public key (undefined: it verifies, so
 * the CRL is that CA's). Cached per CRL and issuer certificate.
 */
export function crlSignatureProblem(crl: Crl, issuer: Cert): string | undefined {
  let m = crlSigCache.get(crl.der);
  if (!m) {
    m = new Map();
    crlSigCache.set(crl.der, m);
  }
  if (m.has(issuer.der)) return m.get(issuer.der);
  let why: string | undefined;
  if (!sameName(crl.parts.issuer, issuer.parts.subject)) {
    why = `its issuer "${crl.issuer}" is not "${issuer.subject}"`;
  } else {
    try {
      verifyWithAlgorithm(
        issuer.x509.publicKey,
        crl.parts.sigAlg,
        crl.parts.signature,
        crl.parts.tbs,
        X509_SIG_HASHES,
        'CRL',
        { who: 'the CRL', keyOf: `"${issuer.subject}"` },
      );
    } catch (e) {
      // SignatureError, or node:crypto refusing the key for the algorithm
      why = (e as Error).message;
    }
  }
  m.set(issuer.der, why);
  return why;
}

const REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  '(7)',
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
];

/** A note from chain verification for the log (a stale CRL, a CRL that is not its CA's, ...). */
export type ChainNote = (level: 'debug' | 'warn', msg: string) => void;

/**
 * RFC 5280 §6.3 for one link: `c` issued by `issuer`. Every CRL naming `c`'s issuer whose signature
 * verifies with `issuer`'s key is consulted; `c`'s serial in one is CertError revoked. A CRL past
 * its nextUpdate still counts (as strongSwan: revoked stays revoked; the log says it is stale); no
 * CRL for the issuer means no revocation information, which is accepted (no network fetching).
 */
function checkRevocation(
  c: Cert,
  issuer: Cert,
  crls: readonly Crl[],
  nowMs: number,
  role: string,
  note: ChainNote,
): void {
  let used = 0;
  for (const crl of crls) {
    if (!sameName(crl.parts.issuer, c.parts.issuer)) continue;
    const problem = crlSignatureProblem(crl, issuer);
    if (problem) {
      note('warn', `CRL of "${crl.issuer}" ignored for "${c.subject}": ${problem}`);
      continue;
    }
    used++;
    const p = crl.parts;
    if (p.nextUpdate !== undefined && nowMs > p.nextUpdate) {
      note(
        'warn',
        `CRL of "${crl.issuer}" is stale (nextUpdate ${iso(new Date(p.nextUpdate))}); applied anyway — replace the file in remote.crls`,
      );
    }
    const hit = crl.bySerial.get(c.parts.serial);
    if (hit) {
      throw new CertError(
        'revoked',
        `${role} "${c.subject}" (serial ${c.parts.serial}) is revoked by the CRL of "${crl.issuer}" since ${iso(
          new Date(hit.date),
        )}${hit.reason !== undefined ? ` (${REASONS[hit.reason] ?? hit.reason})` : ''}`,
      );
    }
  }
  if (!used && crls.length) note('debug', `no CRL of "${issuer.subject}" for "${c.subject}": not checked`);
}

/**
 * The chain from `ee` (the peer's end-entity certificate) through `intermediates` (its other CERT
 * payloads) to one of `trusted` (remote.cacerts): end-entity first, the trust anchor last. Checks
 * every certificate's validity and signature, CA flags and key usage, and revocation by `crls`
 * (remote.crls; `note` hears about stale CRLs); throws CertError naming what is wrong.
 */
export function verifyChain(
  ee: Cert,
  intermediates: readonly Cert[],
  trusted: readonly Cert[],
  nowMs: number,
  crls: readonly Crl[] = [],
  note: ChainNote = () => {},
): Cert[] {
  checkValidity(ee, nowMs, 'the peer certificate');
  if (ee.parts.keyUsage !== undefined && !(ee.parts.keyUsage & KeyUsage.digitalSignature)) {
    throw new CertError(
      'key-usage',
      `the peer certificate "${ee.subject}" has keyUsage without digitalSignature`,
    );
  }
  if (trusted.some((t) => equalBytes(t.der, ee.der))) return [ee]; // the peer's certificate itself is trusted
  const chain = [ee];
  let cur = ee;
  const badSig: string[] = [];
  for (let depth = 0; depth < 8; depth++) {
    const issuedBy = (p: Cert): boolean => {
      if (p === cur || !sameName(cur.parts.issuer, p.parts.subject)) return false;
      if (verifiedBy(cur, p)) return true;
      badSig.push(`"${cur.subject}" is not signed by the key of "${p.subject}"`);
      return false;
    };
    const anchor = trusted.find(issuedBy);
    if (anchor) {
      checkValidity(anchor, nowMs, 'the trusted CA certificate');
      checkCa(anchor, 'the trusted CA certificate');
      chain.push(anchor);
      for (let k = 0; k + 1 < chain.length; k++) {
        const role = k === 0 ? 'the peer certificate' : 'the intermediate CA certificate';
        checkRevocation(chain[k]!, chain[k + 1]!, crls, nowMs, role, note);
      }
      return chain;
    }
    const im = intermediates.find((c) => !chain.includes(c) && issuedBy(c));
    if (!im) break;
    checkValidity(im, nowMs, 'the intermediate CA certificate');
    checkCa(im, 'the intermediate CA certificate');
    chain.push(im);
    cur = im;
  }
  throw new CertError(
    'untrusted-ca',
    `no trusted CA for "${cur.subject}" (issuer "${formatDn(cur.parts.issuer)}"); trusted: ${
      trusted.map((t) => `"${t.subject}"`).join(', ') || 'none'
    }${intermediates.length ? `; intermediates sent: ${intermediates.map((c) => `"${c.subject}"`).join(', ')}` : ''}${
      badSig.length ? `; ${badSig.join('; ')}` : ''
    }`,
  );
}

/**
 * Whether an IKE identity is one the certificate vouches for: a DN equal to its subject, an FQDN,
 * email or IP address among its subjectAltNames (as strongSwan: the CN is not a host name).
 */
export function certHasId(c: Cert, type: number, data: Uint8Array): boolean {
  const text = (): string => Buffer.from(data).toString('latin1').toLowerCase();
  switch (type) {
    case IdType.DER_ASN1_DN:
      return sameName(data, c.parts.subject);
    case IdType.FQDN:
      return c.parts.san.dns.some((d) => d.toLowerCase() === text());
    case IdType.RFC822_ADDR:
      return c.parts.san.email.some((d) => d.toLowerCase() === text());
    case IdType.IPV4_ADDR:
    case IdType.IPV6_ADDR:
      return c.parts.san.ip.some((ip) => equalBytes(ip, data));
    default:
      return false;
  }
}

/** The identities a certificate can be used with, for messages: subject DN and SANs. */
export function certIds(c: Cert): string {
  const san = c.parts.san;
  const ips = san.ip.map((b) =>
    b.length === 4
      ? Array.from(b).join('.')
      : Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':'),
  );
  const alt = [...san.dns, ...san.email, ...ips];
  return `"${c.subject}"${alt.length ? `, subjectAltName ${alt.join(', ')}` : ''}`;
}
