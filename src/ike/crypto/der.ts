// The little ASN.1 DER that certificate authentication needs beyond node:crypto's X509Certificate:
// the subject Name (ID_DER_ASN1_DN, RFC 7296 §3.5) and SubjectPublicKeyInfo (CERTREQ, §3.7) as
// raw bytes, keyUsage and subjectAltName entries, distinguished names as text and back, and the
// AlgorithmIdentifiers of RFC 7427, CRLs (RFC 5280 §5: issuer, dates, revoked serials) and the
// CRL distribution point / OCSP URIs of a certificate (logged, never fetched). A reader of
// definite-length DER with single-byte tags (all that X.509 uses) and a writer for
// SEQUENCE/SET/OID/strings; everything else is X509Certificate's.
import { DecodeError } from '../../common/errors.js';

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** One TLV inside `buf`: the value is buf[start, end), the whole element buf[offset, end). */
export interface Tlv {
  tag: number;
  offset: number;
  start: number;
  end: number;
}

export function readTlv(buf: Uint8Array, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new DecodeError('DER: truncated header');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DecodeError('DER: multi-byte tags are not supported');
  let len = buf[offset + 1]!;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DecodeError(`DER: bad length of length ${n}`);
    if (start + n > limit) throw new DecodeError('DER: truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DecodeError('DER: element runs past its container');
  return { tag, offset, start, end };
}

/** The elements inside a constructed TLV. */
export function children(buf: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let o = t.start; o < t.end; ) {
    const c = readTlv(buf, o, t.end);
    out.push(c);
    o = c.end;
  }
  return out;
}

const whole = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.offset, t.end);
const value = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.start, t.end);

function expect(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DecodeError(`DER: ${what} expected (tag 0x${tag.toString(16)})`);
  return t;
}

