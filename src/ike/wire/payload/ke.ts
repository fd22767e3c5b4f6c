// Key Exchange payload (RFC 7296 §3.4).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |   Diffie-Hellman Group Num    |           RESERVED            |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                       Key Exchange Data                       ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType } from '../constants.js';
import { putU16, putZeros, skipReserved, takeRest } from '../header.js';
import type { KePayload } from '../types.js';

export function decodeKe(r: Reader, critical: boolean): KePayload {
  const group = r.u16('KE DH group');
  skipReserved(r, 2, 'KE');
  return { type: PayloadType.KE, critical, group, data: takeRest(r) };
}

export function encodedLengthKe(x: KePayload): number {
  return 4 + x.data.length;
}

export function encodeKe(w: Writer, x: KePayload): void {
  putU16(w, x.group, 'KE DH group');
  putZeros(w, 2);
  w.bytes(x.data);
}

/** The data length per group is checked by the key exchange code; here only that there is some. */
export function verifyKe(x: KePayload): void {
  if (x.data.length === 0) throw new DecodeError('KE: empty key exchange data');
}
