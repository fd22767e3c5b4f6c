// Encrypted and Authenticated payload SK (RFC 7296 §3.14) and Encrypted Fragment payload SKF
// (RFC 7383 §2.5). Both are kept opaque here: the crypto layer decrypts the body and then calls
// decodePayloadChain(innerType, ...). The Next Payload field of the generic header holds the type
// of the first inner payload (`innerType`); SK/SKF must be the last payload of a message.
//
// SK:
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                     Initialization Vector                     |
// |         (length is block size for encryption algorithm)       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                    Encrypted IKE Payloads                     ~
// +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |               |             Padding (0-255 octets)            |
// +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
// |                                               |  Pad Length   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                    Integrity Checksum Data                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// SKF (Next Payload is the first inner type in fragment 1 and 0 in the others):
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |        Fragment Number        |        Total Fragments        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |                     Initialization Vector                     |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Encrypted content                        ~
// +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |               |             Padding (0-255 octets)            |
// +-+-+-+-+-+-+-+-+                               +-+-+-+-+-+-+-+-+
// |                                               |  Pad Length   |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                    Integrity Checksum Data                    ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType } from '../constants.js';
import { putU16, takeRest } from '../header.js';
import type { SkfPayload, SkPayload } from '../types.js';

export function decodeSk(r: Reader, critical: boolean, innerType: number): SkPayload {
  return { type: PayloadType.SK, critical, innerType, data: takeRest(r) };
}

export function encodedLengthSk(x: SkPayload): number {
  return x.data.length;
}

/** Writes IV | ciphertext | ICV as given; the crypto layer fills the ICV after encoding. */
export function encodeSk(w: Writer, x: SkPayload): void {
  w.bytes(x.data);
}

/** IV, padding and ICV sizes depend on the negotiated suite; the crypto layer checks them. */
export function verifySk(_x: SkPayload): void {}

export function decodeSkf(r: Reader, critical: boolean, innerType: number): SkfPayload {
  const fragmentNumber = r.u16('SKF fragment number');
  const totalFragments = r.u16('SKF total fragments');
  return { type: PayloadType.SKF, critical, innerType, fragmentNumber, totalFragments, data: takeRest(r) };
}

export function encodedLengthSkf(x: SkfPayload): number {
  return 4 + x.data.length;
}

export function encodeSkf(w: Writer, x: SkfPayload): void {
  putU16(w, x.fragmentNumber, 'SKF fragment number');
  putU16(w, x.totalFragments, 'SKF total fragments');
  w.bytes(x.data);
}

/**
 * RFC 7383 §2.5: fragments are numbered from 1, and Fragment Number never exceeds Total
 * Fragments (§2.6.1: such a fragment is discarded). The rule that Next Payload is 0 in non-first
 * fragments is a sender MUST that receivers need not enforce, so it is not checked.
 */
export function verifySkf(x: SkfPayload): void {
  if (x.fragmentNumber < 1) throw new DecodeError('SKF: fragment number 0');
  if (x.fragmentNumber > x.totalFragments) {
    throw new DecodeError(`SKF: fragment number ${x.fragmentNumber} > total fragments ${x.totalFragments}`);
  }
}
