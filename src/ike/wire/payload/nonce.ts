// Nonce payload (RFC 7296 §3.9).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                            Nonce Data                         ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType } from '../constants.js';
import { takeRest } from '../header.js';
import type { NoncePayload } from '../types.js';

/** RFC 7296 §3.9: the nonce is between 16 and 256 octets. */
export const NONCE_MIN = 16;
export const NONCE_MAX = 256;

export function decodeNonce(r: Reader, critical: boolean): NoncePayload {
  return { type: PayloadType.NONCE, critical, data: takeRest(r) };
}

export function encodedLengthNonce(x: NoncePayload): number {
  return x.data.length;
}

export function encodeNonce(w: Writer, x: NoncePayload): void {
  w.bytes(x.data);
}

export function verifyNonce(x: NoncePayload): void {
  if (x.data.length < NONCE_MIN || x.data.length > NONCE_MAX) {
    throw new DecodeError(`Nonce: data length ${x.data.length} outside ${NONCE_MIN}..${NONCE_MAX}`);
  }
}
