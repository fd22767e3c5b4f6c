// A self-signed X.509 v3 certificate (ECDSA P-256 / SHA-256) made with node:crypto alone, so tests
// need no `openssl` binary. Layout: RFC 5280 §4.1 (Certificate, TBSCertificate), SAN §4.2.1.6,
// basicConstraints §4.2.1.9; ecdsa-with-SHA256 OID from RFC 5758 §3.2.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { isIPv4 } from 'node:net';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}
const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));
const octets = (b: Buffer) => tlv(0x04, b);
const bitString = (b: Buffer) => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, body: Buffer) => tlv(0xa0 | n, body);

function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  let v = b.subarray(i);
  if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return tlv(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack: number[] = [p & 0x7f];
    for (let v = p >>> 7; v > 0; v >>>= 7) stack.unshift((v & 0x7f) | 0x80);
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}

function utcTime(d: Date): Buffer {
  const p = (n: number) => String(n).padStart(2, '0');
  const s = `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return tlv(0x17, Buffer.from(s, 'ascii'));
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

export interface SelfSigned {
  certPem: string;
  keyPem: string;
}

/** A certificate for `names` (IPv4 addresses and DNS names), valid from an hour ago for a day. */
export function selfSignedCert(names: string[] = ['127.0.0.1', 'localhost']): SelfSigned {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const name = seq(set(seq(oid('2.5.4.3'), utf8('ikegw-test-apiserver'))));
  const now = Date.now();
  const san = seq(
    ...names.map((n) =>
      isIPv4(n) ? tlv(0x87, Buffer.from(n.split('.').map(Number))) : tlv(0x82, Buffer.from(n, 'ascii')),
    ),
  );
  const extensions = seq(
    seq(oid('2.5.29.19'), bool(true), octets(seq(bool(true)))),
    seq(oid('2.5.29.17'), octets(san)),
  );
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(randomBytes(12)),
    ecdsaSha256,
    name,
    seq(utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 86400_000))),
    name,
    spki,
    explicit(3, extensions),
  );
  const sig = sign('sha256', tbs, privateKey);
  const cert = seq(tbs, ecdsaSha256, bitString(sig));
  return {
    certPem: pem('CERTIFICATE', cert),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
