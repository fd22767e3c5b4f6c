// Authentication payload (RFC 7296 §3.8).
//
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Next Payload  |C|  RESERVED   |         Payload Length        |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// | Auth Method   |                RESERVED                       |
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// ~                      Authentication Data                      ~
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
import type { Reader, Writer } from '../../../common/bytes.js';
import { DecodeError } from '../../../common/errors.js';
import { PayloadType } from '../constants.js';
import { putU8, putZeros, skipReserved, takeRest } from '../header.js';
import type { AuthPayload } from '../types.js';

export function decodeAuth(r: Reader, critical: boolean): AuthPayload {
  const method = r.u8('AUTH method');
  skipReserved(r, 3, 'AUTH');
  return { type: PayloadType.AUTH, critical, method, data: takeRest(r) };
}

export function encodedLengthAuth(x: AuthPayload): number {
  return 4 + x.data.length;
}

export function encodeAuth(w: Writer, x: AuthPayload): void {
  putU8(w, x.method, 'AUTH method');
  putZeros(w, 3);
  w.bytes(x.data);
}

export function verifyAuth(x: AuthPayload): void {
  if (x.data.length === 0) throw new DecodeError('AUTH: empty authentication data');
}
