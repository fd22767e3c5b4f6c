// Certificate (CERT, RFC 7296 §3.6) and Certificate Request (CERTREQ, §3.7) payloads.
// Both bodies have the same layout; CERTREQ carries Certification Authority data instead.
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Cert Encoding |                                               |
// +-+-+-+-+-+-+-+-+                                               |
// ~       Certificate Data / Certification Authority              ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { putU8, takeRest } from '../header.js';
import type { CertPayload } from '../types.js';

/** Certificate encoding 4: X.509 Certificate - Signature (RFC 7296 §3.6). */
const X509_SIGNATURE = 4;
const SHA1_LEN = 20;

export function decodeCert(r: Reader, critical: boolean, type: 37 | 38): CertPayload {
  const encoding = r.u8(`${type === 37 ? 'CERT' : 'CERTREQ'} encoding`);
  return { type, critical, encoding, data: takeRest(r) };
}

export function encodedLengthCert(x: CertPayload): number {
  return 1 + x.data.length;
}

export function encodeCert(w: Writer, x: CertPayload): void {
  putU8(w, x.encoding, 'CERT encoding');
  w.bytes(x.data);
}

/**
 * CERT must carry data. For X.509 a CERTREQ holds concatenated SHA-1 hashes of CA public keys
 * (RFC 7296 §3.7), so its length is a multiple of 20; an empty CERTREQ is allowed.
 */
export function verifyCert(x: CertPayload): void {
  if (x.type === 37 && x.data.length === 0) throw new DecodeError('CERT: empty certificate data');
  if (x.type === 38 && x.encoding === X509_SIGNATURE && x.data.length % SHA1_LEN !== 0) {
    throw new DecodeError(`CERTREQ: X.509 CA data is ${x.data.length} bytes, not a multiple of ${SHA1_LEN}`);
  }
}