export function decodeOid(b: Uint8Array): string {
  if (b.length === 0) throw new DecodeError('DER: empty OID');
  const parts: number[] = [];
  let v = 0;
  for (const x of b) {
    v = v * 128 + (x & 0x7f);
    if (!(x & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  const first = parts.shift()!;
  const a = first < 40 ? 0 : first < 80 ? 1 : 2;
  return [a, first - 40 * a, ...parts].join('.');
}

export function encodeOid(oid: string): Uint8Array {
  const p = oid.split('.').map(Number);
  const arcs = [p[0]! * 40 + p[1]!, ...p.slice(2)];
  const out: number[] = [];
  for (const arc of arcs) {
    const bytes = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(Tag.OID, Uint8Array.from(out));
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const head =
    len < 0x80
      ? [tag, len]
      : len < 0x100
        ? [tag, 0x81, len]
        : len < 0x10000
          ? [tag, 0x82, len >> 8, len & 0xff]
          : [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(head.length + len);
  out.set(head);
  let o = head.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ------------------------------------------------------------------------------------ certificates

/** What certificate authentication reads from a certificate's DER beyond X509Certificate. */
export interface CertParts {
  /** The subject Name, DER (the data of an ID_DER_ASN1_DN identity). */
  subject: Uint8Array;
  issuer: Uint8Array;
  /** SubjectPublicKeyInfo, DER (its SHA-1 is what CERTREQ carries, RFC 7296 §3.7). */
  spki: Uint8Array;
  /** keyUsage bits (bit 0 = digitalSignature = 0x8000 ... bit 8), undefined without the extension. */
  keyUsage?: number;
  /** subjectAltName entries. */
  san: { dns: string[]; email: string[]; ip: Uint8Array[] };
  /** serialNumber as lower-case hex without leading zero bytes (as a CRL entry's, crlParts). */
  serial: string;
  /** URIs of cRLDistributionPoints and of authorityInfoAccess OCSP (logged, never fetched). */
  crlUris: string[];
  ocspUris: string[];
}

export const KeyUsage = { digitalSignature: 0x8000, keyCertSign: 0x0400 } as const;

const OID_KEY_USAGE = '2.5.29.15';
const OID_SAN = '2.5.29.17';
const OID_CRL_DP = '2.5.29.31';
const OID_AIA = '1.3.6.1.5.5.7.1.1';
const OID_OCSP = '1.3.6.1.5.5.7.48.1';

/** An INTEGER's value as lower-case hex, leading zero bytes dropped: serial numbers compare so. */
export function serialHex(v: Uint8Array): string {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i++;
  return Buffer.from(v.subarray(i)).toString('hex');
}

/** uniformResourceIdentifier [6] entries of a GeneralNames list. */
function uris(buf: Uint8Array, names: Tlv): string[] {
  return children(buf, names)
    .filter((g) => g.tag === 0x86)
    .map((g) => Buffer.from(value(buf, g)).toString('latin1'));
}

/**
 * cRLDistributionPoints (RFC 5280 §4.2.1.13): SEQUENCE OF DistributionPoint { [0] EXPLICIT
 * DistributionPointName { fullName [0] IMPLICIT GeneralNames | ... } ... } — the fullName URIs.
 */
function crlDpUris(buf: Uint8Array, ext: Tlv): string[] {
  const out: string[] = [];
  for (const dp of children(buf, expect(ext, Tag.SEQUENCE, 'CRLDistributionPoints'))) {
    const name = children(buf, dp).find((t) => t.tag === 0xa0);
    if (!name) continue;
    for (const n of children(buf, name)) if (n.tag === 0xa0) out.push(...uris(buf, n));
  }
  return out;
}

/** authorityInfoAccess (RFC 5280 §4.2.2.1): the id-ad-ocsp accessLocation URIs. */
function ocspUris(buf: Uint8Array, ext: Tlv): string[] {
  const out: string[] = [];
  for (const ad of children(buf, expect(ext, Tag.SEQUENCE, 'AuthorityInfoAccessSyntax'))) {
    const [method, loc] = children(buf, ad);
    if (!method || method.tag !== Tag.OID || loc?.tag !== 0x86) continue;
    if (decodeOid(value(buf, method)) === OID_OCSP) out.push(Buffer.from(value(buf, loc)).toString('latin1'));
  }
  return out;
}

export function certParts(der: Uint8Array): CertParts {
  const cert = expect(readTlv(der, 0), Tag.SEQUENCE, 'Certificate');
  const tbs = expect(children(der, cert)[0], Tag.SEQUENCE, 'TBSCertificate');
  const f = children(der, tbs);
  let i = f[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  const serial = expect(f[i], Tag.INTEGER, 'serialNumber');
  i += 2; // serialNumber, signature
  const issuer = expect(f[i++], Tag.SEQUENCE, 'issuer');
  i++; // validity
  const subject = expect(f[i++], Tag.SEQUENCE, 'subject');
  const spki = expect(f[i++], Tag.SEQUENCE, 'subjectPublicKeyInfo');
  const out: CertParts = {
    subject: whole(der, subject),
    issuer: whole(der, issuer),
    spki: whole(der, spki),
    san: { dns: [], email: [], ip: [] },
    serial: serialHex(value(der, serial)),
    crlUris: [],
    ocspUris: [],
  };
  const exts = f.slice(i).find((t) => t.tag === 0xa3);
  if (!exts) return out;
  for (const ext of children(der, expect(children(der, exts)[0], Tag.SEQUENCE, 'Extensions'))) {
    const e = children(der, ext);
    const oid = decodeOid(value(der, expect(e[0], Tag.OID, 'extnID')));
    const octets = expect(e[e.length - 1], Tag.OCTET_STRING, 'extnValue');
    const inner = readTlv(der, octets.start, octets.end);
    if (oid === OID_KEY_USAGE) {
      const bits = value(der, expect(inner, Tag.BIT_STRING, 'keyUsage'));
      out.keyUsage = ((bits[1] ?? 0) << 8) | (bits[2] ?? 0);
    } else if (oid === OID_SAN) {
      for (const g of children(der, expect(inner, Tag.SEQUENCE, 'GeneralNames'))) {
        const v = value(der, g);
        if (g.tag === 0x81) out.san.email.push(Buffer.from(v).toString('latin1'));
        else if (g.tag === 0x82) out.san.dns.push(Buffer.from(v).toString('latin1'));
        else if (g.tag === 0x87) out.san.ip.push(Uint8Array.from(v));
      }
    } else if (oid === OID_CRL_DP || oid === OID_AIA) {
      // informational only (logged, not fetched): a malformed one does not fail the certificate
      try {
        if (oid === OID_CRL_DP) out.crlUris.push(...crlDpUris(der, inner));
        else out.ocspUris.push(...ocspUris(der, inner));
      } catch {
        /* ignored */
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------ CRLs

/** A revokedCertificates entry (RFC 5280 §5.1.2.6). */
export interface RevokedEntry {
  /** userCertificate as serialHex. */
  serial: string;
  /** revocationDate, ms since the epoch. */
  date: number;
  /** reasonCode (RFC 5280 §5.3.1), when the entry has one. */
  reason?: number;
}

/** What revocation checking reads from a CRL (RFC 5280 §5.1 CertificateList). */
export interface CrlParts {
  /** tbsCertList, DER: what the signature covers. */
  tbs: Uint8Array;
  /** signatureAlgorithm, DER AlgorithmIdentifier. */
  sigAlg: Uint8Array;
  signature: Uint8Array;
  issuer: Uint8Array;
  thisUpdate: number;
  nextUpdate?: number;
  revoked: RevokedEntry[];
  /** cRLNumber, when present (hex). */
  crlNumber?: string;
  /** Critical CRL extensions this reader does not implement (RFC 5280 §5.2: such a CRL is unusable). */
  unknownCritical: string[];
}

const OID_CRL_NUMBER = '2.5.29.20';
const OID_DELTA_CRL = '2.5.29.27';
const OID_ISSUING_DP = '2.5.29.28';
const OID_AKI = '2.5.29.35';
const OID_REASON = '2.5.29.21';

/** UTCTime (RFC 5280 §4.1.2.5.1: YY >= 50 is 19YY) or GeneralizedTime, "Z" only, as ms. */
export function decodeTime(buf: Uint8Array, t: Tlv | undefined, what: string): number {
  if (!t || (t.tag !== Tag.UTC_TIME && t.tag !== Tag.GENERALIZED_TIME)) {
    throw new DecodeError(`DER: ${what} expected (UTCTime or GeneralizedTime)`);
  }
  const s = Buffer.from(value(buf, t)).toString('latin1');
  const m =
    t.tag === Tag.UTC_TIME
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
      : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(s);
  if (!m) throw new DecodeError(`DER: ${what} ${JSON.stringify(s)} is not a valid time`);
  let year = Number(m[1]);
  if (t.tag === Tag.UTC_TIME) year += year >= 50 ? 1900 : 2000;
  const [mo, d, h, mi, se] = m.slice(2, 7).map(Number) as [number, number, number, number, number];
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || Number.isNaN(ms)) {
    throw new DecodeError(`DER: ${what} ${JSON.stringify(s)} is not a valid time`);
  }
  return ms;
}

/** The Extensions of a CRL or CRL entry: [oid, critical, extnValue's inner TLV]. */
function extensions(buf: Uint8Array, seq: Tlv): Array<{ oid: string; critical: boolean; inner: Tlv }> {
  return children(buf, expect(seq, Tag.SEQUENCE, 'Extensions')).map((ext) => {
    const e = children(buf, expect(ext, Tag.SEQUENCE, 'Extension'));
    const oid = decodeOid(value(buf, expect(e[0], Tag.OID, 'extnID')));
    const critical = e.length === 3 && e[1]!.tag === Tag.BOOLEAN && buf[e[1]!.start] !== 0;
    const octets = expect(e[e.length - 1], Tag.OCTET_STRING, 'extnValue');
    return { oid, critical, inner: readTlv(buf, octets.start, octets.end) };
  });
}

/**
 * Reads a DER CRL (RFC 5280 §5.1): v1 or v2, the revoked serials with their dates and reasons,
 * this/next update. Throws DecodeError naming the element that is wrong; the signature is checked
 * by the caller (x509.ts), with the issuer's key.
 */
export function crlParts(der: Uint8Array): CrlParts {
  if (der[0] !== Tag.SEQUENCE) throw new DecodeError('DER: CertificateList expected (tag 0x30)');
  const outer = expect(readTlv(der, 0), Tag.SEQUENCE, 'CertificateList');
  if (outer.end !== der.length) throw new DecodeError('DER: trailing bytes after CertificateList');
  const [tbs, alg, sigBits, ...extra] = children(der, outer);
  expect(tbs, Tag.SEQUENCE, 'tbsCertList');
  expect(alg, Tag.SEQUENCE, 'signatureAlgorithm');
  expect(sigBits, Tag.BIT_STRING, 'signatureValue');
  if (extra.length) throw new DecodeError('DER: CertificateList has more than three elements');
  const f = children(der, tbs!);
  let i = 0;
  if (f[0]?.tag === Tag.INTEGER) {
    const v = value(der, f[0]);
    if (v.length !== 1 || v[0]! > 1) throw new DecodeError('DER: CRL version is neither v1 nor v2');
    i++;
  }
  const innerAlg = expect(f[i++], Tag.SEQUENCE, 'tbsCertList signature');
  if (!equalArrays(whole(der, innerAlg), whole(der, alg!))) {
    throw new DecodeError('DER: the CRL signature algorithm differs from the one in tbsCertList');
  }
  const issuer = expect(f[i++], Tag.SEQUENCE, 'CRL issuer');
  const out: CrlParts = {
    tbs: whole(der, tbs!),
    sigAlg: whole(der, alg!),
    signature: value(der, sigBits!).subarray(1),
    issuer: whole(der, issuer),
    thisUpdate: decodeTime(der, f[i++], 'thisUpdate'),
    revoked: [],
    unknownCritical: [],
  };
  if (value(der, sigBits!)[0] !== 0) throw new DecodeError('DER: signatureValue has unused bits');
  if (f[i]?.tag === Tag.UTC_TIME || f[i]?.tag === Tag.GENERALIZED_TIME) {
    out.nextUpdate = decodeTime(der, f[i++], 'nextUpdate');
  }
  if (f[i]?.tag === Tag.SEQUENCE) {
    for (const entry of children(der, f[i++]!)) {
      const e = children(der, expect(entry, Tag.SEQUENCE, 'revokedCertificates entry'));
      const r: RevokedEntry = {
        serial: serialHex(value(der, expect(e[0], Tag.INTEGER, 'userCertificate'))),
        date: decodeTime(der, e[1], 'revocationDate'),
      };
      if (e[2]) {
        for (const x of extensions(der, e[2])) {
          if (x.oid === OID_REASON && x.inner.tag === 0x0a) r.reason = der[x.inner.start];
          else if (x.critical) out.unknownCritical.push(`entry extension ${x.oid}`);
        }
      }
      out.revoked.push(r);
    }
  }
  if (f[i]?.tag === 0xa0) {
    for (const x of extensions(der, children(der, f[i++]!)[0]!)) {
      if (x.oid === OID_CRL_NUMBER && x.inner.tag === Tag.INTEGER)
        out.crlNumber = serialHex(value(der, x.inner));
      else if (x.oid === OID_DELTA_CRL) out.unknownCritical.push('deltaCRLIndicator (delta CRLs)');
      else if (x.critical && x.oid !== OID_ISSUING_DP && x.oid !== OID_AKI) out.unknownCritical.push(x.oid);
    }
  }
  if (i !== f.length) throw new DecodeError('DER: unexpected element in tbsCertList');
  return out;
}

function equalArrays(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, k) => x === b[k]);
}

// ------------------------------------------------------------------------------------ names

export interface Rdn {
  oid: string;
  value: string;
}

/** Attribute names as strongSwan and OpenSSL print them. */
const DN_NAMES: ReadonlyArray<[string, string]> = [
  ['C', '2.5.4.6'],
  ['ST', '2.5.4.8'],
  ['L', '2.5.4.7'],
  ['O', '2.5.4.10'],
  ['OU', '2.5.4.11'],
  ['CN', '2.5.4.3'],
  ['SN', '2.5.4.4'],
  ['serialNumber', '2.5.4.5'],
  ['T', '2.5.4.12'],
  ['G', '2.5.4.42'],
  ['street', '2.5.4.9'],
  ['postalCode', '2.5.4.17'],
  ['dnQualifier', '2.5.4.46'],
  ['pseudonym', '2.5.4.65'],
  ['E', '1.2.840.113549.1.9.1'],
  ['DC', '0.9.2342.19200300.100.1.25'],
  ['UID', '0.9.2342.19200300.100.1.1'],
];
const NAME_TO_OID = new Map<string, string>([
  ...DN_NAMES.map(([n, o]) => [n.toLowerCase(), o] as [string, string]),
  ['emailaddress', '1.2.840.113549.1.9.1'],
  ['gn', '2.5.4.42'],
  ['s', '2.5.4.8'],
]);
const OID_TO_NAME = new Map(DN_NAMES.map(([n, o]) => [o, n]));

function stringValue(buf: Uint8Array, t: Tlv): string {
  const v = value(buf, t);
  if (t.tag === Tag.BMP_STRING) {
    let s = '';
    for (let i = 0; i + 1 < v.length; i += 2) s += String.fromCharCode((v[i]! << 8) | v[i + 1]!);
    return s;
  }
  if (t.tag === Tag.UTF8_STRING) return new TextDecoder().decode(v);
  return Buffer.from(v).toString('latin1');
}

/** A DER Name (SEQUENCE OF RDN) as a list of attributes, in order (multi-valued RDNs flattened). */
export function parseDn(der: Uint8Array): Rdn[] {
  const seq = expect(readTlv(der, 0), Tag.SEQUENCE, 'Name');
  if (seq.end !== der.length) throw new DecodeError('DER: trailing bytes after Name');
  const out: Rdn[] = [];
  for (const set of children(der, seq)) {
    expect(set, Tag.SET, 'RelativeDistinguishedName');
    for (const atv of children(der, set)) {
      const [oid, val] = children(der, expect(atv, Tag.SEQUENCE, 'AttributeTypeAndValue'));
      out.push({
        oid: decodeOid(value(der, expect(oid, Tag.OID, 'attribute type'))),
        value: stringValue(der, val!),
      });
    }
  }
  return out;
}

/** "C=CH, O=example, CN=gw.example.com" (strongSwan's form; commas in values escaped). */
export function formatRdns(rdns: Rdn[]): string {
  return rdns
    .map((r) => `${OID_TO_NAME.get(r.oid) ?? r.oid}=${r.value.replace(/([,\\])/g, '\\$1')}`)
    .join(', ');
}

export function formatDn(der: Uint8Array): string {
  try {
    return formatRdns(parseDn(der));
  } catch {
    return `<bad DN ${Buffer.from(der).toString('hex')}>`;
  }
}

/**
 * A DN written as strongSwan accepts it: "C=CH, O=example, CN=gw" (',' or '/' between attributes,
 * '\' escapes, OpenSSL's leading "/" form too). Throws with the reason on a bad string.
 */
export function parseDnString(text: string): Rdn[] {
  let s = text.trim();
  let sep = ',';
  if (s.startsWith('/')) {
    sep = '/';
    s = s.slice(1);
  }
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) cur += s[++i];
    else if (c === sep || (sep === ',' && c === ';')) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  const out: Rdn[] = [];
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new DecodeError(`"${p.trim()}" is not an attribute=value pair`);
    const key = p.slice(0, eq).trim();
    const oid = /^\d+(\.\d+)+$/.test(key) ? key : NAME_TO_OID.get(key.toLowerCase());
    if (!oid) throw new DecodeError(`unknown DN attribute "${key}"`);
    out.push({ oid, value: p.slice(eq + 1).trim() });
  }
  return out;
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** DER Name for a list of attributes, one per RDN; PrintableString where it fits, else UTF8String. */
export function encodeDn(rdns: Rdn[]): Uint8Array {
  return tlv(
    Tag.SEQUENCE,
    ...rdns.map((r) =>
      tlv(
        Tag.SET,
        tlv(
          Tag.SEQUENCE,
          encodeOid(r.oid),
          PRINTABLE.test(r.value)
            ? tlv(Tag.PRINTABLE_STRING, Buffer.from(r.value, 'latin1'))
            : tlv(Tag.UTF8_STRING, new TextEncoder().encode(r.value)),
        ),
      ),
    ),
  );
}

/**
 * Whether a DN matches a wanted one: the same attributes in the same order, values equal ignoring
 * case and string type (as strongSwan compares DNs); a wanted value "*" matches any value.
 */
export function dnMatches(want: Rdn[], got: Rdn[]): boolean {
  return (
    want.length === got.length &&
    want.every(
      (w, i) =>
        w.oid === got[i]!.oid && (w.value === '*' || w.value.toLowerCase() === got[i]!.value.toLowerCase()),
    )
  );
}

// ------------------------------------------------------------------------------------ algorithms

export const NULL_PARAMS = Uint8Array.of(Tag.NULL, 0);

/** AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } */
export function algorithmIdentifier(oid: string, params?: Uint8Array): Uint8Array {
  return params ? tlv(Tag.SEQUENCE, encodeOid(oid), params) : tlv(Tag.SEQUENCE, encodeOid(oid));
}

export interface ParsedAlgorithm {
  oid: string;
  /** Parameters as DER (absent = undefined). */
  params?: Uint8Array;
}

export function parseAlgorithmIdentifier(der: Uint8Array): ParsedAlgorithm {
  const seq = expect(readTlv(der, 0), Tag.SEQUENCE, 'AlgorithmIdentifier');
  if (seq.end !== der.length) throw new DecodeError('DER: trailing bytes after AlgorithmIdentifier');
  const [oid, params] = children(der, seq);
  const out: ParsedAlgorithm = { oid: decodeOid(value(der, expect(oid, Tag.OID, 'algorithm'))) };
  if (params && params.tag !== Tag.NULL) out.params = whole(der, params);
  return out;
}

/** RSASSA-PSS-params (RFC 4055 §3.1) reduced to what a verifier needs. */
export interface PssParams {
  hashOid: string;
  mgfHashOid: string;
  saltLength: number;
}

const OID_SHA1 = '1.3.14.3.2.26';
const OID_MGF1 = '1.2.840.113549.1.1.8';

export function parsePssParams(der: Uint8Array | undefined): PssParams {
  const out: PssParams = { hashOid: OID_SHA1, mgfHashOid: OID_SHA1, saltLength: 20 };
  if (!der) return out;
  for (const f of children(der, expect(readTlv(der, 0), Tag.SEQUENCE, 'RSASSA-PSS-params'))) {
    const inner = readTlv(der, f.start, f.end);
    if (f.tag === 0xa0) out.hashOid = parseAlgorithmIdentifier(whole(der, inner)).oid;
    else if (f.tag === 0xa1) {
      const mgf = parseAlgorithmIdentifier(whole(der, inner));
      if (mgf.oid !== OID_MGF1) throw new DecodeError(`RSASSA-PSS: mask generation ${mgf.oid} is not MGF1`);
      out.mgfHashOid = mgf.params ? parseAlgorithmIdentifier(mgf.params).oid : OID_SHA1;
    } else if (f.tag === 0xa2) {
      const v = value(der, expect(inner, Tag.INTEGER, 'saltLength'));
      out.saltLength = v.reduce((n, x) => n * 256 + x, 0);
    } else if (f.tag === 0xa3) {
      const v = value(der, expect(inner, Tag.INTEGER, 'trailerField'));
      if (v.length !== 1 || v[0] !== 1) throw new DecodeError('RSASSA-PSS: trailerField must be 1');
    }
  }
  return out;
}

export function encodePssParams(hashOid: string, saltLength: number): Uint8Array {
  const hash = algorithmIdentifier(hashOid, NULL_PARAMS);
  return tlv(
    Tag.SEQUENCE,
    tlv(0xa0, hash),
    tlv(0xa1, algorithmIdentifier(OID_MGF1, hash)),
    tlv(0xa2, tlv(Tag.INTEGER, Uint8Array.of(saltLength))),
  );
}
